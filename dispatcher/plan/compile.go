package plan

import (
	"errors"
	"fmt"
	"time"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	cesqlparser "github.com/cloudevents/sdk-go/sql/v2/parser"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// Defaults of a Subscription's delivery when neither it nor its Topic sets a field.
const (
	DefaultRetry           = 3
	DefaultBackoffPolicy   = v1alpha1.BackoffPolicyExponential
	DefaultBackoffDelay    = 200 * time.Millisecond
	DefaultBackoffMax      = 5 * time.Minute
	DefaultTimeout         = 30 * time.Second
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultMaxEventSize    = 1 << 20
	DefaultMaxInFlight     = 64

	// RetryBacklog is how many events of an unordered Subscription may wait
	// for a retry (nakked with a delay, still pending in JetStream) per
	// dispatcher replica, on top of the maxInFlight being delivered. Without
	// it a few failing deliveries would fill MaxAckPending with waiting
	// retries and starve new events; a subscriber that fails for good still
	// stops new deliveries once the backlog is full.
	RetryBacklog = 1000

	// headerAllowance is room for message headers on top of MaxEventSize in
	// the stream's MaxMsgSize.
	headerAllowance = 64 << 10
)

// ResolvedSubscription is a Subscription with its Destinations resolved.
type ResolvedSubscription struct {
	Subscription  *v1alpha1.Subscription
	SubscriberURI string
	ReplyURI      string
	// DeadLetterURI is the resolved effective dead-letter sink (the
	// Subscription's, else the Topic's), empty for none.
	DeadLetterURI string
	// DeadLetterTopic is "namespace/name" when the dead-letter sink is a
	// ref to a Topic; empty otherwise.
	DeadLetterTopic string
}

// Result is what Compile produces for one Topic.
type Result struct {
	// Stream is the desired stream configuration.
	Stream jetstream.StreamConfig
	// Consumers holds the desired consumer of each compiled Subscription, by
	// Subscription name.
	Consumers map[string]jetstream.ConsumerConfig
	// Plan is what the Topic's dispatchers execute.
	Plan TopicPlan
	// Errors holds, by Subscription name, why a Subscription was left out of
	// the plan. The rest of the plan is valid without it.
	Errors map[string]error
}

// Compile turns a Topic and its resolved Subscriptions into the stream,
// consumers and plan. Subscriptions that belong to another Topic or
// namespace are ignored. An error means the Topic itself cannot be compiled.
func Compile(topic *v1alpha1.Topic, subs []ResolvedSubscription) (*Result, error) {
	stream, err := StreamConfig(topic)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Stream:    stream,
		Consumers: map[string]jetstream.ConsumerConfig{},
		Plan: TopicPlan{
			Version:      Version,
			Namespace:    topic.Namespace,
			Name:         topic.Name,
			Stream:       stream.Name,
			Subject:      Subject(topic.Namespace, topic.Name),
			MaxEventSize: maxEventSize(topic),
		},
		Errors: map[string]error{},
	}
	for _, rs := range subs {
		s := rs.Subscription
		if s.Namespace != topic.Namespace || s.Spec.Topic != topic.Name {
			continue
		}
		sp, cc, err := CompileSubscription(topic, rs)
		if err != nil {
			res.Errors[s.Name] = err
			continue
		}
		res.Plan.Subscriptions = append(res.Plan.Subscriptions, sp)
		res.Consumers[s.Name] = cc
	}
	return res, nil
}

func maxEventSize(t *v1alpha1.Topic) int {
	if t.Spec.MaxEventSize > 0 {
		return int(t.Spec.MaxEventSize)
	}
	return DefaultMaxEventSize
}

// StreamConfig is the JetStream stream a Topic declares.
func StreamConfig(t *v1alpha1.Topic) (jetstream.StreamConfig, error) {
	dup, err := v1alpha1.DurationOrDefault(t.Spec.DuplicateWindow, DefaultDuplicateWindow)
	if err != nil {
		return jetstream.StreamConfig{}, fmt.Errorf("duplicateWindow: %w", err)
	}
	cfg := jetstream.StreamConfig{
		Name:              StreamName(t.Namespace, t.Name),
		Description:       fmt.Sprintf("Herald Topic %s/%s", t.Namespace, t.Name),
		Subjects:          []string{Subject(t.Namespace, t.Name), RedeliverySubjects(t.Namespace, t.Name)},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxConsumers:      -1,
		MaxMsgSize:        int32(maxEventSize(t) + headerAllowance),
		Duplicates:        dup,
		Metadata: map[string]string{
			"herald.dev/topic": t.Namespace + "/" + t.Name,
		},
	}
	if t.Spec.Storage == v1alpha1.StorageMemory {
		cfg.Storage = jetstream.MemoryStorage
	}
	if t.Spec.Replicas > 0 {
		cfg.Replicas = int(t.Spec.Replicas)
	}
	if r := t.Spec.Retention; r != nil {
		if r.MaxAge != nil {
			if cfg.MaxAge, err = r.MaxAge.Parse(); err != nil {
				return jetstream.StreamConfig{}, fmt.Errorf("retention.maxAge: %w", err)
			}
			if cfg.MaxAge > 0 && cfg.MaxAge < cfg.Duplicates {
				// JetStream refuses a duplicate window longer than MaxAge.
				cfg.Duplicates = cfg.MaxAge
			}
		}
		if r.MaxBytes != nil {
			cfg.MaxBytes = *r.MaxBytes
		}
		if r.MaxMessages != nil {
			cfg.MaxMsgs = *r.MaxMessages
		}
		if r.Discard == v1alpha1.DiscardNew {
			cfg.Discard = jetstream.DiscardNew
		}
	}
	return cfg, nil
}

