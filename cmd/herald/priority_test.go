package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDevPriority: herald dev serves a Subscription with priority enabled
// from the same manifest the operator takes; events sent with herald send
// --priority high and with a ce-priority header are delivered with their
// extension, and an unknown priority is refused with 400 naming it.
func TestDevPriority(t *testing.T) {
	if testing.Short() {
		t.Skip("starts herald dev")
	}
	var (
		mu  sync.Mutex
		got = map[string]string{}
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("Ce-Id")] = r.Header.Get("Ce-Priority")
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: fulfilment
spec:
  topic: orders
  maxInFlight: 4
  priority:
    enabled: true
    weights: {high: 10, normal: 2, low: 1}
  subscriber:
    uri: ` + sink.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeLocalAddr(t)
	ingress := "http://" + listen + "/default/orders"
	var stderr lockedBuffer
	defer func() {
		if t.Failed() {
			t.Logf("herald dev's stderr:\n%s", stderr.String())
		}
	}()
	args := []string{"-f", dir, "--data-dir", t.TempDir(), "--listen", listen,
		"--display-listen", "", "--webhook-listen", "", "--nats-listen", "random", "--log-level", "warn"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- devMain(ctx, args, &stderr, &stderr) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald dev: %v", err)
		}
	}()
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Post(ingress, "application/json", strings.NewReader(`{}`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusBadRequest
	}, "herald dev serving the Topic")

	c, err := parseSendFlags([]string{"--to", ingress, "--type", "com.example.order.cancelled", "--source", "/cli", "--id", "by-send", "--priority", "high"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.buildEvent(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if code, status, _, err := send(context.Background(), http.DefaultClient, c.to, "", e); err != nil || code != http.StatusAccepted {
		t.Fatalf("herald send --priority high: %d %q, %v", code, status, err)
	}
	post := func(id, priority string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ingress, strings.NewReader(`{}`))
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.created", "ce-source": "/curl",
			"ce-id": id, "ce-priority": priority, "content-type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for id, p := range map[string]string{"by-curl-low": "low", "by-curl-normal": "normal"} {
		if code, body := post(id, p); code != http.StatusAccepted {
			t.Fatalf("POST with ce-priority %s: %d %s", p, code, body)
		}
	}
	if code, body := post("typo", "urgent"); code != http.StatusBadRequest || !strings.Contains(body, "priority") {
		t.Errorf("POST with ce-priority urgent: %d %s, want 400 naming priority", code, body)
	}
	want := map[string]string{"by-send": "high", "by-curl-low": "low", "by-curl-normal": "normal"}
	waitFor(t, 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	}, "the events delivered")
	mu.Lock()
	defer mu.Unlock()
	for id, p := range want {
		if got[id] != p {
			t.Errorf("%s delivered with priority %q, want %q", id, got[id], p)
		}
	}
	if _, ok := got["typo"]; ok {
		t.Error("the event with an unknown priority was delivered")
	}
}

// TestSendPriorityFlag: --priority sets the priority extension; a value
// other than high, normal or low is refused before anything is sent.
func TestSendPriorityFlag(t *testing.T) {
	base := []string{"--to", "http://127.0.0.1:1/default/t", "--type", "t", "--source", "/s"}
	c, err := parseSendFlags(append(base, "--priority", "high"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.buildEvent(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if v := e.Extensions()["priority"]; v != "high" {
		t.Errorf("extension priority = %v, want high", v)
	}
	if _, err := parseSendFlags(append(base, "--priority", "urgent"), io.Discard); err == nil || !strings.Contains(err.Error(), "--priority") {
		t.Errorf("--priority urgent: error %v, want one naming --priority", err)
	}
}
