package provision_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// TestApplyHistory: a Topic with history gets its history stream, bounded
// by spec.history and matching on the next Apply; turning history off
// deletes it, as does deleting the Topic.
func TestApplyHistory(t *testing.T) {
	ctx := context.Background()
	js, p := setup(t)
	tp := topic(v1alpha1.StorageFile)
	maxAge := v1alpha1.Duration("PT2H")
	tp.Spec.History = &v1alpha1.TopicHistory{Enabled: true, MaxAge: &maxAge, MaxBytes: new(int64(1 << 20))}
	res := compile(t, tp, sub("audit", "", false))
	if !res.Plan.History || res.History == nil {
		t.Fatalf("compiled plan history %v, stream %v", res.Plan.History, res.History)
	}
	rep, err := p.Apply(ctx, res)
	if err != nil {
		t.Fatal(err)
	}
	if rep.HistoryErr != nil {
		t.Fatal(rep.HistoryErr)
	}
	name := plan.HistoryStream("shop", "orders")
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.MaxAge != 2*time.Hour || cfg.MaxBytes != 1<<20 || len(cfg.Subjects) != 1 || cfg.Subjects[0] != plan.HistorySubjects("shop", "orders") {
		t.Errorf("history stream %+v", cfg)
	}
	if !provision.StreamConfigEqual(cfg, *res.History) {
		t.Errorf("history stream config differs after create:\nhave %+v\nwant %+v", cfg, *res.History)
	}
	// A record published the way the dispatcher does is stored.
	if err := js.Conn().Publish(plan.HistorySubject("shop", "orders", "order-1", "audit", plan.HistoryDelivered), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, s, 1)

	tp.Spec.History.Enabled = false
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", "", false))); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("history stream after history was turned off: %v", err)
	}

	tp.Spec.History.Enabled = true
	if _, err := p.Apply(ctx, compile(t, tp, sub("audit", "", false))); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, name); err != nil {
		t.Errorf("history stream after history was turned on again: %v", err)
	}
	if err := p.DeleteTopic(ctx, "shop", "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("history stream after the Topic's deletion: %v", err)
	}
}

func waitMsgs(t *testing.T, s jetstream.Stream, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := s.Info(context.Background())
		if err == nil && info.State.Msgs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %v messages (%v), want %d", info.State.Msgs, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The catalog forgets a type a month after it was last seen, also in a
// bucket made before the TTL was set.
func TestCatalogBucketTTL(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	kv, err := js.KeyValue(ctx, plan.CatalogBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != provision.CatalogTTL {
		t.Errorf("catalog TTL %v, want %v", st.TTL(), provision.CatalogTTL)
	}
	old := provision.CatalogBucketConfig(1)
	old.TTL = 0
	if _, err := js.UpdateKeyValue(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := provision.New(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	if st, err = kv.Status(ctx); err != nil || st.TTL() != provision.CatalogTTL {
		t.Errorf("catalog TTL after New on an old bucket: %v (%v), want %v", st.TTL(), err, provision.CatalogTTL)
	}
}
