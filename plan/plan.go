// Package plan is the contract between Herald's control plane (the operator,
// or herald dev) and its data plane (the dispatcher): the TopicPlan a
// dispatcher executes, the names of the JetStream streams, subjects,
// consumers, buckets and counters both sides use, and the consumer settings
// the dispatcher relies on (AckWait, PinnedTTL, PinnedGroup). It imports
// nothing of Herald's; package compiler produces plans from the API types.
//
// Plans travel through the JetStream key-value bucket KVBucket, one key per
// Topic (Key), as JSON. Dispatchers watch the keys of the Topics they serve;
// a shared dispatcher watches every key of its namespace and serves the
// plans naming it (TopicPlan.SharedDispatcher).
//
// Dispatcher replicas split a Subscription's limits (MaxInFlight,
// RateLimit) between them through the bucket SharesBucket: each replica
// delivering for a Subscription keeps a key (ShareKey) saying which Share
// of the limits it holds.
package plan

import (
	"errors"
	"fmt"
	"time"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
)

// KVBucket is the JetStream key-value bucket holding one TopicPlan per Topic.
const KVBucket = "herald-plans"

// SharesBucket is the JetStream key-value bucket in which dispatcher
// replicas announce the Share of each Subscription's limits they hold, one
// key per Subscription and replica (ShareKey). A key not refreshed within
// ShareTTL belongs to a replica that is gone.
const SharesBucket = "herald-dispatchers"

// ShareTTL is how long a ShareKey lives without a refresh; replicas
// refresh theirs every ShareRefresh.
const (
	ShareTTL     = 3 * time.Second
	ShareRefresh = time.Second
)

// Share is what one dispatcher replica holds of a Subscription's limits:
// it starts at most InFlight deliveries at once and delivers at most Rate
// events per second. The replicas' shares add up to at most the
// Subscription's MaxInFlight and RateLimit.
type Share struct {
	InFlight int     `json:"inFlight"`
	Rate     float64 `json:"rate,omitempty"`
}

// ShareKey is the SharesBucket key of replica's Share of the Subscription
// whose consumer is consumer in stream. replica holds only letters,
// digits, '-' and '_' (see ReplicaID).
func ShareKey(stream, consumer, replica string) string {
	return stream + "." + consumer + "." + replica
}

// ShareKeys is the SharesBucket key filter matching every replica's
// ShareKey of one Subscription.
func ShareKeys(stream, consumer string) string { return stream + "." + consumer + ".*" }

// ReplicaID turns name (a Pod name, a host name) and a random suffix into
// an identifier usable in a ShareKey: characters other than letters,
// digits, '-' and '_' become '-'.
func ReplicaID(name, suffix string) string {
	b := []byte(name + "-" + suffix)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}

// Version is the schema version of TopicPlan. A dispatcher refuses a plan
// with a version it does not know instead of misreading it.
const Version = 1

// TopicPlan is everything a dispatcher needs to serve one Topic: where to
// publish accepted events and how to deliver them to each Subscription.
type TopicPlan struct {
	// Version is the plan schema version (Version).
	Version int `json:"version"`
	// Namespace and Name identify the Topic.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Stream is the JetStream stream holding the Topic's events.
	Stream string `json:"stream"`
	// Subject is the subject accepted events are published to.
	Subject string `json:"subject"`
	// MaxEventSize is the largest accepted event in bytes.
	MaxEventSize int `json:"maxEventSize"`
	// Audience is the audience a producer's bearer token must carry
	// (TopicAudience), published in the Topic's status.address.audience.
	Audience string `json:"audience,omitempty"`
	// Publish is who may publish. A plan without one (from a version
	// before publish policies) accepts every request.
	Publish PublishPolicy `json:"publish"`
	// Subscriptions are delivered independently of each other.
	Subscriptions []SubscriptionPlan `json:"subscriptions,omitempty"`
	// SharedDispatcher is the shared dispatcher serving the Topic, as
	// namespace/name of its Deployment; empty when the Topic has a
	// dedicated dispatcher (which names the Topic in --topics). A
	// dispatcher that names the Topic in --topics serves it whatever this
	// says; a shared dispatcher serves the plans of its namespace that
	// name it, and only those.
	SharedDispatcher string `json:"sharedDispatcher,omitempty"`
	// History, when set, has the dispatcher record every delivery attempt
	// and outcome in the Topic's HistoryStream.
	History bool `json:"history,omitempty"`
	// MaxDelay is the furthest ahead an event may ask to be delivered
	// (deliverat, deliverafter); zero refuses delayed events, as the
	// Topic's stream may then not allow message schedules. Delayed events
	// are published to a ScheduleSubject.
	MaxDelay Millis `json:"maxDelayMs,omitempty"`
	// Lanes says the Topic's stream holds LaneSubjects: the ingress stores
	// an event of priority high or low on its LaneSubject, and refuses an
	// event whose priority extension names no Priority. Without it (a plan
	// of a stream from before lanes) every event goes to Subject.
	Lanes bool `json:"lanes,omitempty"`
	// Contract, when set, is what the ingress checks events against.
	Contract *Contract `json:"contract,omitempty"`
}

