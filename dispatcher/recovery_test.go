package dispatcher

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// TestPullIntervalKeepsPerKeyFailoverSafe: a dead pinned dispatcher's pin
// moves only after every message it held was queued for redelivery
// (PinnedTTL minus one pull interval exceeds AckWait, with a second of
// slack), and within the 10 s users are promised.
func TestPullIntervalKeepsPerKeyFailoverSafe(t *testing.T) {
	if plan.PinnedTTL-pullWait < plan.AckWait+time.Second {
		t.Errorf("PinnedTTL %v - pull interval %v must exceed AckWait %v by a second", plan.PinnedTTL, pullWait, plan.AckWait)
	}
	if plan.PinnedTTL > 10*time.Second || plan.AckWait > 10*time.Second {
		t.Errorf("PinnedTTL %v and AckWait %v must stay within 10 s", plan.PinnedTTL, plan.AckWait)
	}
}

// TestCrashedDispatcherRecovery: a dispatcher dies (its NATS connection
// closed, nothing acked or released) while it holds events of a
// Subscription with the default 30 s timeout; another dispatcher, already
// running, delivers every event, in order for ordered and perKey, within
// seconds. The time is logged; the bound asserted is generous but far
// below a timeout-sized AckWait or a two-minute pin.
func TestCrashedDispatcherRecovery(t *testing.T) {
	t.Parallel()
	for _, ordering := range []v1alpha1.Ordering{v1alpha1.OrderingUnordered, v1alpha1.OrderingOrdered, v1alpha1.OrderingPerKey} {
		t.Run(string(ordering), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			var (
				mu    sync.Mutex
				first = map[string]time.Time{}
			)
			sub := newSink(t, func(_ int, r received, w http.ResponseWriter) {
				time.Sleep(20 * time.Millisecond)
				mu.Lock()
				if _, ok := first[r.ce("id")]; !ok {
					first[r.ce("id")] = time.Now()
				}
				mu.Unlock()
				w.WriteHeader(http.StatusOK)
			})
			topic := "crash-" + string(ordering)
			res := e.provision(newTopic(topic), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
				s.Delivery = nil // the defaults: 30 s timeout
				s.Ordering = ordering
				s.MaxInFlight = 4
			}}}, nil)
			nc1 := e.connect()
			a := e.start(nc1, Options{})
			a.waitDelivering(t, &res.Plan)
			const keys, per = 4, 25
			for i := range per {
				for k := range keys {
					sendOK(t, a.url+"/default/"+topic, fmt.Sprintf("k%d-%d", k, i), "Ce-Partitionkey", fmt.Sprintf("key%d", k))
				}
			}
			eventually(t, 10*time.Second, func() bool { return sub.count() >= 8 }, "deliveries under way")
			b := e.start(e.connect(), Options{})
			b.waitDelivering(t, &res.Plan)
			killed := time.Now()
			nc1.Close() // dies: no ack, no Nak, no unpin
			a.stop()
			mu.Lock()
			before := len(first)
			mu.Unlock()
			if before == keys*per {
				t.Skip("everything was delivered before the crash")
			}
			eventually(t, 40*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(first) == keys*per
			}, "every event delivered after the crash")
			// Deliveries the dead dispatcher had under way end right after
			// the crash; resumed is the first one after those.
			var resumed, last time.Time
			mu.Lock()
			for _, at := range first {
				if at.After(last) {
					last = at
				}
				if at.After(killed.Add(200*time.Millisecond)) && (resumed.IsZero() || at.Before(resumed)) {
					resumed = at
				}
			}
			mu.Unlock()
			t.Logf("%s: %d of %d events delivered before the crash; delivery resumed %.1f s after it, the last event %.1f s after it",
				ordering, before, keys*per, resumed.Sub(killed).Seconds(), last.Sub(killed).Seconds())
			ids := sub.ids()
			switch ordering {
			case v1alpha1.OrderingOrdered, v1alpha1.OrderingPerKey:
				for k := range keys {
					assertFIFO(t, ids, fmt.Sprintf("k%d-", k), per)
				}
			}
		})
	}
}
