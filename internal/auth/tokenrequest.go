package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults of a KubernetesTokenSource.
const (
	// DefaultTokenLifetime is the lifetime asked of the TokenRequest API.
	// The API server may shorten it (never below ten minutes) or lengthen
	// it; the source refreshes relative to what it grants.
	DefaultTokenLifetime = time.Hour
	// TokenRefreshFraction is the part of a token's lifetime after which
	// the source obtains a new one; the old one is still valid meanwhile.
	TokenRefreshFraction = 0.8
	// tokenRetryAfter is how long a failed TokenRequest is not repeated for
	// an audience; calls meanwhile get the last valid token, or the error.
	tokenRetryAfter = time.Second
	// tokenRequestTimeout bounds one TokenRequest.
	tokenRequestTimeout = 30 * time.Second
)

// Environment of a Pod that says which ServiceAccount it runs as, from the
// downward API (fieldRef metadata.namespace and spec.serviceAccountName).
const (
	EnvPodNamespace   = "HERALD_POD_NAMESPACE"
	EnvServiceAccount = "HERALD_SERVICE_ACCOUNT"
)

// ServiceAccountTokenPath is where Kubernetes mounts a Pod's ServiceAccount
// token when automountServiceAccountToken is true.
const ServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// KubernetesTokenSource is a TokenSource minting tokens for one
// ServiceAccount, usually the Pod's own, with the TokenRequest API. Tokens
// are cached per audience and replaced after TokenRefreshFraction of their
// lifetime; one request per audience is in flight at a time, and callers
// asking meanwhile wait for it. It ignores the Sender of the context: it
// always mints for its own ServiceAccount. It is safe for concurrent use.
//
// The ServiceAccount must be allowed to create serviceaccounts/token on
// itself.
type KubernetesTokenSource struct {
	client   *http.Client
	endpoint string
	lifetime time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]*cachedToken
}

// cachedToken is the state of one audience. done is non-nil while a
// request is in flight and closed when it ends.
type cachedToken struct {
	token     string
	refreshAt time.Time
	expires   time.Time
	err       error
	retryAt   time.Time
	done      chan struct{}
}

var _ TokenSource = (*KubernetesTokenSource)(nil)

// NewKubernetesTokenSource returns a source minting tokens of
// ServiceAccount namespace/name through the API server cfg reaches, each
// valid for lifetime (DefaultTokenLifetime when 0).
func NewKubernetesTokenSource(cfg *rest.Config, namespace, name string, lifetime time.Duration) (*KubernetesTokenSource, error) {
	if namespace == "" || name == "" {
		return nil, errors.New("token source: no ServiceAccount namespace or name")
	}
	if lifetime <= 0 {
		lifetime = DefaultTokenLifetime
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("token source: %w", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("token source: %w", err)
	}
	return &KubernetesTokenSource{
		client: hc,
		endpoint: strings.TrimSuffix(base.String(), "/") + "/api/v1/namespaces/" + url.PathEscape(namespace) +
			"/serviceaccounts/" + url.PathEscape(name) + "/token",
		lifetime: lifetime,
		now:      time.Now,
		cache:    map[string]*cachedToken{},
	}, nil
}

// Token implements TokenSource. While a refresh fails, the last token is
// returned as long as it is valid; without one, the error of the last
// attempt is, and the TokenRequest is repeated at most once a second. A
// request, once started, runs to its end (within tokenRequestTimeout)
// whatever becomes of the caller that started it, so one caller's
// cancelled context never fails another's.
func (s *KubernetesTokenSource) Token(ctx context.Context, audience string) (string, error) {
	if audience == "" {
		return "", errors.New("token source: empty audience")
	}
	for {
		s.mu.Lock()
		c := s.cache[audience]
		if c == nil {
			c = &cachedToken{}
			s.cache[audience] = c
		}
		now := s.now()
		if c.token != "" && now.Before(c.refreshAt) {
			tok := c.token
			s.mu.Unlock()
			return tok, nil
		}
		if c.done == nil && !now.Before(c.retryAt) {
			c.done = make(chan struct{})
			go s.refresh(audience, c)
		}
		if c.token != "" && now.Before(c.expires) {
			// Due for a refresh that is in flight or failed less than
			// tokenRetryAfter ago: the current token is still valid.
			tok := c.token
			s.mu.Unlock()
			return tok, nil
		}
		if c.done == nil {
			err := c.err
			s.mu.Unlock()
			return "", err
		}
		done := c.done
		s.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return "", fmt.Errorf("token for %s: %w", audience, ctx.Err())
		}
	}
}

