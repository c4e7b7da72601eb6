package dispatcher

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// orderSink records the order in which events arrive, by id and
// priority extension, answering each after hold.
type orderSink struct {
	url  string
	mu   sync.Mutex
	ids  []string
	prio []string
}

func newOrderSink(t *testing.T, hold time.Duration) *orderSink {
	s := &orderSink{}
	srv := newSink(t, func(_ int, r received, w http.ResponseWriter) {
		time.Sleep(hold)
		s.mu.Lock()
		s.ids = append(s.ids, r.ce("Id"))
		s.prio = append(s.prio, r.ce("Priority"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	s.url = srv.url()
	return s
}

// counts returns how many events of each priority ("" for none) arrived.
func (s *orderSink) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, p := range s.prio {
		out[p]++
	}
	return out
}

// storeMany stores n events with ids prefix0… directly in the Topic's
// stream, as the ingress would.
func storeMany(t *testing.T, e *env, p *plan.TopicPlan, prefix string, n int) {
	t.Helper()
	var futures []jetstream.PubAckFuture
	for i := range n {
		h := http.Header{}
		for k, v := range binary(fmt.Sprintf("%s%d", prefix, i)) {
			h.Set(k, v)
		}
		ev, err := ce.DecodeBinary(h, []byte(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.js.PublishMsgAsync(storedMsg(&topicState{plan: p}, ev, ""))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatal(err)
		case <-time.After(10 * time.Second):
			t.Fatal("no publish acknowledgement")
		}
	}
}

// TestPriorityOvertakesABacklog: 5,000 normal events wait behind a slow
// subscriber (maxInFlight 2, a few ms per event); 10 high events sent then
// are all delivered while more than 4,000 normal ones are still waiting,
// and low events sent with them progress at their weight, all delivered
// before the normal backlog drains. A Subscription without priority on the
// same Topic gets every event.
func TestPriorityOvertakesABacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	prio := newOrderSink(t, 2*time.Millisecond)
	plain := newOrderSink(t, 0)
	res := e.provision(newTopic("prio"), []subscription{
		{name: "urgent-first", uri: prio.url, spec: func(sp *v1alpha1.SubscriptionSpec) {
			sp.MaxInFlight = 2
			sp.Priority = &v1alpha1.Priority{Enabled: true}
		}},
		{name: "plain", uri: plain.url},
	}, nil)
	if w := res.Plan.Subscriptions[0].Priority; w == nil || *w != (plan.LaneWeights{High: 8, Normal: 3, Low: 1}) {
		t.Fatalf("plan weights = %+v, want 8, 3, 1", w)
	}
	const normal, high, low = 5000, 10, 40
	storeMany(t, e, &res.Plan, "n", normal)
	r := e.start(nil, Options{Topics: []string{"default/prio"}})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/prio"
	eventually(t, 20*time.Second, func() bool { return prio.counts()[""] >= 100 }, "the backlog draining")

	for i := range low {
		sendOK(t, url, fmt.Sprintf("l%d", i), "Ce-Priority", "low")
	}
	for i := range high {
		sendOK(t, url, fmt.Sprintf("h%d", i), "Ce-Priority", "high")
	}
	resp, body := post(t, url, binary("typo", "Ce-Priority", "urgent"), []byte(`{}`))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "priority") {
		t.Errorf("priority urgent: %d %s, want 400 naming priority", resp.StatusCode, body)
	}

	eventually(t, 20*time.Second, func() bool { return prio.counts()["high"] == high }, "every high event delivered")
	if n := prio.counts()[""]; normal-n < 4000 {
		t.Errorf("the high events were delivered once %d normal ones were, want more than 4000 of %d still waiting", n, normal)
	}
	eventually(t, 60*time.Second, func() bool { return prio.counts()[""] == normal }, "the normal backlog drained")
	prio.mu.Lock()
	lastLow, lastNormal := -1, -1
	for i, p := range prio.prio {
		switch p {
		case "low":
			lastLow = i
		case "":
			lastNormal = i
		}
	}
	got := len(prio.ids)
	prio.mu.Unlock()
	if lastLow < 0 || lastLow > lastNormal {
		t.Errorf("last low event delivered at %d, last normal at %d: low events did not progress during the backlog", lastLow, lastNormal)
	}
	t.Logf("priority Subscription: %d deliveries, last low at %d, last normal at %d", got, lastLow, lastNormal)
	eventually(t, 30*time.Second, func() bool {
		return plain.counts()[""] == normal && plain.counts()["high"] == high && plain.counts()["low"] == low
	},
		"every event delivered to the Subscription without priority")
}

// TestOrderedSubscriptionIgnoresPriority: an ordered Subscription gets
// events of every priority in the order the Topic stored them.
func TestOrderedSubscriptionIgnoresPriority(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := newOrderSink(t, time.Millisecond)
	res := e.provision(newTopic("ordprio"), []subscription{{name: "strict", uri: s.url, spec: func(sp *v1alpha1.SubscriptionSpec) {
		sp.Ordering = v1alpha1.OrderingOrdered
	}}}, nil)
	r := e.start(nil, Options{Topics: []string{"default/ordprio"}})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/ordprio"
	var want []string
	for i := range 60 {
		id := fmt.Sprintf("e%02d", i)
		switch i % 3 {
		case 0:
			sendOK(t, url, id)
		case 1:
			sendOK(t, url, id, "Ce-Priority", "high")
		default:
			sendOK(t, url, id, "Ce-Priority", "low")
		}
		want = append(want, id)
	}
	eventually(t, 20*time.Second, func() bool { return len(s.order()) >= len(want) }, "every event delivered")
	if got := s.order(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ordered Subscription got %v, want %v", got, want)
	}
}

func (s *orderSink) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// TestDelayedEventFiresIntoItsLane: a delayed high event's schedule targets
// the high lane, an event without priority the Topic's subject.
func TestDelayedEventFiresIntoItsLane(t *testing.T) {
	p := &plan.TopicPlan{Namespace: "shop", Name: "orders", Stream: "herald_shop_orders", Subject: plan.Subject("shop", "orders"), Lanes: true}
	for _, tc := range []struct{ priority, want string }{
		{"high", plan.LaneSubject("shop", "orders", plan.PriorityHigh)},
		{"LOW", plan.LaneSubject("shop", "orders", plan.PriorityLow)},
		{"normal", p.Subject},
		{"", p.Subject},
	} {
		ev := &ce.Event{Attrs: []ce.Attribute{{Name: "specversion", Value: "1.0"}, {Name: "id", Value: "1"}, {Name: "source", Value: "/s"}, {Name: "type", Value: "t"}}}
		if tc.priority != "" {
			ev.Attrs = append(ev.Attrs, ce.Attribute{Name: ce.AttrPriority, Value: tc.priority})
		}
		m := scheduledMsg(&topicState{plan: p}, ev, "", time.Now().Add(time.Hour))
		if got := m.Header.Get(jetstream.ScheduleTargetHeader); got != tc.want {
			t.Errorf("priority %q: schedule target %s, want %s", tc.priority, got, tc.want)
		}
		if got := storedMsg(&topicState{plan: p}, ev, "").Subject; got != tc.want {
			t.Errorf("priority %q: stored on %s, want %s", tc.priority, got, tc.want)
		}
	}
}
