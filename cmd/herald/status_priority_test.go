package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusPriorityLanes: a paused priority Subscription's lag in herald
// status counts the events of every lane, not only the normal one.
func TestStatusPriorityLanes(t *testing.T) {
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: urgent-first
spec:
  topic: orders
  paused: true
  priority:
    enabled: true
  subscriber:
    uri: http://127.0.0.1:1/
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeLocalAddr(t)
	dev := startDev(t, dir, "--nats-listen", natsAddr)
	for i, prio := range []string{"high", "high", "normal", "low"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+dev.listen+"/default/orders", strings.NewReader(`{}`))
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.created", "ce-source": "/shop",
			"ce-id": "e" + string(rune('0'+i)), "ce-priority": prio, "content-type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST with priority %s: %s", prio, resp.Status)
		}
	}
	env := func(k string) string {
		if k == "NATS_URL" {
			return "nats://" + natsAddr
		}
		return ""
	}
	var ss subscriptionStatus
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var out bytes.Buffer
		if err := runStatus(context.Background(), []string{"--interval", "0", "-o", "json"}, env, &out); err != nil {
			t.Fatal(err)
		}
		var rep statusReport
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		ss = rep.sub(t, "urgent-first")
		if ss.Pending == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("urgent-first shows lag %d, want 4 (2 high, 1 normal, 1 low): %+v", ss.Pending, ss)
		}
	}
	if !ss.Paused || ss.Problem != "" {
		t.Errorf("urgent-first: %+v, want paused without a problem", ss)
	}
}
