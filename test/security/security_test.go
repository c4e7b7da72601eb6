package security

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/plan"
)

var eventSeq atomic.Int64

// answer is an ingress answer.
type answer struct {
	status int
	reason string
	body   string
	header http.Header
}

// publish posts a binary-mode event of type typ to topic at base, with the
// Authorization header values auth (none when empty) and extra headers.
func publish(t *testing.T, base, topic, typ, query string, authz []string, extra map[string]string) answer {
	t.Helper()
	url := base + "/shop/" + topic
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader([]byte(`{"n":1}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", "e-"+time.Now().Format("150405.000000000")+"-"+string(rune('a'+eventSeq.Add(1)%26)))
	req.Header.Set("Ce-Source", "/security-test")
	req.Header.Set("Ce-Type", typ)
	req.Header.Set("Content-Type", "application/json")
	for _, v := range authz {
		req.Header.Add("Authorization", v)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b), header: resp.Header}
	var body struct{ Reason string }
	if json.Unmarshal(b, &body) == nil {
		a.reason = body.Reason
	}
	return a
}

func bearer(tok string) []string { return []string{"Bearer " + tok} }

// TestRefusedCredentials: forged and malformed credentials are refused
// with the status and reason given, and nothing is stored.
func TestRefusedCredentials(t *testing.T) {
	f := newForger(t)
	aud := plan.TopicAudience("shop", topicOrders)
	valid := token(t, "shop", "a", aud)
	otherNS := token(t, "other", "x", aud)
	parts := strings.Split(valid, ".")
	tamperedClaims := f.claims(aud)
	tamperedClaims["sub"] = "system:serviceaccount:shop:admin"
	flip := func(s string) string {
		b := []byte(s)
		i := len(b) / 2
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	gone := token(t, "shop", "gone", aud)
	deleteServiceAccount(t, "shop", "gone", gone, aud)

	tests := []struct {
		name   string
		base   string // offlineURL when empty
		topic  string // topicOrders when empty
		typ    string
		query  string
		authz  []string
		extra  map[string]string
		status int
		reason string
	}{
		{name: "no Authorization header", status: 401, reason: "missing"},
		{name: "empty Authorization header", authz: []string{""}, status: 401, reason: "missing"},
		{name: "Bearer alone", authz: []string{"Bearer"}, status: 401, reason: "malformed"},
		{name: "Bearer and spaces", authz: []string{"Bearer    "}, status: 401, reason: "malformed"},
		{name: "basic credentials", authz: []string{"Basic c2hvcDphOnNlY3JldA=="}, status: 401, reason: "malformed"},
		{name: "token without scheme", authz: []string{valid}, status: 401, reason: "malformed"},
		{name: "two Authorization headers", authz: []string{"Bearer " + valid, "Bearer " + valid}, status: 401, reason: "malformed"},
		{name: "not a JWT", authz: bearer("opensesame"), status: 401, reason: "malformed"},
		{name: "two-part JWT", authz: bearer(parts[0] + "." + parts[1]), status: 401, reason: "malformed"},
		{name: "four-part JWT", authz: bearer(valid + ".x"), status: 401, reason: "malformed"},
		{name: "bad base64 header", authz: bearer("e." + parts[1] + "." + parts[2]), status: 401, reason: "malformed"},
		{name: "header not JSON", authz: bearer(b64([]byte("not json")) + "." + parts[1] + "." + parts[2]), status: 401, reason: "malformed"},
		{name: "character outside token68", authz: []string{"Bearer " + parts[0] + ".%%%." + parts[2]}, status: 401, reason: "malformed"},
		{name: "token above 16 KiB", authz: bearer(strings.Repeat("a", 17<<10)), status: 401, reason: "malformed"},
		{name: "alg none", authz: bearer(raw(t, map[string]any{"alg": "none", "kid": f.kid}, f.claims(aud), nil)), status: 401, reason: "bad_signature"},
		{name: "HS256 keyed with the public key", authz: bearer(raw(t, map[string]any{"alg": "HS256", "kid": f.kid, "typ": "JWT"}, f.claims(aud), f.pubPEM)), status: 401, reason: "bad_signature"},
		{name: "another key of the same type under the real key id", authz: bearer(f.sign(t, f.other, f.kid, f.claims(aud))), status: 401, reason: "bad_signature"},
		{name: "RS256 by another key under the real key id", authz: bearer(f.sign(t, f.rsaKey, f.kid, f.claims(aud))), status: 401, reason: "bad_signature"},
		{name: "RS256 by another key under an unknown key id", authz: bearer(f.sign(t, f.other, "unknown", f.claims(aud))), status: 401, reason: "bad_signature"},
		{name: "no key id, another key", authz: bearer(f.sign(t, f.other, "", f.claims(aud))), status: 401, reason: "bad_signature"},
		{name: "signature altered", authz: bearer(parts[0] + "." + parts[1] + "." + flip(parts[2])), status: 401, reason: "bad_signature"},
		{name: "claims altered, signature kept", authz: bearer(parts[0] + "." + strings.Split(f.valid(t, aud, func(c map[string]any) { c["sub"] = "system:serviceaccount:shop:admin" }), ".")[1] + "." + parts[2]), status: 401, reason: "bad_signature"},
		{name: "wrong issuer", authz: bearer(f.valid(t, aud, func(c map[string]any) { c["iss"] = "https://evil.example" })), status: 401, reason: "unknown_issuer"},
		{name: "legacy Secret-based token issuer", authz: bearer(f.valid(t, aud, func(c map[string]any) { c["iss"] = "kubernetes/serviceaccount" })), status: 401, reason: "unknown_issuer"},
		{name: "wrong audience, issued by the API server", authz: bearer(token(t, "shop", "a", "https://kubernetes.default.svc")), status: 401, reason: "wrong_audience"},
		{name: "another Topic's audience", authz: bearer(token(t, "shop", "a", plan.TopicAudience("shop", topicTyped))), status: 401, reason: "wrong_audience"},
		{name: "no audience", authz: bearer(f.valid(t, aud, func(c map[string]any) { delete(c, "aud") })), status: 401, reason: "wrong_audience"},
		{name: "expired", authz: bearer(f.valid(t, aud, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), status: 401, reason: "expired"},
		{name: "not yet valid", authz: bearer(f.valid(t, aud, func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), status: 401, reason: "not_yet_valid"},
		{name: "no expiry", authz: bearer(f.valid(t, aud, func(c map[string]any) { delete(c, "exp") })), status: 401, reason: "malformed"},
		{name: "no subject", authz: bearer(f.valid(t, aud, func(c map[string]any) { delete(c, "sub") })), status: 401, reason: "malformed"},
		{name: "audience a number", authz: bearer(f.valid(t, aud, func(c map[string]any) { c["aud"] = 7 })), status: 401, reason: "malformed"},
		{name: "token in the query string only", query: "access_token=" + valid, status: 401, reason: "missing"},
		{name: "token in another header only", extra: map[string]string{"X-Auth-Token": valid}, status: 401, reason: "missing"},
		// net/http's default MaxHeaderBytes (1 MiB plus slack) lets it
		// through; the ingress refuses tokens above 16 KiB unread.
		{name: "1 MiB Authorization header", authz: []string{"Bearer " + strings.Repeat("a", 1<<20-len("Bearer "))}, status: 401, reason: "malformed"},
		{name: "2 MiB Authorization header", authz: []string{"Bearer " + strings.Repeat("a", 2<<20)}, status: 431},
		{name: "another namespace under allow-same-namespace", authz: bearer(otherNS), status: 403, reason: "forbidden"},
		{name: "deny-all", topic: topicLocked, authz: bearer(token(t, "shop", "a", plan.TopicAudience("shop", topicLocked))), status: 403, reason: "forbidden"},
		{name: "publisher filter refusing the type", topic: topicTyped, typ: "shop.refund", authz: bearer(token(t, "shop", "a", plan.TopicAudience("shop", topicTyped))), status: 403, reason: "forbidden"},
		{name: "ServiceAccount not among the publishers", topic: topicTyped, typ: "shop.order.created", authz: bearer(token(t, "shop", "b", plan.TopicAudience("shop", topicTyped))), status: 403, reason: "forbidden"},
		{name: "TokenReview: deleted ServiceAccount", base: reviewURL, authz: bearer(gone), status: 401, reason: "revoked"},
		{name: "TokenReview: another key", base: reviewURL, authz: bearer(f.sign(t, f.other, f.kid, f.claims(aud))), status: 401, reason: "bad_signature"},
		{name: "TokenReview: expired", base: reviewURL, authz: bearer(f.valid(t, aud, func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), status: 401, reason: "expired"},
		{name: "TokenReview: wrong audience", base: reviewURL, authz: bearer(token(t, "shop", "a", "elsewhere")), status: 401, reason: "wrong_audience"},
		{name: "TokenReview: alg none", base: reviewURL, authz: bearer(raw(t, map[string]any{"alg": "none"}, f.claims(aud), nil)), status: 401, reason: "bad_signature"},
		{name: "TokenReview: another namespace", base: reviewURL, authz: bearer(otherNS), status: 403, reason: "forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, topic, typ := tc.base, tc.topic, tc.typ
			if base == "" {
				base = offlineURL
			}
			if topic == "" {
				topic = topicOrders
			}
			if typ == "" {
				typ = "shop.order.created"
			}
			before := streamMsgs(t, topic)
			a := publish(t, base, topic, typ, tc.query, tc.authz, tc.extra)
			if a.status != tc.status || a.reason != tc.reason {
				t.Fatalf("answer %d %q, want %d with reason %q", a.status, strings.TrimSpace(a.body), tc.status, tc.reason)
			}
			if after := streamMsgs(t, topic); after != before {
				t.Fatalf("stream holds %d messages, %d before", after, before)
			}
			switch {
			case tc.status == 401 && tc.reason == "missing":
				if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="herald"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
			case tc.status == 401:
				if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="herald", error="invalid_token", error_description="`) {
					t.Errorf("WWW-Authenticate %q", got)
				}
			}
		})
	}
	if len(tests) < 30 {
		t.Fatalf("%d cases, the suite promises at least 30", len(tests))
	}
}

