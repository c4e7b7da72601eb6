package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// env is an embedded NATS server with JetStream and the plan bucket, as the
// control plane would leave it.
type env struct {
	t   testing.TB
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

func newEnv(t testing.TB) *env {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: plan.KVBucket, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(context.Background(), provision.CounterStreamConfig(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(context.Background(), provision.SharesBucketConfig(1)); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, nc: nc, js: js, kv: kv}
}

// connect opens another connection to the server, closed at cleanup.
func (e *env) connect() *nats.Conn {
	e.t.Helper()
	return natstest.Connect(e.t, e.srv)
}

func newTopic(name string, mutate ...func(*v1alpha1.Topic)) *v1alpha1.Topic {
	t := &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	for _, m := range mutate {
		m(t)
	}
	return t
}

func dur(s string) *v1alpha1.Duration {
	d := v1alpha1.Duration(s)
	return &d
}

func i32(v int32) *int32 { return &v }

// fastRetry makes retries quick for tests.
func fastRetry(retry int32) *v1alpha1.DeliverySpec {
	return &v1alpha1.DeliverySpec{
		Retry:         &retry,
		BackoffDelay:  dur("10ms"),
		BackoffMax:    dur("50ms"),
		Timeout:       dur("5s"),
		RetryAfterMax: dur("50ms"),
	}
}

// subscription describes one Subscription of a test Topic.
type subscription struct {
	name, uri, reply, deadLetter string
	spec                         func(*v1alpha1.SubscriptionSpec)
	// subscriberCA and deadLetterCA are the caCerts of uri and deadLetter.
	subscriberCA, deadLetterCA string
	// signingDir is the SigningKeyDir of a Subscription with spec.signing.
	signingDir string
	// subscriberAudience, replyAudience and deadLetterAudience are the
	// token audiences of uri, reply and deadLetter.
	subscriberAudience, replyAudience, deadLetterAudience string
	// consumeMode is the policy of a pull Subscription without consumers.
	consumeMode plan.PublishMode
}

// provision compiles topic and subs as the control plane does and applies
// the result: stream, consumers (adjusted by tweak, if any) and plan.
func (e *env) provision(topic *v1alpha1.Topic, subs []subscription, tweak func(*jetstream.ConsumerConfig)) *compiler.Result {
	e.t.Helper()
	rs := make([]compiler.ResolvedSubscription, 0, len(subs))
	for _, s := range subs {
		sub := &v1alpha1.Subscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: topic.Namespace, Name: s.name, Generation: 1},
			Spec:       v1alpha1.SubscriptionSpec{Topic: topic.Name, Delivery: fastRetry(3)},
		}
		if s.spec != nil {
			s.spec(&sub.Spec)
		}
		rs = append(rs, compiler.ResolvedSubscription{Subscription: sub, SubscriberURI: s.uri, ReplyURI: s.reply, DeadLetterURI: s.deadLetter,
			SubscriberCACerts: s.subscriberCA, DeadLetterCACerts: s.deadLetterCA, SigningKeyDir: s.signingDir,
			SubscriberAudience: s.subscriberAudience, ReplyAudience: s.replyAudience, DeadLetterAudience: s.deadLetterAudience,
			ConsumeMode: s.consumeMode})
	}
	res, err := compiler.Compile(topic, rs)
	if err != nil {
		e.t.Fatal(err)
	}
	for name, err := range res.Errors {
		e.t.Fatalf("subscription %s: %v", name, err)
	}
	ctx := context.Background()
	if _, err := e.js.CreateOrUpdateStream(ctx, res.Stream); err != nil {
		e.t.Fatal(err)
	}
	for name, cc := range res.Consumers {
		for _, cc := range append(slices.Clone(res.LaneConsumers[name]), cc) {
			if tweak != nil {
				tweak(&cc)
			}
			if _, err := e.js.CreateOrUpdateConsumer(ctx, res.Stream.Name, cc); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	e.putPlan(&res.Plan)
	return res
}

func (e *env) putPlan(p *plan.TopicPlan) {
	e.t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.kv.Put(context.Background(), plan.Key(p.Namespace, p.Name), b); err != nil {
		e.t.Fatal(err)
	}
}

// streamMsgs is the number of messages stored in a stream.
func (e *env) streamMsgs(stream string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// running is a dispatcher under test with its ingress.
type running struct {
	d      *Dispatcher
	url    string
	cancel context.CancelFunc
	done   chan error
	srv    *httptest.Server
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// start runs a dispatcher on nc (the env's connection when nil) until the
// test ends, and waits until it is ready.
func (e *env) start(nc *nats.Conn, opts Options) *running {
	e.t.Helper()
	if nc == nil {
		nc = e.nc
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(e.t)
	}
	d, err := New(nc, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	r.srv = httptest.NewServer(d)
	r.url = r.srv.URL
	e.t.Cleanup(func() {
		r.stop()
		r.srv.Close()
	})
	eventually(e.t, 10*time.Second, func() bool { return d.Ready() == nil }, "dispatcher ready")
	return r
}

// stop cancels Run and waits for it to return.
func (r *running) stop() {
	r.cancel()
	select {
	case <-r.done:
		r.done <- nil
	case <-time.After(30 * time.Second):
		panic("dispatcher did not stop")
	}
}

// waitDelivering waits until the dispatcher runs a loop for every
// subscription of the plan and serves its Topic.
func (r *running) waitDelivering(t testing.TB, p *plan.TopicPlan) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool {
		if r.d.topic(p.Namespace, p.Name) == nil {
			return false
		}
		r.d.mu.Lock()
		defer r.d.mu.Unlock()
		for _, sp := range p.Subscriptions {
			rn := r.d.runners[plan.Key(p.Namespace, p.Name)+"/"+sp.Name]
			if rn == nil {
				return false
			}
		}
		return true
	}, "subscriptions running")
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(what, args...))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received is one request a sink got.
type received struct {
	header http.Header
	body   []byte
}

func (r received) ce(name string) string { return r.header.Get("Ce-" + name) }

// sink is a subscriber test server recording what it receives. respond
// decides the answer to the n-th request (0-based); nil answers 200.
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	respond func(n int, r received, w http.ResponseWriter)
}

func newSink(t testing.TB, respond func(n int, r received, w http.ResponseWriter)) *sink {
	s := &sink{respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rec := received{header: req.Header.Clone(), body: body}
		s.mu.Lock()
		n := len(s.got)
		s.got = append(s.got, rec)
		s.mu.Unlock()
		if s.respond != nil {
			s.respond(n, rec, w)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) url() string { return s.srv.URL }

func (s *sink) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// ids is the ce-id of every request, in arrival order.
func (s *sink) ids() []string {
	var out []string
	for _, r := range s.requests() {
		out = append(out, r.ce("id"))
	}
	return out
}

// uniqueIDs is the set of ce-ids received.
func (s *sink) uniqueIDs() map[string]bool {
	out := map[string]bool{}
	for _, r := range s.requests() {
		out[r.ce("id")] = true
	}
	return out
}

// post sends a request to the ingress.
func post(t testing.TB, url string, header map[string]string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// binary returns the headers of a binary-mode 1.0 event with id and extra
// headers.
func binary(id string, extra ...string) map[string]string {
	h := map[string]string{
		"Ce-Specversion": "1.0",
		"Ce-Id":          id,
		"Ce-Source":      "/test",
		"Ce-Type":        "dev.herald.test",
		"Content-Type":   "application/json",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// sendOK posts a binary event and fails the test unless it gets 202.
func sendOK(t testing.TB, url, id string, extra ...string) {
	t.Helper()
	resp, body := post(t, url, binary(id, extra...), []byte(`{"n":1}`))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("send %s: %d %s", id, resp.StatusCode, body)
	}
}
