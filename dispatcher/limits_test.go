package dispatcher

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// countingSink is a subscriber that counts the requests under way at once
// and records when each arrived.
type countingSink struct {
	url     string
	hold    time.Duration
	now     atomic.Int64
	maxSeen atomic.Int64
	mu      sync.Mutex
	arrived []time.Time
}

func newCountingSink(t *testing.T, hold time.Duration) *countingSink {
	s := &countingSink{hold: hold}
	srv := newSink(t, func(_ int, _ received, w http.ResponseWriter) {
		n := s.now.Add(1)
		for m := s.maxSeen.Load(); n > m && !s.maxSeen.CompareAndSwap(m, n); m = s.maxSeen.Load() {
		}
		s.mu.Lock()
		s.arrived = append(s.arrived, time.Now())
		s.mu.Unlock()
		time.Sleep(s.hold)
		s.now.Add(-1)
		w.WriteHeader(http.StatusOK)
	})
	s.url = srv.url()
	return s
}

// between counts the requests that arrived in [from, to).
func (s *countingSink) between(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.arrived {
		if !a.Before(from) && a.Before(to) {
			n++
		}
	}
	return n
}

func (s *countingSink) first() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.arrived) == 0 {
		return time.Time{}
	}
	return s.arrived[0]
}

func (s *countingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrived)
}

// share is the share of limit ("in_flight" or "rate") of Subscription sub
// of Topic topic that r holds, as its metrics say.
func (r *running) share(topic, sub, limit string) float64 {
	return testutil.ToFloat64(r.d.metrics.share.WithLabelValues("default", topic, sub, limit))
}

// sumShares adds up the shares of limit the replicas rs hold.
func sumShares(rs []*running, topic, sub, limit string) float64 {
	t := 0.0
	for _, r := range rs {
		t += r.share(topic, sub, limit)
	}
	return t
}

// waitShares waits until the replicas rs hold want of limit between them,
// each at most its even part, and returns how long that took.
func waitShares(t *testing.T, rs []*running, topic, sub, limit string, want float64, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, timeout, func() bool {
		return sumShares(rs, topic, sub, limit) >= want-0.01
	}, "replicas holding %v of %s between them", want, limit)
	return time.Since(start)
}

// TestRateLimitIsATotalAcrossReplicas: three dispatcher replicas deliver a
// Subscription with rateLimit 100/s at no more than 110 events/s over 30 s,
// and still do within 5 s of one replica leaving and another joining.
func TestRateLimitIsATotalAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	e := newEnv(t)
	s := newCountingSink(t, 0)
	res := e.provision(newTopic("rated"), []subscription{{name: "s", uri: s.url, spec: func(sp *v1alpha1.SubscriptionSpec) {
		sp.MaxInFlight = 16
		sp.RateLimit = &v1alpha1.RateLimit{EventsPerSecond: 100}
	}}}, nil)
	var rs []*running
	for range 3 {
		r := e.start(e.connect(), Options{Topics: []string{"default/rated"}})
		r.waitDelivering(t, &res.Plan)
		rs = append(rs, r)
	}
	waitShares(t, rs, "rated", "s", limitRate, 100, 15*time.Second)
	for i := range 5000 {
		storeDirectly(t, e, &res.Plan, fmt.Sprintf("r%d", i))
	}
	eventually(t, 10*time.Second, func() bool { return s.count() > 0 }, "first delivery")
	t0 := s.first()
	time.Sleep(time.Until(t0.Add(30 * time.Second)))
	n := s.between(t0, t0.Add(30*time.Second))
	perSecond := float64(n) / 30
	t.Logf("3 replicas, rateLimit 100/s: %d events in 30 s = %.1f/s (shares %.1f, %.1f, %.1f)", n, perSecond,
		rs[0].share("rated", "s", limitRate), rs[1].share("rated", "s", limitRate), rs[2].share("rated", "s", limitRate))
	if perSecond > 110 {
		t.Errorf("delivered %.1f events/s over 30 s with rateLimit 100/s, want at most 110", perSecond)
	}
	if perSecond < 70 {
		t.Errorf("delivered %.1f events/s over 30 s with rateLimit 100/s, want about 100", perSecond)
	}

	// One replica leaves cleanly and another joins.
	change := time.Now()
	rs[0].stop()
	rs = append(rs[1:], e.start(e.connect(), Options{Topics: []string{"default/rated"}}))
	took := waitShares(t, rs, "rated", "s", limitRate, 100, 15*time.Second)
	from := change.Add(5 * time.Second)
	time.Sleep(time.Until(from.Add(10 * time.Second)))
	n = s.between(from, from.Add(10*time.Second))
	perSecond = float64(n) / 10
	t.Logf("a replica left and one joined: shares whole again after %v; from 5 s after the change, %d events in 10 s = %.1f/s",
		took.Round(10*time.Millisecond), n, perSecond)
	if perSecond > 110 {
		t.Errorf("delivered %.1f events/s from 5 s after a scale change, want at most 110", perSecond)
	}
}