// SubscriptionPlan says how one Subscription's events are delivered.
type SubscriptionPlan struct {
	// Name of the Subscription (in the Topic's namespace).
	Name string `json:"name"`
	// Consumer is the durable JetStream consumer the dispatcher pulls from.
	Consumer string `json:"consumer"`
	// Generation of the Subscription this plan was compiled from.
	Generation int64 `json:"generation,omitempty"`
	// Mode is ModePush (empty means push: the dispatcher delivers to
	// SubscriberURI) or ModePull (consumers fetch over HTTP from the
	// Topic's ingress; the dispatcher runs no delivery loop).
	Mode Mode `json:"mode,omitempty"`
	// SubscriberURI receives the events; empty for a pull Subscription.
	SubscriberURI string `json:"subscriberUri"`
	// ReplyURI receives CloudEvents returned in 200 responses; empty drops them.
	ReplyURI string `json:"replyUri,omitempty"`
	// DeadLetterURI receives events whose delivery failed for good; empty
	// drops them (counted in metrics).
	DeadLetterURI string `json:"deadLetterUri,omitempty"`
	// DeadLetterTopic is "namespace/name" of the Topic behind DeadLetterURI
	// when the sink is a ref to a Topic; redrive reads dead letters there.
	DeadLetterTopic string `json:"deadLetterTopic,omitempty"`
	// SubscriberCACerts, ReplyCACerts and DeadLetterCACerts are the PEM
	// certificates of the certificate authorities trusted for https
	// requests to SubscriberURI, ReplyURI and DeadLetterURI (see CertPool):
	// when set, the only roots trusted; when empty, the system roots.
	SubscriberCACerts string `json:"subscriberCaCerts,omitempty"`
	ReplyCACerts      string `json:"replyCaCerts,omitempty"`
	DeadLetterCACerts string `json:"deadLetterCaCerts,omitempty"`
	// SubscriberAudience, ReplyAudience and DeadLetterAudience, when set,
	// are the audiences of the bearer token the dispatcher presents to
	// SubscriberURI, ReplyURI and DeadLetterURI (a Destination's audience,
	// or the TopicAudience of a Topic it refers to). Empty sends none.
	SubscriberAudience string `json:"subscriberAudience,omitempty"`
	ReplyAudience      string `json:"replyAudience,omitempty"`
	DeadLetterAudience string `json:"deadLetterAudience,omitempty"`
	// Filters must all match for an event to be delivered.
	Filters []Filter `json:"filters,omitempty"`
	// Delivery is the effective retry policy.
	Delivery Delivery `json:"delivery"`
	// Ordering is unordered, ordered or perKey.
	Ordering Ordering `json:"ordering"`
	// MaxInFlight bounds the deliveries under way at once, in total
	// across dispatcher replicas (see Share).
	MaxInFlight int `json:"maxInFlight"`
	// Batch, when set, delivers events in batches (CloudEvents batch
	// content mode); only for unordered Subscriptions without a ReplyURI.
	Batch *Batch `json:"batch,omitempty"`
	// RateLimit bounds the delivery rate, in total across dispatcher
	// replicas (see Share); nil means none.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// Paused stops delivery; the consumer keeps its position.
	Paused bool `json:"paused,omitempty"`
	// AckDeadline is a pull Subscription's ack deadline, the AckWait of
	// its consumer.
	AckDeadline Millis `json:"ackDeadlineMs,omitempty"`
	// Consume is who may pull from a pull Subscription, with the Topic's
	// Audience; a pull Subscription without one admits nobody.
	Consume *PublishPolicy `json:"consume,omitempty"`
	// SigningKeyDir, when set, is the directory holding the files
	// SigningKeyFile and, during a rotation, PreviousSigningKeyFile:
	// every delivery to SubscriberURI is signed with them (see
	// ParseSigningKey). Empty means deliveries are not signed.
	SigningKeyDir string `json:"signingKeyDir,omitempty"`
	// Priority, when set, delivers by priority: the dispatcher pulls from
	// the LaneConsumer of each of Lanes (Consumer reads the normal lane and
	// the redelivery subject) and shares free delivery slots between the
	// lanes holding events by these weights. Only for unordered push
	// Subscriptions; nil reads every lane through Consumer, in stream order.
	Priority *LaneWeights `json:"priority,omitempty"`
}

