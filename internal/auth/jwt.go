package auth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SigningAlgorithms are the JWS algorithms a token may be signed with: the
// asymmetric ones only. "none" and the HMAC algorithms (HS256...) are
// refused whatever key set is in use, so a public key can never be used as
// a shared secret.
var SigningAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// clockSkew is the leeway applied to exp and nbf, as the kube-apiserver
// applies to the tokens it checks.
const clockSkew = time.Minute

// jwtHeader is the part of a JWS header looked at before the signature.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// claims are the registered claims Herald checks.
type claims struct {
	Issuer    string       `json:"iss"`
	Subject   string       `json:"sub"`
	Audience  audience     `json:"aud"`
	Expiry    *numericDate `json:"exp"`
	NotBefore *numericDate `json:"nbf"`
}

// audience is the aud claim, a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return fmt.Errorf("aud is neither a string nor an array of strings")
	}
	*a = l
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly
// fractional.
type numericDate float64

func (n numericDate) time() time.Time {
	sec := float64(n)
	return time.Unix(int64(sec), int64((sec-float64(int64(sec)))*1e9))
}

// parsedJWT is a compact JWS split and decoded, its signature unchecked.
type parsedJWT struct {
	header jwtHeader
	claims claims
}

// parseJWT decodes token's header and claims without checking the
// signature. Refusals are ReasonMalformed, and ReasonBadSignature for an
// algorithm outside SigningAlgorithms.
func parseJWT(token string) (*parsedJWT, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, malformed(fmt.Sprintf("token is not a JWT: %d dot-separated parts instead of 3", len(parts)))
	}
	if parts[2] == "" {
		return nil, &Error{Reason: ReasonBadSignature, Message: "token is not signed"}
	}
	var p parsedJWT
	if err := decodeSegment(parts[0], &p.header); err != nil {
		return nil, malformed("token header: " + err.Error())
	}
	if !slices.Contains(SigningAlgorithms, p.header.Alg) {
		return nil, &Error{Reason: ReasonBadSignature, Message: fmt.Sprintf("signing algorithm %q is not accepted (only %s)", truncate(p.header.Alg, 16), strings.Join(SigningAlgorithms, ", "))}
	}
	if err := decodeSegment(parts[1], &p.claims); err != nil {
		return nil, malformed("token claims: " + err.Error())
	}
	return &p, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON object of the expected claims")
	}
	return nil
}

// checkTime refuses a token without exp, expired, or not yet valid at now,
// with clockSkew either way.
func (c *claims) checkTime(now time.Time) error {
	if c.Expiry == nil {
		return malformed("token has no expiry (exp)")
	}
	if exp := c.Expiry.time(); now.After(exp.Add(clockSkew)) {
		return &Error{Reason: ReasonExpired, Message: "token expired at " + exp.UTC().Format(time.RFC3339)}
	}
	if c.NotBefore != nil {
		if nbf := c.NotBefore.time(); now.Add(clockSkew).Before(nbf) {
			return &Error{Reason: ReasonNotYetValid, Message: "token is not valid before " + nbf.UTC().Format(time.RFC3339)}
		}
	}
	return nil
}

// checkAudience refuses a token whose aud does not include want.
func (c *claims) checkAudience(want string) error {
	if slices.Contains(c.Audience, want) {
		return nil
	}
	shown := c.Audience
	if len(shown) > 4 {
		shown = shown[:4]
	}
	aud := make([]string, len(shown))
	for i, a := range shown {
		aud[i] = truncate(a, 128)
	}
	return &Error{Reason: ReasonWrongAudience, Message: fmt.Sprintf("token audience %q does not include %s", aud, want)}
}

// check is checkTime, checkAudience and a non-empty subject.
func (c *claims) check(now time.Time, audience string) error {
	if err := c.checkTime(now); err != nil {
		return err
	}
	if err := c.checkAudience(audience); err != nil {
		return err
	}
	if c.Subject == "" {
		return malformed("token has no subject (sub)")
	}
	return nil
}

func malformed(msg string) *Error { return &Error{Reason: ReasonMalformed, Message: msg} }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
