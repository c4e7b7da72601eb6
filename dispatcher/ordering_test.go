package dispatcher

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// flaky fails every third request with a 500.
func flaky(n int, _ received, w http.ResponseWriter) {
	if n%3 == 1 {
		w.WriteHeader(500)
		return
	}
	w.WriteHeader(200)
}

// assertFIFO checks that ids (all attempts, in arrival order, of the form
// <prefix><index>) never go back to an earlier index and reach every index.
func assertFIFO(t *testing.T, ids []string, prefix string, n int) {
	t.Helper()
	last := -1
	for _, id := range ids {
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		i, err := strconv.Atoi(strings.TrimPrefix(id, prefix))
		if err != nil {
			t.Fatalf("unexpected id %q", id)
		}
		if i < last || i > last+1 {
			t.Fatalf("%s%d arrived after %s%d: order broken in %v", prefix, i, prefix, last, ids)
		}
		last = i
	}
	if last != n-1 {
		t.Fatalf("last %s index %d, want %d", prefix, last, n-1)
	}
}

// TestOrdered: strict FIFO, retries included, under a flaky subscriber.
func TestOrdered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, flaky)
	res := e.provision(newTopic("ordered"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Ordering = v1alpha1.OrderingOrdered
		s.Delivery = fastRetry(10)
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	const n = 30
	for i := range n {
		sendOK(t, r.url+"/default/ordered", fmt.Sprintf("e%d", i))
	}
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	assertFIFO(t, sub.ids(), "e", n)
	if sub.count() <= n {
		t.Errorf("subscriber got %d requests; the flaky subscriber should have caused retries", sub.count())
	}
}

// TestPerKey: FIFO within a key under a flaky subscriber, and keys do not
// wait for each other.
func TestPerKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, flaky)
	res := e.provision(newTopic("perkey"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Ordering = v1alpha1.OrderingPerKey
		s.MaxInFlight = 8
		s.Delivery = fastRetry(10)
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	const keys, per = 4, 10
	for i := range per {
		for k := range keys {
			sendOK(t, r.url+"/default/perkey", fmt.Sprintf("k%d-%d", k, i), "Ce-Partitionkey", fmt.Sprintf("key%d", k))
		}
	}
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	ids := sub.ids()
	for k := range keys {
		assertFIFO(t, ids, fmt.Sprintf("k%d-", k), per)
	}

	t.Run("keys in parallel", func(t *testing.T) {
		release := make(chan struct{})
		blocking := newSink(t, func(n int, r received, w http.ResponseWriter) {
			if r.ce("partitionkey") == "slow" {
				<-release
			}
			w.WriteHeader(200)
		})
		res := e.provision(newTopic("perkey2"), []subscription{{name: "s", uri: blocking.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
			s.Ordering = v1alpha1.OrderingPerKey
			s.MaxInFlight = 8
		}}}, nil)
		r.waitDelivering(t, &res.Plan)
		u := r.url + "/default/perkey2"
		sendOK(t, u, "slow-0", "Ce-Partitionkey", "slow")
		sendOK(t, u, "slow-1", "Ce-Partitionkey", "slow")
		// Keys sharing the slow key's queue would wait behind it; pick others.
		for i, k := 0, 0; i < 5; k++ {
			key := fmt.Sprintf("f%d", k)
			if keySlot(key, 8) == keySlot("slow", 8) {
				continue
			}
			sendOK(t, u, fmt.Sprintf("fast-%d", i), "Ce-Partitionkey", key)
			i++
		}
		eventually(t, 10*time.Second, func() bool { return len(blocking.uniqueIDs()) == 6 }, "other keys delivered while one key is blocked")
		if blocking.uniqueIDs()["slow-1"] {
			t.Fatal("slow-1 overtook slow-0")
		}
		close(release)
		waitSettled(t, e, res.Plan.Stream, "sub_s")
		assertFIFO(t, blocking.ids(), "slow-", 2)
	})
}
