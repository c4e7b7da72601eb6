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
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
)

func TestParseStatusConfig(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args      []string
		ns, topic string
		interval  time.Duration
		wantErr   string
	}{
		{nil, "default", "", time.Second, ""},
		{[]string{"-n", "shop"}, "shop", "", time.Second, ""},
		{[]string{"-A", "--watch", "--interval", "2s"}, "", "", 2 * time.Second, ""},
		{[]string{"orders", "-o", "json"}, "default", "orders", time.Second, ""},
		{[]string{"-n", "shop", "orders", "--interval", "0"}, "shop", "orders", 0, ""},
		{[]string{"shop/orders"}, "shop", "orders", time.Second, ""},
		{[]string{"-n", "shop", "shop/orders"}, "shop", "orders", time.Second, ""},
		{[]string{"-n", "other", "shop/orders"}, "", "", 0, "not --namespace other"},
		{[]string{"-A", "shop/orders"}, "", "", 0, "cannot be named with --all-namespaces"},
		{[]string{"-A", "-n", "shop"}, "", "", 0, "exclude each other"},
		{[]string{"a", "b"}, "", "", 0, "at most one Topic"},
		{[]string{"a/b/c"}, "", "", 0, "is not [namespace/]topic"},
		{[]string{"--watch", "--interval", "0"}, "", "", 0, "at least 100ms"},
		{[]string{"--interval", "-1s"}, "", "", 0, "must not be negative"},
		{[]string{"-o", "yaml"}, "", "", 0, "want table or json"},
	} {
		c, err := parseStatusConfig(tc.args, env)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err = %v, want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.Namespace != tc.ns || c.Topic != tc.topic || c.Interval != tc.interval {
			t.Errorf("%v: %+v, %v", tc.args, c, err)
		}
	}
}

// statusDev is herald dev serving Topic orders with three Subscriptions:
// fast, whose subscriber accepts everything; slow, ordered, whose
// subscriber refuses events with ids starting "bad-" (dead letters: no
// sink, so dropped and counted) and holds every other event until the test
// ends; and audit, paused.
type statusDev struct {
	*devRun
	env  func(string) string
	fast *recorder
	// slowHeld counts the deliveries slow's subscriber is holding.
	slowHeld atomic.Int32
	sent     atomic.Int64
}

