package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLocalIssuerRoundTrip(t *testing.T) {
	dir := t.TempDir()
	l, err := NewLocalIssuer(dir, "herald-dev", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := l.Mint("system:serviceaccount:shop:a", "aud-1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := l.Verifier()
	id, err := v.Verify(context.Background(), tok, "aud-1")
	if err != nil || id.Subject != "system:serviceaccount:shop:a" || id.Issuer != "herald-dev" {
		t.Fatalf("Verify = %+v, %v", id, err)
	}
	if _, err := v.Verify(context.Background(), tok, "aud-1"); err != nil || l.Checks() != 1 {
		t.Fatalf("second Verify: %v, %d signature checks, want 1", err, l.Checks())
	}
	var ae *Error
	if _, err := v.Verify(context.Background(), tok, "aud-2"); !errors.As(err, &ae) || ae.Reason != ReasonWrongAudience {
		t.Fatalf("other audience: %v", err)
	}

	// The key persists: a second issuer on the same directory verifies the
	// first one's tokens; one on another directory does not.
	again, err := NewLocalIssuer(dir, "herald-dev", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Verifier().Verify(context.Background(), tok, "aud-1"); err != nil {
		t.Fatalf("same key directory: %v", err)
	}
	other, err := NewLocalIssuer(t.TempDir(), "herald-dev", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Verifier().Verify(context.Background(), tok, "aud-1"); !errors.As(err, &ae) || ae.Reason != ReasonBadSignature {
		t.Fatalf("other key: %v", err)
	}
}

func TestLocalTokenSourceMintsForSender(t *testing.T) {
	l, err := NewLocalIssuer(t.TempDir(), "herald-dev", "system:serviceaccount:default:herald")
	if err != nil {
		t.Fatal(err)
	}
	ts := l.TokenSource()
	for _, c := range []struct {
		ctx  context.Context
		want string
	}{
		{context.Background(), "system:serviceaccount:default:herald"},
		{WithSender(context.Background(), Sender{Namespace: "shop", Name: "orders-dispatcher"}), "system:serviceaccount:shop:orders-dispatcher"},
	} {
		tok, err := ts.Token(c.ctx, "aud")
		if err != nil {
			t.Fatal(err)
		}
		id, err := l.Verifier().Verify(context.Background(), tok, "aud")
		if err != nil || id.Subject != c.want {
			t.Errorf("subject = %q, %v; want %q", id.Subject, err, c.want)
		}
		again, _ := ts.Token(c.ctx, "aud")
		if again != tok {
			t.Errorf("token for %s not reused", c.want)
		}
	}
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache(3)
	now := time.Now()
	for i := range 10 {
		c.put(cacheKey(string(rune('a'+i)), "x"), Identity{}, now.Add(time.Hour), now)
	}
	if n := c.len(); n != 3 {
		t.Fatalf("cache holds %d entries, want 3", n)
	}
	k := cacheKey("z", "x")
	c.put(k, Identity{Subject: "s"}, now.Add(time.Second), now)
	if _, ok := c.get(k, now.Add(2*time.Second)); ok {
		t.Fatal("entry served past its deadline")
	}
}
