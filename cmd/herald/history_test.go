package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/plan"
)

// TestHistoryJourneys: an event delivered to Subscription a on its third
// attempt, dead-lettered by b after three failed attempts and left out by
// c's filter shows all three journeys, every attempt with its status, in
// herald history's table and JSON; the list form finds b's dead letter.
func TestHistoryJourneys(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("Ce-Id")]++
		n := calls[r.Header.Get("Ce-Id")]
		mu.Unlock()
		if n < 3 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(a.Close)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	t.Cleanup(b.Close)
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  history:
    enabled: true
    maxAge: 1h
  delivery:
    retry: 2
    backoffPolicy: linear
    backoffDelay: 50ms
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: plain
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: a
spec:
  topic: orders
  subscriber:
    uri: ` + a.URL + `/
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: b
spec:
  topic: orders
  subscriber:
    uri: ` + b.URL + `/
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: c
spec:
  topic: orders
  filters:
  - exact:
      type: com.example.refund
  subscriber:
    uri: ` + a.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeLocalAddr(t)
	dev := startDev(t, dir, "--nats-listen", natsAddr)
	dev.send(t, "default/orders", "order-1")
	dev.send(t, "default/orders", "order-2")

	env := natsEnv(natsAddr)
	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runHistory(context.Background(), args, env, &out)
		return out.String(), err
	}
	var journeys []journey
	waitUntil(t, func() bool {
		out, err := cli("default/orders", "order-1", "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &journeys) != nil || len(journeys) != 1 || len(journeys[0].Subscriptions) != 3 {
			return false
		}
		s := journeys[0].Subscriptions
		return s[0].Outcome == plan.HistoryDelivered && s[1].Outcome == plan.HistoryDeadLettered
	}, "order-1's history never showed a delivered and b dead-lettered")

	j := journeys[0]
	if j.ID != "order-1" || j.Source != "/shop" || j.Type != "com.example.order.created" {
		t.Errorf("journey of %s from %s (%s), want order-1 from /shop", j.ID, j.Source, j.Type)
	}
	type step struct {
		attempt int
		outcome string
		status  int
	}
	want := map[string][]step{
		"a": {{1, "retried", 503}, {2, "retried", 503}, {3, "delivered", 200}},
		"b": {{1, "retried", 502}, {2, "retried", 502}, {3, "dead_lettered", 502}},
		"c": {{0, "filtered", 0}},
	}
	for _, s := range j.Subscriptions {
		var got []step
		for _, r := range s.Records {
			got = append(got, step{r.Attempt, r.Outcome, r.Status})
			if r.ID != "order-1" || r.Sequence != 1 {
				t.Errorf("%s: record of event %s at sequence %d, want order-1 at 1", s.Name, r.ID, r.Sequence)
			}
			if r.Attempt > 0 && (r.LatencyMillis <= 0 || r.Destination == "") {
				t.Errorf("%s attempt %d: latency %v ms, destination %q", s.Name, r.Attempt, r.LatencyMillis, r.Destination)
			}
		}
		if !equalSteps(got, want[s.Name]) {
			t.Errorf("journey through %s: %v, want %v", s.Name, got, want[s.Name])
		}
	}

	table, err := cli("default/orders", "order-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Event order-1  source /shop  type com.example.order.created", "SUBSCRIPTION  ATTEMPT  TIME"} {
		if !strings.Contains(table, line) {
			t.Errorf("table lacks %q:\n%s", line, table)
		}
	}
	if n := strings.Count(table, "dead_lettered"); n != 1 {
		t.Errorf("table shows %d dead_lettered rows, want 1:\n%s", n, table)
	}
	if n := strings.Count(table, " retried "); n != 4 {
		t.Errorf("table shows %d retried rows, want 4:\n%s", n, table)
	}
	t.Logf("herald history default/orders order-1:\n%s", table)

	// Both events' dead letters by b, and nothing of a's.
	var recs []plan.HistoryRecord
	waitUntil(t, func() bool {
		out, err := cli("default/orders", "--subscription", "b", "--outcome", "dead_lettered", "--since", "1h", "-o", "json")
		return err == nil && json.Unmarshal([]byte(out), &recs) == nil && len(recs) == 2
	}, "listing b's dead letters never found two")
	for _, r := range recs {
		if r.Subscription != "b" || r.Outcome != plan.HistoryDeadLettered || r.Attempt != 3 {
			t.Errorf("listed %+v, want b's third attempt dead-lettered", r)
		}
	}
	out, err := cli("default/orders", "--subscription", "a", "--outcome", "dead_lettered", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("a's dead letters: %q (%v), want []", out, err)
	}
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	if out, err := cli("default/orders", "--since", future, "-o", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("records since %s: %q (%v), want []", future, out, err)
	}

	if _, err := cli("default/orders", "order-404"); err == nil || !strings.Contains(err.Error(), `no history of an event with id "order-404"`) {
		t.Errorf("unknown id: %v", err)
	}
	if _, err := cli("default/plain", "order-1"); err == nil || !strings.Contains(err.Error(), "keeps no delivery history") {
		t.Errorf("Topic without history: %v", err)
	}
}

func equalSteps[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseHistoryConfig(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	env := func(string) string { return "" }
	c, err := parseHistoryConfig([]string{"shop/orders", "--since", "90m", "--outcome", "dead_lettered", "--subscription", "billing"}, env, now)
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "shop" || c.Topic != "orders" || c.ID != "" || !c.Since.Equal(now.Add(-90*time.Minute)) || c.Outcome != "dead_lettered" || c.Subscription != "billing" {
		t.Errorf("parsed %+v", c)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name a Topic"},
		{[]string{"orders", "--outcome", "lost"}, `--outcome "lost": want one of retried, delivered`},
		{[]string{"orders", "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"orders", "--subscription", "a*"}, `--subscription "a*"`},
		{[]string{"a/b/c"}, `"a/b/c" is not [namespace/]topic`},
		{[]string{"orders", "-o", "yaml"}, `--output "yaml"`},
	} {
		_, err := parseHistoryConfig(tc.args, env, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
