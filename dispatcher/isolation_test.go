package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// holdingSink is a subscriber that answers no request to heldPath until
// released, and passes the others to another handler.
type holdingSink struct {
	srv     *httptest.Server
	release chan struct{}
	once    sync.Once
	// arrived counts the requests received, holding those not answered
	// yet.
	arrived, holding atomic.Int64
}

// heldPath is the path of a holdingSink's held requests.
const heldPath = "/held"

func newHoldingSink(t *testing.T, other http.Handler) *holdingSink {
	s := &holdingSink{release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != heldPath {
			other.ServeHTTP(w, r)
			return
		}
		s.arrived.Add(1)
		s.holding.Add(1)
		defer s.holding.Add(-1)
		select {
		case <-s.release:
			w.WriteHeader(http.StatusOK)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// answer makes the sink answer 200 to every request from now on.
func (s *holdingSink) answer() { s.once.Do(func() { close(s.release) }) }

// TestSharedDispatcherIsolation: on one shared dispatcher, a Topic whose
// subscriber answers nothing and a Topic whose stream is full stall neither
// the ingress nor the deliveries of another Topic, even one whose
// subscriber is on the same host as the silent one.
func TestSharedDispatcherIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const slowInFlight = 8
	fastSub := newSink(t, nil)
	slowSub := newHoldingSink(t, fastSub.srv.Config.Handler)
	slow := e.provision(nsTopic("ns1", "slow"), []subscription{{name: "s", uri: slowSub.srv.URL + heldPath, spec: func(s *v1alpha1.SubscriptionSpec) {
		s.MaxInFlight = slowInFlight
		s.Delivery.Timeout = dur("10m") // held requests never time out during the test
	}}}, nil)
	fast := e.provision(nsTopic("ns1", "fast"), []subscription{{name: "s", uri: slowSub.srv.URL + "/fast"}}, nil)
	two := int64(2)
	full := e.provision(nsTopic("ns1", "slow2", func(tp *v1alpha1.Topic) {
		tp.Spec.Retention = &v1alpha1.TopicRetention{MaxMessages: &two, Discard: v1alpha1.DiscardNew}
	}), nil, nil)
	e.share(slow, sharedNS1)
	e.share(fast, sharedNS1)
	e.share(full, sharedNS1)
	r := e.start(nil, Options{Shared: sharedNS1})
	// Released before the dispatcher stops (cleanups run last first), so
	// that its held deliveries end.
	t.Cleanup(slowSub.answer)
	r.waitDelivering(t, &slow.Plan)
	r.waitDelivering(t, &fast.Plan)
	r.waitDelivering(t, &full.Plan)

	// slow's subscriber holds slowInFlight requests, with a backlog behind.
	const backlog = 20
	slowSent := 0
	for ; slowSent < slowInFlight+backlog; slowSent++ {
		sendOK(t, r.url+"/ns1/slow", fmt.Sprintf("slow-%d", slowSent))
	}
	eventually(t, 15*time.Second, func() bool {
		ci := consumerInfo(t, e, slow.Plan.Stream, "sub_s")
		return slowSub.holding.Load() == slowInFlight && ci.NumPending == backlog
	}, "slow's subscriber holding %d requests, %d events behind them", slowInFlight, backlog)
	// slow2's stream is full.
	sendOK(t, r.url+"/ns1/slow2", "full-0")
	sendOK(t, r.url+"/ns1/slow2", "full-1")
	if resp, body := post(t, r.url+"/ns1/slow2", binary("full-2"), []byte("{}")); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("full stream: %d %s, want 429", resp.StatusCode, body)
	}

	// Meanwhile fast takes n events from several producers and delivers
	// them all, while slow keeps accepting and slow2 keeps refusing.
	const n, producers = 500, 8
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range producers {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				expect(t, r.url+"/ns1/fast", fmt.Sprintf("fast-%d", i), http.StatusAccepted)
			}
		})
	}
	others := make(chan struct{})
	var fullRefused atomic.Int64
	go func() {
		defer close(others)
		for i := 0; ; i++ {
			if expect(t, r.url+"/ns1/slow", fmt.Sprintf("slow-meanwhile-%d", i), http.StatusAccepted) {
				slowSent++
			}
			if expect(t, r.url+"/ns1/slow2", fmt.Sprintf("full-meanwhile-%d", i), http.StatusTooManyRequests) {
				fullRefused.Add(1)
			}
			if next.Load() >= n {
				return
			}
		}
	}()
	wg.Wait()
	<-others
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, 60*time.Second, func() bool { return len(fastSub.uniqueIDs()) == n }, "all %d events of fast delivered", n)
	waitSettled(t, e, fast.Plan.Stream, "sub_s")
	ids := fastSub.uniqueIDs()
	for i := range n {
		if !ids[fmt.Sprintf("fast-%d", i)] {
			t.Errorf("fast-%d never delivered", i)
		}
	}
	// slow stayed saturated the whole time: still the same requests held,
	// none answered, none sent besides them.
	if h, a := slowSub.holding.Load(), slowSub.arrived.Load(); h != slowInFlight || a != slowInFlight {
		t.Errorf("slow's subscriber holds %d requests and got %d, want %d and %d", h, a, slowInFlight, slowInFlight)
	}
	if ci := consumerInfo(t, e, slow.Plan.Stream, "sub_s"); ci.NumPending != uint64(slowSent-slowInFlight) {
		t.Errorf("slow's backlog: %d, want %d", ci.NumPending, slowSent-slowInFlight)
	}
	if got := e.streamMsgs(full.Plan.Stream); got != 2 {
		t.Errorf("full stream holds %d events, want 2", got)
	}
	t.Logf("fast delivered %d events while slow held %d requests with a backlog of %d and slow2 refused %d events",
		n, slowInFlight, slowSent-slowInFlight, fullRefused.Load())

	// Once its subscriber answers, slow delivers everything.
	slowSub.answer()
	waitSettled(t, e, slow.Plan.Stream, "sub_s")
	if got := slowSub.arrived.Load(); got < int64(slowSent) {
		t.Errorf("slow's subscriber got %d requests, want at least %d", got, slowSent)
	}
}

