package provision_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

func prioritySub(name string) compiler.ResolvedSubscription {
	rs := sub(name, v1alpha1.OrderingUnordered, false)
	rs.Subscription.Spec.Priority = &v1alpha1.Priority{Enabled: true}
	return rs
}

// consumerNames lists the consumers of the Topic's stream.
func consumerNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	s, err := js.Stream(context.Background(), plan.StreamName("shop", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	l := s.ConsumerNames(context.Background())
	for n := range l.Name() {
		out = append(out, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// drain fetches and acknowledges n messages of a consumer.
func drain(t *testing.T, js jetstream.JetStream, consumer string, n int) {
	t.Helper()
	ctx := context.Background()
	c, err := js.Consumer(ctx, plan.StreamName("shop", "orders"), consumer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(n)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range b.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got != n {
		t.Fatalf("%s: fetched %d messages, want %d", consumer, got, n)
	}
}

// TestPriorityTogglesLaneConsumers: turning priority on creates the high
// and low lane consumers, starting where the Subscription's consumer
// stood, and narrows that consumer to the normal lane; turning it off
// prunes the lanes and widens the consumer again, from the lanes' lowest
// acknowledgement floor, so that no lane event is skipped. Another
// Subscription keeps its one consumer reading every lane throughout.
func TestPriorityTogglesLaneConsumers(t *testing.T) {
	js, p := setup(t)
	ctx := context.Background()
	tp := topic(v1alpha1.StorageFile)
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingUnordered, false), sub("plain", v1alpha1.OrderingUnordered, false))); err != nil {
		t.Fatal(err)
	}
	publish := func(subject string) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	high := plan.LaneSubject("shop", "orders", plan.PriorityHigh)
	low := plan.LaneSubject("shop", "orders", plan.PriorityLow)
	publish(high)                           // 1
	publish(plan.Subject("shop", "orders")) // 2
	publish(high)                           // 3
	drain(t, js, "sub_audit", 2)            // acks 1 and 2

	res := compile(t, tp, prioritySub("audit"), sub("plain", v1alpha1.OrderingUnordered, false))
	if got := res.Plan.Subscriptions[0].Priority; got == nil || *got != (plan.LaneWeights{High: 8, Normal: 3, Low: 1}) {
		t.Fatalf("plan weights = %+v, want the defaults 8, 3, 1", got)
	}
	if _, err := p.Apply(ctx, res); err != nil {
		t.Fatal(err)
	}
	want := []string{"sub_audit", "sub_audit__high", "sub_audit__low", "sub_plain"}
	if got := consumerNames(t, js); !slices.Equal(got, want) {
		t.Fatalf("consumers with priority on = %v, want %v", got, want)
	}
	info := func(name string) *jetstream.ConsumerInfo {
		t.Helper()
		ci, err := p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), name)
		if err != nil || ci == nil {
			t.Fatalf("consumer %s: %v", name, err)
		}
		return ci
	}
	if ci := info("sub_audit__high"); ci.NumPending != 1 || !slices.Equal(ci.Config.FilterSubjects, []string{high}) {
		t.Errorf("high lane: pending %d, filters %v; want 1 (event 3 only) and [%s]", ci.NumPending, ci.Config.FilterSubjects, high)
	}
	if ci := info("sub_audit"); slices.Contains(ci.Config.FilterSubjects, plan.LaneSubjects("shop", "orders")) {
		t.Errorf("normal lane still reads the other lanes: %v", ci.Config.FilterSubjects)
	}
	if ci := info("sub_plain"); !slices.Contains(ci.Config.FilterSubjects, plan.LaneSubjects("shop", "orders")) || ci.NumPending != 3 {
		t.Errorf("a Subscription without priority: filters %v, pending %d; want every lane and 3", ci.Config.FilterSubjects, ci.NumPending)
	}

	publish(plan.Subject("shop", "orders")) // 4
	publish(low)                            // 5
	drain(t, js, "sub_audit", 1)            // acks 4; the lanes hold 3 and 5

	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", v1alpha1.OrderingUnordered, false), sub("plain", v1alpha1.OrderingUnordered, false))); err != nil {
		t.Fatal(err)
	}
	want = []string{"sub_audit", "sub_plain"}
	if got := consumerNames(t, js); !slices.Equal(got, want) {
		t.Fatalf("consumers with priority off = %v, want %v", got, want)
	}
	ci := info("sub_audit")
	if !slices.Contains(ci.Config.FilterSubjects, plan.LaneSubjects("shop", "orders")) {
		t.Errorf("consumer does not read the lanes again: %v", ci.Config.FilterSubjects)
	}
	// From after event 2 (the high lane's floor): 3, 4 again and 5.
	if ci.NumPending != 3 {
		t.Errorf("consumer pending %d after priority off, want 3 (no lane event skipped)", ci.NumPending)
	}
}
