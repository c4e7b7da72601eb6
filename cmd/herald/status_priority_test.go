package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
		dev.sendWith(t, "default/orders", map[string]string{"ce-id": fmt.Sprint("e", i), "ce-priority": prio})
	}
	env := natsEnv(natsAddr)
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
