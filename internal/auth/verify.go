package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// jwtVerifier checks tokens of one issuer offline with go-oidc: the
// signature against a key set (the issuer's JWKS, or static keys), then
// Herald's own checks of expiry, not-before and audience.
type jwtVerifier struct {
	issuer string
	v      *oidc.IDTokenVerifier
	// checks counts signature verifications.
	checks *atomic.Uint64
}

func newJWTVerifier(issuer string, keys oidc.KeySet, checks *atomic.Uint64) *jwtVerifier {
	ks := &slotKeySet{inner: keys, checks: checks}
	return &jwtVerifier{
		issuer: issuer,
		checks: checks,
		v: oidc.NewVerifier(issuer, ks, &oidc.Config{
			// Audience, expiry and not-before are checked by claims.check,
			// which names the failure.
			SkipClientIDCheck:    true,
			SkipExpiryCheck:      true,
			SupportedSigningAlgs: SigningAlgorithms,
		}),
	}
}

// verify checks p (parsed from token) for audience at now.
func (j *jwtVerifier) verify(ctx context.Context, p *parsedJWT, token, audience string, now time.Time) (Identity, error) {
	if p.claims.Issuer != j.issuer {
		return Identity{}, &Error{Reason: ReasonUnknownIssuer, Message: fmt.Sprintf("token issuer %q is not %q", truncate(p.claims.Issuer, 128), j.issuer)}
	}
	var slot error
	if _, err := j.v.Verify(context.WithValue(ctx, keyErrSlot{}, &slot), token); err != nil {
		if slot == nil {
			return Identity{}, malformed("token: " + err.Error())
		}
		var u *unavailableError
		if errors.As(slot, &u) || errors.Is(slot, context.DeadlineExceeded) || errors.Is(slot, context.Canceled) {
			return Identity{}, &Error{Reason: ReasonUnavailable, Message: "the issuer's signing keys cannot be fetched: " + slot.Error()}
		}
		return Identity{}, &Error{Reason: ReasonBadSignature, Message: "token signature does not verify with the issuer's keys"}
	}
	if err := p.claims.check(now, audience); err != nil {
		return Identity{}, err
	}
	return Identity{Subject: p.claims.Subject, Issuer: p.claims.Issuer, Expiry: p.claims.Expiry.time()}, nil
}

// keyErrSlot is the context key of the *error where slotKeySet records why
// a signature did not verify: IDTokenVerifier keeps only the text.
type keyErrSlot struct{}

// slotKeySet counts signature checks and records their errors.
type slotKeySet struct {
	inner  oidc.KeySet
	checks *atomic.Uint64
}

func (s *slotKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	s.checks.Add(1)
	payload, err := s.inner.VerifySignature(ctx, jwt)
	if err != nil {
		if slot, ok := ctx.Value(keyErrSlot{}).(*error); ok {
			*slot = err
		}
	}
	return payload, err
}

// unavailableError is a failed key fetch: the keys could not be read, as
// opposed to a token no key verifies.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// keysTransport fetches a JWKS document: it counts fetches, reports any
// failure as an *unavailableError and, within minRefresh of a fetch,
// answers from the last document instead of the network, so tokens with
// unknown key ids cannot make the verifier hammer the issuer.
type keysTransport struct {
	next       http.RoundTripper
	minRefresh time.Duration
	fetches    atomic.Uint64

	mu   sync.Mutex
	last time.Time
	body []byte
}

func (t *keysTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.body != nil && time.Since(t.last) < t.minRefresh {
		return cannedResponse(req, t.body), nil
	}
	t.fetches.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, &unavailableError{err}
	}
	defer resp.Body.Close()
	body, err := readLimited(resp.Body, 1<<20)
	if err != nil {
		return nil, &unavailableError{fmt.Errorf("reading keys: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &unavailableError{fmt.Errorf("GET %s: %s", req.URL.Path, resp.Status)}
	}
	t.last, t.body = time.Now(), body
	return cannedResponse(req, body), nil
}
