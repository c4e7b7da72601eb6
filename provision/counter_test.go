package provision_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/plan"
)

// TestDeadLetterCounter: increments from any replica add up, an increment
// sent again with the same message id counts once, and resetting a
// Subscription's counter or deleting its Topic starts it from zero.
func TestDeadLetterCounter(t *testing.T) {
	js, p := setup(t)
	ctx := context.Background()
	incr := func(sub, id string) {
		t.Helper()
		m := nats.NewMsg(plan.DeadLetterCounter("shop", "orders", sub))
		m.Header.Set("Nats-Incr", "1")
		m.Header.Set("Nats-Msg-Id", id)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	count := func(sub string) int64 {
		t.Helper()
		n, _, err := p.DeadLetterCount(ctx, "shop", "orders", sub)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("audit"); n != 0 {
		t.Fatalf("count before any dead letter = %d", n)
	}
	incr("audit", "deadletter:shop/audit:s:1")
	incr("audit", "deadletter:shop/audit:s:2")
	incr("audit", "deadletter:shop/audit:s:2") // the same dead letter again
	incr("billing", "deadletter:shop/billing:s:1")
	if n := count("audit"); n != 2 {
		t.Errorf("audit's count = %d, want 2", n)
	}
	n, at, err := p.DeadLetterCount(ctx, "shop", "orders", "billing")
	if err != nil || n != 1 || time.Since(at) > time.Minute {
		t.Errorf("billing's count = %d at %v (%v), want 1 just now", n, at, err)
	}
	if err := p.ResetDeadLetterCount(ctx, "shop", "orders", "audit"); err != nil {
		t.Fatal(err)
	}
	if n := count("audit"); n != 0 {
		t.Errorf("audit's count after reset = %d, want 0", n)
	}
	if err := p.DeleteTopic(ctx, "shop", "orders"); err != nil {
		t.Fatal(err)
	}
	if n := count("billing"); n != 0 {
		t.Errorf("billing's count after its Topic's deletion = %d, want 0", n)
	}
}
