package auth

import (
	"net/http"
	"strings"
)

// MaxTokenSize bounds the length of a bearer token the ingress looks at; a
// Kubernetes ServiceAccount token is one to two KiB.
const MaxTokenSize = 16 << 10

// BearerToken returns the token of h's Authorization header, whose scheme
// is Bearer in any case (RFC 7235 makes auth-schemes case-insensitive).
// Tokens are only read from this header, never from the query string or
// the body. A refusal is an *Error: ReasonMissing without the header (or
// with an empty one), ReasonMalformed for another scheme, an empty token,
// several Authorization headers, a token above MaxTokenSize or one with
// characters outside token68 (RFC 6750 §2.1).
func BearerToken(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", &Error{Reason: ReasonMissing, Message: "no bearer token: send Authorization: Bearer <token>"}
	case len(vals) > 1:
		return "", &Error{Reason: ReasonMalformed, Message: "more than one Authorization header"}
	}
	return ParseBearer(vals[0])
}

// ParseBearer is BearerToken for the value of one Authorization header.
func ParseBearer(v string) (string, error) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", &Error{Reason: ReasonMissing, Message: "no bearer token: send Authorization: Bearer <token>"}
	}
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		if len(scheme) > 32 {
			scheme = scheme[:32] + "..."
		}
		return "", &Error{Reason: ReasonMalformed, Message: "authorization scheme " + quoteScheme(scheme) + " is not Bearer"}
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", &Error{Reason: ReasonMalformed, Message: "empty bearer token"}
	case len(token) > MaxTokenSize:
		return "", &Error{Reason: ReasonMalformed, Message: "bearer token longer than 16 KiB"}
	}
	for i := 0; i < len(token); i++ {
		if !isToken68(token[i]) {
			return "", &Error{Reason: ReasonMalformed, Message: "bearer token holds a character outside base64url, '.', '~', '+', '/' and '='"}
		}
	}
	return token, nil
}

func isToken68(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
}

// quoteScheme quotes a scheme for a message, printable ASCII only.
func quoteScheme(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			b = append(b, '?')
			continue
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}