// expect posts a binary event and reports whether it got status (and
// Retry-After with 429), reporting an error otherwise; for goroutines other
// than the test's.
func expect(t testing.TB, url, id string, status int) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"n":1}`))
	if err != nil {
		t.Error(err)
		return false
	}
	for k, v := range binary(id) {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("send %s: %v", id, err)
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || (status == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "") {
		t.Errorf("send %s: %d Retry-After %q %s, want %d", id, resp.StatusCode, resp.Header.Get("Retry-After"), body, status)
		return false
	}
	return true
}

// stalledStream answers the publishes to a subject as a JetStream stream
// would, but only once released: a stream whose leader is lost, or whose
// storage stalls.
type stalledStream struct {
	mu       sync.Mutex
	held     []*nats.Msg
	released bool
}

func newStalledStream(t *testing.T, nc *nats.Conn, subject string) *stalledStream {
	s := &stalledStream{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.released {
			s.ack(m)
			return
		}
		s.held = append(s.held, m)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return s
}

// ack answers m as a stream storing it. s.mu must be held.
func (s *stalledStream) ack(m *nats.Msg) {
	_ = m.Respond(fmt.Appendf(nil, `{"stream":"stalled","seq":%d}`, len(s.held)+1))
}

func (s *stalledStream) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// release answers the held publishes and those to come.
func (s *stalledStream) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = true
	for _, m := range s.held {
		s.ack(m)
	}
}

// batchBody is a batch of n events with ids prefix-0 to prefix-(n-1).
func batchBody(prefix string, n int) []byte {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"specversion":"1.0","id":"%s-%d","source":"/test","type":"t","data":{"n":1}}`, prefix, i)
	}
	b.WriteByte(']')
	return []byte(b.String())
}

// postBatch posts a batch and returns the status, 0 when the request
// failed (as when ctx ended).
func postBatch(ctx context.Context, url string, body []byte) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", ce.MediaBatchJSON)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		return -1
	}
	return resp.StatusCode
}

