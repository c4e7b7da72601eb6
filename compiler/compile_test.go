package compiler_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/certtest"
	"github.com/herald-dev/herald/plan"
)

func ptr[T any](v T) *T { return &v }

func topic(spec v1alpha1.TopicSpec) *v1alpha1.Topic {
	return &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}, Spec: spec}
}

func resolved(name string, spec v1alpha1.SubscriptionSpec) compiler.ResolvedSubscription {
	if spec.Topic == "" {
		spec.Topic = "orders"
	}
	return compiler.ResolvedSubscription{
		Subscription:  &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Generation: 3}, Spec: spec},
		SubscriberURI: "http://inventory.shop.svc/events",
	}
}

func TestStreamConfig(t *testing.T) {
	cfg, err := compiler.StreamConfig(topic(v1alpha1.TopicSpec{
		Storage:         v1alpha1.StorageMemory,
		Replicas:        3,
		DuplicateWindow: ptr(v1alpha1.Duration("PT5M")),
		MaxEventSize:    4096,
		Retention: &v1alpha1.TopicRetention{
			MaxAge: ptr(v1alpha1.Duration("PT1M")), MaxBytes: ptr(int64(1 << 30)), MaxMessages: ptr(int64(1000)),
			Discard: v1alpha1.DiscardNew,
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "herald_shop_orders" || cfg.Subjects[0] != "herald.events.shop.orders" {
		t.Errorf("name/subject = %s %v", cfg.Name, cfg.Subjects)
	}
	if cfg.Storage != jetstream.MemoryStorage || cfg.Replicas != 3 || cfg.Discard != jetstream.DiscardNew {
		t.Errorf("storage/replicas/discard = %v %d %v", cfg.Storage, cfg.Replicas, cfg.Discard)
	}
	if cfg.MaxAge != time.Minute || cfg.MaxBytes != 1<<30 || cfg.MaxMsgs != 1000 {
		t.Errorf("limits = %v %d %d", cfg.MaxAge, cfg.MaxBytes, cfg.MaxMsgs)
	}
	// JetStream refuses a duplicate window longer than MaxAge.
	if cfg.Duplicates != time.Minute {
		t.Errorf("duplicates = %v, want capped at maxAge 1m", cfg.Duplicates)
	}
	if cfg.MaxMsgSize <= 4096 {
		t.Errorf("max msg size %d leaves no room for headers", cfg.MaxMsgSize)
	}

	def, err := compiler.StreamConfig(topic(v1alpha1.TopicSpec{}))
	if err != nil {
		t.Fatal(err)
	}
	if def.Storage != jetstream.FileStorage || def.Replicas != 1 || def.Duplicates != compiler.DefaultDuplicateWindow ||
		def.MaxMsgs != -1 || def.MaxBytes != -1 || def.Discard != jetstream.DiscardOld {
		t.Errorf("defaults = %+v", def)
	}
}

func TestEffectiveDeliveryMergesFieldByField(t *testing.T) {
	lin := v1alpha1.BackoffPolicyLinear
	topicD := &v1alpha1.DeliverySpec{Retry: ptr(int32(7)), BackoffPolicy: &lin, Timeout: ptr(v1alpha1.Duration("PT10S"))}
	subD := &v1alpha1.DeliverySpec{Retry: ptr(int32(0)), BackoffDelay: ptr(v1alpha1.Duration("1s")), RetryAfterMax: ptr(v1alpha1.Duration("PT0S"))}
	d, err := compiler.EffectiveDelivery(topicD, subD)
	if err != nil {
		t.Fatal(err)
	}
	want := plan.Delivery{Retry: 0, BackoffPolicy: "linear", BackoffDelay: 1000, BackoffMax: plan.ToMillis(compiler.DefaultBackoffMax), Timeout: 10000, RetryAfterMax: 0}
	if d != want {
		t.Errorf("delivery = %+v, want %+v", d, want)
	}
	if d.RetryAfterCap() != 0 {
		t.Errorf("PT0S retryAfterMax must ignore Retry-After, cap = %v", d.RetryAfterCap())
	}
	d, _ = compiler.EffectiveDelivery(nil, nil)
	if d.Retry != compiler.DefaultRetry || d.RetryAfterCap() != compiler.DefaultBackoffMax {
		t.Errorf("defaults = %+v", d)
	}
	if _, err := compiler.EffectiveDelivery(nil, &v1alpha1.DeliverySpec{Timeout: ptr(v1alpha1.Duration("0s"))}); err == nil {
		t.Error("zero timeout accepted")
	}
}

func TestConsumerConfigs(t *testing.T) {
	start := "2026-01-02T15:04:05Z"
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{Dispatcher: &v1alpha1.DispatcherSpec{Replicas: ptr(int32(2))}}), []compiler.ResolvedSubscription{
		resolved("plain", v1alpha1.SubscriptionSpec{MaxInFlight: 10}),
		resolved("fifo", v1alpha1.SubscriptionSpec{Ordering: v1alpha1.OrderingOrdered, MaxInFlight: 10, StartPosition: "earliest"}),
		resolved("keyed.v2", v1alpha1.SubscriptionSpec{Ordering: v1alpha1.OrderingPerKey, MaxInFlight: 10, StartPosition: start, Paused: true}),
		resolved("other-topic", v1alpha1.SubscriptionSpec{Topic: "payments"}),
		resolved("bad-cesql", v1alpha1.SubscriptionSpec{Filters: []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{CESQL: "type = "}}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Subscriptions) != 3 || len(res.Consumers) != 3 {
		t.Fatalf("compiled %d subscriptions, want 3 (other topic ignored, bad cesql left out)", len(res.Plan.Subscriptions))
	}
	if err := res.Errors["bad-cesql"]; err == nil || !strings.Contains(err.Error(), "filters[0]: cesql") {
		t.Errorf("bad cesql error = %v", err)
	}
	plain := res.Consumers["plain"]
	if plain.Durable != "sub_plain" || plain.MaxAckPending != 10+compiler.RetryBacklog || plain.DeliverPolicy != jetstream.DeliverNewPolicy ||
		plain.MaxDeliver != -1 || plain.AckWait != plan.AckWait || plain.PriorityPolicy != jetstream.PriorityPolicyNone {
		t.Errorf("plain consumer = %+v", plain)
	}
	fifo := res.Consumers["fifo"]
	if fifo.MaxAckPending != 1 || fifo.DeliverPolicy != jetstream.DeliverAllPolicy || fifo.PriorityPolicy != jetstream.PriorityPolicyPinned ||
		fifo.PinnedTTL != plan.PinnedTTL || fifo.AckWait != plan.AckWait {
		t.Errorf("ordered consumer = %+v", fifo)
	}
	keyed := res.Consumers["keyed.v2"]
	if keyed.Durable != "sub_keyed_v2" || keyed.DeliverPolicy != jetstream.DeliverByStartTimePolicy ||
		keyed.OptStartTime == nil || keyed.OptStartTime.Format(time.RFC3339) != start || keyed.PauseUntil == nil {
		t.Errorf("perKey consumer = %+v", keyed)
	}
	for _, sp := range res.Plan.Subscriptions {
		if sp.Name == "fifo" && sp.MaxInFlight != 1 {
			t.Errorf("ordered plan max in flight = %d, want 1", sp.MaxInFlight)
		}
		if sp.Generation != 3 || sp.SubscriberURI == "" {
			t.Errorf("plan entry %+v", sp)
		}
	}
	if err := res.Plan.Validate(); err != nil {
		t.Errorf("compiled plan invalid: %v", err)
	}
}

func TestFromAPIKeepsNesting(t *testing.T) {
	f := compiler.FromAPI(&v1alpha1.SubscriptionsAPIFilter{Any: []v1alpha1.NestedFilter{
		{All: []v1alpha1.InnerFilter{
			{Not: &v1alpha1.LeafFilter{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"type": "a"}}}},
			{FilterAttributes: v1alpha1.FilterAttributes{Suffix: map[string]string{"subject": ".json"}}},
		}},
		{FilterAttributes: v1alpha1.FilterAttributes{CESQL: "source LIKE '/shop/%'"}},
	}})
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if f.Any[0].All[0].Not.Exact["type"] != "a" || f.Any[0].All[1].Suffix["subject"] != ".json" || f.Any[1].CESQL == "" {
		t.Errorf("filter = %+v", f)
	}
	two := plan.Filter{Exact: map[string]string{"a": "b"}, Prefix: map[string]string{"c": "d"}}
	if two.Validate() == nil {
		t.Error("filter with two dialects validated")
	}
}

func TestConsumerNameIsOneToOne(t *testing.T) {
	if plan.ConsumerName("a.b") == plan.ConsumerName("a-b") {
		t.Error("a.b and a-b map to the same consumer")
	}
	if strings.ContainsAny(plan.ConsumerName("x.y.z"), ".*> /") {
		t.Errorf("consumer name %q has characters JetStream refuses", plan.ConsumerName("x.y.z"))
	}
}

func TestParseCESQLNeverPanics(t *testing.T) {
	for _, expr := range []string{"type = ", "(", "AND", "type LIKE", "'unterminated", "1 +", "EXISTS"} {
		if _, err := plan.ParseCESQL(expr); err == nil {
			t.Errorf("ParseCESQL(%q) accepted", expr)
		}
	}
	if _, err := plan.ParseCESQL("type = 'a' AND source LIKE '/shop/%'"); err != nil {
		t.Errorf("valid expression refused: %v", err)
	}
}

// TestCACerts: each Destination's CA bundle reaches the plan entry, and a
// bundle the dispatcher could not use leaves the Subscription out of the
// plan with an error naming the field.
func TestCACerts(t *testing.T) {
	ca, other := certtest.CA(t, "subscriber"), certtest.CA(t, "sink")
	with := func(name string, sub, reply, dls, dlField string) compiler.ResolvedSubscription {
		rs := resolved(name, v1alpha1.SubscriptionSpec{})
		rs.SubscriberURI, rs.ReplyURI, rs.DeadLetterURI = "https://sub/", "https://reply/", "https://dls/"
		rs.SubscriberCACerts, rs.ReplyCACerts, rs.DeadLetterCACerts, rs.DeadLetterField = sub, reply, dls, dlField
		return rs
	}
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), []compiler.ResolvedSubscription{
		with("good", ca, "", other, "Topic delivery.deadLetterSink"),
		with("bad-subscriber", certtest.Corrupt(ca), "", "", ""),
		with("bad-reply", ca, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "", ""),
		with("bad-topic-sink", "", "", ca+"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "Topic delivery.deadLetterSink"),
		with("bad-sink", "", "", "x", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan.Subscriptions) != 1 || len(res.Consumers) != 1 {
		t.Fatalf("compiled %d subscriptions, want only good", len(res.Plan.Subscriptions))
	}
	if sp := res.Plan.Subscriptions[0]; sp.SubscriberCACerts != ca || sp.ReplyCACerts != "" || sp.DeadLetterCACerts != other {
		t.Errorf("plan entry %+v", sp)
	}
	for name, want := range map[string]string{
		"bad-subscriber": "subscriber.caCerts: block 1: x509:",
		"bad-reply":      "reply.caCerts: block 1: not a valid PEM block",
		"bad-topic-sink": "Topic delivery.deadLetterSink.caCerts: block 2 is a PRIVATE KEY, not a CERTIFICATE",
		"bad-sink":       "delivery.deadLetterSink.caCerts: block 1: text where",
	} {
		if err := res.Errors[name]; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: error %v, want one starting %q", name, err, want)
		}
	}
}

// TestSigning: a Subscription with spec.signing is signed from the
// directory its resolver gives, refused without one, and its SigningKeyDir
// ignored without spec.signing.
func TestSigning(t *testing.T) {
	signing := v1alpha1.SubscriptionSpec{Signing: &v1alpha1.Signing{SecretName: "keys"}}
	signed, noDir, unsigned := resolved("signed", signing), resolved("no-dir", signing), resolved("unsigned", v1alpha1.SubscriptionSpec{})
	signed.SigningKeyDir, unsigned.SigningKeyDir = "/keys/signed", "/keys/unsigned"
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), []compiler.ResolvedSubscription{signed, noDir, unsigned})
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, sp := range res.Plan.Subscriptions {
		dirs[sp.Name] = sp.SigningKeyDir
	}
	if len(dirs) != 2 || dirs["signed"] != "/keys/signed" || dirs["unsigned"] != "" {
		t.Errorf("signing key dirs %v, want signed at /keys/signed and unsigned without", dirs)
	}
	if err := res.Errors["no-dir"]; err == nil || !strings.Contains(err.Error(), "signing") {
		t.Errorf("no-dir: error %v, want one about signing", err)
	}
}

