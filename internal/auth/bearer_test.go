package auth

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []string
		token  string
		reason Reason
	}{
		{"no header", nil, "", ReasonMissing},
		{"empty header", []string{""}, "", ReasonMissing},
		{"bearer", []string{"Bearer abc.def.ghi"}, "abc.def.ghi", ""},
		{"lower-case scheme", []string{"bearer abc"}, "abc", ""},
		{"scheme alone", []string{"Bearer"}, "", ReasonMalformed},
		{"scheme and space", []string{"Bearer  "}, "", ReasonMalformed},
		{"basic", []string{"Basic dXNlcjpwYXNz"}, "", ReasonMalformed},
		{"two headers", []string{"Bearer a", "Bearer b"}, "", ReasonMalformed},
		{"space inside", []string{"Bearer a b"}, "", ReasonMalformed},
		{"control character", []string{"Bearer a\x01b"}, "", ReasonMalformed},
		{"too long", []string{"Bearer " + strings.Repeat("a", MaxTokenSize+1)}, "", ReasonMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.values {
				h.Add("Authorization", v)
			}
			tok, err := BearerToken(h)
			var ae *Error
			switch {
			case c.reason == "" && (err != nil || tok != c.token):
				t.Fatalf("BearerToken = %q, %v; want %q", tok, err, c.token)
			case c.reason != "" && (!errors.As(err, &ae) || ae.Reason != c.reason):
				t.Fatalf("BearerToken error = %v; want reason %s", err, c.reason)
			}
		})
	}
}

// FuzzVerify feeds arbitrary Authorization values through bearer parsing
// and verification: nothing but a token the issuer minted is accepted, and
// every refusal is an *Error with a reason.
func FuzzVerify(f *testing.F) {
	l, err := NewLocalIssuer(f.TempDir(), "herald-dev", "system:serviceaccount:default:herald")
	if err != nil {
		f.Fatal(err)
	}
	valid, err := l.Mint("system:serviceaccount:shop:a", "aud", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "Bearer", "Bearer ", "bearer x", "Basic abc", "Bearer a.b", "Bearer a.b.c",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
		"Bearer " + valid, "Bearer " + valid + "x", "Bearer " + valid[:len(valid)-2]} {
		f.Add(s)
	}
	v := l.Verifier()
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := ParseBearer(header)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || ae.Reason == "" {
				t.Fatalf("ParseBearer(%q) error without a reason: %v", header, err)
			}
			return
		}
		id, err := v.Verify(t.Context(), tok, "aud")
		if err == nil {
			// Only the minted token's content verifies (base64url's unused
			// trailing bits may differ).
			if id.Subject != "system:serviceaccount:shop:a" {
				t.Fatalf("accepted %q as %+v", tok, id)
			}
			return
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Reason == "" || ae.Reason == ReasonUnavailable {
			t.Fatalf("Verify(%q) error %v", tok, err)
		}
	})
}
