package dispatcher

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/provision"
)

// storedMsgs returns every message of a stream, in sequence order.
func storedMsgs(t testing.TB, e *env, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		out = append(out, m)
	}
	return out
}

// storedExt is the decoded value of a CloudEvents attribute of a stored message.
func storedExt(m *jetstream.RawStreamMsg, name string) string {
	v, _ := ce.StoredAttr(m.Header, name)
	return v
}

// TestDeadLettersAreNotMerged: two Subscriptions that fail the same event
// into one dead-letter Topic leave one dead letter each, saying who failed;
// a dead-letter sink retry of the same dead letter is stored once.
func TestDeadLettersAreNotMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	dlq := e.provision(newTopic("merge-dlq"), nil, nil)
	r.waitDelivering(t, &dlq.Plan)
	refuse := newSink(t, respondSeq(400))
	dlURL := r.url + "/default/merge-dlq"
	res := e.provision(newTopic("merge"), []subscription{
		{name: "a", uri: refuse.url(), deadLetter: dlURL},
		{name: "b", uri: refuse.url(), deadLetter: dlURL},
	}, nil)
	r.waitDelivering(t, &res.Plan)
	before := time.Now().Add(-time.Second)
	sendOK(t, r.url+"/default/merge", "ev-1")
	waitSettled(t, e, res.Plan.Stream, "sub_a")
	waitSettled(t, e, res.Plan.Stream, "sub_b")

	msgs := storedMsgs(t, e, dlq.Plan.Stream)
	if len(msgs) != 2 {
		t.Fatalf("dead-letter Topic holds %d messages, want 2 (one per Subscription)", len(msgs))
	}
	var subs []string
	for _, m := range msgs {
		if storedExt(m, "id") != "ev-1" || storedExt(m, "source") != "/test" || string(m.Data) != `{"n":1}` {
			t.Errorf("dead letter is not the original event: %v %q", m.Header, m.Data)
		}
		subs = append(subs, storedExt(m, "heraldsubscription"))
		if got := storedExt(m, "heraldtopic"); got != "default/merge" {
			t.Errorf("heraldtopic = %q, want default/merge", got)
		}
		at, err := time.Parse(time.RFC3339, storedExt(m, "heralddeadletteredat"))
		if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("heralddeadletteredat = %q (%v), want the RFC 3339 time of dead-lettering", storedExt(m, "heralddeadletteredat"), err)
		}
	}
	sort.Strings(subs)
	if subs[0] != "default/a" || subs[1] != "default/b" {
		t.Errorf("heraldsubscription = %v, want [default/a default/b]", subs)
	}
	for _, name := range []string{"a", "b"} {
		if n := deadLetterCount(t, e, "merge", name); n != 1 {
			t.Errorf("dead-letter counter of %s = %d, want 1", name, n)
		}
	}
}

// deadLetterCount reads a Subscription's dead-letter counter.
func deadLetterCount(t *testing.T, e *env, topic, sub string) int64 {
	t.Helper()
	p, err := provision.New(context.Background(), e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, at, err := p.DeadLetterCount(context.Background(), "default", topic, sub)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 && time.Since(at) > time.Minute {
		t.Errorf("last dead letter of %s at %v, want just now", sub, at)
	}
	return n
}

// TestDeadLetterSinkRetryStoredOnce: when the dead-letter Topic stored a
// dead letter but its answer was lost, the dispatcher sends it again; the
// Topic keeps one.
func TestDeadLetterSinkRetryStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	dlq := e.provision(newTopic("retry-dlq"), nil, nil)
	r.waitDelivering(t, &dlq.Plan)
	// lossy forwards every request to the dead-letter Topic, and answers
	// the first one 503 although the Topic accepted it.
	var calls atomic.Int32
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		fwd, _ := http.NewRequest(http.MethodPost, r.url+"/default/retry-dlq", bytes.NewReader(body))
		fwd.Header = req.Header.Clone()
		resp, err := http.DefaultClient.Do(fwd)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(lossy.Close)
	refuse := newSink(t, respondSeq(400))
	res := e.provision(newTopic("retry"), []subscription{{name: "s", uri: refuse.url(), deadLetter: lossy.URL}}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/retry", "ev-1")
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if calls.Load() < 2 {
		t.Fatalf("dead-letter sink got %d requests, want the retry after the lost answer", calls.Load())
	}
	if n := len(storedMsgs(t, e, dlq.Plan.Stream)); n != 1 {
		t.Errorf("dead-letter Topic holds %d messages after a sink retry, want 1", n)
	}
	if n := deadLetterCount(t, e, "retry", "s"); n != 1 {
		t.Errorf("dead-letter counter = %d after a sink retry, want 1", n)
	}
}

// TestRepliesOfSubscriptionsAreNotMerged: two Subscriptions whose
// subscribers answer the same reply event forward one reply each into the
// reply Topic.
func TestRepliesOfSubscriptionsAreNotMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	replies := e.provision(newTopic("merge-replies"), nil, nil)
	r.waitDelivering(t, &replies.Plan)
	replier := newSink(t, replyBinary(200))
	replyURL := r.url + "/default/merge-replies"
	res := e.provision(newTopic("asks"), []subscription{
		{name: "a", uri: replier.url(), reply: replyURL, spec: func(s *v1alpha1.SubscriptionSpec) { s.Delivery = fastRetry(1) }},
		{name: "b", uri: replier.url(), reply: replyURL, spec: func(s *v1alpha1.SubscriptionSpec) { s.Delivery = fastRetry(1) }},
	}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/asks", "q-1")
	waitSettled(t, e, res.Plan.Stream, "sub_a")
	waitSettled(t, e, res.Plan.Stream, "sub_b")
	if n := len(storedMsgs(t, e, replies.Plan.Stream)); n != 2 {
		t.Errorf("reply Topic holds %d replies, want 2 (one per Subscription)", n)
	}
}