// TestAccepted: valid tokens from the TokenRequest API are accepted and
// the event stored, by both verifiers; the Bearer scheme is matched
// without regard to case (RFC 7235).
func TestAccepted(t *testing.T) {
	aud := plan.TopicAudience("shop", topicOrders)
	for _, c := range []struct {
		name, base, scheme string
	}{
		{"offline", offlineURL, "Bearer "},
		{"offline, lower-case scheme", offlineURL, "bearer "},
		{"TokenReview", reviewURL, "Bearer "},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := streamMsgs(t, topicOrders)
			a := publish(t, c.base, topicOrders, "shop.order.created", "", []string{c.scheme + token(t, "shop", "b", aud)}, nil)
			if a.status != http.StatusAccepted {
				t.Fatalf("answer %d %s", a.status, a.body)
			}
			if after := streamMsgs(t, topicOrders); after != before+1 {
				t.Fatalf("stream holds %d messages, want %d", after, before+1)
			}
		})
	}
}

// TestPublisherFilter: a publisher admitted for some event types publishes
// those and is refused the others, naming the rule.
func TestPublisherFilter(t *testing.T) {
	tok := token(t, "shop", "a", plan.TopicAudience("shop", topicTyped))
	before := streamMsgs(t, topicTyped)
	if a := publish(t, offlineURL, topicTyped, "shop.order.created", "", bearer(tok), nil); a.status != http.StatusAccepted {
		t.Fatalf("allowed type: %d %s", a.status, a.body)
	}
	a := publish(t, offlineURL, topicTyped, "shop.refund", "", bearer(tok), nil)
	want := `publishers[0] admits system:serviceaccount:shop:a only for events matching its filters; this event of type \"shop.refund\" does not`
	if a.status != http.StatusForbidden || !strings.Contains(a.body, want) {
		t.Fatalf("other type: %d %s, want 403 with %s", a.status, a.body, want)
	}
	if after := streamMsgs(t, topicTyped); after != before+1 {
		t.Fatalf("stream holds %d messages, want %d", after, before+1)
	}
}

