package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// arrivals records when each event id first reached a subscriber.
type arrivals struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string
}

func newArrivals() *arrivals { return &arrivals{at: map[string]time.Time{}} }

func (a *arrivals) respond(_ int, r received, w http.ResponseWriter) {
	a.mu.Lock()
	id := r.ce("id")
	if _, ok := a.at[id]; !ok {
		a.at[id] = time.Now()
		a.order = append(a.order, id)
	}
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *arrivals) when(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[id]
	return t, ok
}

func (a *arrivals) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.order...)
}

// TestDeliveryTime is the table of deliverat and deliverafter values.
func TestDeliveryTime(t *testing.T) {
	now := time.Date(2030, 1, 2, 15, 0, 0, 0, time.UTC)
	const week = 7 * 24 * time.Hour
	for _, tc := range []struct {
		name     string
		attrs    map[string]string
		maxDelay time.Duration
		want     time.Time
		wantAttr string
	}{
		{"none", nil, week, time.Time{}, ""},
		{"at ahead", map[string]string{"deliverat": "2030-01-02T15:00:03.5Z"}, week, now.Add(3500 * time.Millisecond), ""},
		{"at with offset", map[string]string{"deliverat": "2030-01-02T16:30:00+01:00"}, week, now.Add(30 * time.Minute), ""},
		{"at past", map[string]string{"deliverat": "2020-01-01T00:00:00Z"}, week, time.Time{}, ""},
		{"at now", map[string]string{"deliverat": "2030-01-02T15:00:00Z"}, week, time.Time{}, ""},
		{"at past without delays", map[string]string{"deliverat": "2020-01-01T00:00:00Z"}, 0, time.Time{}, ""},
		{"at not a time", map[string]string{"deliverat": "tomorrow"}, week, time.Time{}, "deliverat"},
		{"at without zone", map[string]string{"deliverat": "2030-01-02T15:00:03"}, week, time.Time{}, "deliverat"},
		{"at too far", map[string]string{"deliverat": "2030-01-10T15:00:00Z"}, week, time.Time{}, "deliverat"},
		{"at without delays", map[string]string{"deliverat": "2030-01-02T15:00:03Z"}, 0, time.Time{}, "deliverat"},
		{"after iso", map[string]string{"deliverafter": "PT1M"}, week, now.Add(time.Minute), ""},
		{"after go", map[string]string{"deliverafter": "1m30s"}, week, now.Add(90 * time.Second), ""},
		{"after zero", map[string]string{"deliverafter": "0s"}, week, time.Time{}, ""},
		{"after days", map[string]string{"deliverafter": "P7D"}, week, now.Add(week), ""},
		{"after too far", map[string]string{"deliverafter": "P7DT1S"}, week, time.Time{}, "deliverafter"},
		{"after negative", map[string]string{"deliverafter": "-5s"}, week, time.Time{}, "deliverafter"},
		{"after months", map[string]string{"deliverafter": "P1M"}, week, time.Time{}, "deliverafter"},
		{"both", map[string]string{"deliverat": "2030-01-02T15:00:03Z", "deliverafter": "PT1M"}, week, time.Time{}, "deliverafter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &ce.Event{}
			for k, v := range tc.attrs {
				e.Set(k, v)
			}
			got, err := deliveryTime(e, now, tc.maxDelay, -1)
			if tc.wantAttr != "" {
				ae, ok := err.(*ce.AttributeError)
				if !ok || ae.Attribute != tc.wantAttr {
					t.Fatalf("error %v, want an attribute error naming %s", err, tc.wantAttr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("deliveryTime = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestDelayedDelivery: an event with deliverat 3 s ahead is answered at
// once, counted as pending, delivered not before its time with the
// extension kept, and stored once when sent twice; an event with a past
// time is delivered at once.
func TestDelayedDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got := newArrivals()
	sub := newSink(t, got.respond)
	res := e.provision(newTopic("later"), []subscription{{name: "s", uri: sub.url()}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/later"

	due := time.Now().Add(3 * time.Second)
	at := due.UTC().Format(time.RFC3339Nano)
	sendOK(t, url, "delayed", "Ce-Deliverat", at)
	sendOK(t, url, "delayed", "Ce-Deliverat", at)
	sendOK(t, url, "past", "Ce-Deliverat", "2020-01-01T00:00:00Z")
	sendOK(t, url, "now")
	n, err := r.d.scheduledPending(context.Background(), &res.Plan)
	if err != nil || n != 1 {
		t.Errorf("scheduled pending = %d, %v; want 1", n, err)
	}
	eventually(t, 5*time.Second, func() bool {
		_, p := got.when("past")
		_, n := got.when("now")
		return p && n
	}, "past and immediate events delivered")
	if _, early := got.when("delayed"); early && time.Now().Before(due) {
		t.Fatal("delayed event delivered before its time")
	}
	eventually(t, 10*time.Second, func() bool { _, ok := got.when("delayed"); return ok }, "delayed event delivered")
	if when, _ := got.when("delayed"); when.Before(due) {
		t.Errorf("delayed event delivered %v before its time", due.Sub(when))
	}
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	var copies int
	for _, rq := range sub.requests() {
		if rq.ce("id") != "delayed" {
			continue
		}
		copies++
		if rq.ce("deliverat") != at {
			t.Errorf("delivered deliverat = %q, want %q", rq.ce("deliverat"), at)
		}
		for k := range rq.header {
			if strings.HasPrefix(k, "Nats-") {
				t.Errorf("delivery carries JetStream header %s", k)
			}
		}
	}
	if copies != 1 {
		t.Errorf("delayed event delivered %d times, want once", copies)
	}
	if n, err := r.d.scheduledPending(context.Background(), &res.Plan); err != nil || n != 0 {
		t.Errorf("scheduled pending after delivery = %d, %v; want 0", n, err)
	}
}

// TestDelayedValidation: bad values, both attributes, a time beyond the
// Topic's maxDelay, or a Topic taking no delayed events get 400 naming
// the attribute, nothing stored; in a batch the event is named by index.
func TestDelayedValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	res := e.provision(newTopic("bounded", func(tp *v1alpha1.Topic) {
		tp.Spec.Scheduling = &v1alpha1.TopicScheduling{MaxDelay: dur("PT1H")}
	}), []subscription{{name: "s", uri: sub.url()}}, nil)
	off := e.provision(newTopic("off", func(tp *v1alpha1.Topic) {
		tp.Spec.Scheduling = &v1alpha1.TopicScheduling{MaxDelay: dur("PT0S")}
	}), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	eventually(t, 5*time.Second, func() bool { return r.d.topic("default", "off") != nil }, "topic off served")
	ahead := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, topic string
		extra       []string
		attr        string
	}{
		{"bad time", "bounded", []string{"Ce-Deliverat", "next tuesday"}, "deliverat"},
		{"bad duration", "bounded", []string{"Ce-Deliverafter", "5 minutes"}, "deliverafter"},
		{"both", "bounded", []string{"Ce-Deliverat", ahead, "Ce-Deliverafter", "PT1M"}, "deliverafter"},
		{"too far", "bounded", []string{"Ce-Deliverat", ahead}, "deliverat"},
		{"too far after", "bounded", []string{"Ce-Deliverafter", "PT61M"}, "deliverafter"},
		{"no delays", "off", []string{"Ce-Deliverafter", "PT1M"}, "deliverafter"},
	} {
		resp, body := post(t, r.url+"/default/"+tc.topic, binary(tc.name, tc.extra...), []byte(`{}`))
		var eb errorBody
		_ = json.Unmarshal(body, &eb)
		if resp.StatusCode != http.StatusBadRequest || eb.Attribute != tc.attr {
			t.Errorf("%s: %d %s; want 400 naming %s", tc.name, resp.StatusCode, body, tc.attr)
		}
	}
	batch := fmt.Sprintf(`[{"specversion":"1.0","id":"b0","source":"/t","type":"t","deliverafter":"PT1M"},`+
		`{"specversion":"1.0","id":"b1","source":"/t","type":"t","deliverat":%q}]`, ahead)
	resp, body := post(t, r.url+"/default/bounded", map[string]string{"Content-Type": ce.MediaBatchJSON}, []byte(batch))
	var eb errorBody
	_ = json.Unmarshal(body, &eb)
	if resp.StatusCode != http.StatusBadRequest || eb.Attribute != "deliverat" || eb.Index == nil || *eb.Index != 1 {
		t.Errorf("batch: %d %s; want 400 naming deliverat of index 1", resp.StatusCode, body)
	}
	if n := e.streamMsgs(res.Plan.Stream); n != 0 {
		t.Errorf("%d messages stored for refused requests", n)
	}
	if n := e.streamMsgs(off.Plan.Stream); n != 0 {
		t.Errorf("%d messages stored for refused requests", n)
	}

	batch = `[{"specversion":"1.0","id":"b2","source":"/t","type":"t","deliverafter":"PT2S"},` +
		`{"specversion":"1.0","id":"b3","source":"/t","type":"t"}]`
	sent := time.Now()
	resp, body = post(t, r.url+"/default/bounded", map[string]string{"Content-Type": ce.MediaBatchJSON}, []byte(batch))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("batch with a delayed event: %d %s", resp.StatusCode, body)
	}
	eventually(t, 5*time.Second, func() bool { return sub.uniqueIDs()["b3"] }, "immediate batch event delivered")
	if sub.uniqueIDs()["b2"] && time.Since(sent) < 2*time.Second {
		t.Fatal("delayed batch event delivered early")
	}
	eventually(t, 10*time.Second, func() bool { return sub.uniqueIDs()["b2"] }, "delayed batch event delivered")
	if elapsed := time.Since(sent); elapsed < 2*time.Second {
		t.Errorf("delayed batch event delivered after %v, want at least 2s", elapsed)
	}
}

// TestDelayedOrdering: an ordered Subscription sees a delayed event at
// its delivery time's position: after every event stored before it
// fired, before every event stored after.
func TestDelayedOrdering(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	got := newArrivals()
	sub := newSink(t, got.respond)
	res := e.provision(newTopic("ordered-later"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Ordering = v1alpha1.OrderingOrdered
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/ordered-later"
	sendOK(t, url, "d", "Ce-Deliverafter", "PT2S")
	for i := range 3 {
		sendOK(t, url, fmt.Sprintf("e%d", i))
	}
	eventually(t, 10*time.Second, func() bool { _, ok := got.when("d"); return ok }, "delayed event delivered")
	sendOK(t, url, "e3")
	eventually(t, 5*time.Second, func() bool { _, ok := got.when("e3"); return ok }, "last event delivered")
	if ids, want := strings.Join(got.ids(), ","), "e0,e1,e2,d,e3"; ids != want {
		t.Errorf("delivery order %s, want %s", ids, want)
	}
}
