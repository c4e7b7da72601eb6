package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// sharedNS1 is the shared dispatcher of namespace ns1 in these tests.
const sharedNS1 = "ns1/herald-dispatcher"

// nsTopic is a test Topic in namespace ns.
func nsTopic(ns, name string, mutate ...func(*v1alpha1.Topic)) *v1alpha1.Topic {
	return newTopic(name, append([]func(*v1alpha1.Topic){func(t *v1alpha1.Topic) { t.Namespace = ns }}, mutate...)...)
}

// share stores res's plan again, naming the shared dispatcher by (none
// when empty), as the control plane does when it moves the Topic.
func (e *env) share(res *compiler.Result, by string) {
	e.t.Helper()
	res.Plan.SharedDispatcher = by
	e.putPlan(&res.Plan)
}

// runner is the delivery loop of Subscription sub of Topic ns/topic; nil
// when none runs.
func (r *running) runner(ns, topic, sub string) *subRunner {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	return r.d.runners[plan.Key(ns, topic)+"/"+sub]
}

// storeDirectly stores a binary-mode event with id in p's stream as an
// ingress would, without any dispatcher of this test.
func storeDirectly(t testing.TB, e *env, p *plan.TopicPlan, id string) {
	t.Helper()
	h := http.Header{}
	for k, v := range binary(id) {
		h.Set(k, v)
	}
	ev, err := ce.DecodeBinary(h, []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), storedMsg(&topicState{plan: p}, ev, "")); err != nil {
		t.Fatal(err)
	}
}

// TestSharedDispatcher: a shared dispatcher serves exactly the Topics of its
// namespace whose plans name it; a Topic whose plan stops naming it is
// dropped like a deleted one, and taken up again, with the events stored
// meanwhile, once its plan names it again.
func TestSharedDispatcher(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sinks := map[string]*sink{}
	provision := func(ns, name, by string) *compiler.Result {
		s := newSink(t, nil)
		sinks[name] = s
		res := e.provision(nsTopic(ns, name), []subscription{{name: "s", uri: s.url()}}, nil)
		e.share(res, by)
		return res
	}
	a := provision("ns1", "a", sharedNS1)
	b := provision("ns1", "b", sharedNS1)
	provision("ns1", "c", "")                      // a dedicated dispatcher's
	provision("ns2", "d", "ns2/herald-dispatcher") // another namespace's shared dispatcher's

	r := e.start(nil, Options{Shared: sharedNS1})
	// Ready means the plans naming it are in effect.
	if r.d.topic("ns1", "a") == nil || r.d.topic("ns1", "b") == nil {
		t.Fatal("ready before serving the Topics whose plans name it")
	}
	r.waitDelivering(t, &a.Plan)
	r.waitDelivering(t, &b.Plan)
	sendOK(t, r.url+"/ns1/a", "a1")
	sendOK(t, r.url+"/ns1/b", "b1")
	for _, topic := range []string{"ns1/c", "ns2/d"} {
		if resp, body := post(t, r.url+"/"+topic, binary("x"), []byte("{}")); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s, not naming this dispatcher: %d %s, want 404", topic, resp.StatusCode, body)
		}
	}
	if rn := r.runner("ns1", "c", "s"); rn != nil {
		t.Error("delivering for ns1/c, whose plan names no shared dispatcher")
	}
	if rn := r.runner("ns2", "d", "s"); rn != nil {
		t.Error("delivering for ns2/d, of another namespace")
	}
	waitSettled(t, e, a.Plan.Stream, "sub_s")
	waitSettled(t, e, b.Plan.Stream, "sub_s")
	if got := sinks["a"].ids(); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("a's subscriber got %v, want [a1]", got)
	}
	if got := sinks["b"].ids(); !slices.Equal(got, []string{"b1"}) {
		t.Errorf("b's subscriber got %v, want [b1]", got)
	}

	// a moves to a dedicated dispatcher: this one stops serving it.
	loop := r.runner("ns1", "a", "s")
	e.share(a, "")
	eventually(t, 5*time.Second, func() bool { return r.d.topic("ns1", "a") == nil }, "a dropped")
	select {
	case <-loop.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a's delivery loop still running after a moved away")
	}
	if rn := r.runner("ns1", "a", "s"); rn != nil {
		t.Fatal("a delivery loop for a runs after a moved away")
	}
	if resp, body := post(t, r.url+"/ns1/a", binary("a-refused"), []byte("{}")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a after it moved away: %d %s, want 404", resp.StatusCode, body)
	}
	sendOK(t, r.url+"/ns1/b", "b2") // b is unaffected
	// Events a's dedicated dispatcher stores meanwhile wait in the stream.
	const meanwhile = 5
	for i := range meanwhile {
		storeDirectly(t, e, &a.Plan, fmt.Sprintf("a-meanwhile-%d", i))
	}
	eventually(t, 5*time.Second, func() bool {
		return consumerInfo(t, e, a.Plan.Stream, "sub_s").NumPending == meanwhile
	}, "%d events of a pending", meanwhile)
	if ci := consumerInfo(t, e, a.Plan.Stream, "sub_s"); ci.NumAckPending != 0 {
		t.Errorf("%d events of a pulled while no dispatcher serves it", ci.NumAckPending)
	}

	// a comes back: taken up, with what was stored meanwhile.
	e.share(a, sharedNS1)
	r.waitDelivering(t, &a.Plan)
	sendOK(t, r.url+"/ns1/a", "a2")
	waitSettled(t, e, a.Plan.Stream, "sub_s")
	waitSettled(t, e, b.Plan.Stream, "sub_s")
	want := []string{"a1", "a2"}
	for i := range meanwhile {
		want = append(want, fmt.Sprintf("a-meanwhile-%d", i))
	}
	got := sinks["a"].uniqueIDs()
	for _, id := range want {
		if !got[id] {
			t.Errorf("a's subscriber never got %s", id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("a's subscriber got %d events, want %d", len(got), len(want))
	}
	if got := sinks["b"].ids(); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Errorf("b's subscriber got %v, want [b1 b2]", got)
	}
	for _, name := range []string{"c", "d"} {
		if n := sinks[name].count(); n != 0 {
			t.Errorf("%s's subscriber got %d events from a dispatcher not serving it", name, n)
		}
	}

	// A deleted plan is dropped as before.
	if err := e.kv.Delete(context.Background(), plan.Key("ns1", "b")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return r.d.topic("ns1", "b") == nil }, "b dropped")
	if r.d.topic("ns1", "a") == nil {
		t.Error("a dropped with b")
	}
}

