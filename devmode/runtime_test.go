package devmode

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// eventually fails the test unless cond holds within timeout, checking every 10 ms.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a subscriber that keeps the requests it receives and answers
// with status (202 when zero).
type recorder struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	events []*event.Event
	raw    []http.Header
	tries  atomic.Int32
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.tries.Add(1)
		if s := rec.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		h := r.Header.Clone()
		ce.DecodeHeaders(r.Header)
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			t.Errorf("subscriber got no CloudEvent: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rec.mu.Lock()
		rec.events = append(rec.events, e)
		rec.raw = append(rec.raw, h)
		rec.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) byID(id string) *event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.ID() == id {
			return e
		}
	}
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, e := range r.events {
		ids = append(ids, e.ID())
	}
	return ids
}

type runningDev struct {
	rt   *Runtime
	stop func()
}

// startDev runs a Runtime on free ports until the test ends or stop is called.
func startDev(t *testing.T, paths []string, dataDir string) *runningDev {
	t.Helper()
	return startDevConfig(t, Config{Paths: paths, DataDir: dataDir})
}

// startDevConfig is startDev with cfg: free ports for the NATS server and
// the ingress, a short debounce and the test logger unless cfg sets them.
func startDevConfig(t *testing.T, cfg Config) *runningDev {
	t.Helper()
	if cfg.NATSPort == 0 {
		cfg.NATSPort = -1
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return 30s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	eventually(t, 10*time.Second, func() bool { return rt.Ready() == nil }, "runtime not ready: %v", rt.Ready())
	return &runningDev{rt: rt, stop: stop}
}

func postEvent(t *testing.T, url string, hdr map[string]string, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// send posts a minimal binary-mode event and fails unless it is accepted.
func send(t *testing.T, url, id, typ string) {
	t.Helper()
	// The dispatcher may not have seen a fresh plan yet: retry 404.
	eventually(t, 5*time.Second, func() bool {
		code := postEvent(t, url, map[string]string{"ce-specversion": "1.0", "ce-id": id, "ce-type": typ, "ce-source": "/test"}, "")
		if code != http.StatusAccepted && code != http.StatusNotFound {
			t.Fatalf("POST %s: status %d", id, code)
		}
		return code == http.StatusAccepted
	}, "POST %s to %s not accepted", id, url)
}

const topicYAML = `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: %s
`

func subscriptionYAML(name, topic, uri, filterType string) string {
	s := fmt.Sprintf(`apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: %s
spec:
  topic: %s
  maxInFlight: 1
  subscriber:
    uri: %s
  delivery:
    retry: 100
    backoffDelay: PT0.02S
    backoffMax: PT0.1S
`, name, topic, uri)
	if filterType != "" {
		s += "  filters:\n  - exact:\n      type: " + filterType + "\n"
	}
	return s
}

func TestDevRuntimeDeliversAndReloads(t *testing.T) {
	sub := newRecorder(t)
	dir := t.TempDir()
	manifest := writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL+"/in", "com.example.a"))
	writeFile(t, dir, "broken.yaml", "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: other}\nspec: {storag: file}\n")
	writeFile(t, dir, "service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n")
	d := startDev(t, []string{dir}, t.TempDir())

	// One bad manifest is reported and does not stop the others.
	st := d.rt.Status()
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), "broken.yaml:1 (document 1): topic default/other: unknown field \"spec.storag\"") {
		t.Errorf("errors = %v, want the one of broken.yaml", st.Errors)
	}
	if len(st.Topics) != 1 || len(st.Subscriptions) != 1 || len(st.Skipped) != 1 {
		t.Fatalf("status: %d topics, %d subscriptions, %d skipped; want 1, 1, 1", len(st.Topics), len(st.Subscriptions), len(st.Skipped))
	}
	url := d.rt.Endpoints().Ingress + "/default/orders"
	if st.Topics[0].URL != url {
		t.Errorf("topic URL = %q, want %q", st.Topics[0].URL, url)
	}

	// Every attribute arrives as sent.
	hdr := map[string]string{
		"ce-specversion":  "1.0",
		"ce-id":           "e-1",
		"ce-type":         "com.example.a",
		"ce-source":       "/shop/orders",
		"ce-subject":      "order 7",
		"ce-time":         "2026-01-02T15:04:05.123456789Z",
		"ce-dataschema":   "https://example.com/schema",
		"ce-partitionkey": "k%201",
		"ce-tenant":       "acme",
		"content-type":    "application/json",
	}
	if code := postEvent(t, url, hdr, `{"id":1}`); code != http.StatusAccepted {
		t.Fatalf("POST: status %d, want 202", code)
	}
	eventually(t, 5*time.Second, func() bool { return sub.byID("e-1") != nil }, "subscriber did not get e-1")
	got := sub.byID("e-1")
	for name, want := range map[string]string{
		"specversion": got.SpecVersion(), "type": got.Type(), "source": got.Source(), "subject": got.Subject(),
		"dataschema": got.DataSchema(), "datacontenttype": got.DataContentType(), "data": string(got.Data()),
		"time": got.Time().Format(time.RFC3339Nano), "partitionkey": fmt.Sprint(got.Extensions()["partitionkey"]),
		"tenant": fmt.Sprint(got.Extensions()["tenant"]),
	} {
		sent := map[string]string{
			"specversion": "1.0", "type": "com.example.a", "source": "/shop/orders", "subject": "order 7",
			"dataschema": "https://example.com/schema", "datacontenttype": "application/json", "data": `{"id":1}`,
			"time": "2026-01-02T15:04:05.123456789Z", "partitionkey": "k 1", "tenant": "acme",
		}[name]
		if want != sent {
			t.Errorf("%s = %q, want %q", name, want, sent)
		}
	}
	if p := sub.srv.URL; !strings.HasPrefix(p, "http://") {
		t.Fatal(p)
	}

	// Changing the filter in the file applies live.
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL+"/in", "com.example.b")), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		s := d.rt.Status().Subscriptions
		return len(s) == 1 && FilterSummary(s[0].Plan.Filters) == `type = "com.example.b"`
	}, "the new filter was not loaded")
	// maxInFlight 1 delivers in stream order: once b-k arrived, a-k was
	// either delivered before it or filtered out. The dispatcher sees the new
	// plan within milliseconds; repeat until it has.
	for k := 0; ; k++ {
		if k == 50 {
			t.Fatal("the dispatcher still delivers com.example.a events after the filter changed")
		}
		a, b := fmt.Sprintf("a-%d", k), fmt.Sprintf("b-%d", k)
		send(t, url, a, "com.example.a")
		send(t, url, b, "com.example.b")
		eventually(t, 5*time.Second, func() bool { return sub.byID(b) != nil }, "subscriber did not get %s", b)
		if sub.byID(a) == nil {
			break
		}
	}
}

