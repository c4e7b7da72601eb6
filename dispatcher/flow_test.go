package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
)

// TestRateLimit: deliveries never go faster than the limit.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var arrivals []time.Time
	sub := newSink(t, func(int, received, http.ResponseWriter) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
	})
	const rate, n = 20, 21
	res := e.provision(newTopic("rate"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.RateLimit = &v1alpha1.RateLimit{EventsPerSecond: rate, Burst: i32(1)}
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	for i := range n {
		sendOK(t, r.url+"/default/rate", fmt.Sprint(i))
	}
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if sub.count() != n {
		t.Fatalf("delivered %d, want %d", sub.count(), n)
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	// n events with a burst of 1 need at least (n-1)/rate seconds.
	if span, least := arrivals[n-1].Sub(arrivals[0]), time.Duration(n-1)*time.Second/rate; span < least*9/10 {
		t.Errorf("%d deliveries took %v; a limit of %d/s needs at least %v", n, span, rate, least)
	}
}

// TestPaused: a paused Subscription keeps its position and delivers
// everything, in order, once resumed.
func TestPaused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	paused := subscription{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Paused = true
		s.Ordering = v1alpha1.OrderingOrdered
	}}
	res := e.provision(newTopic("paused"), []subscription{paused}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	for i := range 5 {
		sendOK(t, r.url+"/default/paused", fmt.Sprintf("p%d", i))
	}
	eventually(t, 5*time.Second, func() bool {
		return consumerInfo(t, e, res.Plan.Stream, "sub_s").NumPending == 5
	}, "5 pending")
	time.Sleep(300 * time.Millisecond) // a paused subscription must stay silent
	if sub.count() != 0 {
		t.Fatalf("paused subscription delivered %d events", sub.count())
	}
	// Resume as the control plane does: the consumer, then the plan.
	s, err := e.js.Stream(context.Background(), res.Plan.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResumeConsumer(context.Background(), "sub_s"); err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	p.Subscriptions = append([]plan.SubscriptionPlan(nil), p.Subscriptions...)
	p.Subscriptions[0].Paused = false
	e.putPlan(&p)
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	assertFIFO(t, sub.ids(), "p", 5)
}

// TestStartPosition: earliest, latest and a time.
func TestStartPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topic := newTopic("start")
	res := e.provision(topic, nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	u := r.url + "/default/start"
	sendOK(t, u, "e0")
	sendOK(t, u, "e1")
	between := time.Now().UTC()
	time.Sleep(2 * time.Millisecond)
	sendOK(t, u, "e2")

	earliest, latest, byTime := newSink(t, nil), newSink(t, nil), newSink(t, nil)
	res = e.provision(topic, []subscription{
		{name: "earliest", uri: earliest.url(), spec: func(s *v1alpha1.SubscriptionSpec) { s.StartPosition = "earliest" }},
		{name: "latest", uri: latest.url(), spec: func(s *v1alpha1.SubscriptionSpec) { s.StartPosition = "latest" }},
		{name: "bytime", uri: byTime.url(), spec: func(s *v1alpha1.SubscriptionSpec) { s.StartPosition = between.Format(time.RFC3339Nano) }},
	}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, u, "e3")
	sendOK(t, u, "e4")
	for _, c := range []string{"sub_earliest", "sub_latest", "sub_bytime"} {
		waitSettled(t, e, res.Plan.Stream, c)
	}
	for name, c := range map[string]struct {
		s    *sink
		want int
	}{"earliest": {earliest, 5}, "latest": {latest, 2}, "bytime": {byTime, 3}} {
		if got := len(c.s.uniqueIDs()); got != c.want {
			t.Errorf("%s got %d events %v, want %d", name, got, c.s.ids(), c.want)
		}
	}
}

// TestLivePlanChange: filters and URIs change without a restart; removed
// Subscriptions stop; a deleted Topic is unknown to the ingress.
func TestLivePlanChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first, second := newSink(t, nil), newSink(t, nil)
	topic := newTopic("live")
	filter := func(typ string) func(*v1alpha1.SubscriptionSpec) {
		return func(s *v1alpha1.SubscriptionSpec) {
			s.Filters = []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"type": typ}}}}
		}
	}
	res := e.provision(topic, []subscription{{name: "s", uri: first.url(), spec: filter("a")}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	runner := func() *subRunner {
		r.d.mu.Lock()
		defer r.d.mu.Unlock()
		return r.d.runners["default.live/s"]
	}
	before := runner()
	u := r.url + "/default/live"
	sendOK(t, u, "a1", "Ce-Type", "a")
	sendOK(t, u, "b1", "Ce-Type", "b")
	waitSettled(t, e, res.Plan.Stream, "sub_s")

	res = e.provision(topic, []subscription{{name: "s", uri: second.url(), spec: filter("b")}}, nil)
	eventually(t, 5*time.Second, func() bool {
		return runner().cfg.Load().plan.SubscriberURI == second.url()
	}, "new plan applied")
	sendOK(t, u, "a2", "Ce-Type", "a")
	sendOK(t, u, "b2", "Ce-Type", "b")
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if got := first.ids(); len(got) != 1 || got[0] != "a1" {
		t.Errorf("first subscriber got %v, want [a1]", got)
	}
	if got := second.ids(); len(got) != 1 || got[0] != "b2" {
		t.Errorf("second subscriber got %v, want [b2]", got)
	}
	if runner() != before {
		t.Error("a filter and URI change restarted the delivery loop")
	}

	// Removing the Subscription stops its loop.
	p := res.Plan
	p.Subscriptions = nil
	e.putPlan(&p)
	eventually(t, 5*time.Second, func() bool { return runner() == nil }, "loop removed")
	select {
	case <-before.done:
	case <-time.After(5 * time.Second):
		t.Fatal("removed subscription's loop still running")
	}

	// Deleting the plan makes the Topic unknown.
	if err := e.kv.Delete(context.Background(), plan.Key("default", "live")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return r.d.topic("default", "live") == nil }, "topic removed")
	if resp, _ := post(t, u, binary("x"), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("deleted topic: %d, want 404", resp.StatusCode)
	}
}