// TestVerifiedTokenCached: a token is checked once; sending it again costs
// no signature check, no key fetch and no TokenReview.
func TestVerifiedTokenCached(t *testing.T) {
	aud := plan.TopicAudience("shop", topicOrders)
	for _, c := range []struct {
		name string
		base string
		v    *auth.KubernetesVerifier
	}{{"offline", offlineURL, offline}, {"TokenReview", reviewURL, review}} {
		t.Run(c.name, func(t *testing.T) {
			tok := token(t, "shop", "b", aud)
			checks := c.v.Checks()
			if a := publish(t, c.base, topicOrders, "shop.order.created", "", bearer(tok), nil); a.status != http.StatusAccepted {
				t.Fatalf("first: %d %s", a.status, a.body)
			}
			if got := c.v.Checks(); got != checks+1 {
				t.Fatalf("first request: %d checks, want 1", got-checks)
			}
			fetches := c.v.KeyFetches()
			for range 3 {
				if a := publish(t, c.base, topicOrders, "shop.order.created", "", bearer(tok), nil); a.status != http.StatusAccepted {
					t.Fatalf("again: %d %s", a.status, a.body)
				}
			}
			if got := c.v.Checks(); got != checks+1 {
				t.Fatalf("requests with the same token made %d more checks, want none", got-checks-1)
			}
			if got := c.v.KeyFetches(); got != fetches {
				t.Fatalf("requests with the same token fetched the keys %d times", got-fetches)
			}
		})
	}
}

