package auth

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/internal/testenv"
)

// countingTransport counts the requests that reach the API server.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// review asks the API server's TokenReview whether token is valid for
// audience.
func review(t *testing.T, c client.Client, token, audience string) *authenticationv1.TokenReview {
	t.Helper()
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}}}
	if err := c.Create(context.Background(), tr); err != nil {
		t.Fatalf("TokenReview: %v", err)
	}
	return tr
}

// TestKubernetesTokenSource runs against a real API server: the tokens it
// returns pass a TokenReview for their audience only and name its
// ServiceAccount; they are requested once per audience, again after
// TokenRefreshFraction of their lifetime, and a failure is an error.
func TestKubernetesTokenSource(t *testing.T) {
	env, err := testenv.Start(testenv.Options{NoCRDs: true})
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "orders-dispatcher", Namespace: "shop"}}
	for _, o := range []client.Object{ns, sa} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	var requests atomic.Int64
	cfg := rest.CopyConfig(env.Config)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, n: &requests} }
	src, err := NewKubernetesTokenSource(cfg, "shop", "orders-dispatcher", 0)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	src.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	const aud = "https://inventory.shop.example"
	tok, err := src.Token(ctx, aud)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("first Token made %d requests, want 1", n)
	}
	tr := review(t, env.Client, tok, aud)
	if !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:shop:orders-dispatcher" ||
		!slices.Contains(tr.Status.Audiences, aud) {
		t.Fatalf("TokenReview status %+v, want system:serviceaccount:shop:orders-dispatcher for %s", tr.Status, aud)
	}
	if tr := review(t, env.Client, tok, "eventing.herald.dev/topic/shop/orders"); tr.Status.Authenticated {
		t.Fatalf("token for %s passed a TokenReview for another audience", aud)
	}

	// Cache hits, also for a Sender the source ignores.
	again, err := src.Token(WithSender(ctx, Sender{Namespace: "x", Name: "y"}), aud)
	if err != nil || again != tok {
		t.Fatalf("second Token = %v, another token or an error", err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("a cached token made %d requests in all, want 1", n)
	}

	// Concurrent callers of a new audience share one request.
	var wg sync.WaitGroup
	toks := make([]string, 8)
	errs := make([]error, 8)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = src.Token(ctx, "other") })
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("concurrent Token %d: %v, or a token of its own", i, errs[i])
		}
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("8 callers of a new audience made %d requests in all, want 2", n)
	}

	// Before the refresh point the token is served from the cache, after
	// it a new one is requested.
	advance(time.Duration(float64(DefaultTokenLifetime) * (TokenRefreshFraction - 0.05)))
	if _, err := src.Token(ctx, aud); err != nil || requests.Load() != 2 {
		t.Fatalf("before the refresh point: %v, %d requests in all, want 2", err, requests.Load())
	}
	// After it, the still valid token is served while one is requested.
	advance(DefaultTokenLifetime / 10)
	if cur, err := src.Token(ctx, aud); err != nil || cur != tok {
		t.Fatalf("after the refresh point: %v, or another token before the refresh ended", err)
	}
	src.mu.Lock()
	done := src.cache[aud].done
	src.mu.Unlock()
	if done != nil {
		<-done
	}
	fresh, err := src.Token(ctx, aud)
	if err != nil || requests.Load() != 3 {
		t.Fatalf("after the refresh: %v, %d requests in all, want 3", err, requests.Load())
	}
	if tr := review(t, env.Client, fresh, aud); !tr.Status.Authenticated {
		t.Fatalf("refreshed token refused: %+v", tr.Status)
	}

	// A ServiceAccount that does not exist gets an error, not a token.
	missing, err := NewKubernetesTokenSource(cfg, "shop", "nobody", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := missing.Token(ctx, aud); err == nil || tok != "" || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Token of a missing ServiceAccount = %q, %v; want a 404 error", tok, err)
	}

	// The mounted token names the Pod's ServiceAccount.
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gotNS, gotName, err := PodServiceAccount(func(string) string { return "" }, path)
	if err != nil || gotNS != "shop" || gotName != "orders-dispatcher" {
		t.Fatalf("PodServiceAccount from the token = %s/%s, %v", gotNS, gotName, err)
	}
}

func TestPodServiceAccount(t *testing.T) {
	env := map[string]string{EnvPodNamespace: "shop", EnvServiceAccount: "ping-source"}
	ns, name, err := PodServiceAccount(func(k string) string { return env[k] }, "/nonexistent")
	if err != nil || ns != "shop" || name != "ping-source" {
		t.Errorf("from the environment: %s/%s, %v", ns, name, err)
	}
	path := filepath.Join(t.TempDir(), "token")
	for _, tok := range []string{"not-a-jwt", "a.!!!.c", "a.eyJzdWIiOiJhbGljZSJ9.c"} {
		if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
			t.Fatal(err)
		}
		if ns, name, err := PodServiceAccount(func(string) string { return "" }, path); err == nil {
			t.Errorf("token %q: %s/%s, want an error", tok, ns, name)
		}
	}
	if _, _, err := PodServiceAccount(func(string) string { return "" }, "/nonexistent"); err == nil {
		t.Error("no environment and no token: want an error")
	}
}
