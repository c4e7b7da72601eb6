package provision_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// TestBulkFigures: Streams, Consumers and DeadLetterCounts read every
// stream, every consumer of a stream (more than one page of them) and
// every dead-letter counter, as the one-at-a-time readers report them.
func TestBulkFigures(t *testing.T) {
	js, p := setup(t)
	ctx := context.Background()
	stream := plan.StreamName("shop", "orders")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{plan.Subject("shop", "orders")}}); err != nil {
		t.Fatal(err)
	}
	const consumers = 300 // more than a page of the consumer list
	for i := range consumers {
		if _, err := js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("c%03d", i), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, plan.Subject("shop", "orders"), []byte("x")); err != nil {
		t.Fatal(err)
	}

	streams, err := p.Streams(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := streams[stream]; s == nil || s.State.Msgs != 1 || s.State.Consumers != consumers {
		t.Errorf("stream %s listed as %+v", stream, s)
	}
	if streams[plan.CounterStream] == nil {
		t.Errorf("counter stream not listed")
	}
	// The server counts a new message into its consumers' pending
	// asynchronously: list until the count reached every consumer.
	var infos map[string]*jetstream.ConsumerInfo
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if infos, err = p.Consumers(ctx, stream); err != nil {
			t.Fatal(err)
		}
		all := len(infos) == consumers
		for _, c := range infos {
			all = all && c.NumPending == 1
		}
		if all || time.Now().After(deadline) {
			break
		}
	}
	if len(infos) != consumers {
		t.Errorf("listed %d consumers, want %d", len(infos), consumers)
	}
	one, err := p.ConsumerInfo(ctx, stream, "c123")
	if err != nil || one == nil {
		t.Fatalf("consumer info: %v", err)
	}
	if c := infos["c123"]; c == nil || c.NumPending != 1 || c.NumPending != one.NumPending {
		t.Errorf("consumer c123 listed as %+v, looked up as %+v", c, one)
	}
	if infos, err := p.Consumers(ctx, "herald_missing"); err != nil || infos != nil {
		t.Errorf("consumers of a missing stream: %v, %v", infos, err)
	}

	for i, sub := range []string{"audit", "audit", "billing"} {
		m := nats.NewMsg(plan.DeadLetterCounter("shop", "orders", sub))
		m.Header.Set("Nats-Incr", "1")
		m.Header.Set("Nats-Msg-Id", fmt.Sprintf("deadletter:%d", i))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := p.DeadLetterCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"audit", "billing", "none"} {
		n, at, err := p.DeadLetterCount(ctx, "shop", "orders", sub)
		if err != nil {
			t.Fatal(err)
		}
		got := counts[plan.DeadLetterCounter("shop", "orders", sub)]
		if got.Count != n || !got.Last.Equal(at) {
			t.Errorf("%s: bulk count %d at %v, one at a time %d at %v", sub, got.Count, got.Last, n, at)
		}
	}
	if len(counts) != 2 {
		t.Errorf("bulk counts %v, want audit's and billing's", counts)
	}
}
