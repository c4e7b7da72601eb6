package provision_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

func setup(t *testing.T) (jetstream.JetStream, *provision.Provisioner) {
	t.Helper()
	s := natstest.Start(t)
	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	p, err := provision.New(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return js, p
}

func topic(storage v1alpha1.StorageType) *v1alpha1.Topic {
	return &v1alpha1.Topic{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec:       v1alpha1.TopicSpec{Storage: storage},
	}
}

func sub(name string, ordering v1alpha1.Ordering, paused bool) compiler.ResolvedSubscription {
	return compiler.ResolvedSubscription{
		Subscription: &v1alpha1.Subscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: v1alpha1.SubscriptionSpec{
				Topic: "orders", Ordering: ordering, Paused: paused,
				Subscriber: v1alpha1.Destination{URI: new("http://127.0.0.1:1/")},
			},
		},
		SubscriberURI: "http://127.0.0.1:1/",
	}
}

func compile(t *testing.T, tp *v1alpha1.Topic, subs ...compiler.ResolvedSubscription) *compiler.Result {
	t.Helper()
	res, err := compiler.Compile(tp, subs)
	if err != nil {
		t.Fatal(err)
	}
	for n, err := range res.Errors {
		t.Fatalf("subscription %s: %v", n, err)
	}
	return res
}

func TestApplyCreatesEverythingAndServerConfigCompareEqual(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	res := compile(t, topic(v1alpha1.StorageFile), sub("audit", "", false), sub("billing.v2", v1alpha1.OrderingOrdered, false))
	if _, err := p.Apply(ctx, res); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, res.Stream.Name)
	if err != nil {
		t.Fatal(err)
	}
	// The comparison must hold against the server's normalised config, or
	// every reconcile would rewrite the stream.
	if !provision.StreamConfigEqual(s.CachedInfo().Config, res.Stream) {
		t.Errorf("stream config differs after create:\nhave %+v\nwant %+v", s.CachedInfo().Config, res.Stream)
	}
	for name, cc := range res.Consumers {
		c, err := js.Consumer(ctx, res.Stream.Name, cc.Durable)
		if err != nil {
			t.Fatalf("consumer of %s: %v", name, err)
		}
		if !provision.ConsumerConfigEqual(c.CachedInfo().Config, cc) {
			t.Errorf("consumer %s differs after create:\nhave %+v\nwant %+v", name, c.CachedInfo().Config, cc)
		}
	}
	got, err := p.GetPlan(ctx, "shop", "orders")
	if err != nil || got == nil || len(got.Subscriptions) != 2 {
		t.Fatalf("plan = %+v, %v; want two subscriptions", got, err)
	}
}

func TestStorageChangeIsRefused(t *testing.T) {
	ctx := context.Background()
	_, p := setup(t)
	if _, err := p.Apply(ctx, compile(t, topic(v1alpha1.StorageFile))); err != nil {
		t.Fatal(err)
	}
	_, err := p.Apply(ctx, compile(t, topic(v1alpha1.StorageMemory)))
	if !errors.Is(err, provision.ErrRefused) {
		t.Fatalf("storage change: err = %v, want ErrRefused", err)
	}
}

// TestCreateRefusalIsErrRefused: a stream JetStream refuses to create (here
// its subjects belong to another stream) is ErrRefused, as a refused update is.
func TestCreateRefusalIsErrRefused(t *testing.T) {
	js, p := setup(t)
	res := compile(t, topic(v1alpha1.StorageFile))
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "SQUATTER", Subjects: res.Stream.Subjects}); err != nil {
		t.Fatal(err)
	}
	_, err := p.EnsureStream(context.Background(), res.Stream)
	if !errors.Is(err, provision.ErrRefused) {
		t.Fatalf("create over another stream's subjects: err = %v, want ErrRefused", err)
	}
}

func TestConsumerChangesKeepPosition(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingUnordered, false))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := js.Publish(ctx, plan.Subject("shop", "orders"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := js.Consumer(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("audit"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(3)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Switching to ordered changes the priority policy, which JetStream
	// cannot update in place: the consumer is recreated after the acked events.
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingOrdered, false))); err != nil {
		t.Fatal(err)
	}
	info, err := p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("audit"))
	if err != nil || info == nil {
		t.Fatalf("consumer info: %v", err)
	}
	if info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned {
		t.Errorf("priority policy = %v, want pinned", info.Config.PriorityPolicy)
	}
	if info.NumPending != 2 {
		t.Errorf("pending after recreate = %d, want 2 (the unacked events)", info.NumPending)
	}

	// Pause and resume in place.
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingOrdered, true))); err != nil {
		t.Fatal(err)
	}
	if info, _ = p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("audit")); !info.Paused {
		t.Error("consumer not paused")
	}
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingOrdered, false))); err != nil {
		t.Fatal(err)
	}
	if info, _ = p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("audit")); info.Paused {
		t.Error("consumer still paused after resume")
	}
	if info.NumPending != 2 {
		t.Errorf("pending after pause and resume = %d, want 2", info.NumPending)
	}
}

