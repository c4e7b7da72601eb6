package dispatcher

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// respondSeq answers the n-th request with statuses[n] (the last one
// repeating); a negative status sleeps past the attempt timeout, then 200.
func respondSeq(statuses ...int) func(int, received, http.ResponseWriter) {
	return func(n int, _ received, w http.ResponseWriter) {
		s := statuses[min(n, len(statuses)-1)]
		switch {
		case s < 0:
			time.Sleep(time.Duration(-s) * time.Millisecond)
			w.WriteHeader(200)
		case s == 429 || s == 503:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(s)
		default:
			w.WriteHeader(s)
			fmt.Fprintf(w, "status %d", s)
		}
	}
}

// closedURL is an address nobody listens on.
func closedURL(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	u := s.URL
	s.Close()
	return u
}

// TestRetriesAndDeadLetters: the Knative retry rules, with the dead-letter
// extensions for events given up on.
func TestRetriesAndDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	tests := []struct {
		name     string
		respond  []int
		down     bool
		retry    int32
		attempts int // requests the subscriber gets
		dead     bool
		code     string
		data     string
	}{
		{name: "2xx first time", respond: []int{200}, retry: 3, attempts: 1},
		{name: "204", respond: []int{204}, retry: 3, attempts: 1},
		{name: "5xx then 2xx", respond: []int{500, 502, 200}, retry: 3, attempts: 3},
		{name: "404 408 409 429 are retried", respond: []int{404, 408, 409, 429, 200}, retry: 4, attempts: 5},
		{name: "timeout is retried", respond: []int{-700, 200}, retry: 3, attempts: 2},
		{name: "retries exhausted", respond: []int{500}, retry: 2, attempts: 3, dead: true, code: "500", data: "status 500"},
		{name: "400 dead-letters at once", respond: []int{400}, retry: 3, attempts: 1, dead: true, code: "400", data: "status 400"},
		{name: "413 dead-letters at once", respond: []int{413}, retry: 3, attempts: 1, dead: true, code: "413", data: "status 413"},
		{name: "connection refused is retried", down: true, retry: 1, dead: true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := newSink(t, respondSeq(tc.respond...))
			uri := sub.url()
			if tc.down {
				uri = closedURL(t)
			}
			dls := newSink(t, nil)
			topic := fmt.Sprintf("retry%d", i)
			res := e.provision(newTopic(topic), []subscription{{name: "s", uri: uri, deadLetter: dls.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
				s.Delivery = fastRetry(tc.retry)
				s.Delivery.Timeout = dur("300ms")
			}}}, nil)
			r.waitDelivering(t, &res.Plan)
			sendOK(t, r.url+"/default/"+topic, "ev")
			if tc.dead {
				eventually(t, 10*time.Second, func() bool { return dls.count() == 1 }, "dead letter")
				dl := dls.requests()[0]
				if dl.ce("id") != "ev" || dl.ce("source") != "/test" || string(dl.body) != `{"n":1}` {
					t.Errorf("dead letter is not the original event: %v %q", dl.header, dl.body)
				}
				if got := ce.Decode(dl.ce("knativeerrordest")); got != uri {
					t.Errorf("knativeerrordest = %q, want %q", got, uri)
				}
				if got := dl.ce("knativeerrorcode"); got != tc.code {
					t.Errorf("knativeerrorcode = %q, want %q", got, tc.code)
				}
				data, err := base64.StdEncoding.DecodeString(dl.ce("knativeerrordata"))
				if err != nil || (tc.data != "" && string(data) != tc.data) || len(data) == 0 {
					t.Errorf("knativeerrordata = %q (%v), want base64 of %q", data, err, tc.data)
				}
				wantAttempts := tc.attempts
				if tc.down {
					wantAttempts = int(tc.retry) + 1
				}
				if got := dl.ce("heraldattempts"); got != strconv.Itoa(wantAttempts) {
					t.Errorf("heraldattempts = %q, want %d", got, wantAttempts)
				}
			} else {
				eventually(t, 10*time.Second, func() bool { return sub.count() >= tc.attempts }, "%d attempts", tc.attempts)
			}
			waitSettled(t, e, res.Plan.Stream, "sub_s")
			if !tc.down && sub.count() != tc.attempts {
				t.Errorf("subscriber got %d requests, want %d", sub.count(), tc.attempts)
			}
			if !tc.dead && dls.count() != 0 {
				t.Errorf("dead-letter sink got %d events, want none", dls.count())
			}
		})
	}
}

// waitSettled waits until a consumer has nothing pending or unacknowledged
// and has delivered up to the stream's last message (a consumer with
// several filter subjects may report NumPending 0 for a moment before it
// counts a message just stored).
func waitSettled(t testing.TB, e *env, stream, consumer string) {
	t.Helper()
	eventually(t, 15*time.Second, func() bool {
		s, err := e.js.Stream(context.Background(), stream)
		if err != nil {
			return false
		}
		last := s.CachedInfo().State.LastSeq
		c, err := e.js.Consumer(context.Background(), stream, consumer)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream >= last
	}, "consumer %s settled", consumer)
}

