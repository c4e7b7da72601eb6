package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// Paths the API server serves its service-account issuer's discovery
// document and keys at.
const (
	discoveryPath   = "/.well-known/openid-configuration"
	jwksPath        = "/openid/v1/jwks"
	tokenReviewPath = "/apis/authentication.k8s.io/v1/tokenreviews"
)

// Defaults of KubernetesOptions.
const (
	// DefaultReviewCacheTTL bounds how long a token the TokenReview API
	// accepted is trusted without asking again: the delay before the
	// deletion of its ServiceAccount or Pod is noticed.
	DefaultReviewCacheTTL = 10 * time.Second
	// keysMinRefresh is the least time between two fetches of the keys.
	keysMinRefresh = 10 * time.Second
	// discoveryRetry is the least time between two discovery attempts
	// while discovery fails.
	discoveryRetry = time.Minute
	// requestTimeout bounds each call to the API server.
	requestTimeout = 5 * time.Second
)

// KubernetesOptions tunes a KubernetesVerifier.
type KubernetesOptions struct {
	// TokenReview checks every token with the TokenReview API instead of
	// verifying signatures offline.
	TokenReview bool
	// CacheSize bounds the verified tokens remembered; zero is
	// DefaultCacheSize.
	CacheSize int
	// ReviewCacheTTL is how long a token the TokenReview API accepted is
	// remembered (never past its expiry); zero is DefaultReviewCacheTTL.
	ReviewCacheTTL time.Duration
}

// KubernetesVerifier verifies ServiceAccount tokens of the cluster whose
// API server a rest.Config reaches (the Pod's own in a cluster).
//
// It discovers the service-account issuer through the API server
// (GET /.well-known/openid-configuration) and verifies tokens offline
// against the keys the API server serves at /openid/v1/jwks, fetched with
// the rest.Config's credentials (the advertised jwks_uri may not be
// reachable from Pods), cached, and fetched again when a token names an
// unknown key (at most every ten seconds). Offline verification cannot see
// that a token's ServiceAccount or Pod was deleted: such a token stays
// valid until it expires. While discovery fails, or always with
// KubernetesOptions.TokenReview, tokens are checked with the TokenReview
// API (audiences = the Topic's audience), which refuses them
// (ReasonRevoked) once their ServiceAccount or Pod is gone.
//
// Verified tokens are remembered, keyed by a digest of token and audience,
// until their expiry (TokenReview answers for ReviewCacheTTL at most), so
// a producer reusing its token costs one check per token. If the keys or
// the TokenReview API cannot be reached the refusal is ReasonUnavailable.
type KubernetesVerifier struct {
	client         *http.Client
	base           string
	forceReview    bool
	reviewCacheTTL time.Duration
	cache          *tokenCache
	keys           *keysTransport
	checks         atomic.Uint64

	mu            sync.Mutex
	jwt           *jwtVerifier
	lastDiscovery time.Time
}

// NewKubernetesVerifier returns a verifier for the API server of cfg. It
// does not touch the network: discovery happens on the first Verify.
func NewKubernetesVerifier(cfg *rest.Config, o KubernetesOptions) (*KubernetesVerifier, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api server client: %w", err)
	}
	u, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("api server url: %w", err)
	}
	if o.ReviewCacheTTL <= 0 {
		o.ReviewCacheTTL = DefaultReviewCacheTTL
	}
	return &KubernetesVerifier{
		client:         client,
		base:           strings.TrimSuffix(u.String(), "/"),
		forceReview:    o.TokenReview,
		reviewCacheTTL: o.ReviewCacheTTL,
		cache:          newTokenCache(o.CacheSize),
		keys:           &keysTransport{next: client.Transport, minRefresh: keysMinRefresh},
	}, nil
}

// Checks is the number of tokens checked by signature or by TokenReview,
// that is, the Verify calls the cache did not answer.
func (k *KubernetesVerifier) Checks() uint64 { return k.checks.Load() }

// KeyFetches is the number of times the signing keys were fetched.
func (k *KubernetesVerifier) KeyFetches() uint64 { return k.keys.fetches.Load() }

