package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freeLocalAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDevRunsTheSample runs herald dev on the dev sample (its display
// subscriptions pointed at a free port instead of 8081) and checks the
// README's curl ends up on stdout.
func TestDevRunsTheSample(t *testing.T) {
	listen, display := freeLocalAddr(t), freeLocalAddr(t)
	dir := t.TempDir()
	for _, f := range []string{"topics.yaml", "subscriptions.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "dev", f))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), "127.0.0.1:8081", display))
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devMain(ctx, []string{"-f", dir, "--data-dir", t.TempDir(), "--listen", listen,
			"--display-listen", display, "--webhook-listen", "", "--nats-listen", "random"}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald dev: %v", err)
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	}()
	waitUntil(t, func() bool { return strings.Contains(stderr.String(), "Send an event:") }, "no banner")
	for _, want := range []string{"default/orders      http://" + listen + "/default/orders", "curl -i -X POST http://" + listen + "/default/orders"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/default/orders", strings.NewReader(`{"id":1}`))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.shipped", "ce-source": "/curl", "ce-id": "1", "content-type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %s, want 202", resp.Status)
	}
	waitUntil(t, func() bool { return strings.Contains(stdout.String(), "  type: com.example.order.shipped\n") }, "the display sink printed nothing")
	if !strings.Contains(stdout.String(), "Data,\n  {\n    \"id\": 1\n  }\n") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