func TestDevRuntimeDeadLettersToATopicAndDeletesRemovedTopics(t *testing.T) {
	failing := newRecorder(t)
	failing.status.Store(http.StatusBadRequest) // not retried: straight to the dead-letter sink
	dlq := newRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "topics.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+fmt.Sprintf(topicYAML, "orders-dlq")+"---\n"+fmt.Sprintf(topicYAML, "scratch"))
	writeFile(t, dir, "subs.yaml", subscriptionYAML("dlq-reader", "orders-dlq", dlq.srv.URL, "")+`---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: picky
spec:
  topic: orders
  subscriber:
    uri: `+failing.srv.URL+`
  delivery:
    deadLetterSink:
      ref:
        apiVersion: eventing.herald.dev/v1alpha1
        kind: Topic
        name: orders-dlq
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: unresolvable
spec:
  topic: orders
  subscriber:
    ref: {apiVersion: v1, kind: Service, name: inventory, namespace: shop}
`)
	dataDir := t.TempDir()
	d := startDev(t, []string{dir}, dataDir)
	ingress := d.rt.Endpoints().Ingress

	st := d.rt.Status()
	want := "subscription default/unresolvable: subscriber: ref to Service shop/inventory cannot be resolved in dev mode; use uri: http://..."
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), want) {
		t.Errorf("errors = %v, want one containing %q", st.Errors, want)
	}
	for _, s := range st.Subscriptions {
		if s.Name == "picky" && s.Plan.DeadLetterURI != ingress+"/default/orders-dlq" {
			t.Errorf("dead-letter URI = %q, want the orders-dlq ingress", s.Plan.DeadLetterURI)
		}
	}

	send(t, ingress+"/default/orders", "dl-1", "com.example.a")
	eventually(t, 5*time.Second, func() bool { return dlq.byID("dl-1") != nil }, "dead letter did not reach the orders-dlq Topic's subscriber")
	if got := dlq.byID("dl-1").Extensions()["knativeerrorcode"]; fmt.Sprint(got) != "400" {
		t.Errorf("knativeerrorcode = %v, want 400", got)
	}

	// A Topic created by someone else in the same NATS is left alone.
	nc, err := nats.Connect(d.rt.Endpoints().NATS)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	prov, err := provision.New(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	foreign := &v1alpha1.Topic{}
	foreign.Namespace, foreign.Name = "elsewhere", "kept"
	res, err := compiler.Compile(foreign, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Apply(ctx, res); err != nil {
		t.Fatal(err)
	}

	// Removing scratch from the file deletes its stream; nothing else.
	writeFile(t, dir, "topics.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+fmt.Sprintf(topicYAML, "orders-dlq"))
	eventually(t, 5*time.Second, func() bool { return slices.Contains(d.rt.Status().Deleted, "default/scratch") }, "scratch not deleted")
	if _, err := js.Stream(ctx, plan.StreamName("default", "scratch")); err == nil {
		t.Error("the stream of scratch still exists")
	}
	for _, keep := range [][2]string{{"default", "orders"}, {"elsewhere", "kept"}} {
		if _, err := js.Stream(ctx, plan.StreamName(keep[0], keep[1])); err != nil {
			t.Errorf("stream of %s/%s: %v", keep[0], keep[1], err)
		}
	}
	if got := d.rt.Status().Foreign; !slices.Equal(got, []string{"elsewhere/kept"}) {
		t.Errorf("foreign topics = %v, want [elsewhere/kept]", got)
	}
}

func TestDevRuntimeRestartKeepsUndeliveredEvents(t *testing.T) {
	sub := newRecorder(t)
	sub.status.Store(http.StatusServiceUnavailable)
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL, ""))
	dataDir := t.TempDir()

	first := startDev(t, []string{dir}, dataDir)
	send(t, first.rt.Endpoints().Ingress+"/default/orders", "kept-1", "com.example.a")
	eventually(t, 5*time.Second, func() bool { return sub.tries.Load() >= 2 }, "no delivery attempts while the subscriber is down")
	first.stop()

	sub.status.Store(0)
	tries := sub.tries.Load()
	second := startDev(t, []string{dir}, dataDir)
	eventually(t, 20*time.Second, func() bool { return sub.byID("kept-1") != nil },
		"the event accepted before the restart was not delivered after it (%d attempts since)", sub.tries.Load()-tries)
	if st := second.rt.Status(); len(st.Deleted) != 0 || len(st.Errors) != 0 {
		t.Errorf("after restart: deleted %v, errors %v", st.Deleted, st.Errors)
	}
}

