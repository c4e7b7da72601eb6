package devmode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/sources"
)

// namedTokens mints "<namespace>/<name>@<audience>" for the Sender of the
// context, as a local issuer minting for several identities does.
type namedTokens struct{}

func (namedTokens) Token(ctx context.Context, audience string) (string, error) {
	s, ok := auth.SenderFrom(ctx)
	if !ok {
		return "", errors.New("no sender")
	}
	return s.Namespace + "/" + s.Name + "@" + audience, nil
}

// authRecorder records the Authorization header of every request.
type authRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newAuthRecorder(t *testing.T) *authRecorder {
	r := &authRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.got = append(r.got, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *authRecorder) saw(authorization string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.got, authorization)
}

// TestDevPresentsTokens: with Config.Tokens, herald dev's dispatcher sends
// to an audience as the Topic's dispatcher and its sources as the
// ServiceAccount the operator would give their adapter.
func TestDevPresentsTokens(t *testing.T) {
	sub, hook := newAuthRecorder(t), newAuthRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "all.yaml", fmt.Sprintf(topicYAML, "orders")+fmt.Sprintf(`---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: audit}
spec:
  topic: orders
  subscriber: {uri: %q, audience: audit-aud}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: tick}
spec:
  sink: {uri: %q, audience: hook-aud}
  ping: {schedule: "@every 1s"}
`, sub.srv.URL, hook.srv.URL))
	d := startDevConfig(t, Config{Paths: []string{dir}, DataDir: t.TempDir(), Tokens: namedTokens{}})
	send(t, d.rt.Endpoints().Ingress+"/default/orders", "e1", "t")
	eventually(t, 10*time.Second, func() bool { return sub.saw("Bearer default/orders-dispatcher@audit-aud") },
		"the subscriber got no token of the dispatcher")
	eventually(t, 10*time.Second, func() bool { return hook.saw("Bearer default/tick-source@hook-aud") },
		"the ping sink got no token of the source")
}

// TestDevAuthOwnFlows: with authentication on (a local issuer verifying
// producers and minting Herald's own tokens), the default policy
// allow-same-namespace admits Herald's own senders like any producer of the
// namespace: a ping EventSource publishes to its Topic and a Subscription's
// dead letters reach the dead-letter Topic, while a producer without a
// token is refused.
func TestDevAuthOwnFlows(t *testing.T) {
	iss, err := auth.NewLocalIssuer(t.TempDir(), "herald-dev", "system:serviceaccount:default:default")
	if err != nil {
		t.Fatal(err)
	}
	failing, dead := newRecorder(t), newRecorder(t)
	failing.status.Store(http.StatusBadRequest) // not retried: dead-lettered at once
	dir := t.TempDir()
	writeFile(t, dir, "all.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+fmt.Sprintf(topicYAML, "dlq")+"---\n"+
		pingYAML("tick", "@every 1s", `{"n":1}`)+fmt.Sprintf(`---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: refuses}
spec:
  topic: orders
  subscriber: {uri: %q}
  delivery:
    deadLetterSink:
      ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: dlq}
---
`, failing.srv.URL)+subscriptionYAML("dead", "dlq", dead.srv.URL, ""))
	d := startDevConfig(t, Config{Paths: []string{dir}, DataDir: t.TempDir(), Verifier: iss.Verifier(), Tokens: iss.TokenSource()})
	ingress := d.rt.Endpoints().Ingress + "/default/orders"
	anonymous := map[string]string{"ce-specversion": "1.0", "ce-id": "anon", "ce-type": "t", "ce-source": "/test"}

	eventually(t, 10*time.Second, func() bool { return postEvent(t, ingress, anonymous, "") != http.StatusNotFound }, "the Topic is not served")
	if code := postEvent(t, ingress, anonymous, ""); code != http.StatusUnauthorized {
		t.Errorf("POST without a token: %d, want 401", code)
	}
	// The ping source's events reach orders (its token admitted), are
	// refused by the subscriber and dead-lettered to dlq (the dispatcher's
	// token admitted), whose Subscription receives them.
	eventually(t, 15*time.Second, func() bool {
		dead.mu.Lock()
		defer dead.mu.Unlock()
		return len(dead.events) > 0
	}, "no dead letter of a ping event reached the dead-letter Topic's subscriber")
	dead.mu.Lock()
	e := dead.events[0]
	dead.mu.Unlock()
	if e.Type() != sources.PingEventType || e.Extensions()["heraldsubscription"] != "default/refuses" {
		t.Errorf("dead letter: type %q, extensions %v", e.Type(), e.Extensions())
	}
}