func startStatusDev(t *testing.T) *statusDev {
	t.Helper()
	d := &statusDev{fast: newRecorder(t)}
	d.fast.fixed.Store(true)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.Header.Get("Ce-Id"), "bad-") {
			http.Error(w, "bad order", http.StatusBadRequest)
			return
		}
		d.slowHeld.Add(1)
		defer d.slowHeld.Add(-1)
		select {
		case <-release:
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	dir := t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: fast
spec:
  topic: orders
  subscriber:
    uri: ` + d.fast.srv.URL + `/
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: slow
spec:
  topic: orders
  ordering: ordered
  subscriber:
    uri: ` + slow.URL + `/
  delivery:
    retry: 0
    timeout: PT60S
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: audit
spec:
  topic: orders
  paused: true
  subscriber:
    uri: ` + d.fast.srv.URL + `/audit
`
	if err := os.WriteFile(filepath.Join(dir, "orders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	natsAddr := freeLocalAddr(t)
	d.devRun = startDev(t, dir, "--nats-listen", natsAddr)
	// Registered after herald dev, so it runs first: herald dev waits for
	// the held delivery when it stops.
	t.Cleanup(func() { close(release) })
	d.env = func(k string) string {
		if k == "NATS_URL" {
			return "nats://" + natsAddr
		}
		return ""
	}
	return d
}

// sendN sends n events with ids prefix-0 … prefix-(n-1).
func (d *statusDev) sendN(t *testing.T, prefix string, n int) {
	t.Helper()
	for i := range n {
		d.send(t, "default/orders", fmt.Sprintf("%s-%d", prefix, i))
		d.sent.Add(1)
	}
}

// sendUntil sends events from another goroutine until the returned
// function is called, which waits for the last one and reports a failure.
func (d *statusDev) sendUntil(t *testing.T, prefix string) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var failure atomic.Value
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodPost, "http://"+d.listen+"/default/orders", strings.NewReader(`{}`))
			for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.created",
				"ce-source": "/shop", "ce-id": fmt.Sprintf("%s-%d", prefix, i), "content-type": "application/json"} {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				failure.Store(err.Error())
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				failure.Store(resp.Status)
				return
			}
			d.sent.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() {
		t.Helper()
		close(done)
		wg.Wait()
		if f := failure.Load(); f != nil {
			t.Fatalf("sending: %v", f)
		}
	}
}

// status runs herald status with args and returns what it printed.
func (d *statusDev) status(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := runStatus(context.Background(), args, d.env, &out); err != nil {
		t.Fatalf("herald status %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func (d *statusDev) report(t *testing.T, args ...string) *statusReport {
	t.Helper()
	out := d.status(t, append([]string{"-o", "json"}, args...)...)
	rep := &statusReport{}
	if err := json.Unmarshal([]byte(out), rep); err != nil {
		t.Fatalf("herald status -o json: %v\n%s", err, out)
	}
	return rep
}

func (r *statusReport) topic(t *testing.T, name string) topicStatus {
	t.Helper()
	for _, ts := range r.Topics {
		if ts.Name == name {
			return ts
		}
	}
	t.Fatalf("no Topic %s in %+v", name, r.Topics)
	return topicStatus{}
}

func (r *statusReport) sub(t *testing.T, name string) subscriptionStatus {
	t.Helper()
	for _, ss := range r.Subscriptions {
		if ss.Name == name {
			return ss
		}
	}
	t.Fatalf("no Subscription %s in %+v", name, r.Subscriptions)
	return subscriptionStatus{}
}

// settle sends 3 events slow dead-letters and then okN events: fast
// takes them all, slow holds ok-0 and lags by the rest. It waits until
// herald status shows that and returns the last report.
func (d *statusDev) settle(t *testing.T, okN int) *statusReport {
	t.Helper()
	d.sendN(t, "bad", 3)
	d.sendN(t, "ok", okN)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rep := d.report(t, "--interval", "0")
		fast, slow := rep.sub(t, "fast"), rep.sub(t, "slow")
		if fast.Pending == 0 && fast.AckPending == 0 && slow.DeadLetters == 3 && slow.AckPending == 1 && slow.Pending == uint64(okN-1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want fast caught up (lag 0, in flight 0) and slow with lag %d, in flight 1, 3 dead letters; have\nfast %+v\nslow %+v", okN-1, fast, slow)
		}
	}
	if d.slowHeld.Load() != 1 {
		t.Fatalf("slow's subscriber holds %d deliveries, want 1", d.slowHeld.Load())
	}
	return d.report(t, "--interval", "0")
}

// herald status -o json reports what the data plane does: stored events,
// lag, in flight and dead letters as they are, rates while events flow.
func TestStatusJSON(t *testing.T) {
	d := startStatusDev(t)
	const okN = 5
	rep := d.settle(t, okN)

	orders := rep.topic(t, "orders")
	if orders.Namespace != "default" || orders.Stream != plan.StreamName("default", "orders") || orders.SubscriptionCount != 3 {
		t.Errorf("orders: %+v", orders)
	}
	if orders.Events != uint64(d.sent.Load()) || orders.LastSequence != uint64(d.sent.Load()) || orders.FirstSequence != 1 || orders.Bytes == 0 {
		t.Errorf("orders holds %d events (%d bytes, sequences %d–%d), want %d", orders.Events, orders.Bytes, orders.FirstSequence, orders.LastSequence, d.sent.Load())
	}
	if orders.FirstEventTime == nil || orders.LastEventTime == nil || orders.LastEventTime.Before(*orders.FirstEventTime) {
		t.Errorf("orders event times: %v, %v", orders.FirstEventTime, orders.LastEventTime)
	}
	if rep.RateWindowSeconds != nil || orders.EventsPerSecond != nil {
		t.Errorf("one sample (--interval 0) reported rates: window %s, orders %s", formatRate(rep.RateWindowSeconds), formatRate(orders.EventsPerSecond))
	}
	slow := rep.sub(t, "slow")
	if slow.Topic != "orders" || slow.Consumer != plan.ConsumerName("slow") || slow.Paused || slow.Problem != "" ||
		slow.LastDeadLetterTime == nil || slow.LastDeliveryTime == nil || slow.DeliveriesPerSecond != nil {
		t.Errorf("slow: %+v", slow)
	}
	if audit := rep.sub(t, "audit"); !audit.Paused || audit.Pending != uint64(d.sent.Load()) || audit.AckPending != 0 || audit.LastDeliveryTime != nil {
		t.Errorf("audit (paused): %+v", audit)
	}
	if fast := rep.sub(t, "fast"); fast.DeadLetters != 0 || fast.LastDeadLetterTime != nil || fast.Redelivered != 0 || fast.WaitingPulls == 0 {
		t.Errorf("fast: %+v", fast)
	}

	// While events flow, the Topic and fast show rates; slow, holding its
	// one event, delivers nothing.
	stop := d.sendUntil(t, "flow")
	rep = d.report(t, "--interval", "500ms")
	stop()
	if w := rep.RateWindowSeconds; w == nil || *w < 0.5 || *w > 5 {
		t.Errorf("rate window %s, want about 0.5 s", formatRate(w))
	}
	if r := rep.topic(t, "orders").EventsPerSecond; r == nil || *r <= 0 {
		t.Errorf("orders' ingress rate while sending: %s, want > 0", formatRate(r))
	}
	if r := rep.sub(t, "fast").DeliveriesPerSecond; r == nil || *r <= 0 {
		t.Errorf("fast's delivery rate while sending: %s, want > 0", formatRate(r))
	}
	if r := rep.sub(t, "slow").DeliveriesPerSecond; r == nil || *r != 0 {
		t.Errorf("slow's delivery rate while held: %s, want 0", formatRate(r))
	}
	if r := rep.sub(t, "audit").DeliveriesPerSecond; r == nil || *r != 0 {
		t.Errorf("audit's delivery rate while paused: %s, want 0", formatRate(r))
	}

	// Afterwards the figures add up: every event stored, slow lagging by
	// all it has not been handed.
	waitUntil(t, func() bool {
		rep = d.report(t, "orders", "--interval", "0")
		return rep.sub(t, "fast").Pending == 0 && rep.sub(t, "fast").AckPending == 0
	}, "fast caught up after the flow")
	sent := uint64(d.sent.Load())
	if got := rep.topic(t, "orders").Events; got != sent {
		t.Errorf("orders holds %d events, want %d", got, sent)
	}
	slow = rep.sub(t, "slow")
	if slow.Pending != sent-3-1 || slow.AckPending != 1 || slow.DeadLetters != 3 {
		t.Errorf("slow after the flow: pending %d, in flight %d, dead letters %d; want %d, 1, 3", slow.Pending, slow.AckPending, slow.DeadLetters, sent-4)
	}
	if audit := rep.sub(t, "audit"); audit.Pending != sent {
		t.Errorf("audit (paused) lags by %d, want %d", audit.Pending, sent)
	}
	if got := len(d.fast.accepted()); uint64(got) != sent {
		t.Errorf("fast's subscriber accepted %d events, want %d", got, sent)
	}
}

// tableRow splits a table line into its cells.
func tableRow(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// herald status prints a Topics table and a Subscriptions table whose
// columns hold what -o json reports.
func TestStatusTable(t *testing.T) {
	d := startStatusDev(t)
	const okN = 4
	d.settle(t, okN)
	out := d.status(t, "--interval", "200ms")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 7 || lines[2] != "" {
		t.Fatalf("want a Topics table (header, one row), a blank line, a Subscriptions table (header, three rows):\n%s", out)
	}
	cells := map[string]map[string]string{}
	for _, tbl := range [][]string{lines[0:2], lines[3:7]} {
		header := tableRow(tbl[0])
		for _, line := range tbl[1:] {
			row := tableRow(line)
			if len(row) != len(header) {
				t.Fatalf("row %q has %d cells for %d columns %q", line, len(row), len(header), header)
			}
			cells[row[0]] = map[string]string{}
			for i, h := range header {
				cells[row[0]][h] = row[i]
			}
		}
	}
	if got := strings.Join(tableRow(lines[0]), "|"); got != "TOPIC|IN/S|EVENTS|SIZE|LAST EVENT|SUBSCRIPTIONS" {
		t.Errorf("Topics columns: %s", got)
	}
	if got := strings.Join(tableRow(lines[3]), "|"); got != "SUBSCRIPTION|TOPIC|OUT/S|LAG|IN FLIGHT|REDELIVERED|DEAD LETTERS|STATE" {
		t.Errorf("Subscriptions columns: %s", got)
	}
	want := map[string]map[string]string{
		"default/orders": {"IN/S": "0.0", "EVENTS": fmt.Sprint(3 + okN), "SUBSCRIPTIONS": "3"},
		"default/audit":  {"TOPIC": "orders", "OUT/S": "0.0", "LAG": fmt.Sprint(3 + okN), "IN FLIGHT": "0", "DEAD LETTERS": "0", "STATE": "paused"},
		"default/fast":   {"TOPIC": "orders", "OUT/S": "0.0", "LAG": "0", "IN FLIGHT": "0", "REDELIVERED": "0", "DEAD LETTERS": "0", "STATE": "active"},
		"default/slow":   {"TOPIC": "orders", "OUT/S": "0.0", "LAG": fmt.Sprint(okN - 1), "IN FLIGHT": "1", "REDELIVERED": "0", "DEAD LETTERS": "3", "STATE": "active"},
	}
	for row, cols := range want {
		for col, v := range cols {
			if got := cells[row][col]; got != v {
				t.Errorf("%s %s = %q, want %q\n%s", row, col, got, v, out)
			}
		}
	}
	if size := cells["default/orders"]["SIZE"]; !regexp.MustCompile(`^\d+(\.\d)? (B|KiB)$`).MatchString(size) {
		t.Errorf("SIZE %q", size)
	}
	if last := cells["default/orders"]["LAST EVENT"]; !strings.HasSuffix(last, "s ago") {
		t.Errorf("LAST EVENT %q", last)
	}

	// One sample: rates blank.
	if row := tableRow(strings.Split(d.status(t, "--interval", "0", "orders"), "\n")[1]); row[1] != "-" {
		t.Errorf("one sample: IN/S %q, want -", row[1])
	}
	// Another namespace holds nothing.
	if out := d.status(t, "-n", "shop", "--interval", "0"); out != "No Topics found (--namespace shop).\n" {
		t.Errorf("-n shop: %q", out)
	}
}

// herald status --watch prints a report every --interval: tables one
// after another when not on a terminal, one JSON document per line.
func TestStatusWatch(t *testing.T) {
	d := startStatusDev(t)
	d.sendN(t, "ok", 2)
	for _, output := range []string{"table", "json"} {
		ctx, cancel := context.WithTimeout(context.Background(), 1100*time.Millisecond)
		var out bytes.Buffer
		err := runStatus(ctx, []string{"--watch", "--interval", "200ms", "-o", output}, d.env, &out)
		cancel()
		if err != nil {
			t.Fatalf("--watch -o %s: %v", output, err)
		}
		if output == "table" {
			frames := strings.Split(out.String(), "Every 200ms: herald status --namespace default")
			if len(frames) < 4 || strings.Contains(out.String(), "\x1b[") {
				t.Errorf("want 3 or more frames without terminal escapes:\n%q", out.String())
			}
			if !strings.Contains(frames[1], "default/orders") || !strings.Contains(frames[1], "\nSUBSCRIPTION ") {
				t.Errorf("first frame:\n%s", frames[1])
			}
			continue
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) < 3 {
			t.Fatalf("want 3 or more JSON lines:\n%s", out.String())
		}
		for i, line := range lines {
			var rep statusReport
			if err := json.Unmarshal([]byte(line), &rep); err != nil || len(rep.Topics) != 1 || len(rep.Subscriptions) != 3 {
				t.Fatalf("line %d: %v\n%s", i, err, line)
			}
			if (rep.RateWindowSeconds == nil) != (i == 0) || (rep.Topics[0].EventsPerSecond == nil) != (i == 0) {
				t.Errorf("line %d: rates %s, %s; want them from the second line on", i, formatRate(rep.RateWindowSeconds), formatRate(rep.Topics[0].EventsPerSecond))
			}
		}
	}
}

// A plan whose stream and consumer are missing shows as such; a Topic
// without a plan, or a server without plans, is an error saying so.
func TestStatusMissing(t *testing.T) {
	s := natstest.Start(t)
	env := func(k string) string {
		if k == "NATS_URL" {
			return s.ClientURL()
		}
		return ""
	}
	var out bytes.Buffer
	err := runStatus(context.Background(), []string{"--interval", "0"}, env, &out)
	if err == nil || !strings.Contains(err.Error(), "no Topic plans in this NATS server") {
		t.Errorf("without a plan bucket: %v", err)
	}

	js, err := jetstream.New(natstest.Connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: plan.KVBucket})
	if err != nil {
		t.Fatal(err)
	}
	tp := plan.TopicPlan{Version: plan.Version, Namespace: "shop", Name: "ghost", Stream: plan.StreamName("shop", "ghost"),
		Subject: plan.Subject("shop", "ghost"), Subscriptions: []plan.SubscriptionPlan{{Name: "audit", Consumer: plan.ConsumerName("audit"), SubscriberURI: "http://audit/", Paused: true}}}
	b, _ := json.Marshal(&tp)
	if _, err := kv.Put(ctx, plan.Key("shop", "ghost"), b); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runStatus(ctx, []string{"-A", "--interval", "0", "-o", "json"}, env, &out); err != nil {
		t.Fatal(err)
	}
	var rep statusReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Topics) != 1 || len(rep.Subscriptions) != 1 {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if tp := rep.Topics[0]; tp.Problem != problemNoStream || tp.Events != 0 || tp.SubscriptionCount != 1 {
		t.Errorf("topic: %+v", tp)
	}
	if sp := rep.Subscriptions[0]; sp.Problem != problemNoConsumer || !sp.Paused || sp.Topic != "ghost" {
		t.Errorf("subscription: %+v", sp)
	}
	out.Reset()
	if err := runStatus(ctx, []string{"-n", "shop", "--interval", "0"}, env, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 5 || strings.Join(tableRow(lines[1]), "|") != "shop/ghost|-|<no stream>|-|-|1" ||
		strings.Join(tableRow(lines[4]), "|") != "shop/audit|ghost|-|-|-|-|0|no consumer" {
		t.Errorf("table:\n%s", out.String())
	}
	err = runStatus(ctx, []string{"shop/orders", "--interval", "0"}, env, &out)
	if err == nil || !strings.Contains(err.Error(), "topic shop/orders has no plan") {
		t.Errorf("unknown topic: %v", err)
	}
}

func TestStatusRedraw(t *testing.T) {
	got := string(redraw([]byte("a\nbb\n"), true))
	if want := "\x1b[2J\x1b[Ha\x1b[K\nbb\x1b[K\n\x1b[J"; got != want {
		t.Errorf("first frame %q, want %q", got, want)
	}
	if got := string(redraw([]byte("a\n"), false)); got != "\x1b[Ha\x1b[K\n\x1b[J" {
		t.Errorf("next frame %q", got)
	}
}

func TestRedactURLs(t *testing.T) {
	if got := redactURLs("nats://herald:s3cret@a:4222, nats://b:4222"); got != "nats://herald:xxxxx@a:4222,nats://b:4222" {
		t.Errorf("redactURLs: %q", got)
	}
}
