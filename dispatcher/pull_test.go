package dispatcher

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/plan"
)

// pullSub is a pull Subscription with ack deadline deadline and retry
// retries, open to every client.
func pullSub(name, deadline string, retry int32, deadLetter string) subscription {
	return subscription{name: name, deadLetter: deadLetter, consumeMode: plan.PublishAllowAll, spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Mode = v1alpha1.ModePull
		s.Pull = &v1alpha1.Pull{AckDeadline: dur(deadline)}
		s.Delivery = fastRetry(retry)
	}}
}

// waitPulling waits until the dispatcher serves pull requests for every
// pull Subscription of p.
func (r *running) waitPulling(t testing.TB, p *plan.TopicPlan) {
	t.Helper()
	r.waitDelivering(t, p)
	eventually(t, 10*time.Second, func() bool {
		r.d.mu.Lock()
		defer r.d.mu.Unlock()
		for _, sp := range p.Subscriptions {
			if rn := r.d.runners[plan.Key(p.Namespace, p.Name)+"/"+sp.Name]; sp.IsPull() && rn.pullCons.Load() == nil {
				return false
			}
		}
		return true
	}, "pull subscriptions serving")
}

type pulled struct {
	AckID           string `json:"ackId"`
	DeliveryAttempt int    `json:"deliveryAttempt"`
	Event           struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"event"`
}

// pullJSON calls a pull API verb at base (…/subscriptions/<name>) with
// body and returns the status and answer.
func pullJSON(t testing.TB, base, verb string, body any, header ...string) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	h := map[string]string{"Content-Type": "application/json"}
	for i := 0; i+1 < len(header); i += 2 {
		h[header[i]] = header[i+1]
	}
	resp, out := post(t, base+":"+verb, h, b)
	return resp.StatusCode, out
}

// pull pulls up to n events, waiting up to wait seconds, and fails the
// test on any answer but 200.
func pull(t testing.TB, base string, n int, wait float64) []pulled {
	t.Helper()
	status, out := pullJSON(t, base, "pull", map[string]any{"maxEvents": n, "waitSeconds": wait})
	if status != http.StatusOK {
		t.Fatalf("pull: %d %s", status, out)
	}
	var resp struct {
		ReceivedEvents []pulled `json:"receivedEvents"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("pull answer %s: %v", out, err)
	}
	return resp.ReceivedEvents
}

func ackIDs(evs []pulled) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.AckID
	}
	return out
}

func ackOK(t testing.TB, base, verb string, body map[string]any) {
	t.Helper()
	if status, out := pullJSON(t, base, verb, body); status != http.StatusOK {
		t.Fatalf("%s: %d %s", verb, status, out)
	}
}

// TestPullConcurrentClients: 1,000 events pulled by three concurrent
// clients, each acknowledging what it got once, reach the clients exactly
// once, and nothing is left to pull afterwards.
func TestPullConcurrentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	res := e.provision(newTopic("jobs"), []subscription{pullSub("workers", "PT30S", 3, "")}, nil)
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/jobs/subscriptions/workers"

	const events = 1000
	var send sync.WaitGroup
	for w := range 8 {
		send.Go(func() {
			for i := w; i < events; i += 8 {
				sendOK(t, r.url+"/default/jobs", fmt.Sprintf("job-%d", i))
			}
		})
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var clients sync.WaitGroup
	for range 3 {
		clients.Go(func() {
			empty := 0
			for empty < 3 {
				evs := pull(t, base, 50, 1)
				if len(evs) == 0 {
					mu.Lock()
					done := len(seen) == events
					mu.Unlock()
					if done {
						empty++
					}
					continue
				}
				mu.Lock()
				for _, ev := range evs {
					seen[ev.Event.ID]++
				}
				mu.Unlock()
				ackOK(t, base, "ack", map[string]any{"ackIds": ackIDs(evs)})
			}
		})
	}
	send.Wait()
	clients.Wait()
	if len(seen) != events {
		t.Fatalf("pulled %d distinct events, want %d", len(seen), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s pulled %d times", id, n)
		}
	}
	if evs := pull(t, base, 10, 0.5); len(evs) != 0 {
		t.Errorf("pulled %d events after every event was acknowledged", len(evs))
	}
	waitSettled(t, e, res.Plan.Stream, "sub_workers")
}

