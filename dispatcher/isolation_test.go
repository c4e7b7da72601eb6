package dispatcher

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
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