// TestAudiences: each Destination's audience reaches the plan entry.
func TestAudiences(t *testing.T) {
	rs := resolved("s", v1alpha1.SubscriptionSpec{})
	rs.ReplyURI, rs.DeadLetterURI = "http://reply/", "http://dls/"
	rs.SubscriberAudience, rs.ReplyAudience, rs.DeadLetterAudience = "sub", "eventing.herald.dev/topic/shop/replies", "dls"
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), []compiler.ResolvedSubscription{rs})
	if err != nil || len(res.Plan.Subscriptions) != 1 {
		t.Fatalf("compile: %v, %v", res, err)
	}
	sp := res.Plan.Subscriptions[0]
	if sp.SubscriberAudience != "sub" || sp.ReplyAudience != "eventing.herald.dev/topic/shop/replies" || sp.DeadLetterAudience != "dls" {
		t.Errorf("plan entry audiences %q %q %q", sp.SubscriberAudience, sp.ReplyAudience, sp.DeadLetterAudience)
	}
}

// TestBatch: a batch Subscription's plan carries its batch shape, its
// consumer lets maxInFlight full batches be pending, and combinations the
// API server refuses are refused here too.
func TestBatch(t *testing.T) {
	b := func(spec v1alpha1.SubscriptionSpec) v1alpha1.SubscriptionSpec {
		spec.MaxInFlight = 4
		return spec
	}
	batched := resolved("batched", b(v1alpha1.SubscriptionSpec{Batch: &v1alpha1.Batch{MaxEvents: 50, MaxWait: ptr(v1alpha1.Duration("PT0.25S"))}}))
	defaults := resolved("defaults", b(v1alpha1.SubscriptionSpec{Batch: &v1alpha1.Batch{}}))
	ordered := resolved("ordered", b(v1alpha1.SubscriptionSpec{Ordering: v1alpha1.OrderingPerKey, Batch: &v1alpha1.Batch{MaxEvents: 5}}))
	withReply := resolved("reply", b(v1alpha1.SubscriptionSpec{Batch: &v1alpha1.Batch{MaxEvents: 5}}))
	withReply.ReplyURI = "http://replies.shop.svc/"
	tooLong := resolved("long", b(v1alpha1.SubscriptionSpec{Batch: &v1alpha1.Batch{MaxWait: ptr(v1alpha1.Duration("PT11S"))}}))
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), []compiler.ResolvedSubscription{batched, defaults, ordered, withReply, tooLong})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*plan.Batch{}
	for _, sp := range res.Plan.Subscriptions {
		got[sp.Name] = sp.Batch
	}
	if g := got["batched"]; g == nil || g.MaxEvents != 50 || g.MaxWait.Duration() != 250*time.Millisecond {
		t.Errorf("batched: plan batch %+v, want 50 events, 250ms", g)
	}
	if g := got["defaults"]; g == nil || g.MaxEvents != compiler.DefaultBatchMaxEvents || g.MaxWait != 0 {
		t.Errorf("defaults: plan batch %+v, want %d events, no wait", g, compiler.DefaultBatchMaxEvents)
	}
	if c, ok := res.Consumers["batched"]; !ok || c.MaxAckPending != 4*50+compiler.RetryBacklog {
		t.Errorf("batched: consumer %v MaxAckPending %d, want maxInFlight × maxEvents + the retry backlog", ok, c.MaxAckPending)
	}
	for name, want := range map[string]string{"ordered": "ordering unordered", "reply": "reply", "long": "maxWait"} {
		if err := res.Errors[name]; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one about %s", name, err, want)
		}
	}
}

