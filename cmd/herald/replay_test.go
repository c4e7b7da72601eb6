package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// TestDevReplayFromTime: a Subscription that processed 100 events is
// replayed from the time of event 50 by a Replay added to the manifests:
// events 50 to 100 reach it again, and nothing reaches the Topic's other
// Subscription; herald dev records 51 replayed and the Replay complete.
func TestDevReplayFromTime(t *testing.T) {
	audit, other := newRecorder(t), newRecorder(t)
	audit.fixed.Store(true)
	other.fixed.Store(true)
	dir, data := t.TempDir(), t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: audit
spec:
  topic: orders
  subscriber:
    uri: ` + audit.srv.URL + `/
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: other
spec:
  topic: orders
  subscriber:
    uri: ` + other.srv.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, dir, "--data-dir", data)
	send := func(i int) { t.Helper(); dev.send(t, "default/orders", fmt.Sprintf("e%d", i)) }
	for i := 1; i < 50; i++ {
		send(i)
	}
	// A Replay's from.time has a resolution of a second.
	from := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(from) + 10*time.Millisecond)
	for i := 50; i <= 100; i++ {
		send(i)
	}
	waitUntil(t, func() bool { return len(audit.accepted()) == 100 && len(other.accepted()) == 100 }, "100 events delivered to each Subscription")

	rp := `apiVersion: eventing.herald.dev/v1alpha1
kind: Replay
metadata:
  name: since-50
spec:
  subscription: audit
  from:
    time: "` + from.UTC().Format(time.RFC3339) + `"
`
	if err := os.WriteFile(filepath.Join(dir, "replay.yaml"), []byte(rp), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return len(audit.accepted()) >= 151 }, "events 50 to 100 replayed to audit")
	waitUntil(t, func() bool { return strings.Contains(dev.stderr.String(), "replay: complete") }, "the Replay completes")
	time.Sleep(300 * time.Millisecond)
	got := audit.accepted()
	if len(got) != 151 {
		t.Errorf("audit received %d events, want 151", len(got))
	}
	again := map[string]bool{}
	for _, id := range got[100:] {
		again[id] = true
	}
	for i := 50; i <= 100; i++ {
		if !again[fmt.Sprintf("e%d", i)] {
			t.Errorf("e%d was not replayed", i)
		}
	}
	if n := len(other.accepted()); n != 100 {
		t.Errorf("other received %d events, want its 100 only", n)
	}
	var records map[string]struct {
		Status v1alpha1.ReplayStatus `json:"status"`
	}
	b, err := os.ReadFile(filepath.Join(data, "herald-dev-replays.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &records); err != nil {
		t.Fatal(err)
	}
	if st := records["default/since-50"].Status; st.Replayed != 51 || st.CompletionTime == nil {
		t.Errorf("recorded status %+v, want 51 replayed and complete", st)
	}
}