// CompileSubscription compiles one Subscription of topic into its plan entry
// and durable consumer configuration.
func CompileSubscription(topic *v1alpha1.Topic, rs ResolvedSubscription) (SubscriptionPlan, jetstream.ConsumerConfig, error) {
	s := rs.Subscription
	if rs.SubscriberURI == "" {
		return SubscriptionPlan{}, jetstream.ConsumerConfig{}, errors.New("subscriber has no resolved URI")
	}
	d, err := EffectiveDelivery(topic.Spec.Delivery, s.Spec.Delivery)
	if err != nil {
		return SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	filters := make([]Filter, 0, len(s.Spec.Filters))
	for i := range s.Spec.Filters {
		f := FromAPI(&s.Spec.Filters[i])
		if err := f.Validate(); err != nil {
			return SubscriptionPlan{}, jetstream.ConsumerConfig{}, fmt.Errorf("filters[%d]: %w", i, err)
		}
		filters = append(filters, f)
	}
	ordering := s.Spec.Ordering
	if ordering == "" {
		ordering = v1alpha1.OrderingUnordered
	}
	inFlight := int(s.Spec.MaxInFlight)
	if inFlight <= 0 {
		inFlight = DefaultMaxInFlight
	}
	if ordering == v1alpha1.OrderingOrdered {
		inFlight = 1
	}
	sp := SubscriptionPlan{
		Name:            s.Name,
		Consumer:        ConsumerName(s.Name),
		Generation:      s.Generation,
		SubscriberURI:   rs.SubscriberURI,
		ReplyURI:        rs.ReplyURI,
		DeadLetterURI:   rs.DeadLetterURI,
		DeadLetterTopic: rs.DeadLetterTopic,
		Filters:         filters,
		Delivery:        d,
		Ordering:        string(ordering),
		MaxInFlight:     inFlight,
		Paused:          s.Spec.Paused,
	}
	if rl := s.Spec.RateLimit; rl != nil {
		burst := int(rl.EventsPerSecond)
		if rl.Burst != nil {
			burst = int(*rl.Burst)
		}
		sp.RateLimit = &RateLimit{EventsPerSecond: int(rl.EventsPerSecond), Burst: burst}
	}
	cc, err := consumerConfig(topic, s, sp)
	if err != nil {
		return SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	return sp, cc, nil
}

// AckWait is the AckWait of every Subscription's consumer, whatever its
// timeout: dispatchers send InProgress every third of it for each message
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

func consumerConfig(topic *v1alpha1.Topic, s *v1alpha1.Subscription, sp SubscriptionPlan) (jetstream.ConsumerConfig, error) {
	replicas := 1
	if ds := topic.Spec.Dispatcher; ds != nil && ds.Replicas != nil && *ds.Replicas > 1 {
		replicas = int(*ds.Replicas)
	}
	cc := jetstream.ConsumerConfig{
		Name:          sp.Consumer,
		Durable:       sp.Consumer,
		Description:   fmt.Sprintf("Herald Subscription %s/%s", s.Namespace, s.Name),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       AckWait,
		// Unlimited: the dispatcher counts attempts and dead-letters the
		// event itself, so a message is never stranded by MaxDeliver.
		MaxDeliver: -1,
		// The Topic's events, and those replayed or redriven to this
		// Subscription alone.
		FilterSubjects: []string{Subject(topic.Namespace, topic.Name), RedeliverySubject(topic.Namespace, topic.Name, s.Name)},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		MaxAckPending:  (sp.MaxInFlight + RetryBacklog) * replicas,
		Metadata: map[string]string{
			"herald.dev/subscription": s.Namespace + "/" + s.Name,
		},
	}
	switch s.Spec.StartPosition {
	case "", "latest":
	case "earliest":
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	default:
		t, err := time.Parse(time.RFC3339Nano, s.Spec.StartPosition)
		if err != nil {
			return cc, fmt.Errorf("startPosition: %w", err)
		}
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cc.OptStartTime = &t
	}
	switch v1alpha1.Ordering(sp.Ordering) {
	case v1alpha1.OrderingOrdered:
		cc.MaxAckPending = 1
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{PinnedGroup}
		cc.PinnedTTL = PinnedTTL
	case v1alpha1.OrderingPerKey:
		// Messages wait in per-key queues in the one pinned dispatcher.
		cc.MaxAckPending = sp.MaxInFlight * 4
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{PinnedGroup}
		cc.PinnedTTL = PinnedTTL
	}
	if sp.Paused {
		t := PausedUntil
		cc.PauseUntil = &t
	}
	return cc, nil
}

// EffectiveDelivery merges a Subscription's delivery over its Topic's over
// the defaults, field by field. The dead-letter sink is resolved separately.
func EffectiveDelivery(topic, sub *v1alpha1.DeliverySpec) (Delivery, error) {
	d := Delivery{
		Retry:         DefaultRetry,
		BackoffPolicy: string(DefaultBackoffPolicy),
		BackoffDelay:  ToMillis(DefaultBackoffDelay),
		BackoffMax:    ToMillis(DefaultBackoffMax),
		Timeout:       ToMillis(DefaultTimeout),
		RetryAfterMax: -1,
	}
	for _, ds := range []*v1alpha1.DeliverySpec{topic, sub} {
		if ds == nil {
			continue
		}
		if ds.Retry != nil {
			d.Retry = int(*ds.Retry)
		}
		if ds.BackoffPolicy != nil {
			d.BackoffPolicy = string(*ds.BackoffPolicy)
		}
		for _, f := range []struct {
			name string
			in   *v1alpha1.Duration
			out  *Millis
		}{
			{"backoffDelay", ds.BackoffDelay, &d.BackoffDelay},
			{"backoffMax", ds.BackoffMax, &d.BackoffMax},
			{"timeout", ds.Timeout, &d.Timeout},
			{"retryAfterMax", ds.RetryAfterMax, &d.RetryAfterMax},
		} {
			if f.in == nil {
				continue
			}
			v, err := f.in.Parse()
			if err != nil {
				return Delivery{}, fmt.Errorf("delivery.%s: %w", f.name, err)
			}
			*f.out = ToMillis(v)
		}
	}
	if d.Timeout <= 0 {
		return Delivery{}, errors.New("delivery.timeout must be longer than zero")
	}
	return d, nil
}

// Backoff is the wait before retry number attempt (1 for the first retry).
func (d Delivery) Backoff(attempt int) time.Duration {
	p := ce.Exponential
	if d.BackoffPolicy == string(v1alpha1.BackoffPolicyLinear) {
		p = ce.Linear
	}
	return ce.Backoff(p, d.BackoffDelay.Duration(), d.BackoffMax.Duration(), attempt)
}

// RetryAfterCap is the longest Retry-After the dispatcher honours.
func (d Delivery) RetryAfterCap() time.Duration {
	if d.RetryAfterMax < 0 {
		return d.BackoffMax.Duration()
	}
	return d.RetryAfterMax.Duration()
}

// FromAPI converts a filter of the API's fixed-depth types into a Filter.
func FromAPI(f *v1alpha1.SubscriptionsAPIFilter) Filter {
	out := fromAttrs(f.FilterAttributes)
	for i := range f.All {
		out.All = append(out.All, fromNested(&f.All[i]))
	}
	for i := range f.Any {
		out.Any = append(out.Any, fromNested(&f.Any[i]))
	}
	if f.Not != nil {
		n := fromNested(f.Not)
		out.Not = &n
	}
	return out
}

func fromNested(f *v1alpha1.NestedFilter) Filter {
	out := fromAttrs(f.FilterAttributes)
	for i := range f.All {
		out.All = append(out.All, fromInner(&f.All[i]))
	}
	for i := range f.Any {
		out.Any = append(out.Any, fromInner(&f.Any[i]))
	}
	if f.Not != nil {
		n := fromInner(f.Not)
		out.Not = &n
	}
	return out
}

func fromInner(f *v1alpha1.InnerFilter) Filter {
	out := fromAttrs(f.FilterAttributes)
	for i := range f.All {
		out.All = append(out.All, fromAttrs(f.All[i].FilterAttributes))
	}
	for i := range f.Any {
		out.Any = append(out.Any, fromAttrs(f.Any[i].FilterAttributes))
	}
	if f.Not != nil {
		n := fromAttrs(f.Not.FilterAttributes)
		out.Not = &n
	}
	return out
}

func fromAttrs(a v1alpha1.FilterAttributes) Filter {
	return Filter{Exact: a.Exact, Prefix: a.Prefix, Suffix: a.Suffix, CESQL: a.CESQL}
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