// TestMaxInFlightIsATotalAcrossReplicas: a Subscription with maxInFlight 4
// delivered by three dispatcher replicas never has more than 4 requests
// under way at its subscriber, while a replica joins, one leaves and one
// dies without cleaning up, and the replicas take up the whole limit again
// after each change.
func TestMaxInFlightIsATotalAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about half a minute")
	}
	e := newEnv(t)
	s := newCountingSink(t, 20*time.Millisecond)
	res := e.provision(newTopic("bounded"), []subscription{{name: "s", uri: s.url, spec: func(sp *v1alpha1.SubscriptionSpec) {
		sp.MaxInFlight = 4
	}}}, nil)
	var rs []*running
	var conns []func()
	add := func() *running {
		nc := e.connect()
		r := e.start(nc, Options{Topics: []string{"default/bounded"}})
		r.waitDelivering(t, &res.Plan)
		rs = append(rs, r)
		conns = append(conns, nc.Close)
		return r
	}
	for range 3 {
		add()
	}
	waitShares(t, rs, "bounded", "s", limitInFlight, 4, 15*time.Second)
	for i := range 4000 {
		storeDirectly(t, e, &res.Plan, fmt.Sprintf("c%d", i))
	}
	phase := func(what string, d time.Duration) {
		t.Helper()
		before := s.count()
		time.Sleep(d)
		got := s.count() - before
		t.Logf("%s: %d deliveries in %v, at most %d at once so far", what, got, d, s.maxSeen.Load())
		if got == 0 {
			t.Errorf("%s: no deliveries", what)
		}
	}
	phase("3 replicas", 3*time.Second)

	start := time.Now()
	joiner := add()
	took := waitShares(t, []*running{joiner}, "bounded", "s", limitInFlight, 1, 15*time.Second)
	waitShares(t, rs, "bounded", "s", limitInFlight, 4, 15*time.Second)
	t.Logf("a replica joined: it held its share (1 of 4) %v after it was ready (%v after it started)",
		took.Round(10*time.Millisecond), time.Since(start).Round(10*time.Millisecond))
	phase("4 replicas", 3*time.Second)

	// The first replica leaves cleanly.
	rs[0].stop()
	start = time.Now()
	rs, conns = rs[1:], conns[1:]
	took = waitShares(t, rs, "bounded", "s", limitInFlight, 4, 15*time.Second)
	t.Logf("a replica left: the 3 others held all of maxInFlight %v after it stopped", took.Round(10*time.Millisecond))
	phase("3 replicas after a leave", 3*time.Second)

	// The next one dies: its NATS connection goes, its key is not deleted.
	conns[0]()
	start = time.Now()
	rs = rs[1:]
	took = waitShares(t, rs, "bounded", "s", limitInFlight, 4, 20*time.Second)
	t.Logf("a replica died: the 2 others held all of maxInFlight %v after it died (key TTL %v)", took.Round(10*time.Millisecond), plan.ShareTTL)
	phase("2 replicas after a death", 3*time.Second)

	if m := s.maxSeen.Load(); m > 4 {
		t.Errorf("the subscriber saw %d requests at once, want at most maxInFlight 4", m)
	}
	t.Logf("most requests under way at once at the subscriber: %d (maxInFlight 4)", s.maxSeen.Load())
}

func TestSplitInt(t *testing.T) {
	for _, c := range []struct{ total, n, i, want int }{
		{4, 3, 0, 2}, {4, 3, 1, 1}, {4, 3, 2, 1},
		{2, 3, 0, 1}, {2, 3, 1, 1}, {2, 3, 2, 0},
		{64, 1, 0, 64}, {5, 0, 0, 5},
	} {
		if got := splitInt(c.total, c.n, c.i); got != c.want {
			t.Errorf("splitInt(%d, %d, %d) = %d, want %d", c.total, c.n, c.i, got, c.want)
		}
	}
}

func TestNextLimit(t *testing.T) {
	for _, c := range []struct {
		name                  string
		target, current, free int
		settled               bool
		want                  int
	}{
		{"lower at once, settled or not", 1, 4, 4, false, 1},
		{"raise once settled", 2, 0, 2, true, 2},
		{"no raise before settled", 2, 0, 2, false, 0},
		{"raise only into what is free", 2, 0, 1, true, 1},
		{"nothing free", 2, 0, 0, true, 0},
		{"others hold more than the total", 2, 2, -1, true, 0},
	} {
		if got := nextLimit(c.target, c.current, c.free, c.settled); got != c.want {
			t.Errorf("%s: nextLimit(%d, %d, %d, %v) = %d, want %d", c.name, c.target, c.current, c.free, c.settled, got, c.want)
		}
	}
}

// TestLimitsWholeWithoutSharesBucket: a dispatcher whose NATS has no shares
// bucket (or refuses it) applies a Subscription's limits whole and keeps
// delivering.
func TestLimitsWholeWithoutSharesBucket(t *testing.T) {
	e := newEnv(t)
	if err := e.js.DeleteKeyValue(t.Context(), plan.SharesBucket); err != nil {
		t.Fatal(err)
	}
	s := newCountingSink(t, 0)
	res := e.provision(newTopic("nobucket"), []subscription{{name: "s", uri: s.url, spec: func(sp *v1alpha1.SubscriptionSpec) {
		sp.MaxInFlight = 3
	}}}, nil)
	r := e.start(nil, Options{Topics: []string{"default/nobucket"}})
	r.waitDelivering(t, &res.Plan)
	for i := range 5 {
		storeDirectly(t, e, &res.Plan, fmt.Sprintf("n%d", i))
	}
	eventually(t, 10*time.Second, func() bool { return s.count() == 5 }, "5 deliveries")
	if got := r.share("nobucket", "s", limitInFlight); got != 3 {
		t.Errorf("share of maxInFlight = %v, want the whole 3", got)
	}
}