func TestPruneAndDeleteLeaveNothing(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	if _, err := p.Apply(ctx, compile(t, tp, sub("a", "", false), sub("b", "", false))); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(ctx, compile(t, tp, sub("a", "", false))); err != nil {
		t.Fatal(err)
	}
	if info, _ := p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("b")); info != nil {
		t.Error("consumer of removed subscription b still exists")
	}
	if err := p.DeleteTopic(ctx, "shop", "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, plan.StreamName("shop", "orders")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream after delete: %v, want not found", err)
	}
	if got, _ := p.GetPlan(ctx, "shop", "orders"); got != nil {
		t.Error("plan still stored after delete")
	}
	keys, err := p.Keys(ctx)
	if err != nil || len(keys) != 0 {
		t.Errorf("plan keys after delete = %v, %v", keys, err)
	}
	// Deleting again is not an error.
	if err := p.DeleteTopic(ctx, "shop", "orders"); err != nil {
		t.Errorf("second delete: %v", err)
	}
}

// A Subscription whose consumer JetStream refuses is left out of the plan;
// the Topic's other Subscriptions are published and keep working.
func TestApplyPublishesThePlanWithoutAFailingConsumer(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	res := compile(t, tp, sub("a", "", false), sub("b", "", false))
	// A stream that holds one consumer at most: b's cannot be created.
	limited := res.Stream
	limited.MaxConsumers = 1
	if _, err := js.CreateStream(ctx, limited); err != nil {
		t.Fatal(err)
	}
	rep, err := p.Apply(ctx, res)
	if err != nil {
		t.Fatalf("Apply: %v; a failing consumer is no Topic error", err)
	}
	if rep.Subscriptions["a"] != nil || rep.Subscriptions["b"] == nil {
		t.Fatalf("report %v; want a ok and b failed", rep.Subscriptions)
	}
	got, err := p.GetPlan(ctx, "shop", "orders")
	if err != nil || got == nil || len(got.Subscriptions) != 1 || got.Subscriptions[0].Name != "a" {
		t.Fatalf("plan = %+v, %v; want subscription a only", got, err)
	}
	if !rep.Published || len(rep.Plan.Subscriptions) != 1 {
		t.Errorf("report plan %+v published %v", rep.Plan, rep.Published)
	}
	if len(res.Plan.Subscriptions) != 2 {
		t.Errorf("Apply changed the Result's plan: %+v", res.Plan)
	}
}

// The consumer of a Subscription named in keep survives; others not in the
// plan are deleted.
func TestApplyKeepsConsumersOfLeftOutSubscriptions(t *testing.T) {
	ctx := context.Background()
	_, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	if _, err := p.Apply(ctx, compile(t, tp, sub("a", "", false), sub("b", "", false), sub("c", "", false))); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(ctx, compile(t, tp, sub("a", "", false)), "b"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a": true, "b": true, "c": false} {
		info, err := p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName(name))
		if err != nil || (info != nil) != want {
			t.Errorf("consumer of %s: exists %v, %v; want %v", name, info != nil, err, want)
		}
	}
}

// A refused stream change leaves the old stream serving: the plan is still
// published with it.
func TestApplyGoesOnWithTheOldStreamWhenAChangeIsRefused(t *testing.T) {
	ctx := context.Background()
	_, p := setup(t)
	if _, err := p.Apply(ctx, compile(t, topic(v1alpha1.StorageFile))); err != nil {
		t.Fatal(err)
	}
	rep, err := p.Apply(ctx, compile(t, topic(v1alpha1.StorageMemory), sub("a", "", false)))
	if !errors.Is(err, provision.ErrRefused) || !errors.Is(rep.StreamErr, provision.ErrRefused) {
		t.Fatalf("err = %v, StreamErr = %v; want ErrRefused", err, rep.StreamErr)
	}
	if rep.Stream == nil || rep.Stream.Config.Storage != jetstream.FileStorage {
		t.Errorf("report stream %+v; want the old file stream", rep.Stream)
	}
	if got, _ := p.GetPlan(ctx, "shop", "orders"); !rep.Published || got == nil || len(got.Subscriptions) != 1 {
		t.Errorf("plan = %+v, published %v; want subscription a", got, rep.Published)
	}
}
