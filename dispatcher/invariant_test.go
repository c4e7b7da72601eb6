package dispatcher

import (
	"fmt"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// idSet is a concurrent set of event ids.
type idSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *idSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	s.ids[id] = true
}

func (s *idSet) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.ids))
	for k := range s.ids {
		out[k] = true
	}
	return out
}

// sendAll posts events concurrently and fails the test unless all get 202.
func sendAll(t *testing.T, url string, ids []string, extra func(id string) []string) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan string)
	errs := make(chan error, len(ids))
	for range 8 {
		wg.Go(func() {
			for id := range work {
				resp, body := post(t, url, binary(id, extra(id)...), []byte(`{"n":1}`))
				if resp.StatusCode != http.StatusAccepted {
					errs <- fmt.Errorf("%s: %d %s", id, resp.StatusCode, body)
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestInvariantUnderFailures: while the subscriber fails 30% of requests,
// every accepted event is delivered, dead-lettered or filtered out, each
// exactly one of them, whether events go one per request or in batches.
func TestInvariantUnderFailures(t *testing.T) {
	t.Parallel()
	for _, batch := range []int32{0, 20} {
		t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			t.Parallel()
			testInvariantUnderFailures(t, batch)
		})
	}
}

func testInvariantUnderFailures(t *testing.T, batch int32) {
	e := newEnv(t)
	var (
		mu        sync.Mutex
		rng       = rand.New(rand.NewSource(1))
		delivered idSet
	)
	sub := newSink(t, func(_ int, r received, w http.ResponseWriter) {
		mu.Lock()
		fail := rng.Float64() < 0.3
		mu.Unlock()
		if fail {
			w.WriteHeader(503)
			return
		}
		if r.header.Get("Content-Type") == ce.MediaBatchJSON {
			evs, err := ce.DecodeBatch(r.body)
			if err != nil {
				t.Errorf("batch: %v", err)
				w.WriteHeader(400)
				return
			}
			for _, ev := range evs {
				id, _ := ev.Get(ce.AttrID)
				delivered.add(id)
			}
		} else {
			delivered.add(r.ce("id"))
		}
		w.WriteHeader(200)
	})
	dls := newSink(t, nil)
	res := e.provision(newTopic("invariant"), []subscription{{name: "s", uri: sub.url(), deadLetter: dls.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Delivery = fastRetry(2)
		s.MaxInFlight = 16
		s.Filters = []v1alpha1.SubscriptionsAPIFilter{{Not: &v1alpha1.NestedFilter{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"type": "skip"}}}}}
		if batch > 0 {
			s.Batch = &v1alpha1.Batch{MaxEvents: batch}
		}
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)

	const n = 400
	var ids []string
	filtered := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("ev%d", i)
		ids = append(ids, id)
		if i%10 == 0 {
			filtered[id] = true
		}
	}
	sendAll(t, r.url+"/default/invariant", ids, func(id string) []string {
		if filtered[id] {
			return []string{"Ce-Type", "skip"}
		}
		return nil
	})
	waitSettled(t, e, res.Plan.Stream, "sub_s")

	got := delivered.snapshot()
	dead := dls.uniqueIDs()
	for _, id := range ids {
		outcomes := 0
		for _, in := range []bool{got[id], dead[id], filtered[id]} {
			if in {
				outcomes++
			}
		}
		if outcomes != 1 {
			t.Errorf("%s: delivered %v, dead-lettered %v, filtered %v; want exactly one", id, got[id], dead[id], filtered[id])
		}
	}
	m := r.d.metrics.deliveries
	sum := testutil.ToFloat64(m.WithLabelValues("default", "invariant", "s", outcomeDelivered, "2xx")) +
		testutil.ToFloat64(m.WithLabelValues("default", "invariant", "s", outcomeDeadLettered, "5xx")) +
		testutil.ToFloat64(m.WithLabelValues("default", "invariant", "s", outcomeFiltered, "none"))
	if sum != n {
		t.Errorf("delivered + dead-lettered + filtered metrics = %v, want %d", sum, n)
	}
	t.Logf("%d events: %d delivered, %d dead-lettered, %d filtered, %d requests", n, len(got), len(dead), len(filtered), sub.count())
}

// TestAbruptStop: a dispatcher whose connection dies mid-stream loses
// nothing; a new dispatcher delivers every accepted event.
func TestAbruptStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewSource(2))
	sub := newSink(t, func(_ int, _ received, w http.ResponseWriter) {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		fail := rng.Float64() < 0.2
		mu.Unlock()
		if fail {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	res := e.provision(newTopic("crash"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Delivery = fastRetry(20)
		s.MaxInFlight = 4
	}}}, func(c *jetstream.ConsumerConfig) { c.AckWait = time.Second })
	nc1 := e.connect()
	first := e.start(nc1, Options{})
	first.waitDelivering(t, &res.Plan)
	const n = 300
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("c%d", i))
	}
	sendAll(t, first.url+"/default/crash", ids, func(string) []string { return nil })
	eventually(t, 10*time.Second, func() bool { return sub.count() >= 40 }, "deliveries under way")
	nc1.Close() // no drain, no acks for what is in flight
	first.stop()
	if delivered := len(sub.uniqueIDs()); delivered == n {
		t.Skip("everything was delivered before the stop; nothing to recover")
	}

	second := e.start(e.connect(), Options{})
	second.waitDelivering(t, &res.Plan)
	eventually(t, 30*time.Second, func() bool { return len(sub.uniqueIDs()) == n }, "all %d events delivered after the restart", n)
	for id := range sub.uniqueIDs() {
		if !strings.HasPrefix(id, "c") {
			t.Errorf("unexpected event %q", id)
		}
	}
}

// TestMalformedStoresNothing: refused requests leave the stream empty.
func TestMalformedStoresNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("malformed"), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	u := r.url + "/default/malformed"
	for _, tc := range []struct {
		header map[string]string
		body   string
	}{
		{map[string]string{"Content-Type": "application/json"}, `{"plain":"json"}`},
		{binary("", "Ce-Id", ""), "x"},
		{map[string]string{"Content-Type": ce.MediaStructuredJSON}, `{"specversion":"1.0"}`},
		{map[string]string{"Content-Type": ce.MediaStructuredJSON}, `not json`},
		{map[string]string{"Content-Type": ce.MediaBatchJSON}, `[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{}]`},
		{map[string]string{"Content-Type": "application/cloudevents+protobuf"}, "\x00"},
	} {
		if resp, _ := post(t, u, tc.header, []byte(tc.body)); resp.StatusCode < 400 {
			t.Errorf("%v %q: %d, want an error", tc.header, tc.body, resp.StatusCode)
		}
	}
	if got := e.streamMsgs(res.Plan.Stream); got != 0 {
		t.Errorf("stream holds %d messages after malformed requests, want 0", got)
	}
}