// Discover looks up the issuer now rather than on the first Verify, and
// says whether tokens will be verified offline; the error says why not.
func (k *KubernetesVerifier) Discover(ctx context.Context) error {
	if k.forceReview {
		return errors.New("TokenReview forced")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.jwt != nil {
		return nil
	}
	k.lastDiscovery = time.Now()
	jv, err := k.discover(ctx)
	if err != nil {
		return err
	}
	k.jwt = jv
	return nil
}

// Verify implements Verifier.
func (k *KubernetesVerifier) Verify(ctx context.Context, token, audience string) (Identity, error) {
	now := time.Now()
	key := cacheKey(token, audience)
	if id, ok := k.cache.get(key, now); ok {
		return id, nil
	}
	p, err := parseJWT(token)
	if err != nil {
		return Identity{}, err
	}
	if jv := k.offline(ctx); jv != nil {
		id, err := jv.verify(ctx, p, token, audience, now)
		if err != nil {
			return Identity{}, err
		}
		k.cache.put(key, id, id.Expiry, now)
		return id, nil
	}
	// The claims are checked before asking the API server only to name
	// the failure precisely; the answer decides.
	if err := p.claims.check(now, audience); err != nil {
		return Identity{}, err
	}
	k.checks.Add(1)
	id, err := k.review(ctx, token, audience)
	if err != nil {
		return Identity{}, err
	}
	id.Issuer, id.Expiry = p.claims.Issuer, p.claims.Expiry.time()
	k.cache.put(key, id, minTime(id.Expiry, now.Add(k.reviewCacheTTL)), now)
	return id, nil
}

// offline returns the offline verifier, discovering the issuer when it is
// not known and the last attempt is older than discoveryRetry; nil means
// TokenReview.
func (k *KubernetesVerifier) offline(ctx context.Context) *jwtVerifier {
	if k.forceReview {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.jwt != nil || time.Since(k.lastDiscovery) < discoveryRetry {
		return k.jwt
	}
	k.lastDiscovery = time.Now()
	// A producer hanging up must not make the next minute use TokenReview.
	k.jwt, _ = k.discover(context.WithoutCancel(ctx))
	return k.jwt
}

// discover reads the issuer from the API server's discovery document.
func (k *KubernetesVerifier) discover(ctx context.Context) (*jwtVerifier, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+discoveryPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("issuer discovery: %w", err)
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("issuer discovery: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("issuer discovery: GET %s: %s", discoveryPath, resp.Status)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		return nil, fmt.Errorf("issuer discovery: document without issuer")
	}
	keysCtx := oidc.ClientContext(context.Background(), &http.Client{Transport: k.keys, Timeout: requestTimeout})
	return newJWTVerifier(doc.Issuer, oidc.NewRemoteKeySet(keysCtx, k.base+jwksPath), &k.checks), nil
}

// review asks the TokenReview API whether token is valid for audience.
func (k *KubernetesVerifier) review(ctx context.Context, token, audience string) (Identity, error) {
	tr := authenticationv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
		Spec:     authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{audience}},
	}
	body, err := json.Marshal(&tr)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.base+tokenReviewPath, bytes.NewReader(body))
	if err != nil {
		return Identity{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return Identity{}, unavailable("token review: " + err.Error())
	}
	defer resp.Body.Close()
	out, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return Identity{}, unavailable("token review: " + err.Error())
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return Identity{}, unavailable("token review: " + resp.Status)
	}
	var res authenticationv1.TokenReview
	if err := json.Unmarshal(out, &res); err != nil {
		return Identity{}, unavailable("token review: decoding the answer: " + err.Error())
	}
	return reviewIdentity(&res.Status, audience)
}

// reviewIdentity reads a TokenReview's answer. For a token whose
// ServiceAccount, Pod, Secret or Node is gone the API server's error says
// that object is "not found" (older versions: "service account token has
// been invalidated"); other refusals are taken as a bad signature, since
// the claims were checked before.
func reviewIdentity(s *authenticationv1.TokenReviewStatus, audience string) (Identity, error) {
	if !s.Authenticated {
		if strings.Contains(s.Error, "not found") || strings.Contains(s.Error, "invalidated") {
			return Identity{}, &Error{Reason: ReasonRevoked, Message: "the API server no longer accepts this token: its ServiceAccount or Pod was deleted"}
		}
		return Identity{}, &Error{Reason: ReasonBadSignature, Message: "the API server does not accept this token"}
	}
	if len(s.Audiences) > 0 && !slices.Contains(s.Audiences, audience) {
		return Identity{}, &Error{Reason: ReasonWrongAudience, Message: "the API server does not accept this token for " + audience}
	}
	if s.User.Username == "" {
		return Identity{}, malformed("the API server accepted the token without naming its user")
	}
	return Identity{Subject: s.User.Username}, nil
}

func unavailable(msg string) *Error { return &Error{Reason: ReasonUnavailable, Message: msg} }

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