// Mode says how a Subscription's events reach its consumers.
type Mode string

// Modes, as in the Subscription API.
const (
	ModePush Mode = "push"
	ModePull Mode = "pull"
)

// IsPull reports whether consumers pull sp's events over HTTP.
func (sp *SubscriptionPlan) IsPull() bool { return sp.Mode == ModePull }

// Ordering says in which order a Subscription's events are delivered.
type Ordering string

// Orderings, as in the Subscription API.
const (
	OrderingUnordered Ordering = "unordered"
	OrderingOrdered   Ordering = "ordered"
	OrderingPerKey    Ordering = "perKey"
)

// Backoff policies, as in the Subscription API.
const (
	BackoffLinear      = "linear"
	BackoffExponential = "exponential"
)

// Delivery is a Subscription's effective delivery policy, defaults applied.
type Delivery struct {
	// Retry is the number of retries after the first attempt.
	Retry int `json:"retry"`
	// BackoffPolicy is linear or exponential.
	BackoffPolicy string `json:"backoffPolicy"`
	// BackoffDelay is the base wait between retries.
	BackoffDelay Millis `json:"backoffDelayMs"`
	// BackoffMax caps the wait between retries.
	BackoffMax Millis `json:"backoffMaxMs"`
	// Timeout bounds one attempt.
	Timeout Millis `json:"timeoutMs"`
	// RetryAfterMax caps an honoured Retry-After; negative means "up to BackoffMax".
	RetryAfterMax Millis `json:"retryAfterMaxMs"`
}

