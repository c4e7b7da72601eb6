// Package compiler turns a Topic and its Subscriptions, with their
// Destinations already resolved to URIs (package resolve), into the
// JetStream stream and consumer configurations the control plane ensures
// (package provision) and the plan.TopicPlan the dispatcher executes. The
// operator and herald dev both call Compile, so they cannot drift apart.
package compiler

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
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
	DefaultBatchMaxEvents  = 100
	// DefaultMaxDelay bounds how far ahead an event may ask to be
	// delivered when the Topic sets no scheduling.maxDelay.
	DefaultMaxDelay = 7 * 24 * time.Hour
	// MaxBatchWait bounds a batch's maxWait.
	MaxBatchWait = 10 * time.Second

	// RetryBacklog is how many events of an unordered Subscription may wait
	// for a retry (nakked with a delay, still pending in JetStream), on top
	// of the maxInFlight being delivered. Without
	// it a few failing deliveries would fill MaxAckPending with waiting
	// retries and starve new events; a subscriber that fails for good still
	// stops new deliveries once the backlog is full.
	RetryBacklog = 1000

	// DefaultAckDeadline, MinAckDeadline and MaxAckDeadline bound a pull
	// Subscription's spec.pull.ackDeadline (Pub/Sub's default and limits
	// but for the minimum, which JetStream's redelivery timer makes 1s).
	DefaultAckDeadline = 10 * time.Second
	MinAckDeadline     = time.Second
	MaxAckDeadline     = 10 * time.Minute
	// PullMaxAckPending is the MaxAckPending of a pull Subscription's
	// consumer: how many of its events may be pulled and not yet
	// acknowledged at once, across every consumer.
	PullMaxAckPending = 10000

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
	// SubscriberCACerts, ReplyCACerts and DeadLetterCACerts are the caCerts
	// of the subscriber, the reply and the effective dead-letter sink; empty
	// for none.
	SubscriberCACerts, ReplyCACerts, DeadLetterCACerts string
	// SubscriberAudience, ReplyAudience and DeadLetterAudience are the
	// audiences of the tokens presented to the subscriber, the reply and the
	// effective dead-letter sink (resolve.Target); empty for none.
	SubscriberAudience, ReplyAudience, DeadLetterAudience string
	// DeadLetterField names where the effective dead-letter sink came from
	// (resolve.DeadLetterSink), for messages; empty means
	// delivery.deadLetterSink.
	DeadLetterField string
	// ConsumeMode is the policy of a pull Subscription without consumers
	// (the operator's --default-publish-policy); empty means
	// DefaultPublishMode.
	ConsumeMode plan.PublishMode
	// SigningKeyDir is where the dispatcher finds the keys of the
	// Subscription's spec.signing Secret (plan.SubscriptionPlan.SigningKeyDir):
	// plan.SigningKeyDir in a cluster, a data-dir path in herald dev. Compile
	// refuses a Subscription with spec.signing and no SigningKeyDir.
	SigningKeyDir string
}

// Result is what Compile produces for one Topic.
type Result struct {
	// Stream is the desired stream configuration.
	Stream jetstream.StreamConfig
	// History is the desired delivery-history stream; nil when the Topic
	// keeps no history.
	History *jetstream.StreamConfig
	// Consumers holds the desired consumer of each compiled Subscription, by
	// Subscription name.
	Consumers map[string]jetstream.ConsumerConfig
	// LaneConsumers holds, by Subscription name, the desired consumers of
	// the high and low lanes of each Subscription delivering by priority
	// (LaneConsumerConfigs); its consumer in Consumers reads the normal
	// lane.
	LaneConsumers map[string][]jetstream.ConsumerConfig
	// Plan is what the Topic's dispatchers execute.
	Plan plan.TopicPlan
	// Errors holds, by Subscription name, why a Subscription was left out of
	// the plan. The rest of the plan is valid without it.
	Errors map[string]error
}

