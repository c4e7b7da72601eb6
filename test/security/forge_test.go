package security

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// forger signs tokens with arbitrary claims, by the API server's own key
// (envtest's ServiceAccount signing key) or by another.
type forger struct {
	// key is the API server's signing key, other one of the same type.
	key, other any
	// alg is the algorithm of key; rsaKey is an RSA key the API server
	// does not know.
	alg    jose.SignatureAlgorithm
	rsaKey *rsa.PrivateKey
	pubPEM []byte
	kid    string
	issuer string
}

func newForger(t *testing.T) *forger {
	t.Helper()
	b, err := os.ReadFile(env.ServiceAccountSigningKey)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block in the signing key")
	}
	f := &forger{}
	switch block.Type {
	case "RSA PRIVATE KEY":
		f.key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		f.key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		f.key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	var pub any
	switch k := f.key.(type) {
	case *rsa.PrivateKey:
		f.alg, f.other, pub = jose.RS256, f.rsaKey, &k.PublicKey
	case *ecdsa.PrivateKey:
		f.alg, pub = jose.ES256, &k.PublicKey
		if f.other, err = ecdsa.GenerateKey(k.Curve, rand.Reader); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("signing key of type %T", f.key)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	// Issuer and key id as the API server writes them.
	real := token(t, "shop", "a", "forger")
	parts := strings.Split(real, ".")
	var h struct{ Kid string }
	var c struct{ Iss string }
	decodeJSON(t, parts[0], &h)
	decodeJSON(t, parts[1], &c)
	f.kid, f.issuer = h.Kid, c.Iss
	return f
}

func decodeJSON(t *testing.T, seg string, v any) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// claims are those of a valid token of ServiceAccount shop/a for audience.
func (f *forger) claims(audience string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": f.issuer,
		"sub": "system:serviceaccount:shop:a",
		"aud": []string{audience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

// sign signs claims by key (f.key, f.other or f.rsaKey) under key id kid.
func (f *forger) sign(t *testing.T, key any, kid string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	alg := f.alg
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = jose.RS256
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// valid is a token of shop/a for audience signed by the API server's key.
func (f *forger) valid(t *testing.T, audience string, edit func(map[string]any)) string {
	c := f.claims(audience)
	if edit != nil {
		edit(c)
	}
	return f.sign(t, f.key, f.kid, c)
}

// raw assembles a compact JWS from a header and claims, signed with
// HMAC-SHA256 by secret, or unsigned when secret is nil.
func raw(t *testing.T, header, claims map[string]any, secret []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64(h) + "." + b64(c)
	if secret == nil {
		return signing + "."
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
