package sources

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what some webhook senders sign with.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// GitHubSignatureHeader is the header GitHub signs webhook deliveries in.
const GitHubSignatureHeader = "X-Hub-Signature-256"

// Signature check outcomes; both answer 401.
var (
	ErrSignatureMissing = errors.New("signature header missing")
	ErrSignatureInvalid = errors.New("signature invalid")
)

// verifier checks the HMAC signature of a request body.
type verifier struct {
	header   string
	prefix   string
	encoding string
	newHash  func() hash.Hash
	key      []byte
}

// newVerifier returns the verifier of sig with key, or nil for no sig.
func newVerifier(sig *v1alpha1.WebhookSignature, key []byte) (*verifier, error) {
	if sig == nil {
		return nil, nil
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("webhook signature: the HMAC key is empty (%s)", EnvWebhookSecret)
	}
	switch sig.Type {
	case v1alpha1.SignatureGitHub:
		return &verifier{header: GitHubSignatureHeader, prefix: "sha256=", encoding: "hex", newHash: sha256.New, key: key}, nil
	case v1alpha1.SignatureHMAC:
	default:
		return nil, fmt.Errorf("webhook signature type %q: want github or hmac", sig.Type)
	}
	if sig.Header == "" {
		return nil, errors.New("webhook signature of type hmac needs header")
	}
	v := &verifier{header: sig.Header, prefix: sig.Prefix, encoding: sig.Encoding, key: key}
	switch sig.Algorithm {
	case "", "sha256":
		v.newHash = sha256.New
	case "sha1":
		v.newHash = sha1.New
	case "sha512":
		v.newHash = sha512.New
	default:
		return nil, fmt.Errorf("webhook signature algorithm %q: want sha1, sha256 or sha512", sig.Algorithm)
	}
	switch v.encoding {
	case "":
		v.encoding = "hex"
	case "hex", "base64":
	default:
		return nil, fmt.Errorf("webhook signature encoding %q: want hex or base64", sig.Encoding)
	}
	return v, nil
}

// Sign returns the header value that signs body.
func (v *verifier) Sign(body []byte) string {
	mac := hmac.New(v.newHash, v.key)
	mac.Write(body)
	sum := mac.Sum(nil)
	if v.encoding == "base64" {
		return v.prefix + base64.StdEncoding.EncodeToString(sum)
	}
	return v.prefix + hex.EncodeToString(sum)
}

// Verify checks the signature of body in h, in constant time.
func (v *verifier) Verify(h http.Header, body []byte) error {
	got := strings.TrimSpace(h.Get(v.header))
	if got == "" {
		return fmt.Errorf("%w: %s", ErrSignatureMissing, v.header)
	}
	if v.prefix != "" {
		if !strings.HasPrefix(got, v.prefix) {
			return fmt.Errorf("%w: %s does not start with %q", ErrSignatureInvalid, v.header, v.prefix)
		}
		got = got[len(v.prefix):]
	}
	var sig []byte
	var err error
	if v.encoding == "base64" {
		sig, err = base64.StdEncoding.DecodeString(got)
		if err != nil {
			sig, err = base64.URLEncoding.DecodeString(got)
		}
	} else {
		sig, err = hex.DecodeString(got)
	}
	if err != nil {
		return fmt.Errorf("%w: %s is not %s", ErrSignatureInvalid, v.header, v.encoding)
	}
	mac := hmac.New(v.newHash, v.key)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return fmt.Errorf("%w: %s does not match the body", ErrSignatureInvalid, v.header)
	}
	return nil
}

func validateWebhook(s *v1alpha1.WebhookSource, secret []byte) error {
	_, err := newVerifier(s.Signature, secret)
	return err
}