// Compile turns a Topic and its resolved Subscriptions into the stream,
// consumers and plan. Subscriptions that belong to another Topic or
// namespace are ignored. An error means the Topic itself cannot be compiled,
// such as a contract schema that does not compile; schemaFrom must have
// been inlined with InlineSchemas.
// The plan's Audience is the Topic's; its Publish is left zero (allow-all)
// for the caller to set from PublishPolicy, which needs the default mode
// and the namespaces selectors match.
func Compile(topic *v1alpha1.Topic, subs []ResolvedSubscription) (*Result, error) {
	stream, err := StreamConfig(topic)
	if err != nil {
		return nil, err
	}
	history, err := HistoryStreamConfig(topic)
	if err != nil {
		return nil, err
	}
	maxDelay, err := MaxDelay(topic)
	if err != nil {
		return nil, err
	}
	ctr, err := Contract(topic)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Stream:        stream,
		History:       history,
		Consumers:     map[string]jetstream.ConsumerConfig{},
		LaneConsumers: map[string][]jetstream.ConsumerConfig{},
		Plan: plan.TopicPlan{
			Version:      plan.Version,
			Namespace:    topic.Namespace,
			Name:         topic.Name,
			Stream:       stream.Name,
			Subject:      plan.Subject(topic.Namespace, topic.Name),
			MaxEventSize: maxEventSize(topic),
			Audience:     plan.TopicAudience(topic.Namespace, topic.Name),
			History:      history != nil,
			MaxDelay:     plan.ToMillis(maxDelay),
			Lanes:        true,
			Contract:     ctr,
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
		if sp.Priority != nil {
			res.LaneConsumers[s.Name] = LaneConsumerConfigs(topic, cc)
		}
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
		Name:              plan.StreamName(t.Namespace, t.Name),
		Description:       fmt.Sprintf("Herald Topic %s/%s", t.Namespace, t.Name),
		Subjects:          []string{plan.Subject(t.Namespace, t.Name), plan.RedeliverySubjects(t.Namespace, t.Name), plan.LaneSubjects(t.Namespace, t.Name)},
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
	if schedules(t) {
		// Delayed events wait as message schedules on ScheduleSubjects;
		// JetStream needs roll-ups for them.
		cfg.Subjects = append(cfg.Subjects, plan.ScheduleSubjects(t.Namespace, t.Name))
		cfg.AllowMsgSchedules = true
		cfg.AllowRollup = true
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

// schedules reports whether t's stream allows message schedules: unless it
// discards new events when full, which JetStream does not combine with
// schedules.
func schedules(t *v1alpha1.Topic) bool {
	return t.Spec.Retention == nil || t.Spec.Retention.Discard != v1alpha1.DiscardNew
}

// MaxDelay is how far ahead t's events may ask to be delivered:
// spec.scheduling.maxDelay (default DefaultMaxDelay), at most
// retention.maxAge, as a schedule older than that would be removed before
// it fires. Zero when the Topic takes no delayed events: maxDelay PT0S, or
// a stream that discards new events.
func MaxDelay(t *v1alpha1.Topic) (time.Duration, error) {
	if !schedules(t) {
		return 0, nil
	}
	var set *v1alpha1.Duration
	if t.Spec.Scheduling != nil {
		set = t.Spec.Scheduling.MaxDelay
	}
	d, err := v1alpha1.DurationOrDefault(set, DefaultMaxDelay)
	if err != nil {
		return 0, fmt.Errorf("scheduling.maxDelay: %w", err)
	}
	if r := t.Spec.Retention; r != nil && r.MaxAge != nil {
		age, err := r.MaxAge.Parse()
		if err != nil {
			return 0, fmt.Errorf("retention.maxAge: %w", err)
		}
		if age > 0 && age < d {
			d = age
		}
	}
	return d, nil
}

// DefaultHistoryMaxAge is how long delivery history is kept when
// spec.history.maxAge is not set.
const DefaultHistoryMaxAge = 24 * time.Hour

// HistoryStreamConfig is the delivery-history stream a Topic declares, nil
// when its history is off. It is stored like the Topic's events (file or
// memory, the same replicas) and bounded by spec.history.
func HistoryStreamConfig(t *v1alpha1.Topic) (*jetstream.StreamConfig, error) {
	h := t.Spec.History
	if h == nil || !h.Enabled {
		return nil, nil
	}
	maxAge, err := v1alpha1.DurationOrDefault(h.MaxAge, DefaultHistoryMaxAge)
	if err != nil {
		return nil, fmt.Errorf("history.maxAge: %w", err)
	}
	cfg := &jetstream.StreamConfig{
		Name:              plan.HistoryStream(t.Namespace, t.Name),
		Description:       fmt.Sprintf("Herald delivery history of Topic %s/%s", t.Namespace, t.Name),
		Subjects:          []string{plan.HistorySubjects(t.Namespace, t.Name)},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          1,
		MaxAge:            maxAge,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxConsumers:      -1,
		MaxMsgSize:        -1,
		// Records are published without message ids.
		Duplicates: min(maxAge, time.Minute),
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
	if h.MaxBytes != nil {
		cfg.MaxBytes = *h.MaxBytes
	}
	return cfg, nil
}

// CompileSubscription compiles one Subscription of topic into its plan entry
// and durable consumer configuration.
func CompileSubscription(topic *v1alpha1.Topic, rs ResolvedSubscription) (plan.SubscriptionPlan, jetstream.ConsumerConfig, error) {
	s := rs.Subscription
	if s.Spec.Mode == v1alpha1.ModePull {
		return compilePull(topic, rs)
	}
	if s.Spec.Mode != "" && s.Spec.Mode != v1alpha1.ModePush {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, fmt.Errorf("mode %q: want push or pull", s.Spec.Mode)
	}
	if s.Spec.Pull != nil || len(s.Spec.Consumers) > 0 {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, errors.New("pull and consumers apply to mode pull only")
	}
	if rs.SubscriberURI == "" {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, errors.New("subscriber has no resolved URI")
	}
	d, err := EffectiveDelivery(topic.Spec.Delivery, s.Spec.Delivery)
	if err != nil {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	if err := checkCACerts(rs); err != nil {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	signingDir := ""
	if s.Spec.Signing != nil {
		if rs.SigningKeyDir == "" {
			return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, errors.New("signing: no directory for the signing keys")
		}
		signingDir = rs.SigningKeyDir
	}
	filters, err := compileFilters(s)
	if err != nil {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
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
	sp := plan.SubscriptionPlan{
		Name:               s.Name,
		Consumer:           plan.ConsumerName(s.Name),
		Generation:         s.Generation,
		SubscriberURI:      rs.SubscriberURI,
		ReplyURI:           rs.ReplyURI,
		DeadLetterURI:      rs.DeadLetterURI,
		DeadLetterTopic:    rs.DeadLetterTopic,
		SubscriberCACerts:  rs.SubscriberCACerts,
		ReplyCACerts:       rs.ReplyCACerts,
		DeadLetterCACerts:  rs.DeadLetterCACerts,
		SubscriberAudience: rs.SubscriberAudience,
		ReplyAudience:      rs.ReplyAudience,
		DeadLetterAudience: rs.DeadLetterAudience,
		Filters:            filters,
		Delivery:           d,
		Ordering:           plan.Ordering(ordering),
		MaxInFlight:        inFlight,
		Paused:             s.Spec.Paused,
		SigningKeyDir:      signingDir,
	}
	if b := s.Spec.Batch; b != nil {
		if sp.Batch, err = compileBatch(b, sp); err != nil {
			return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
		}
	}
	if sp.Priority, err = compilePriority(s.Spec.Priority, sp); err != nil {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	if rl := s.Spec.RateLimit; rl != nil {
		burst := int(rl.EventsPerSecond)
		if rl.Burst != nil {
			burst = int(*rl.Burst)
		}
		sp.RateLimit = &plan.RateLimit{EventsPerSecond: int(rl.EventsPerSecond), Burst: burst}
	}
	cc, err := consumerConfig(topic, s, sp)
	if err != nil {
		return plan.SubscriptionPlan{}, jetstream.ConsumerConfig{}, err
	}
	return sp, cc, nil
}

// compileFilters validates and converts a Subscription's filters.
func compileFilters(s *v1alpha1.Subscription) ([]plan.Filter, error) {
	filters := make([]plan.Filter, 0, len(s.Spec.Filters))
	for i := range s.Spec.Filters {
		f := FromAPI(&s.Spec.Filters[i])
		if err := f.Validate(); err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		filters = append(filters, f)
	}
	return filters, nil
}

// compileBatch checks b against the rest of sp (the API server checks the
// same; herald dev's manifests and older objects come here too).
func compileBatch(b *v1alpha1.Batch, sp plan.SubscriptionPlan) (*plan.Batch, error) {
	if sp.Ordering != plan.OrderingUnordered {
		return nil, errors.New("batch needs ordering unordered")
	}
	if sp.ReplyURI != "" {
		return nil, errors.New("batch cannot be combined with reply")
	}
	out := &plan.Batch{MaxEvents: int(b.MaxEvents)}
	if out.MaxEvents <= 0 {
		out.MaxEvents = DefaultBatchMaxEvents
	}
	if b.MaxWait != nil {
		w, err := b.MaxWait.Parse()
		if err != nil {
			return nil, fmt.Errorf("batch.maxWait: %w", err)
		}
		if w > MaxBatchWait {
			return nil, fmt.Errorf("batch.maxWait %s is longer than %s", w, MaxBatchWait)
		}
		out.MaxWait = plan.ToMillis(w)
	}
	return out, nil
}

// checkCACerts refuses a CA bundle of rs the dispatcher could not use (see
// plan.CertPool), naming the field it came from.
func checkCACerts(rs ResolvedSubscription) error {
	dlField := rs.DeadLetterField
	if dlField == "" {
		dlField = "delivery.deadLetterSink"
	}
	for _, b := range []struct{ field, bundle string }{
		{"subscriber", rs.SubscriberCACerts},
		{"reply", rs.ReplyCACerts},
		{dlField, rs.DeadLetterCACerts},
	} {
		if b.bundle == "" {
			continue
		}
		if _, err := plan.CertPool(b.bundle); err != nil {
			return fmt.Errorf("%s.caCerts: %w", b.field, err)
		}
	}
	return nil
}

// batchSize is how many events one delivery of sp carries at most.
func batchSize(sp plan.SubscriptionPlan) int {
	if sp.Batch != nil {
		return sp.Batch.MaxEvents
	}
	return 1
}

func consumerConfig(topic *v1alpha1.Topic, s *v1alpha1.Subscription, sp plan.SubscriptionPlan) (jetstream.ConsumerConfig, error) {
	// Nothing here depends on the dispatcher's replicas, which a scaler
	// may set: maxInFlight is a total the replicas split between them.
	cc := jetstream.ConsumerConfig{
		Name:          sp.Consumer,
		Durable:       sp.Consumer,
		Description:   fmt.Sprintf("Herald Subscription %s/%s", s.Namespace, s.Name),
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       plan.AckWait,
		// Unlimited: the dispatcher counts attempts and dead-letters the
		// event itself, so a message is never stranded by MaxDeliver.
		MaxDeliver: -1,
		// The Topic's events of every priority, and those replayed or
		// redriven to this Subscription alone.
		FilterSubjects: []string{plan.Subject(topic.Namespace, topic.Name), plan.RedeliverySubject(topic.Namespace, topic.Name, s.Name), plan.LaneSubjects(topic.Namespace, topic.Name)},
		ReplayPolicy:   jetstream.ReplayInstantPolicy,
		MaxAckPending:  sp.MaxInFlight*batchSize(sp) + RetryBacklog,
		Metadata: map[string]string{
			"herald.dev/subscription": s.Namespace + "/" + s.Name,
		},
	}
	if sp.IsPull() {
		// The consumer's AckWait is the ack deadline the HTTP consumers
		// get; the dispatcher holds no messages and sends no InProgress.
		cc.AckWait = sp.AckDeadline.Duration()
		cc.MaxAckPending = PullMaxAckPending
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
		cc.PriorityGroups = []string{plan.PinnedGroup}
		cc.PinnedTTL = plan.PinnedTTL
	case v1alpha1.OrderingPerKey:
		// Messages wait in per-key queues in the one pinned dispatcher.
		cc.MaxAckPending = sp.MaxInFlight * 4
		cc.PriorityPolicy = jetstream.PriorityPolicyPinned
		cc.PriorityGroups = []string{plan.PinnedGroup}
		cc.PinnedTTL = plan.PinnedTTL
	}
	if sp.Paused {
		t := plan.PausedUntil
		cc.PauseUntil = &t
	}
	if sp.Priority != nil {
		// The normal lane: the high and low ones have consumers of their
		// own (LaneConsumerConfigs).
		cc.FilterSubjects = cc.FilterSubjects[:2]
	}
	return cc, nil
}

// EffectiveDelivery merges a Subscription's delivery over its Topic's over
// the defaults, field by field. The dead-letter sink is resolved separately.
func EffectiveDelivery(topic, sub *v1alpha1.DeliverySpec) (plan.Delivery, error) {
	d := plan.Delivery{
		Retry:         DefaultRetry,
		BackoffPolicy: string(DefaultBackoffPolicy),
		BackoffDelay:  plan.ToMillis(DefaultBackoffDelay),
		BackoffMax:    plan.ToMillis(DefaultBackoffMax),
		Timeout:       plan.ToMillis(DefaultTimeout),
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
			out  *plan.Millis
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
				return plan.Delivery{}, fmt.Errorf("delivery.%s: %w", f.name, err)
			}
			*f.out = plan.ToMillis(v)
		}
	}
	if d.Timeout <= 0 {
		return plan.Delivery{}, errors.New("delivery.timeout must be longer than zero")
	}
	return d, nil
}

// FromAPI converts a filter of the API's fixed-depth types into a plan.Filter.
func FromAPI(f *v1alpha1.SubscriptionsAPIFilter) plan.Filter {
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

func fromNested(f *v1alpha1.NestedFilter) plan.Filter {
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

func fromInner(f *v1alpha1.InnerFilter) plan.Filter {
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

func fromAttrs(a v1alpha1.FilterAttributes) plan.Filter {
	return plan.Filter{Exact: a.Exact, Prefix: a.Prefix, Suffix: a.Suffix, CESQL: a.CESQL}
}