// TestDedicatedDispatcherIgnoresSharedDispatcher: a dispatcher naming a
// Topic in Topics, and one serving every plan (herald dev), serve it
// whatever shared dispatcher its plan names.
func TestDedicatedDispatcherIgnoresSharedDispatcher(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(nsTopic("ns1", "a"), nil, nil)
	e.share(res, sharedNS1)
	for id, opts := range map[string]Options{"dedicated": {Topics: []string{"ns1/a"}}, "all": {}} {
		r := e.start(nil, opts)
		r.waitDelivering(t, &res.Plan)
		sendOK(t, r.url+"/ns1/a", id)
	}
}

// TestSharedOptions: Shared is namespace/name and excludes Topics.
func TestSharedOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, opts := range []Options{
		{Shared: "herald-dispatcher"},
		{Shared: "ns1/"},
		{Shared: "/herald-dispatcher"},
		{Shared: "ns1/a/b"},
		{Shared: "ns.1/herald-dispatcher"},
		{Shared: "ns1/herald.dispatcher"},
		{Shared: "*/herald-dispatcher"},
		{Shared: ">/herald-dispatcher"},
		{Shared: "ns1/herald dispatcher"},
		{Shared: sharedNS1, Topics: []string{"ns1/a"}},
	} {
		if _, err := New(e.nc, opts); err == nil {
			t.Errorf("New accepted Shared %q with Topics %q", opts.Shared, opts.Topics)
		}
	}
	if _, err := New(e.nc, Options{Shared: sharedNS1}); err != nil {
		t.Error(err)
	}
}

// TestSharedWatchRestart: when the plan watch starts over, a shared
// dispatcher drops the Topics whose plans were deleted or came to name
// another dispatcher meanwhile, takes up those that came to name it, and
// keeps the others.
func TestSharedWatchRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d, err := New(e.nc, Options{Shared: sharedNS1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRunners := context.WithCancel(context.Background())
	t.Cleanup(func() {
		stopRunners()
		d.wg.Wait()
	})
	d.mu.Lock()
	d.runCtx = runCtx
	d.mu.Unlock()
	watch := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.watch(ctx, e.kv) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	res := map[string]*compiler.Result{}
	for _, name := range []string{"moved", "deleted", "kept", "joined"} {
		res[name] = e.provision(nsTopic("ns1", name), nil, nil)
	}
	for _, name := range []string{"moved", "deleted", "kept"} {
		e.share(res[name], sharedNS1)
	}
	stop := watch()
	eventually(t, 5*time.Second, func() bool {
		return d.Ready() == nil && d.topic("ns1", "moved") != nil && d.topic("ns1", "deleted") != nil && d.topic("ns1", "kept") != nil
	}, "plans naming the dispatcher served")
	if d.topic("ns1", "joined") != nil {
		t.Fatal("serving a Topic whose plan names no shared dispatcher")
	}
	stop()

	e.share(res["moved"], "ns1/other")
	if err := e.kv.Delete(context.Background(), plan.Key("ns1", "deleted")); err != nil {
		t.Fatal(err)
	}
	e.share(res["joined"], sharedNS1)
	stop = watch()
	defer stop()
	// Topics whose key is gone are dropped once the initial values are in.
	eventually(t, 5*time.Second, func() bool { return d.topic("ns1", "deleted") == nil }, "deleted Topic dropped")
	for name, want := range map[string]bool{"moved": false, "kept": true, "joined": true} {
		if got := d.topic("ns1", name) != nil; got != want {
			t.Errorf("%s served: %v, want %v", name, got, want)
		}
	}
}
