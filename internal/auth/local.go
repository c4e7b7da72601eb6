package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/herald-dev/herald/plan"
)

// LocalKeyFile is the file of a LocalIssuer's private key in its directory.
const LocalKeyFile = "issuer-key.pem"

// localTokenTTL is the lifetime of the tokens a LocalIssuer's TokenSource
// mints; they are reused until half of it is left.
const localTokenTTL = time.Hour

// LocalIssuer is a token issuer without a cluster, for herald dev and
// tests: an ECDSA P-256 key pair kept in a directory, whose tokens look
// like ServiceAccount tokens (subject system:serviceaccount:<ns>:<name>)
// and are checked by the same offline code path as a cluster's.
type LocalIssuer struct {
	name    string
	key     *ecdsa.PrivateKey
	signer  jose.Signer
	checks  atomic.Uint64
	jwt     *jwtVerifier
	cache   *tokenCache
	minted  sync.Map // mintKey -> mintedToken
	subject string
}

type mintKey struct{ subject, audience string }

type mintedToken struct {
	token   string
	refresh time.Time
}

// NewLocalIssuer returns the issuer named name whose key is LocalKeyFile
// in dir, creating dir and the key when missing. Tokens minted for
// senders absent from the context (see TokenSource) have subject
// defaultSubject.
func NewLocalIssuer(dir, name, defaultSubject string) (*LocalIssuer, error) {
	if name == "" || defaultSubject == "" {
		return nil, errors.New("local issuer: empty name or default subject")
	}
	key, err := loadOrCreateKey(filepath.Join(dir, LocalKeyFile))
	if err != nil {
		return nil, fmt.Errorf("local issuer: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", base64.RawURLEncoding.EncodeToString(sum[:12])))
	if err != nil {
		return nil, fmt.Errorf("local issuer: %w", err)
	}
	l := &LocalIssuer{name: name, key: key, signer: signer, cache: newTokenCache(0), subject: defaultSubject}
	l.jwt = newJWTVerifier(name, &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{&key.PublicKey}}, &l.checks)
	return l, nil
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			// Another process created it first: use its key.
			return loadOrCreateKey(path)
		}
		if err != nil {
			return nil, err
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", path)
	}
	return ek, nil
}

// Name is the issuer name, the iss claim of its tokens.
func (l *LocalIssuer) Name() string { return l.name }

// PublicKey is the key its tokens are verified with.
func (l *LocalIssuer) PublicKey() crypto.PublicKey { return &l.key.PublicKey }

// Mint returns a token for subject and audience valid from now for ttl.
func (l *LocalIssuer) Mint(subject, audience string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", errors.New("mint: ttl must be positive")
	}
	now := time.Now()
	c := map[string]any{
		"iss": l.name,
		"sub": subject,
		"aud": []string{audience},
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := l.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return jws.CompactSerialize()
}

// Verifier returns the Verifier of its tokens, remembering verified ones
// until they expire.
func (l *LocalIssuer) Verifier() Verifier { return localVerifier{l} }

// Checks is the number of signature checks its Verifier made.
func (l *LocalIssuer) Checks() uint64 { return l.checks.Load() }

type localVerifier struct{ l *LocalIssuer }

func (v localVerifier) Verify(ctx context.Context, token, audience string) (Identity, error) {
	now := time.Now()
	key := cacheKey(token, audience)
	if id, ok := v.l.cache.get(key, now); ok {
		return id, nil
	}
	p, err := parseJWT(token)
	if err != nil {
		return Identity{}, err
	}
	id, err := v.l.jwt.verify(ctx, p, token, audience, now)
	if err != nil {
		return Identity{}, err
	}
	v.l.cache.put(key, id, id.Expiry, now)
	return id, nil
}

// TokenSource returns a TokenSource minting tokens for the Sender of the
// request's context (plan.ServiceAccountSubject of it), or for the
// issuer's default subject without one; a token is reused until half its
// lifetime is left.
func (l *LocalIssuer) TokenSource() TokenSource { return localSource{l} }

type localSource struct{ l *LocalIssuer }

func (s localSource) Token(ctx context.Context, audience string) (string, error) {
	subject := s.l.subject
	if snd, ok := SenderFrom(ctx); ok {
		subject = plan.ServiceAccountSubject(snd.Namespace, snd.Name)
	}
	k := mintKey{subject, audience}
	now := time.Now()
	if m, ok := s.l.minted.Load(k); ok && now.Before(m.(mintedToken).refresh) {
		return m.(mintedToken).token, nil
	}
	tok, err := s.l.Mint(subject, audience, localTokenTTL)
	if err != nil {
		return "", err
	}
	s.l.minted.Store(k, mintedToken{token: tok, refresh: now.Add(localTokenTTL / 2)})
	return tok, nil
}