// TestPullNackAndAckDeadline: a nacked event comes back after its delay and
// not before; an event nobody acknowledges comes back after the ack
// deadline, each time with its delivery attempt counted.
func TestPullNackAndAckDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	res := e.provision(newTopic("retry"), []subscription{pullSub("w", "1s", 5, "")}, nil)
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/retry/subscriptions/w"
	sendOK(t, r.url+"/default/retry", "n-1")

	evs := pull(t, base, 10, 5)
	if len(evs) != 1 || evs[0].Event.ID != "n-1" || evs[0].DeliveryAttempt != 1 || string(evs[0].Event.Data) != `{"n":1}` {
		t.Fatalf("first pull = %+v", evs)
	}
	nacked := time.Now()
	ackOK(t, base, "nack", map[string]any{"ackIds": ackIDs(evs), "delay": "PT2S"})
	if evs := pull(t, base, 10, 1); len(evs) != 0 {
		t.Fatalf("nacked event back after %v, before its delay of 2s", time.Since(nacked))
	}
	evs = pull(t, base, 10, 5)
	if len(evs) != 1 || evs[0].DeliveryAttempt != 2 {
		t.Fatalf("after the delay: %+v", evs)
	}
	if took := time.Since(nacked); took < 2*time.Second {
		t.Errorf("nacked event back after %v, want at least the delay of 2s", took)
	}

	// Not acknowledged: back after the ack deadline of 1s.
	pulledAt := time.Now()
	evs = pull(t, base, 10, 5)
	if len(evs) != 1 || evs[0].DeliveryAttempt != 3 {
		t.Fatalf("after the ack deadline: %+v", evs)
	}
	if took := time.Since(pulledAt); took < 900*time.Millisecond {
		t.Errorf("unacknowledged event back after %v, want about the ack deadline of 1s", took)
	}

	// Extending keeps it away past its first deadline.
	for range 3 {
		time.Sleep(600 * time.Millisecond)
		ackOK(t, base, "extend", map[string]any{"ackIds": ackIDs(evs), "seconds": 1})
	}
	if got := pull(t, base, 10, 0); len(got) != 0 {
		t.Fatalf("extended event redelivered: %+v", got)
	}
	ackOK(t, base, "ack", map[string]any{"ackIds": ackIDs(evs)})
	if got := pull(t, base, 10, 1.5); len(got) != 0 {
		t.Fatalf("acknowledged event redelivered: %+v", got)
	}
	if status, out := pullJSON(t, base, "extend", map[string]any{"ackIds": ackIDs(evs), "seconds": 5}); status != http.StatusBadRequest {
		t.Errorf("extend beyond the ack deadline: %d %s, want 400", status, out)
	}
}

