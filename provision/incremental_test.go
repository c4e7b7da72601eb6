package provision_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// apiRequests returns how many JetStream API requests the account served,
// not counting this one.
func apiRequests(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	ai, err := js.AccountInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ai.API.Total
}

// applyCost applies res and returns the JetStream API requests it took.
func applyCost(t *testing.T, js jetstream.JetStream, apply func() error) uint64 {
	t.Helper()
	before := apiRequests(t, js)
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	// The second AccountInfo request counts itself.
	return apiRequests(t, js) - before - 1
}

func consumers(t *testing.T, js jetstream.JetStream) map[string]bool {
	t.Helper()
	s, err := js.Stream(context.Background(), plan.StreamName("shop", "orders"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	names := s.ConsumerNames(context.Background())
	for n := range names.Name() {
		out[n] = true
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyEnsuresOnlyWhatChanged: applying an unchanged Topic, or adding
// one Subscription to a Topic of many, costs a few JetStream requests, not
// one per consumer; a consumer deleted behind Apply's back is recreated, and
// one deleted through the Provisioner (a Subscription's finalizer) leaves
// the others trusted.
func TestApplyEnsuresOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	var subs []compiler.ResolvedSubscription
	for i := range 20 {
		subs = append(subs, sub(fmt.Sprintf("s%02d", i), "", false))
	}
	apply := func(subs []compiler.ResolvedSubscription, keep ...string) func() error {
		res := compile(t, tp, subs...)
		return func() error {
			rep, err := p.Apply(ctx, res, keep...)
			if err == nil && len(rep.Plan.Subscriptions) != len(subs) {
				err = fmt.Errorf("plan holds %d Subscriptions, want %d", len(rep.Plan.Subscriptions), len(subs))
			}
			return err
		}
	}
	if first := applyCost(t, js, apply(subs)); first < 20 {
		t.Fatalf("first apply took %d requests, want at least one per consumer", first)
	}
	// Stream info and the plan's compare.
	if n := applyCost(t, js, apply(subs)); n > 2 {
		t.Errorf("unchanged apply took %d requests, want at most 2", n)
	}
	more := append(subs, sub("s20", "", false))
	if n := applyCost(t, js, apply(more)); n > 8 {
		t.Errorf("adding one Subscription to 20 took %d requests, want a few", n)
	}
	if got := consumers(t, js); len(got) != 21 || !got[plan.ConsumerName("s20")] {
		t.Fatalf("consumers %v, want 21 with s20", got)
	}

	// A consumer changed in the Result is updated.
	changed := append(more[:20:20], sub("s20", v1alpha1.OrderingOrdered, false))
	if err := apply(changed)(); err != nil {
		t.Fatal(err)
	}
	info, err := p.ConsumerInfo(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("s20"))
	if err != nil || info == nil || info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned {
		t.Fatalf("s20 not updated to ordered: %+v, %v", info, err)
	}

	// Deleted behind Apply's back: the count differs, every consumer is
	// ensured again.
	if err := js.DeleteConsumer(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("s05")); err != nil {
		t.Fatal(err)
	}
	if err := apply(changed)(); err != nil {
		t.Fatal(err)
	}
	if got := consumers(t, js); !got[plan.ConsumerName("s05")] {
		t.Fatalf("s05 not recreated: %v", got)
	}

	// Deleted through the Provisioner, as a Subscription's finalizer does,
	// then left out of the Result: the others stay trusted.
	if err := p.DeleteConsumer(ctx, plan.StreamName("shop", "orders"), plan.ConsumerName("s07")); err != nil {
		t.Fatal(err)
	}
	without := append(append([]compiler.ResolvedSubscription{}, changed[:7]...), changed[8:]...)
	if n := applyCost(t, js, apply(without)); n > 8 {
		t.Errorf("apply after a finalizer's delete took %d requests, want a few", n)
	}
	if got := consumers(t, js); len(got) != 20 || got[plan.ConsumerName("s07")] {
		t.Fatalf("consumers %v, want 20 without s07", got)
	}

	// A Subscription left out but kept keeps its consumer; dropping it
	// from keep prunes it.
	if err := apply(without[1:], "s00")(); err != nil {
		t.Fatal(err)
	}
	if got := consumers(t, js); !got[plan.ConsumerName("s00")] {
		t.Fatalf("kept s00 pruned: %v", got)
	}
	if err := apply(without[1:])(); err != nil {
		t.Fatal(err)
	}
	if got := consumers(t, js); got[plan.ConsumerName("s00")] || len(got) != 19 {
		t.Fatalf("consumers %v, want 19 without s00", got)
	}

	// A stream deleted and created again is not trusted.
	if err := js.DeleteStream(ctx, plan.StreamName("shop", "orders")); err != nil {
		t.Fatal(err)
	}
	if err := apply(without[1:])(); err != nil {
		t.Fatal(err)
	}
	if got := consumers(t, js); len(got) != 19 {
		t.Fatalf("after the stream's recreation consumers %v, want 19", got)
	}
}