// TestServedTopics: a dispatcher serves only the Topics it is given.
func TestServedTopics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.provision(newTopic("mine"), nil, nil)
	e.provision(newTopic("theirs"), nil, nil)
	r := e.start(nil, Options{Topics: []string{"default/mine"}})
	r.waitDelivering(t, &a.Plan)
	sendOK(t, r.url+"/default/mine", "1")
	if resp, _ := post(t, r.url+"/default/theirs", binary("1"), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unserved topic: %d, want 404", resp.StatusCode)
	}
	if _, err := New(e.nc, Options{Topics: []string{"no-slash"}}); err == nil {
		t.Error("accepted a topic without a namespace")
	}
}

// TestRunWaitsForBucket: Run waits for the control plane to create the plan
// bucket; the dispatcher is not ready meanwhile.
func TestRunWaitsForBucket(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	d, err := New(nc, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(300 * time.Millisecond) // Run must keep waiting, not fail
	if d.Ready() == nil {
		t.Fatal("ready without a plan bucket")
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: plan.KVBucket}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return d.Ready() == nil }, "ready once the bucket exists")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRestartKeepsPinnedDelivery: a change that restarts a perKey loop
// (maxInFlight) hands the pinned-client role to the new loop at once.
func TestRestartKeepsPinnedDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	topic := newTopic("pinned")
	perKey := func(n int32) func(*v1alpha1.SubscriptionSpec) {
		return func(s *v1alpha1.SubscriptionSpec) {
			s.Ordering = v1alpha1.OrderingPerKey
			s.MaxInFlight = n
		}
	}
	res := e.provision(topic, []subscription{{name: "s", uri: sub.url(), spec: perKey(8)}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	u := r.url + "/default/pinned"
	sendOK(t, u, "k1-0", "Ce-Partitionkey", "k1")
	eventually(t, 5*time.Second, func() bool { return sub.count() == 1 }, "first delivery")
	r.d.mu.Lock()
	before := r.d.runners["default.pinned/s"]
	r.d.mu.Unlock()

	res = e.provision(topic, []subscription{{name: "s", uri: sub.url(), spec: perKey(4)}}, nil)
	eventually(t, 5*time.Second, func() bool {
		r.d.mu.Lock()
		defer r.d.mu.Unlock()
		rn := r.d.runners["default.pinned/s"]
		return rn != before && rn.maxInFlight == 4
	}, "loop restarted")
	sendOK(t, u, "k1-1", "Ce-Partitionkey", "k1")
	// The pin's TTL is two minutes; delivery within seconds means the old
	// loop handed it over.
	eventually(t, 10*time.Second, func() bool { return sub.count() == 2 }, "delivery after the restart")
}