// TestPullDeadLetters: after the retry limit a pulled event goes to the
// dead-letter sink with the extensions push dead letters carry, is counted,
// and is not returned again.
func TestPullDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	dls := newSink(t, respondSeq(202))
	res := e.provision(newTopic("dl"), []subscription{pullSub("w", "1s", 1, dls.url())}, nil)
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/dl/subscriptions/w"
	sendOK(t, r.url+"/default/dl", "d-1")

	for attempt := 1; attempt <= 2; attempt++ {
		evs := pull(t, base, 1, 5)
		if len(evs) != 1 || evs[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: %+v", attempt, evs)
		}
		ackOK(t, base, "nack", map[string]any{"ackIds": ackIDs(evs), "delay": "0s"})
	}
	if evs := pull(t, base, 1, 2); len(evs) != 0 {
		t.Fatalf("pulled %+v after the retry limit, want it dead-lettered", evs)
	}
	eventually(t, 5*time.Second, func() bool { return dls.count() == 1 }, "dead letter at the sink")
	dl := dls.requests()[0]
	for name, want := range map[string]string{
		"Id": "d-1", "Heraldattempts": "2", "Heraldsubscription": "default/w", "Heraldtopic": "default/dl",
		"Knativeerrordest": "/default/dl/subscriptions/w:pull",
	} {
		if got := dl.ce(name); got != want {
			t.Errorf("dead letter ce-%s = %q, want %q", name, got, want)
		}
	}
	if b, _ := base64.StdEncoding.DecodeString(dl.ce("Knativeerrordata")); !strings.Contains(string(b), "not acknowledged after 2 deliveries") {
		t.Errorf("knativeerrordata = %q", b)
	}
	waitSettled(t, e, res.Plan.Stream, "sub_w")
	if n := deadLetterCount(t, e, "dl", "w"); n != 1 {
		t.Errorf("dead-letter count %d, want 1", n)
	}
}

// TestPullBinaryMode: with Accept: application/octet-stream one event
// comes in binary mode, its ackId in Herald-Ack-Id; 204 when there is none.
func TestPullBinaryMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	res := e.provision(newTopic("bin"), []subscription{pullSub("w", "PT30S", 3, "")}, nil)
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/bin/subscriptions/w"
	sendOK(t, r.url+"/default/bin", "b-1", "Ce-Partitionkey", "a b")

	resp, body := post(t, base+":pull", map[string]string{"Accept": "application/octet-stream"}, []byte(`{"waitSeconds": 5}`))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Ce-Id") != "b-1" || string(body) != `{"n":1}` ||
		resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get(HeaderDeliveryAttempt) != "1" {
		t.Fatalf("binary pull: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	ackOK(t, base, "ack", map[string]any{"ackIds": []string{resp.Header.Get(HeaderAckID)}})
	resp, _ = post(t, base+":pull", map[string]string{"Accept": "application/octet-stream"}, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("binary pull of nothing: %d, want 204", resp.StatusCode)
	}
	if status, out := pullJSON(t, base, "pull", map[string]any{"maxEvents": 2}, "Accept", "application/octet-stream"); status != http.StatusBadRequest {
		t.Errorf("binary pull of 2: %d %s, want 400", status, out)
	}
}

// TestPullRefusals: unknown and push Subscriptions are 404, an ackId of
// another Subscription or no ackId at all is 400, and nothing is acked.
func TestPullRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	push := newSink(t, respondSeq(200))
	res := e.provision(newTopic("mixed"), []subscription{
		pullSub("a", "PT30S", 3, ""), pullSub("b", "PT30S", 3, ""), {name: "pushed", uri: push.url()},
	}, nil)
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/mixed/subscriptions/"
	sendOK(t, r.url+"/default/mixed", "m-1")
	evs := pull(t, base+"a", 1, 5)
	if len(evs) != 1 {
		t.Fatalf("pulled %+v", evs)
	}
	for _, tc := range []struct {
		name, path, verb string
		body             any
		want             int
		msg              string
	}{
		{"ackId of another subscription", "b", "ack", map[string]any{"ackIds": ackIDs(evs)}, 400, "is no ackId of subscription default/b"},
		{"forged ackId", "a", "ack", map[string]any{"ackIds": []string{base64.RawURLEncoding.EncodeToString([]byte("$JS.API.STREAM.DELETE.x"))}}, 400, "ackIds[0] is no ackId"},
		{"no ackIds", "a", "ack", map[string]any{}, 400, "ackIds must hold"},
		{"bad delay", "a", "nack", map[string]any{"ackIds": ackIDs(evs), "delay": "soon"}, 400, "delay"},
		{"unknown field", "a", "pull", map[string]any{"max": 3}, 400, "unknown field"},
		{"too many", "a", "pull", map[string]any{"maxEvents": 1001}, 400, "maxEvents"},
		{"unknown verb", "a", "seek", map[string]any{}, 404, "unknown verb"},
		{"unknown subscription", "c", "pull", map[string]any{}, 404, "no subscription"},
		{"push subscription", "pushed", "pull", map[string]any{}, 404, "push mode"},
	} {
		status, out := pullJSON(t, base+tc.path, tc.verb, tc.body)
		if status != tc.want || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, out, tc.want, tc.msg)
		}
	}
	// a's event is still held: refused acks did nothing.
	ackOK(t, base+"a", "ack", map[string]any{"ackIds": ackIDs(evs)})
	waitSettled(t, e, res.Plan.Stream, "sub_a")
}

