package sources

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// received is one request a test sink got.
type received struct {
	Header http.Header
	Body   []byte
}

// sink is a real HTTP sink that records requests and answers with the
// statuses of respond, in order (the last one repeats; none means 200).
type sink struct {
	*httptest.Server
	mu       sync.Mutex
	got      []received
	attempts int
	respond  []int
	header   http.Header
}

func newSink(t *testing.T, respond ...int) *sink {
	t.Helper()
	s := &sink{respond: respond, header: http.Header{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		code := http.StatusOK
		if len(s.respond) > 0 {
			code = s.respond[min(s.attempts, len(s.respond)-1)]
		}
		s.attempts++
		if code >= 200 && code < 300 {
			s.got = append(s.got, received{Header: r.Header.Clone(), Body: body})
		}
		for k, v := range s.header {
			w.Header()[k] = v
		}
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

// events returns the requests the sink accepted.
func (s *sink) events() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *sink) attemptCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fastRetry keeps retry tests quick.
var fastRetry = RetryPolicy{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, RetryAfterMax: 5 * time.Millisecond}
