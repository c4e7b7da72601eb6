package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/replay"
)

// recorder is a subscriber that refuses every event with 400 until fixed,
// and records the ids it accepted.
type recorder struct {
	srv   *httptest.Server
	fixed atomic.Bool
	mu    sync.Mutex
	ids   []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.fixed.Load() {
			http.Error(w, "not today", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.ids = append(r.ids, req.Header.Get("Ce-Id"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) accepted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// TestDeadLettersRedrive: 20 events dead-lettered by Subscriptions a and b
// into one dead-letter Topic; a's subscriber is fixed; redriving a delivers
// exactly those 20 to a and nothing to b; a second redrive delivers
// nothing; --dry-run changes nothing; list and show read them.
func TestDeadLettersRedrive(t *testing.T) {
	a, b := newRecorder(t), newRecorder(t)
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  history:
    enabled: true
  delivery:
    deadLetterSink:
      ref:
        apiVersion: eventing.herald.dev/v1alpha1
        kind: Topic
        name: orders-dlq
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders-dlq
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: a
spec:
  topic: orders
  subscriber:
    uri: ` + a.srv.URL + `/
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: b
spec:
  topic: orders
  subscriber:
    uri: ` + b.srv.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeLocalAddr(t)
	dev := startDev(t, dir, "--nats-listen", natsAddr)
	const n = 20
	for i := range n {
		dev.send(t, "default/orders", fmt.Sprintf("order-%d", i))
	}
	env := natsEnv(natsAddr)
	cli := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runDeadLetters(context.Background(), args, env, &out); err != nil {
			t.Fatalf("herald deadletters %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	list := func(sub string) []replay.DeadLetter {
		t.Helper()
		var dls []replay.DeadLetter
		if err := json.Unmarshal([]byte(cli("list", "-o", "json", "--all", sub)), &dls); err != nil {
			t.Fatal(err)
		}
		return dls
	}
	waitUntil(t, func() bool { return len(list("a")) == n && len(list("default/b")) == n }, "20 dead letters each for a and b")

	table := cli("list", "a")
	if !strings.Contains(table, "DEAD-LETTERED AT") || !strings.Contains(table, "order-7") || !strings.Contains(table, "400") {
		t.Errorf("list table:\n%s", table)
	}
	show := cli("show", "a", "order-7")
	for _, want := range []string{"Last status:      400", "not today", "id: order-7", "heraldsubscription: default/a"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}

	a.fixed.Store(true)
	b.fixed.Store(true)
	if out := cli("redrive", "--dry-run", "a"); !strings.Contains(out, "20 of 20 dead letters of default/a would redrive") {
		t.Errorf("dry run said:\n%s", out)
	}
	time.Sleep(500 * time.Millisecond)
	if got := a.accepted(); len(got) != 0 {
		t.Fatalf("a dry run delivered %v", got)
	}
	for _, dl := range list("a") {
		if dl.Redriven != nil {
			t.Fatalf("a dry run marked %s redriven", dl.ID)
		}
	}

	if out := cli("redrive", "--rate", "200/s", "a"); !strings.Contains(out, "20 of 20 dead letters of default/a redriven") {
		t.Errorf("redrive said:\n%s", out)
	}
	waitUntil(t, func() bool { return len(a.accepted()) >= n }, "a's 20 dead letters delivered to a")
	time.Sleep(500 * time.Millisecond)
	got := map[string]bool{}
	for _, id := range a.accepted() {
		got[id] = true
	}
	if len(got) != n || len(a.accepted()) != n {
		t.Errorf("a received %v; want order-0 … order-19 once each", a.accepted())
	}
	if got := b.accepted(); len(got) != 0 {
		t.Errorf("b received %v; want nothing", got)
	}
	// The delivery history tells the story: dead-lettered, redriven, delivered.
	var out bytes.Buffer
	if err := runHistory(context.Background(), []string{"default/orders", "order-7", "--subscription", "a", "-o", "json"}, env, &out); err != nil {
		t.Fatal(err)
	}
	var journeys []journey
	if err := json.Unmarshal(out.Bytes(), &journeys); err != nil || len(journeys) != 1 || len(journeys[0].Subscriptions) != 1 {
		t.Fatalf("history of order-7 for a: %v\n%s", err, out.String())
	}
	var outcomes []string
	for _, r := range journeys[0].Subscriptions[0].Records {
		outcomes = append(outcomes, r.Outcome)
	}
	if got := strings.Join(outcomes, ","); got != "dead_lettered,redriven,delivered" {
		t.Errorf("history of order-7 for a: %s, want dead_lettered,redriven,delivered", got)
	}

	if out := cli("redrive", "a"); !strings.Contains(out, "0 of 20 dead letters") {
		t.Errorf("second redrive said:\n%s", out)
	}
	time.Sleep(500 * time.Millisecond)
	if len(a.accepted()) != n {
		t.Errorf("a second redrive delivered again: %d deliveries", len(a.accepted()))
	}
	if out := cli("list", "a"); strings.Contains(out, "order-") {
		t.Errorf("list still shows redriven dead letters:\n%s", out)
	}
	if out := cli("redrive", "a", "--id", "order-3", "--again"); !strings.Contains(out, "1 of 20") {
		t.Errorf("--again --id redrive said:\n%s", out)
	}
	waitUntil(t, func() bool { return len(a.accepted()) == n+1 }, "order-3 delivered again with --again")
}