func consumerInfo(t testing.TB, e *env, stream, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := e.js.Consumer(context.Background(), stream, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestDeadLetterAckedAfterSink: an event stays unacknowledged while the
// dead-letter sink refuses it, and is acked once the sink takes it.
func TestDeadLetterAckedAfterSink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, respondSeq(400))
	var sinkUp atomic.Bool
	dls := newSink(t, func(n int, _ received, w http.ResponseWriter) {
		if sinkUp.Load() {
			w.WriteHeader(202)
			return
		}
		w.WriteHeader(503)
	})
	res := e.provision(newTopic("dlretry"), []subscription{{name: "s", uri: sub.url(), deadLetter: dls.url()}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/dlretry", "ev")
	eventually(t, 10*time.Second, func() bool { return dls.count() >= 2 }, "two dead-letter attempts")
	if info := consumerInfo(t, e, res.Plan.Stream, "sub_s"); info.NumAckPending != 1 {
		t.Fatalf("ack pending = %d while the sink refuses, want 1", info.NumAckPending)
	}
	sinkUp.Store(true)
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if got := testutil.ToFloat64(r.d.metrics.deadLetters.WithLabelValues("default", "dlretry", "s", "sink")); got != 1 {
		t.Errorf("dead letters accepted by the sink = %v, want 1", got)
	}
	if got := testutil.ToFloat64(r.d.metrics.deadLetters.WithLabelValues("default", "dlretry", "s", "failed")); got < 2 {
		t.Errorf("dead letters refused = %v, want ≥ 2", got)
	}
}

// TestNoDeadLetterSink: without a sink, a failed event is acked, logged and
// counted with sink="none".
func TestNoDeadLetterSink(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, respondSeq(422))
	res := e.provision(newTopic("nosink"), []subscription{{name: "s", uri: sub.url()}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/nosink", "ev")
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if got := testutil.ToFloat64(r.d.metrics.deadLetters.WithLabelValues("default", "nosink", "s", "none")); got != 1 {
		t.Errorf(`dead letters{sink="none"} = %v, want 1`, got)
	}
	if got := testutil.ToFloat64(r.d.metrics.deliveries.WithLabelValues("default", "nosink", "s", outcomeDeadLettered, "4xx")); got != 1 {
		t.Errorf("deliveries{outcome=dead_lettered} = %v, want 1", got)
	}
}

// TestConsumerAppearsLater: the dispatcher waits for a consumer the
// control plane has not created yet.
func TestConsumerAppearsLater(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	topic := newTopic("late")
	var cc jetstream.ConsumerConfig
	res := e.provision(topic, []subscription{{name: "s", uri: sub.url()}}, func(c *jetstream.ConsumerConfig) {
		cc = *c
		c.Durable, c.Name = "other", "other"
	})
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/late", "before")
	cc.DeliverPolicy = jetstream.DeliverAllPolicy
	if _, err := e.js.CreateConsumer(context.Background(), res.Plan.Stream, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() bool { return sub.count() == 1 }, "delivery once the consumer exists")
}

// TestGracefulStop: stopping waits for in-flight deliveries, which are
// acked, and Run returns.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	release := make(chan struct{})
	sub := newSink(t, func(n int, _ received, w http.ResponseWriter) {
		<-release
		w.WriteHeader(200)
	})
	res := e.provision(newTopic("graceful"), []subscription{{name: "s", uri: sub.url()}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/graceful", "ev")
	eventually(t, 10*time.Second, func() bool { return sub.count() == 1 }, "delivery in flight")
	r.cancel()
	select {
	case <-r.done:
		t.Fatal("Run returned with a delivery in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the delivery finished")
	}
	info := consumerInfo(t, e, res.Plan.Stream, "sub_s")
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after a graceful stop: pending %d, ack pending %d; want 0, 0", info.NumPending, info.NumAckPending)
	}
}

// TestMetrics: the ingress and delivery counters move.
func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	res := e.provision(newTopic("metrics"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Filters = []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"subject": "keep"}}}}
	}}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	u := r.url + "/default/metrics"
	sendOK(t, u, "1", "Ce-Subject", "keep")
	sendOK(t, u, "2", "Ce-Subject", "drop")
	sendOK(t, u, "1", "Ce-Subject", "keep")
	post(t, u, map[string]string{"Content-Type": "text/plain"}, []byte("x"))
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	m := r.d.metrics
	for name, c := range map[string]struct {
		got, want float64
	}{
		"received":  {testutil.ToFloat64(m.received.WithLabelValues("default", "metrics")), 3},
		"duplicate": {testutil.ToFloat64(m.duplicates.WithLabelValues("default", "metrics")), 1},
		"rejected":  {testutil.ToFloat64(m.rejected.WithLabelValues("default", "metrics", reasonInvalid)), 1},
		"delivered": {testutil.ToFloat64(m.deliveries.WithLabelValues("default", "metrics", "s", outcomeDelivered, "2xx")), 1},
		"filtered":  {testutil.ToFloat64(m.deliveries.WithLabelValues("default", "metrics", "s", outcomeFiltered, "none")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", name, c.got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("delivery duration series = %d, want 1", n)
	}
	eventually(t, 2*lagInterval+5*time.Second, func() bool {
		return testutil.CollectAndCount(m.pending) == 1
	}, "consumer lag gauge")
}
