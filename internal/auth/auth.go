// Package auth is Herald's identity layer: verifying the bearer tokens
// producers present to a Topic's ingress (Verifier) and obtaining the
// tokens Herald's own components present to the Topics and subscribers they
// send to (TokenSource). Tokens are Kubernetes ServiceAccount tokens (or,
// in herald dev, tokens of a local issuer): JWTs whose subject is
// system:serviceaccount:<namespace>:<name> and whose audience names the
// receiver.
package auth

import (
	"context"
	"time"
)

// Identity is what a verified token says about its holder.
type Identity struct {
	// Subject is the token's sub claim, for a ServiceAccount
	// system:serviceaccount:<namespace>:<name>.
	Subject string
	// Issuer is the token's iss claim.
	Issuer string
	// Expiry is when the token stops being valid.
	Expiry time.Time
}

// Verifier checks bearer tokens.
type Verifier interface {
	// Verify returns the identity of token if it is valid now for
	// audience. A refusal is an *Error.
	Verify(ctx context.Context, token, audience string) (Identity, error)
}

// TokenSource obtains the tokens Herald presents to receivers.
type TokenSource interface {
	// Token returns a valid token for audience, cached until shortly
	// before it expires.
	Token(ctx context.Context, audience string) (string, error)
}

// Reason says why a token was refused, in the error answers and metrics.
type Reason string

// Reasons of a refused token.
const (
	ReasonMissing       Reason = "missing"
	ReasonMalformed     Reason = "malformed"
	ReasonExpired       Reason = "expired"
	ReasonNotYetValid   Reason = "not_yet_valid"
	ReasonWrongAudience Reason = "wrong_audience"
	ReasonBadSignature  Reason = "bad_signature"
	ReasonUnknownIssuer Reason = "unknown_issuer"
	ReasonRevoked       Reason = "revoked"
	ReasonUnavailable   Reason = "unavailable"
)

// Error is a refused token: Reason for machines, Message for people, e.g.
// "token audience [x] does not include eventing.herald.dev/topic/shop/orders".
// ReasonUnavailable means the token could not be checked (keys or the
// TokenReview API unreachable): the ingress answers 503, not 401.
type Error struct {
	Reason  Reason
	Message string
}

func (e *Error) Error() string { return e.Message }

type senderKey struct{}

// Sender is the ServiceAccount a Herald component sends as.
type Sender struct {
	Namespace string
	Name      string
}

// WithSender returns ctx saying which ServiceAccount a request is sent on
// behalf of (for example the dispatcher of Topic shop/orders sends as
// shop/orders-dispatcher). A TokenSource minting for one identity, such as
// a Pod's own ServiceAccount, ignores it; one minting for several, such as
// herald dev's local issuer, mints for this Sender.
func WithSender(ctx context.Context, s Sender) context.Context {
	return context.WithValue(ctx, senderKey{}, s)
}

// SenderFrom returns the Sender set by WithSender.
func SenderFrom(ctx context.Context) (Sender, bool) {
	s, ok := ctx.Value(senderKey{}).(Sender)
	return s, ok
}