// TestSharedDispatcherPublishBudget: a Topic whose stream stops answering
// holds at most its budget of the dispatcher's publishes awaiting
// acknowledgement (beyond it its producers get 503 at once), so another
// Topic of the shared dispatcher keeps storing and delivering events,
// single and batched; the budget returns once the stream answers, also for
// the publishes of a producer that went away.
func TestSharedDispatcherPublishBudget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stalled := newStalledStream(t, e.nc, "test.stalled")
	e.putPlan(&plan.TopicPlan{Version: plan.Version, Namespace: "ns1", Name: "stalled", Stream: "stalled", Subject: "test.stalled",
		MaxEventSize: 64 << 10, SharedDispatcher: sharedNS1})
	fastSub := newSink(t, nil)
	fast := e.provision(nsTopic("ns1", "fast"), []subscription{{name: "s", uri: fastSub.url()}}, nil)
	e.share(fast, sharedNS1)
	r := e.start(nil, Options{Shared: sharedNS1})
	r.waitDelivering(t, &fast.Plan)
	stalledURL := r.url + "/ns1/stalled"

	// More batches than the Topic's budget holds; together, more events
	// than the dispatcher's publishes awaiting acknowledgement.
	const batch, batches = 1000, maxPendingPublishes/1000 + 4
	fit := maxTopicPendingPublishes / batch
	statuses := make(chan int, batches)
	// The first one's producer goes away while it waits.
	gone, leave := context.WithCancel(context.Background())
	go func() { statuses <- postBatch(gone, stalledURL, batchBody("stalled-0", batch)) }()
	eventually(t, 10*time.Second, func() bool { return stalled.count() == batch }, "first batch awaiting storage")
	for i := 1; i < batches; i++ {
		go func() {
			statuses <- postBatch(context.Background(), stalledURL, batchBody(fmt.Sprintf("stalled-%d", i), batch))
		}()
	}
	for range batches - fit {
		if st := <-statuses; st != http.StatusServiceUnavailable {
			t.Fatalf("a batch beyond the stalled Topic's budget: %d, want 503 with Retry-After", st)
		}
	}
	// The batches that fit are still on their way.
	eventually(t, 10*time.Second, func() bool { return stalled.count() >= fit*batch }, "%d events of the stalled Topic awaiting storage", fit*batch)
	if got := stalled.count(); got != fit*batch {
		t.Fatalf("%d events of the stalled Topic await storage, want %d", got, fit*batch)
	}
	leave()
	if st := <-statuses; st != 0 {
		t.Fatalf("the batch whose producer went away: %d", st)
	}

	// fast stores and delivers, single events and batches.
	const singles, fastBatches, fastBatch = 100, 5, 100
	for i := range singles {
		sendOK(t, r.url+"/ns1/fast", fmt.Sprintf("fast-%d", i))
	}
	for i := range fastBatches {
		if st := postBatch(context.Background(), r.url+"/ns1/fast", batchBody(fmt.Sprintf("fast-batch-%d", i), fastBatch)); st != http.StatusAccepted {
			t.Fatalf("fast batch %d: %d", i, st)
		}
	}
	eventually(t, 30*time.Second, func() bool { return len(fastSub.uniqueIDs()) == singles+fastBatches*fastBatch },
		"%d events of fast delivered", singles+fastBatches*fastBatch)
	if got := stalled.count(); got != fit*batch {
		t.Errorf("%d events of the stalled Topic await storage, want %d", got, fit*batch)
	}

	// Once the stream answers, the waiting producers get 202 and the
	// budget is whole again, the abandoned publishes' included.
	stalled.release()
	for range fit - 1 {
		if st := <-statuses; st != http.StatusAccepted {
			t.Errorf("a batch stored once the stream answered: %d, want 202", st)
		}
	}
	eventually(t, 10*time.Second, func() bool { return r.d.topic("ns1", "stalled").pending.Load() == 0 }, "the stalled Topic's budget returned")
	if st := postBatch(context.Background(), stalledURL, batchBody("after", batch)); st != http.StatusAccepted {
		t.Errorf("a batch once the stream answers: %d, want 202", st)
	}
}