// testLogger collects logs and prints them when the test failed.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDevSampleLoadsWithoutErrors(t *testing.T) {
	d := startDev(t, []string{filepath.Join("..", "config", "samples", "dev")}, t.TempDir())
	st := d.rt.Status()
	if len(st.Errors) != 0 || len(st.Notes) != 0 {
		t.Errorf("errors %v, notes %v", st.Errors, st.Notes)
	}
	var topics, subs []string
	for _, tp := range st.Topics {
		topics = append(topics, tp.Namespace+"/"+tp.Name)
	}
	for _, s := range st.Subscriptions {
		subs = append(subs, s.Namespace+"/"+s.Name+" -> "+s.Plan.SubscriberURI+" ["+FilterSummary(s.Plan.Filters)+"] dlq "+s.Plan.DeadLetterURI)
	}
	ingress := d.rt.Endpoints().Ingress
	wantTopics := []string{"default/orders", "default/orders-dlq"}
	wantSubs := []string{
		`default/created-only -> http://127.0.0.1:9999/orders [type = "com.example.order.created"] dlq ` + ingress + "/default/orders-dlq",
		"default/display -> http://127.0.0.1:8081/ [none (every event)] dlq ",
		"default/dlq-display -> http://127.0.0.1:8081/ [none (every event)] dlq ",
	}
	if !slices.Equal(topics, wantTopics) {
		t.Errorf("topics = %v, want %v", topics, wantTopics)
	}
	if !slices.Equal(subs, wantSubs) {
		t.Errorf("subscriptions =\n  %s\nwant\n  %s", strings.Join(subs, "\n  "), strings.Join(wantSubs, "\n  "))
	}
	var banner strings.Builder
	WriteBanner(&banner, d.rt.Endpoints(), st)
	for _, want := range []string{"curl -i -X POST " + ingress + "/default/orders", "default/created-only: topic orders -> http://127.0.0.1:9999/orders",
		`filters: type = "com.example.order.created"`, "dead letters -> " + ingress + "/default/orders-dlq after 2 retries"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}
}

func TestNewFailsCleanlyOnBusyPorts(t *testing.T) {
	d := startDev(t, []string{filepath.Join("..", "config", "samples", "dev")}, t.TempDir())
	_, err := New(Config{Paths: []string{"."}, DataDir: t.TempDir(), Listen: strings.TrimPrefix(d.rt.Endpoints().Ingress, "http://")})
	if err == nil || !strings.Contains(err.Error(), "ingress listener") {
		t.Errorf("New on a busy port: %v, want an ingress listener error", err)
	}
	if _, err := New(Config{Paths: []string{"missing"}, DataDir: t.TempDir(), Listen: "127.0.0.1:0"}); err == nil {
		t.Error("New with a missing manifest path: no error")
	}
}

// TestDevRuntimeNATSOverTCP: with NATSOverTCP the dispatcher reaches the
// embedded server over loopback TCP, as a deployed one does, and events
// flow as in-process.
func TestDevRuntimeNATSOverTCP(t *testing.T) {
	sub := newRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL, ""))
	d := startDevConfig(t, Config{Paths: []string{dir}, DataDir: t.TempDir(), NATSOverTCP: true})
	if got := d.rt.nc.ConnectedUrl(); !strings.HasPrefix(got, "nats://127.0.0.1:") {
		t.Errorf("dispatcher connected to %q, want loopback TCP", got)
	}
	send(t, d.rt.Endpoints().Ingress+"/default/orders", "tcp-1", "com.example.a")
	eventually(t, 5*time.Second, func() bool { return sub.byID("tcp-1") != nil }, "event not delivered over TCP")
}
