package provision_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// TestSharesBucket: New creates the bucket dispatcher replicas announce
// their shares in, a second New leaves it as it is, and a key not
// refreshed vanishes after plan.ShareTTL.
func TestSharesBucket(t *testing.T) {
	ctx := context.Background()
	js, _ := setup(t)
	if _, err := provision.New(ctx, js, 1); err != nil {
		t.Fatalf("second New over existing buckets: %v", err)
	}
	kv, err := js.KeyValue(ctx, plan.SharesBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != plan.ShareTTL || st.History() != 1 {
		t.Errorf("bucket TTL %v, history %d; want %v and 1", st.TTL(), st.History(), plan.ShareTTL)
	}
	key := plan.ShareKey("herald_shop_orders", "sub_audit", plan.ReplicaID("pod.0", "abc"))
	if _, err := kv.Put(ctx, key, []byte(`{"inFlight":1}`)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	deadline := time.Now().Add(plan.ShareTTL + 5*time.Second)
	for {
		_, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("key %s still there %v after its last refresh (%v)", key, plan.ShareTTL+5*time.Second, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
