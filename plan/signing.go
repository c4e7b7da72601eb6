package plan

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Files of a signing key directory (SubscriptionPlan.SigningKeyDir), named
// like the keys of the Secret a Subscription's spec.signing names.
const (
	// SigningKeyFile holds the current signing key.
	SigningKeyFile = "signingKey"
	// PreviousSigningKeyFile holds the key being rotated out, if any.
	PreviousSigningKeyFile = "previousSigningKey"
)

// SigningRoot is the directory under which the operator mounts each
// signing Secret into dispatcher pods (see SigningKeyDir).
const SigningRoot = "/etc/herald/signing"

// Bounds on the length of a decoded signing key, as Standard Webhooks
// secrets have.
const (
	MinSigningKeyBytes = 24
	MaxSigningKeyBytes = 64
)

// signingKeyPrefix starts a Standard Webhooks secret.
const signingKeyPrefix = "whsec_"

// SigningKeyDir is where the operator mounts the signing Secret of
// Subscription subscription in dispatcher pods.
func SigningKeyDir(subscription string) string {
	return path.Join(SigningRoot, subscription)
}

// ParseSigningKey decodes a Standard Webhooks secret: "whsec_" followed by
// standard base64, or the base64 alone, of MinSigningKeyBytes to
// MaxSigningKeyBytes bytes. Surrounding white space is ignored.
func ParseSigningKey(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), signingKeyPrefix)
	if s == "" {
		return nil, errors.New("signing key is empty")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signing key is not base64 (whsec_ followed by base64): %w", err)
	}
	if len(key) < MinSigningKeyBytes || len(key) > MaxSigningKeyBytes {
		return nil, fmt.Errorf("signing key is %d bytes, want %d to %d", len(key), MinSigningKeyBytes, MaxSigningKeyBytes)
	}
	return key, nil
}
