package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
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

// TestDevRunsTheSourcesSample runs herald dev on the dev-sources sample
// (ports free ones, the ping every second) and checks that ticks and a
// webhook call signed as its README says end up on stdout.
func TestDevRunsTheSourcesSample(t *testing.T) {
	listen, display, hooks := freeLocalAddr(t), freeLocalAddr(t), freeLocalAddr(t)
	sample := filepath.Join("..", "..", "config", "samples", "dev-sources")
	dir := t.TempDir()
	for _, f := range []string{"topic.yaml", "ping.yaml", "webhook.yaml"} {
		b, err := os.ReadFile(filepath.Join(sample, f))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "127.0.0.1:8081", display)
		s = strings.ReplaceAll(s, `"@every 5s"`, `"@every 1s"`)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const key = "dev-only-payments-key"
	for _, f := range []string{"webhook.yaml", "README.md"} {
		if b, _ := os.ReadFile(filepath.Join(sample, f)); !strings.Contains(string(b), key) {
			t.Fatalf("%s does not name the key %s", f, key)
		}
	}

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- devMain(ctx, []string{"-f", dir, "--data-dir", t.TempDir(), "--listen", listen,
			"--display-listen", display, "--webhook-listen", hooks, "--nats-listen", "random"}, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald dev: %v", err)
		}
		if t.Failed() {
			t.Logf("stderr:\n%s\nstdout:\n%s", stderr.String(), stdout.String())
		}
	}()
	waitUntil(t, func() bool { return strings.Contains(stderr.String(), "Send an event:") }, "no banner")
	for _, want := range []string{
		"herald dev: 1 topic, 1 subscription, 2 sources from 3 files\n",
		`  ping default/heartbeat  "@every 1s" -> http://` + listen + "/default/activity\n",
		"  webhook default/payments  POST http://" + hooks + "/default/payments -> http://" + listen + "/default/activity, signed (hmac in X-Signature)\n",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}
	if strings.Contains(stderr.String(), "manifest error") {
		t.Error("the sample has manifest errors")
	}
	waitUntil(t, func() bool { return strings.Contains(stdout.String(), "  type: dev.herald.sources.ping\n") }, "no ping event on stdout")

	body := `{"order":7,"status":"paid"}`
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+hooks+"/default/payments", strings.NewReader(body))
		req.Header.Set("X-Signature", sig)
		req.Header.Set("X-Event-Type", "com.example.payment.received")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=0000"); code != http.StatusUnauthorized {
		t.Errorf("POST with a bad signature: %d, want 401", code)
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(body))
	if code := post("sha256=" + hex.EncodeToString(mac.Sum(nil))); code != http.StatusAccepted {
		t.Fatalf("POST with the README's signature: %d, want 202", code)
	}
	waitUntil(t, func() bool { return strings.Contains(stdout.String(), "  type: com.example.payment.received\n") }, "the webhook's event is not on stdout")
	if !strings.Contains(stdout.String(), "    \"status\": \"paid\"\n") {
		t.Errorf("stdout lacks the webhook's body")
	}
	if strings.Contains(stderr.String(), key) {
		t.Error("the key was printed")
	}
}

func TestDevWebhookListenFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-f", "d"}, "127.0.0.1:8082"},
		{[]string{"-f", "d", "--webhook-listen", ":9000"}, ":9000"},
		{[]string{"-f", "d", "--webhook-listen", ""}, ""},
	} {
		cfg, _, err := parseDevFlags(tt.args, io.Discard)
		if err != nil || cfg.WebhookListen != tt.want {
			t.Errorf("%q: WebhookListen = %q, %v; want %q", tt.args, cfg.WebhookListen, err, tt.want)
		}
	}
}

func TestDevNATSInProcessAndPprofFlags(t *testing.T) {
	cfg, o, err := parseDevFlags([]string{"-f", "d"}, io.Discard)
	if err != nil || cfg.NATSOverTCP || o.pprofListen != "" {
		t.Errorf("defaults: NATSOverTCP %v, pprof %q, %v; want in-process, no profiler", cfg.NATSOverTCP, o.pprofListen, err)
	}
	cfg, o, err = parseDevFlags([]string{"-f", "d", "--nats-in-process=false", "--pprof-listen", "127.0.0.1:6060"}, io.Discard)
	if err != nil || !cfg.NATSOverTCP || o.pprofListen != "127.0.0.1:6060" {
		t.Errorf("NATSOverTCP %v, pprof %q, %v; want TCP and 127.0.0.1:6060", cfg.NATSOverTCP, o.pprofListen, err)
	}
}
