package sources

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/internal/auth"
)

func testEvent() event.Event {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("/test")
	e.SetType("dev.herald.test")
	e.SetSubject("a b\"c%d/é")
	e.SetTime(time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC))
	_ = e.SetData("text/plain", []byte("hello"))
	e.SetExtension("partitionkey", "k1")
	return e
}

func newTestSender(t *testing.T, url string, ext map[string]string, reg prometheus.Registerer) *Sender {
	t.Helper()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(SenderConfig{Sink: url, Extensions: ext, Type: "ping", Retry: fastRetry, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestEncodeBinary(t *testing.T) {
	m, err := EncodeBinary(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Ce-Specversion":  "1.0",
		"Ce-Id":           "id-1",
		"Ce-Source":       "/test",
		"Ce-Type":         "dev.herald.test",
		"Ce-Subject":      "a%20b%22c%25d/%C3%A9",
		"Ce-Time":         "2026-01-02T03:04:05.000006Z",
		"Ce-Partitionkey": "k1",
		"Content-Type":    "text/plain",
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if string(m.Body) != "hello" {
		t.Errorf("body %q", m.Body)
	}
	if _, err := EncodeBinary(event.New()); err == nil {
		t.Error("an event without id, source and type encoded")
	}
}

func TestSenderRetries503ThenSucceeds(t *testing.T) {
	s := newSink(t, 503, 429, 200)
	s.header.Set("Retry-After", "1")
	reg := prometheus.NewRegistry()
	snd := newTestSender(t, s.URL, nil, reg)
	if err := snd.Send(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	if n := s.attemptCount(); n != 3 {
		t.Errorf("attempts = %d, want 3", n)
	}
	if got := s.events(); len(got) != 1 || string(got[0].Body) != "hello" {
		t.Errorf("sink got %v", got)
	}
	if v := testutil.ToFloat64(snd.metrics.sent.WithLabelValues("ping")); v != 1 {
		t.Errorf("sent = %v", v)
	}
	if v := testutil.ToFloat64(snd.metrics.retries.WithLabelValues("ping")); v != 2 {
		t.Errorf("retries = %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "herald_source_events_sent_total", "herald_source_events_retries_total"); err != nil || n != 2 {
		t.Errorf("registered series = %d, %v", n, err)
	}
}

func TestSenderGivesUpAfterMaxAttempts(t *testing.T) {
	s := newSink(t, 503)
	s.header.Set("Retry-After", "7")
	snd := newTestSender(t, s.URL, nil, nil)
	err := snd.Send(context.Background(), testEvent())
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SendError", err)
	}
	if se.StatusCode != 503 || !se.Retryable || se.Attempts != DefaultMaxAttempts || se.RetryAfter != 7*time.Second {
		t.Errorf("SendError = %+v", se)
	}
	if n := s.attemptCount(); n != DefaultMaxAttempts {
		t.Errorf("attempts = %d, want %d", n, DefaultMaxAttempts)
	}
	if v := testutil.ToFloat64(snd.metrics.failed.WithLabelValues("ping")); v != 1 {
		t.Errorf("failed = %v", v)
	}
}

func TestSenderDoesNotRetry4xx(t *testing.T) {
	for _, code := range []int{400, 403, 413, 422} {
		s := newSink(t, code)
		err := newTestSender(t, s.URL, nil, nil).Send(context.Background(), testEvent())
		var se *SendError
		if !errors.As(err, &se) || se.Retryable || se.StatusCode != code || se.Attempts != 1 {
			t.Errorf("%d: err = %v", code, err)
		}
		if n := s.attemptCount(); n != 1 {
			t.Errorf("%d: attempts = %d", code, n)
		}
	}
}

// TestSenderRetries404And409: a sink that is not ready yet (404) or
// answers a transient conflict (409) is retried, as the dispatcher does
// (Knative data-plane spec).
func TestSenderRetries404And409(t *testing.T) {
	for _, code := range []int{404, 409} {
		s := newSink(t, code, code, 200)
		if err := newTestSender(t, s.URL, nil, nil).Send(context.Background(), testEvent()); err != nil {
			t.Errorf("%d: %v", code, err)
		}
		if n := s.attemptCount(); n != 3 {
			t.Errorf("%d: attempts = %d, want 3", code, n)
		}
	}
}

func TestSenderRetriesConnectionErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := newTestSender(t, url, nil, nil).Send(context.Background(), testEvent())
	var se *SendError
	if !errors.As(err, &se) || !se.Retryable || se.StatusCode != 0 || se.Attempts != DefaultMaxAttempts || se.Err == nil {
		t.Fatalf("err = %#v", err)
	}
}

func TestSenderStopsWhenContextEnds(t *testing.T) {
	s := newSink(t, 503)
	s.header.Set("Retry-After", "3600")
	snd := newTestSender(t, s.URL, nil, nil)
	snd.retry.RetryAfterMax = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Send(ctx, testEvent()) }()
	eventually(t, "first attempt", func() bool { return s.attemptCount() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestSenderAppliesOverrides(t *testing.T) {
	ext := map[string]string{"team": "a b", "partitionkey": "override"}
	s := newSink(t)
	snd := newTestSender(t, s.URL, ext, nil)
	if err := snd.Send(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	structured := Message{
		Header: http.Header{"Content-Type": {ContentTypeStructuredJSON}},
		Body:   []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","team":"old","data":{"a":1}}`),
	}
	if err := snd.SendMessage(context.Background(), structured); err != nil {
		t.Fatal(err)
	}
	got := s.events()
	if len(got) != 2 {
		t.Fatalf("sink got %d events", len(got))
	}
	if h := got[0].Header; h.Get("Ce-Team") != "a%20b" || h.Get("Ce-Partitionkey") != "override" || h.Get("Ce-Id") != "id-1" {
		t.Errorf("binary headers %v", h)
	}
	var e event.Event
	if err := e.UnmarshalJSON(got[1].Body); err != nil {
		t.Fatal(err)
	}
	if e.Extensions()["team"] != "a b" || e.Extensions()["partitionkey"] != "override" || e.ID() != "x" || string(e.Data()) != `{"a":1}` {
		t.Errorf("structured event %s", got[1].Body)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := RetryPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second, RetryAfterMax: 30 * time.Second}.withDefaults()
	for n := 1; n < 10; n++ {
		d := p.delay(n, 0)
		hi := min(100*time.Millisecond<<(n-1), time.Second)
		if d < hi/2 || d > hi {
			t.Errorf("delay(%d) = %v, want in [%v, %v]", n, d, hi/2, hi)
		}
	}
	if d := p.delay(1, 5*time.Second); d != 5*time.Second {
		t.Errorf("Retry-After 5s: delay %v", d)
	}
	if d := p.delay(1, time.Hour); d != 30*time.Second {
		t.Errorf("Retry-After 1h: delay %v, want the 30s cap", d)
	}
}

func TestWithExtensionsBatch(t *testing.T) {
	m := Message{
		Header: http.Header{"Content-Type": {ContentTypeBatchJSON}},
		Body:   []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"}]`),
	}
	out, err := withExtensions(m, map[string]string{"x": "y"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out.Body), `"x":"y"`) != 2 {
		t.Errorf("batch %s", out.Body)
	}
	if string(m.Body) == string(out.Body) {
		t.Error("input changed or output not")
	}
}

// senderTokens mints "<namespace>/<name>@<audience>" for the Sender of the
// context, after refusing the first fail calls.
type senderTokens struct {
	fail, calls int
}

func (s *senderTokens) Token(ctx context.Context, audience string) (string, error) {
	s.calls++
	if s.calls <= s.fail {
		return "", errors.New("token unavailable")
	}
	as, ok := auth.SenderFrom(ctx)
	if !ok {
		return "", errors.New("no sender")
	}
	return as.Namespace + "/" + as.Name + "@" + audience, nil
}

// TestSenderPresentsTokens: with an audience each request carries a token
// minted for the source's ServiceAccount; a token that cannot be obtained
// is a retried attempt that sends nothing; without an audience no token is
// asked for.
func TestSenderPresentsTokens(t *testing.T) {
	s := newSink(t)
	tokens := &senderTokens{fail: 2}
	cfg := Config{Sink: s.URL, Audience: "eventing.herald.dev/topic/shop/orders", Namespace: "shop", Name: "tick", ServiceAccount: "tick-source", Type: "ping", MaxAttempts: 5}
	snd, err := NewSenderFor(cfg, Options{Tokens: tokens, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(context.Background(), testEvent()); err != nil {
		t.Fatal(err)
	}
	if got := s.events(); len(got) != 1 || s.attemptCount() != 1 ||
		got[0].Header.Get("Authorization") != "Bearer shop/tick-source@eventing.herald.dev/topic/shop/orders" {
		t.Fatalf("sink saw %d attempts, Authorization %q", s.attemptCount(), got[0].Header.Get("Authorization"))
	}

	tokens = &senderTokens{fail: 10}
	snd, err = NewSenderFor(cfg, Options{Tokens: tokens, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	var se *SendError
	if err := snd.Send(context.Background(), testEvent()); !errors.As(err, &se) || !se.Retryable || se.Attempts != 5 || s.attemptCount() != 1 {
		t.Fatalf("without tokens: %v; the sink saw %d attempts, want the first only", err, s.attemptCount())
	}

	cfg.Audience = ""
	tokens = &senderTokens{}
	snd, err = NewSenderFor(cfg, Options{Tokens: tokens, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if err := snd.Send(context.Background(), testEvent()); err != nil || tokens.calls != 0 || s.events()[1].Header.Get("Authorization") != "" {
		t.Fatalf("without an audience: %v, %d token calls", err, tokens.calls)
	}
}
