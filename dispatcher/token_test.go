package dispatcher

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/plan"
)

// testIssuer is a TokenSource minting HS256 JWTs for the Sender of the
// context, and the verifier of what it mints. With fail set it refuses.
type testIssuer struct {
	key   []byte
	fail  atomic.Bool
	calls atomic.Int64
}

func newTestIssuer(t *testing.T) *testIssuer {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: key}
}

type testClaims struct {
	Sub string   `json:"sub"`
	Aud []string `json:"aud"`
	Exp int64    `json:"exp"`
}

func (i *testIssuer) Token(ctx context.Context, audience string) (string, error) {
	i.calls.Add(1)
	if i.fail.Load() {
		return "", errors.New("issuer unavailable")
	}
	s, ok := auth.SenderFrom(ctx)
	if !ok {
		return "", errors.New("no sender")
	}
	payload, err := json.Marshal(testClaims{Sub: plan.ServiceAccountSubject(s.Namespace, s.Name), Aud: []string{audience}, Exp: time.Now().Add(time.Hour).Unix()})
	if err != nil {
		return "", err
	}
	signed := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(i.sign(signed)), nil
}

func (i *testIssuer) sign(s string) []byte {
	m := hmac.New(sha256.New, i.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// subject verifies the bearer token of h for audience and returns its subject.
func (i *testIssuer) subject(h http.Header, audience string) (string, error) {
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok {
		return "", fmt.Errorf("no bearer token in %q", h.Get("Authorization"))
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, i.sign(parts[0]+"."+parts[1])) {
		return "", errors.New("bad signature")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c testClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", err
	}
	if !slices.Contains(c.Aud, audience) || time.Now().Unix() > c.Exp {
		return "", fmt.Errorf("audience %v or expiry %d wrong for %s", c.Aud, c.Exp, audience)
	}
	return c.Sub, nil
}

// TestDeliveriesPresentTokens: deliveries, replies and dead letters carry a
// token for their destination's audience, minted as the Topic's dispatcher;
// a destination without an audience gets none.
func TestDeliveriesPresentTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	iss := newTestIssuer(t)
	r := e.start(nil, Options{Tokens: iss})
	sub := newSink(t, replyBinary(200))
	replies := newSink(t, nil)
	failing := newSink(t, respondSeq(400))
	dls := newSink(t, nil)
	plain := newSink(t, nil)
	res := e.provision(newTopic("tokens"), []subscription{
		{name: "replying", uri: sub.url(), reply: replies.url(), subscriberAudience: "sub-aud", replyAudience: "eventing.herald.dev/topic/default/replies"},
		{name: "failing", uri: failing.url(), deadLetter: dls.url(), subscriberAudience: "failing-aud", deadLetterAudience: "dls-aud"},
		{name: "plain", uri: plain.url()},
	}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/tokens", "ev")
	for _, c := range []string{"sub_replying", "sub_failing", "sub_plain"} {
		waitSettled(t, e, res.Plan.Stream, c)
	}
	const want = "system:serviceaccount:default:tokens-dispatcher"
	for _, c := range []struct {
		name     string
		s        *sink
		audience string
	}{
		{"subscriber", sub, "sub-aud"},
		{"reply", replies, "eventing.herald.dev/topic/default/replies"},
		{"failing subscriber", failing, "failing-aud"},
		{"dead-letter sink", dls, "dls-aud"},
	} {
		got := c.s.requests()
		if len(got) != 1 {
			t.Errorf("%s got %d requests, want 1", c.name, len(got))
			continue
		}
		if subject, err := iss.subject(got[0].header, c.audience); err != nil || subject != want {
			t.Errorf("%s: token subject %q, %v; want %s", c.name, subject, err, want)
		}
	}
	if got := plain.requests(); len(got) != 1 || got[0].header.Get("Authorization") != "" {
		t.Errorf("subscriber without an audience: %d requests, Authorization %q; want 1 without", len(got), got[0].header.Get("Authorization"))
	}
}

// TestNoTokenIsRetriedNeverSentNorDropped: while no token can be obtained,
// the event is neither sent without one nor dead-lettered, however many
// attempts fail; once tokens come back it is delivered.
func TestNoTokenIsRetriedNeverSentNorDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	iss := newTestIssuer(t)
	iss.fail.Store(true)
	r := e.start(nil, Options{Tokens: iss})
	sub := newSink(t, nil)
	dls := newSink(t, nil)
	res := e.provision(newTopic("notoken"), []subscription{
		{name: "s", uri: sub.url(), deadLetter: dls.url(), subscriberAudience: "sub-aud"},
	}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/notoken", "ev")
	// fastRetry(3): four attempts would exhaust the policy.
	eventually(t, 15*time.Second, func() bool { return iss.calls.Load() >= 8 }, "eight attempts at a token")
	if sub.count() != 0 || dls.count() != 0 {
		t.Fatalf("without a token: subscriber got %d, dead-letter sink %d requests; want none", sub.count(), dls.count())
	}
	iss.fail.Store(false)
	waitSettled(t, e, res.Plan.Stream, "sub_s")
	if got := sub.requests(); len(got) != 1 || dls.count() != 0 {
		t.Fatalf("with tokens back: subscriber got %d, dead-letter sink %d requests; want 1, 0", len(got), dls.count())
	}
	if subject, err := iss.subject(sub.requests()[0].header, "sub-aud"); err != nil || subject != "system:serviceaccount:default:notoken-dispatcher" {
		t.Fatalf("token subject %q, %v", subject, err)
	}
}
