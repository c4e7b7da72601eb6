package adapter

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/sources"
)

type sink struct {
	mu  sync.Mutex
	got []http.Header
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func newSink(t *testing.T) (*sink, string) {
	t.Helper()
	s := &sink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.got = append(s.got, r.Header.Clone())
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return s, srv.URL
}

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

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startAdapter runs the adapter of env until the test ends; it returns the
// base URLs of the HTTP and metrics servers.
func startAdapter(t *testing.T, env map[string]string) (httpURL, metricsURL string) {
	t.Helper()
	cfg, err := sources.ParseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	httpLn, metricsLn := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), nil, httpLn, metricsLn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("adapter: %v", err)
		}
	})
	httpURL, metricsURL = "http://"+httpLn.Addr().String(), "http://"+metricsLn.Addr().String()
	for _, u := range []string{httpURL, metricsURL} {
		eventually(t, u+"/readyz", func() bool { code, _ := get(u + "/readyz"); return code == 200 })
		if code, _ := get(u + "/healthz"); code != 200 {
			t.Errorf("%s/healthz: %d", u, code)
		}
	}
	return httpURL, metricsURL
}

func TestPingAdapter(t *testing.T) {
	s, url := newSink(t)
	_, metrics := startAdapter(t, map[string]string{
		sources.EnvSink:            url,
		sources.EnvSourceType:      "ping",
		sources.EnvSourceNamespace: "ns1",
		sources.EnvSourceName:      "tick",
		sources.EnvSourceSpec:      `{"schedule":"@every 1s"}`,
	})
	eventually(t, "a ping event", func() bool { return s.count() >= 1 })
	eventually(t, "sent metric", func() bool {
		_, body := get(metrics + "/metrics")
		return strings.Contains(body, `herald_source_events_sent_total{type="ping"}`)
	})
}

func TestWebhookAdapter(t *testing.T) {
	s, url := newSink(t)
	base, metrics := startAdapter(t, map[string]string{
		sources.EnvSink:            url,
		sources.EnvCEOverrides:     `{"extensions":{"team":"a"}}`,
		sources.EnvSourceType:      "webhook",
		sources.EnvSourceNamespace: "ns1",
		sources.EnvSourceName:      "hook",
		sources.EnvSourceSpec:      `{}`,
	})
	resp, err := http.Post(base+"/", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || s.count() != 1 {
		t.Fatalf("status %d, sink got %d", resp.StatusCode, s.count())
	}
	if code, _ := get(base + "/"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /: %d", code)
	}
	_, body := get(metrics + "/metrics")
	for _, want := range []string{`herald_source_events_sent_total{type="webhook"} 1`, `herald_source_webhook_requests_total{code="202"} 1`, "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRunRefusesBusyPort(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	cfg := sources.Config{Sink: "http://127.0.0.1:1", Type: "ping", Namespace: "a", Name: "b", Listen: ln.Addr().String(), MetricsListen: "127.0.0.1:0"}
	if err := Run(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Run on a busy port: %v", err)
	}
}