// Batch shapes the batches of a Subscription delivered in batches.
type Batch struct {
	// MaxEvents is the most events in one request.
	MaxEvents int `json:"maxEvents"`
	// MaxWait is how long a batch that is not full may wait for more.
	MaxWait Millis `json:"maxWaitMs,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	EventsPerSecond int `json:"eventsPerSecond"`
	Burst           int `json:"burst"`
}

// Filter is one CloudEvents Subscriptions API filter expression. Exactly one
// field is set.
type Filter struct {
	Exact  map[string]string `json:"exact,omitempty"`
	Prefix map[string]string `json:"prefix,omitempty"`
	Suffix map[string]string `json:"suffix,omitempty"`
	CESQL  string            `json:"cesql,omitempty"`
	All    []Filter          `json:"all,omitempty"`
	Any    []Filter          `json:"any,omitempty"`
	Not    *Filter           `json:"not,omitempty"`
}

// Millis is a duration carried as whole milliseconds in JSON.
type Millis int64

// Duration returns m as a time.Duration.
func (m Millis) Duration() time.Duration { return time.Duration(m) * time.Millisecond }

// ToMillis rounds d up to whole milliseconds.
func ToMillis(d time.Duration) Millis {
	return Millis((d + time.Millisecond - 1) / time.Millisecond)
}

// Key is the KVBucket key of a Topic's plan.
func Key(namespace, topic string) string { return namespace + "." + topic }

// NamespaceKeys is the KVBucket key filter matching the plan key of every
// Topic in a namespace (Topic names hold no '.').
func NamespaceKeys(namespace string) string { return namespace + ".*" }

// StreamName is the JetStream stream of a Topic. Kubernetes names hold no
// '_', so the mapping is one-to-one.
func StreamName(namespace, topic string) string { return "herald_" + namespace + "_" + topic }

// Subject is the subject a Topic's events are published to.
func Subject(namespace, topic string) string { return "herald.events." + namespace + "." + topic }

// RedeliverySubject is the subject of a Topic's stream that only the
// consumer of the named Subscription reads besides Subject: events replayed
// or redriven to that Subscription alone are published there.
func RedeliverySubject(namespace, topic, subscription string) string {
	return "herald.redeliver." + namespace + "." + topic + "." + ConsumerName(subscription)
}

// RedeliverySubjects is the wildcard covering every RedeliverySubject of a
// Topic, part of its stream's subjects.
func RedeliverySubjects(namespace, topic string) string {
	return "herald.redeliver." + namespace + "." + topic + ".*"
}

// ScheduleSubject is the subject of a Topic's stream holding the JetStream
// message schedule of one delayed event, token naming the event (a
// subject token: no '.', '*', '>' or white space). When the schedule
// fires, JetStream stores a copy of the event on the Topic's Subject and
// removes the schedule; no consumer reads ScheduleSubjects. A schedule
// published again on the same subject replaces the pending one.
func ScheduleSubject(namespace, topic, token string) string {
	return "herald.scheduled." + namespace + "." + topic + "." + token
}

// ScheduleSubjects is the wildcard covering every ScheduleSubject of a
// Topic, part of its stream's subjects.
func ScheduleSubjects(namespace, topic string) string {
	return "herald.scheduled." + namespace + "." + topic + ".*"
}

// CounterStream is the JetStream stream of Herald's distributed counters
// (AllowMsgCounter): each subject holds one running total, incremented
// with the Nats-Incr header by any dispatcher replica.
const CounterStream = "herald_counters"

// CounterSubjects covers every subject of CounterStream.
const CounterSubjects = "herald.count.>"

// DeadLetterCounter is the CounterStream subject counting the events a
// Subscription of a Topic dead-lettered.
func DeadLetterCounter(namespace, topic, subscription string) string {
	return "herald.count.deadletters." + namespace + "." + topic + "." + ConsumerName(subscription)
}

// DeadLetterCounters covers the DeadLetterCounter subjects of a Topic.
func DeadLetterCounters(namespace, topic string) string {
	return "herald.count.deadletters." + namespace + "." + topic + ".*"
}

// ConsumerPrefix starts the name of every Subscription's durable consumer;
// consumers of a Topic's stream without it are not Herald's.
const ConsumerPrefix = "sub_"

// ConsumerName is the durable consumer of a Subscription. Subscription names
// may hold '.', which consumer names may not; Kubernetes names hold no '_', so
// replacing one with the other is one-to-one.
func ConsumerName(subscription string) string {
	b := []byte(subscription)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return ConsumerPrefix + string(b)
}

// Validate checks what a dispatcher relies on.
func (p *TopicPlan) Validate() error {
	if p.Version != Version {
		return fmt.Errorf("plan version %d is not supported (want %d)", p.Version, Version)
	}
	if p.Namespace == "" || p.Name == "" || p.Stream == "" || p.Subject == "" {
		return fmt.Errorf("plan lacks namespace, name, stream or subject")
	}
	if p.Publish.Authenticate && p.Audience == "" {
		return fmt.Errorf("plan authenticates producers but has no audience")
	}
	for _, r := range p.Publish.Rules {
		for i := range r.Filters {
			if err := r.Filters[i].Validate(); err != nil {
				return fmt.Errorf("publish rule %s: filters[%d]: %w", r.Name, i, err)
			}
		}
	}
	for _, s := range p.Subscriptions {
		switch {
		case s.Consumer == "":
			return fmt.Errorf("subscription %q lacks a consumer", s.Name)
		case s.Mode == ModePull:
			if s.AckDeadline <= 0 {
				return fmt.Errorf("pull subscription %q lacks an ack deadline", s.Name)
			}
		case s.Mode != "" && s.Mode != ModePush:
			return fmt.Errorf("subscription %q has unknown mode %q", s.Name, s.Mode)
		case s.SubscriberURI == "":
			return fmt.Errorf("subscription %q lacks a subscriber URI", s.Name)
		}
		if w := s.Priority; w != nil && (w.High < 1 || w.Normal < 1 || w.Low < 1) {
			return fmt.Errorf("subscription %q has a priority weight below 1", s.Name)
		}
	}
	return nil
}

// AckWait is the AckWait of every push Subscription's consumer, whatever
// its timeout (a pull Subscription's is its AckDeadline): dispatchers send InProgress every third of it for each message
// they hold (queued for a worker, being delivered, waiting for a retry or a
// rate limit), so it only decides how soon JetStream redelivers the
// messages of a dispatcher that died.
const AckWait = 5 * time.Second

// PinnedTTL is how long the pin of an ordered or perKey consumer outlives
// the last pull request of its pinned dispatcher. Dispatchers pull at least
// every 2 s, so a dead dispatcher's pin moves between PinnedTTL-2s and
// PinnedTTL after it died. For perKey that is safe because it exceeds
// AckWait by more than the pull interval: by the time another dispatcher is
// pinned, every message the dead one held has been queued for redelivery,
// and JetStream redelivers those, in stream order, before any later message,
// so no later event of a key overtakes an earlier one.
const PinnedTTL = 9 * time.Second

// PausedUntil is the pause deadline of a paused Subscription's consumer: far
// enough away to mean "until resumed".
var PausedUntil = time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)

// PinnedGroup is the priority group dispatchers of ordered and perKey
// Subscriptions pull with; the server pins one puller at a time (ADR-42).
const PinnedGroup = "herald"

// RetryAfterCap is the longest Retry-After the dispatcher honours.
func (d Delivery) RetryAfterCap() time.Duration {
	if d.RetryAfterMax < 0 {
		return d.BackoffMax.Duration()
	}
	return d.RetryAfterMax.Duration()
}

// Validate checks that f sets exactly one dialect at every level and that
// every CESQL expression parses.
func (f *Filter) Validate() error {
	n := 0
	for _, set := range []bool{f.Exact != nil, f.Prefix != nil, f.Suffix != nil, f.CESQL != "", f.All != nil, f.Any != nil, f.Not != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not (this one sets %d)", n)
	}
	if f.CESQL != "" {
		if _, err := ParseCESQL(f.CESQL); err != nil {
			return fmt.Errorf("cesql %q: %w", f.CESQL, err)
		}
	}
	for i := range f.All {
		if err := f.All[i].Validate(); err != nil {
			return fmt.Errorf("all[%d]: %w", i, err)
		}
	}
	for i := range f.Any {
		if err := f.Any[i].Validate(); err != nil {
			return fmt.Errorf("any[%d]: %w", i, err)
		}
	}
	if f.Not != nil {
		if err := f.Not.Validate(); err != nil {
			return fmt.Errorf("not: %w", err)
		}
	}
	return nil
}

// ParseCESQL parses a CloudEvents SQL expression. The sdk-go parser panics on
// some incomplete expressions (such as "type = "); ParseCESQL turns that into
// an error, so user input can never crash the operator or a dispatcher.
func ParseCESQL(expr string) (e cesql.Expression, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, err = nil, fmt.Errorf("invalid expression: %v", r)
		}
	}()
	e, err = cesqlparser.Parse(expr)
	if err == nil && e == nil {
		err = errors.New("invalid expression")
	}
	return e, err
}