// TestConsumerConfigIgnoresDispatcherReplicas: maxInFlight is a total the
// dispatcher replicas split between them, so a consumer's configuration is
// the same whatever the replicas, fixed or left to a scaler.
func TestConsumerConfigIgnoresDispatcherReplicas(t *testing.T) {
	subs := []compiler.ResolvedSubscription{resolved("plain", v1alpha1.SubscriptionSpec{MaxInFlight: 10})}
	var want *jetstream.ConsumerConfig
	for _, ds := range []*v1alpha1.DispatcherSpec{
		nil,
		{Replicas: ptr(int32(1))},
		{Replicas: ptr(int32(3))},
		{Autoscaling: &v1alpha1.DispatcherAutoscaling{MaxReplicas: 10}},
	} {
		res, err := compiler.Compile(topic(v1alpha1.TopicSpec{Dispatcher: ds}), subs)
		if err != nil {
			t.Fatal(err)
		}
		cc := res.Consumers["plain"]
		if cc.MaxAckPending != 10+compiler.RetryBacklog {
			t.Errorf("dispatcher %+v: MaxAckPending %d, want maxInFlight + the retry backlog", ds, cc.MaxAckPending)
		}
		if want == nil {
			want = &cc
		} else if !reflect.DeepEqual(cc, *want) {
			t.Errorf("dispatcher %+v: consumer %+v, want %+v", ds, cc, *want)
		}
	}
}
