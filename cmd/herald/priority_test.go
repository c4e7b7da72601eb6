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
	dev := startDev(t, dir)
	ingress := "http://" + dev.listen + "/default/orders"

	c, err := parseSendFlags([]string{"--to", ingress, "--type", "com.example.order.cancelled", "--source", "/cli", "--id", "by-send", "--priority", "high"}, io.Discard)
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
		return dev.post(t, "default/orders", map[string]string{"ce-source": "/curl", "ce-id": id, "ce-priority": priority})
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