// TestOfflineCannotSeeDeletion documents the limit of offline
// verification: the token of a deleted ServiceAccount stays valid until it
// expires, while TokenReview refuses it.
func TestOfflineCannotSeeDeletion(t *testing.T) {
	tok := token(t, "shop", "gone-offline", plan.TopicAudience("shop", topicOrders))
	deleteServiceAccount(t, "shop", "gone-offline", tok, plan.TopicAudience("shop", topicOrders))
	if a := publish(t, offlineURL, topicOrders, "shop.order.created", "", bearer(tok), nil); a.status != http.StatusAccepted {
		t.Fatalf("offline: %d %s, want 202", a.status, a.body)
	}
	if a := publish(t, reviewURL, topicOrders, "shop.order.created", "", bearer(tok), nil); a.status != http.StatusUnauthorized || a.reason != "revoked" {
		t.Fatalf("TokenReview: %d %s, want 401 revoked", a.status, a.body)
	}
}

// TestAPIServerUnreachable: when neither the keys nor the TokenReview API
// can be reached, tokens are not refused but reported unavailable.
func TestAPIServerUnreachable(t *testing.T) {
	cfg := rest.CopyConfig(env.Config)
	cfg.Host = "https://127.0.0.1:1" // nothing listens on port 1
	v, err := auth.NewKubernetesVerifier(cfg, auth.KubernetesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	_, err = v.Verify(ctx, token(t, "shop", "a", "x"), "x")
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Reason != auth.ReasonUnavailable {
		t.Fatalf("Verify error %v, want reason unavailable", err)
	}
}

// TestVerifierAsServiceAccount: a dispatcher authenticated as a
// ServiceAccount without any binding of its own verifies tokens offline
// (every ServiceAccount may read the issuer's discovery document and
// keys), while the TokenReview API, which it may not use, answers
// unavailable rather than refusing the token.
func TestVerifierAsServiceAccount(t *testing.T) {
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token(t, "other", "x", "")
	aud := plan.TopicAudience("shop", topicOrders)
	tok := token(t, "shop", "a", aud)

	v, err := auth.NewKubernetesVerifier(cfg, auth.KubernetesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Discover(t.Context()); err != nil {
		t.Fatalf("discovery as a ServiceAccount: %v", err)
	}
	if id, err := v.Verify(t.Context(), tok, aud); err != nil || id.Subject != "system:serviceaccount:shop:a" {
		t.Fatalf("offline as a ServiceAccount: %+v, %v", id, err)
	}

	rv, err := auth.NewKubernetesVerifier(cfg, auth.KubernetesOptions{TokenReview: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = rv.Verify(t.Context(), tok, aud)
	var ae *auth.Error
	if !errors.As(err, &ae) || ae.Reason != auth.ReasonUnavailable || !strings.Contains(ae.Message, "403") {
		t.Fatalf("TokenReview without permission: %v, want unavailable (403)", err)
	}
}

// TestUnknownKeyIDsDoNotHammerTheAPIServer: tokens naming unknown keys
// make the verifier look for new keys, at most once per ten seconds; in
// between they are checked against the keys last fetched.
func TestUnknownKeyIDsDoNotHammerTheAPIServer(t *testing.T) {
	f := newForger(t)
	aud := plan.TopicAudience("shop", topicOrders)
	v, err := auth.NewKubernetesVerifier(env.Config, auth.KubernetesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), token(t, "shop", "a", aud), aud); err != nil {
		t.Fatal(err)
	}
	fetches := v.KeyFetches()
	if fetches != 1 {
		t.Fatalf("%d key fetches for the first token, want 1", fetches)
	}
	for i := range 5 {
		_, err := v.Verify(t.Context(), f.sign(t, f.other, "unknown-"+string(rune('a'+i)), f.claims(aud)), aud)
		var ae *auth.Error
		if !errors.As(err, &ae) || ae.Reason != auth.ReasonBadSignature {
			t.Fatalf("unknown key id: %v", err)
		}
	}
	if got := v.KeyFetches(); got != fetches {
		t.Fatalf("tokens with unknown key ids fetched the keys %d more times", got-fetches)
	}
}