// refresh requests a token for audience into c and closes c.done.
func (s *KubernetesTokenSource) refresh(audience string, c *cachedToken) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenRequestTimeout)
	defer cancel()
	tok, exp, err := s.request(ctx, audience)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if err == nil {
		c.token, c.expires, c.err, c.retryAt = tok, exp, nil, time.Time{}
		c.refreshAt = now.Add(time.Duration(float64(exp.Sub(now)) * TokenRefreshFraction))
	} else {
		c.err, c.retryAt = err, now.Add(tokenRetryAfter)
	}
	close(c.done)
	c.done = nil
}

// request asks the TokenRequest API for a token for audience.
func (s *KubernetesTokenSource) request(ctx context.Context, audience string) (string, time.Time, error) {
	seconds := int64(s.lifetime / time.Second)
	body, err := json.Marshal(&authenticationv1.TokenRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
		Spec:     authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &seconds},
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token for %s: %w", audience, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token for %s: %w", audience, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token for %s: %w", audience, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token for %s: %w", audience, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var st metav1.Status
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return "", time.Time{}, fmt.Errorf("token for %s: TokenRequest answered %d: %s", audience, resp.StatusCode, msg)
	}
	var tr authenticationv1.TokenRequest
	if err := json.Unmarshal(b, &tr); err != nil {
		return "", time.Time{}, fmt.Errorf("token for %s: decode TokenRequest: %w", audience, err)
	}
	if tr.Status.Token == "" {
		return "", time.Time{}, fmt.Errorf("token for %s: TokenRequest returned no token", audience)
	}
	return tr.Status.Token, tr.Status.ExpirationTimestamp.Time, nil
}

// NewPodTokenSource returns a KubernetesTokenSource for the ServiceAccount
// of the Pod it runs in (PodServiceAccount), talking to the API server
// through $KUBECONFIG when set, else the Pod's in-cluster configuration.
func NewPodTokenSource(getenv func(string) string) (*KubernetesTokenSource, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("token source: kubernetes client config: %w", err)
	}
	cfg.UserAgent = "herald"
	ns, name, err := PodServiceAccount(getenv, ServiceAccountTokenPath)
	if err != nil {
		return nil, fmt.Errorf("token source: %w", err)
	}
	return NewKubernetesTokenSource(cfg, ns, name, 0)
}

// PodServiceAccount returns the namespace and name of the ServiceAccount
// the Pod runs as: from EnvPodNamespace and EnvServiceAccount when both are
// set, else from the subject of the token at tokenPath
// (ServiceAccountTokenPath in a Pod), which is read, not verified.
func PodServiceAccount(getenv func(string) string, tokenPath string) (namespace, name string, err error) {
	if ns, sa := getenv(EnvPodNamespace), getenv(EnvServiceAccount); ns != "" && sa != "" {
		return ns, sa, nil
	}
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		return "", "", fmt.Errorf("service account: %s and %s unset, and %w", EnvPodNamespace, EnvServiceAccount, err)
	}
	sub, err := subjectOf(strings.TrimSpace(string(b)))
	if err != nil {
		return "", "", fmt.Errorf("service account: token %s: %w", tokenPath, err)
	}
	rest, ok := strings.CutPrefix(sub, "system:serviceaccount:")
	ns, sa, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || ns == "" || sa == "" {
		return "", "", fmt.Errorf("service account: token %s: subject %q is no ServiceAccount", tokenPath, sub)
	}
	return ns, sa, nil
}

// subjectOf returns the sub claim of a JWT without verifying it.
func subjectOf(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("payload: %w", err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("claims: %w", err)
	}
	return claims.Sub, nil
}