// TestPullAuthorization: a pull Subscription's consumers decide who may
// pull, with tokens for the Topic's audience: 401 without one, 403 for an
// identity its consumers do not name.
func TestPullAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	iss, err := auth.NewLocalIssuer(t.TempDir(), "herald-test", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(nil, Options{Verifier: iss.Verifier()})
	sub := pullSub("w", "PT30S", 3, "")
	spec := sub.spec
	sub.spec = func(s *v1alpha1.SubscriptionSpec) {
		spec(s)
		s.Consumers = []v1alpha1.Publisher{{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "worker", Namespace: "jobs"}}}
	}
	res := e.provision(newTopic("secure"), []subscription{sub}, nil)
	if res.Plan.Subscriptions[0].Consume.Rules[0].Name != compiler.ConsumerRuleName(0) {
		t.Fatalf("consume policy %+v", res.Plan.Subscriptions[0].Consume)
	}
	r.waitPulling(t, &res.Plan)
	base := r.url + "/default/secure/subscriptions/w"
	aud := plan.TopicAudience("default", "secure")

	var answer authAnswer
	status, out := pullJSON(t, base, "pull", map[string]any{})
	if _ = json.Unmarshal(out, &answer); status != http.StatusUnauthorized || answer.Reason != string(auth.ReasonMissing) {
		t.Errorf("without a token: %d %s, want 401 missing", status, out)
	}
	other := mint(t, iss, plan.ServiceAccountSubject("jobs", "other"), aud)
	status, out = pullJSON(t, base, "pull", map[string]any{}, "Authorization", "Bearer "+other)
	if _ = json.Unmarshal(out, &answer); status != http.StatusForbidden || !strings.Contains(answer.Error, "consumers[0]") {
		t.Errorf("a ServiceAccount not among the consumers: %d %s, want 403 naming consumers[0]", status, out)
	}
	status, out = pullJSON(t, base, "ack", map[string]any{"ackIds": []string{"x"}}, "Authorization", "Bearer "+other)
	if status != http.StatusForbidden {
		t.Errorf("ack by a ServiceAccount not among the consumers: %d %s, want 403", status, out)
	}
	wrongAud := mint(t, iss, plan.ServiceAccountSubject("jobs", "worker"), "elsewhere")
	if status, out = pullJSON(t, base, "pull", map[string]any{}, "Authorization", "Bearer "+wrongAud); status != http.StatusUnauthorized {
		t.Errorf("a token for another audience: %d %s, want 401", status, out)
	}
	worker := mint(t, iss, plan.ServiceAccountSubject("jobs", "worker"), aud)
	sendOK(t, r.url+"/default/secure", "s-1", "Authorization", "Bearer "+mint(t, iss, plan.ServiceAccountSubject("default", "p"), aud))
	status, out = pullJSON(t, base, "pull", map[string]any{"waitSeconds": 5}, "Authorization", "Bearer "+worker)
	if status != http.StatusOK || !strings.Contains(string(out), `"s-1"`) {
		t.Errorf("the consumer: %d %s, want 200 with the event", status, out)
	}
}
