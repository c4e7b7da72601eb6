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
