package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// subscriber is a CloudEvents sink that records what it receives.
type subscriber struct {
	*httptest.Server
	mu    sync.Mutex
	order []string       // ce-id in arrival order
	count map[string]int // deliveries by ce-id
	types map[string]string
}

func newSubscriber(t *testing.T) *subscriber {
	s := &subscriber{count: map[string]int{}, types: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("Ce-Id")
		s.mu.Lock()
		s.order = append(s.order, id)
		s.count[id]++
		s.types[id] = r.Header.Get("Ce-Type")
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *subscriber) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[id] > 0
}

// stats returns the number of distinct ids received and of extra deliveries.
func (s *subscriber) stats() (unique, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.count {
		unique++
		duplicates += n - 1
	}
	return unique, duplicates
}

// send POSTs one binary-mode event and returns the status code (0 on a
// connection error).
func send(url, id, typ string) int {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"id":%q}`, id)))
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Type", typ)
	req.Header.Set("Ce-Source", "/e2e")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// sendUntilAccepted retries an event until the ingress answers 202, as a
// producer does; the same id makes retries duplicates Herald stores once.
func sendUntilAccepted(t *testing.T, url, id, typ string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code := send(url, id, typ)
		if code == http.StatusAccepted {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not accepted within 60s, last status %d", id, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func topicYAML(ns, name string) string {
	return fmt.Sprintf(`apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: %s
  namespace: %s
spec:
  duplicateWindow: PT5M
`, name, ns)
}

func subscriptionYAML(ns, name, topic, uri, extra string) string {
	return fmt.Sprintf(`apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: %s
  namespace: %s
spec:
  topic: %s
  subscriber:
    uri: %s
  delivery:
    timeout: PT5S
    backoffDelay: PT0.05S
    backoffMax: PT1S
%s`, name, ns, topic, uri, extra)
}

// dispatcherOf names the Deployment serving a Ready Topic, as its status
// reports it: the namespace's shared dispatcher by default.
func dispatcherOf(t *testing.T, ns, topic string) string {
	t.Helper()
	kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=90s", "-n", ns, "topic/"+topic)
	name := strings.TrimSpace(kubectl(t, "", "get", "-n", ns, "topic/"+topic, "-o", "jsonpath={.status.dispatcher.name}"))
	if name == "" {
		t.Fatalf("topic %s/%s is Ready without status.dispatcher.name", ns, topic)
	}
	return name
}

// ingress waits for the Topic's dispatcher to run and returns its URL.
func ingress(t *testing.T, ns, topic string) string {
	t.Helper()
	dispatcher := dispatcherOf(t, ns, topic)
	var addr string
	eventually(t, 30*time.Second, "dispatcher process "+dispatcher, func() bool {
		addr = run.addr(ns, dispatcher, 0)
		return addr != ""
	})
	return "http://" + addr + "/" + ns + "/" + topic
}

func TestApplySendDeliverFilterDelete(t *testing.T) {
	ns := newNamespace(t, "e2e-basic")
	sub := newSubscriber(t)
	kubectl(t, topicYAML(ns, "orders")+"---\n"+subscriptionYAML(ns, "audit", "orders", sub.URL, "  ordering: ordered\n"), "apply", "-f", "-")
	url := ingress(t, ns, "orders")
	kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", ns, "subscription/audit")

	const n = 200
	for i := 0; i < n; i++ {
		sendUntilAccepted(t, url, fmt.Sprintf("a-%d", i), "com.example.a")
	}
	eventually(t, 60*time.Second, "all events delivered", func() bool { u, _ := sub.stats(); return u == n })
	u, d := sub.stats()
	t.Logf("basic: sent %d, delivered %d unique, %d duplicates", n, u, d)

	// A changed filter takes effect live, without restarting anything.
	kubectl(t, subscriptionYAML(ns, "audit", "orders", sub.URL, "  ordering: ordered\n  filters:\n  - exact:\n      type: com.example.b\n"), "apply", "-f", "-")
	// Ordered delivery makes the switch observable: once a b event arrives
	// without the a event sent just before it, the new filter is in force.
	switched := false
	for i := 0; i < 200 && !switched; i++ {
		a, b := fmt.Sprintf("probe-a-%d", i), fmt.Sprintf("probe-b-%d", i)
		sendUntilAccepted(t, url, a, "com.example.a")
		sendUntilAccepted(t, url, b, "com.example.b")
		eventually(t, 30*time.Second, "probe "+b, func() bool { return sub.has(b) })
		switched = !sub.has(a)
	}
	if !switched {
		t.Fatal("the new filter never took effect")
	}
	for i := 0; i < 50; i++ {
		sendUntilAccepted(t, url, fmt.Sprintf("after-a-%d", i), "com.example.a")
		sendUntilAccepted(t, url, fmt.Sprintf("after-b-%d", i), "com.example.b")
	}
	eventually(t, 30*time.Second, "filtered events delivered", func() bool { return sub.has("after-b-49") })
	for i := 0; i < 50; i++ {
		if id := fmt.Sprintf("after-a-%d", i); sub.has(id) {
			t.Errorf("%s passed the filter type=com.example.b", id)
		}
		if id := fmt.Sprintf("after-b-%d", i); !sub.has(id) {
			t.Errorf("%s was not delivered", id)
		}
	}

	// Deleting the Subscription removes its consumer from JetStream.
	kubectl(t, "", "delete", "-n", ns, "subscription/audit", "--wait=true", "--timeout=60s")
	eventually(t, 30*time.Second, "consumer deleted", func() bool {
		_, err := js.Consumer(context.Background(), plan.StreamName(ns, "orders"), plan.ConsumerName("audit"))
		return err != nil && strings.Contains(err.Error(), "consumer not found")
	})
	// Deleting the Topic removes its stream and plan.
	kubectl(t, "", "delete", "-n", ns, "topic/orders", "--wait=true", "--timeout=60s")
	eventually(t, 30*time.Second, "stream deleted", func() bool {
		_, err := js.Stream(context.Background(), plan.StreamName(ns, "orders"))
		return err == jetstream.ErrStreamNotFound
	})
}

// Killing the dispatcher process mid-stream loses no accepted event: the
// producer retries what was not accepted, and what was accepted is delivered
// after the runner restarts the dispatcher.
func TestDispatcherKilledMidStreamLosesNothing(t *testing.T) {
	ns := newNamespace(t, "e2e-kill")
	sub := newSubscriber(t)
	kubectl(t, topicYAML(ns, "payments")+"---\n"+subscriptionYAML(ns, "ledger", "payments", sub.URL, ""), "apply", "-f", "-")
	url := ingress(t, ns, "payments")
	kubectl(t, "", "wait", "--for=condition=Ready", "--timeout=60s", "-n", ns, "subscription/ledger")

	const n, producers = 3000, 8
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := p; i < n; i += producers {
				sendUntilAccepted(t, url, fmt.Sprintf("pay-%d", i), "com.example.payment")
			}
		}(p)
	}
	eventually(t, 60*time.Second, "a third of the events delivered", func() bool { u, _ := sub.stats(); return u >= n/3 })
	dispatcher := dispatcherOf(t, ns, "payments")
	if err := run.kill(ns, dispatcher, 0); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	eventually(t, 90*time.Second, "every accepted event delivered", func() bool { u, _ := sub.stats(); return u == n })
	u, d := sub.stats()
	t.Logf("dispatcher killed mid-stream: sent %d, delivered %d unique, %d duplicates", n, u, d)
	if logs := run.logs(ns, dispatcher, 0); !strings.Contains(logs, "dispatcher") {
		t.Logf("dispatcher log:\n%s", logs)
	}
}
