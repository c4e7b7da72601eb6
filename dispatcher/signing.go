package dispatcher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Standard Webhooks headers of a signed delivery.
const (
	headerWebhookID        = "Webhook-Id"
	headerWebhookTimestamp = "Webhook-Timestamp"
	headerWebhookSignature = "Webhook-Signature"
)

// Timing of a signer.
const (
	// signingRecheck is how often a signer looks for changed key files;
	// the kubelet updates a mounted Secret in place.
	signingRecheck = 3 * time.Second
	// signingWarnEvery bounds how often a signer logs that it cannot sign.
	signingWarnEvery = 30 * time.Second
)

// signer signs deliveries with the keys of one signing key directory
// (plan.SubscriptionPlan.SigningKeyDir), read when first needed and again
// when a key file changes or the last read failed, looking at most every
// signingRecheck.
type signer struct {
	dir string

	mu      sync.Mutex
	checked time.Time
	stamp   [2]keyStamp
	keys    [][]byte
	err     error

	warn sampler
}

// keyStamp identifies the version of a key file: zero when absent.
type keyStamp struct {
	mod  time.Time
	size int64
}

func newSigner(dir string) *signer { return &signer{dir: dir, warn: sampler{period: signingWarnEvery}} }

// current returns the keys to sign with at now, current key first, or why
// there are none.
func (s *signer) current(now time.Time) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.checked.IsZero() && now.Sub(s.checked) < signingRecheck {
		return s.keys, s.err
	}
	s.checked = now
	var stamp [2]keyStamp
	for i, name := range []string{plan.SigningKeyFile, plan.PreviousSigningKeyFile} {
		if fi, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			stamp[i] = keyStamp{mod: fi.ModTime(), size: fi.Size()}
		}
	}
	// Keys that failed to read are read again at every check.
	if stamp == s.stamp && s.keys != nil {
		return s.keys, nil
	}
	s.stamp = stamp
	s.keys, s.err = readSigningKeys(s.dir)
	return s.keys, s.err
}

// readSigningKeys reads the current key of dir, required, and the previous
// one, if present.
func readSigningKeys(dir string) ([][]byte, error) {
	var keys [][]byte
	for i, name := range []string{plan.SigningKeyFile, plan.PreviousSigningKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if i == 1 && errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read signing key: %w", err)
		}
		k, err := plan.ParseSigningKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// sign adds the Standard Webhooks headers to hdr, a delivery with body
// data and webhook-id id, at now.
func (s *signer) sign(hdr http.Header, id string, data []byte, now time.Time) error {
	keys, err := s.current(now)
	if err != nil {
		return err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	content := make([]byte, 0, len(id)+len(ts)+2+len(data))
	content = append(content, id...)
	content = append(content, '.')
	content = append(content, ts...)
	content = append(content, '.')
	content = append(content, data...)
	sig := make([]byte, 0, len(keys)*48)
	for i, k := range keys {
		if i > 0 {
			sig = append(sig, ' ')
		}
		m := hmac.New(sha256.New, k)
		m.Write(content)
		sig = append(sig, "v1,"...)
		sig = base64.StdEncoding.AppendEncode(sig, m.Sum(nil))
	}
	hdr[headerWebhookID] = []string{id}
	hdr[headerWebhookTimestamp] = []string{ts}
	hdr[headerWebhookSignature] = []string{string(sig)}
	return nil
}

// webhookID is the webhook-id of a delivery of the stored messages with
// headers hs (one, or a batch's): "msg_" and the hex of a SHA-256 digest of
// their source and id attributes, as stored, so that every attempt at the
// same event, or at the same batch, carries the same one.
func webhookID(hs ...nats.Header) string {
	d := sha256.New()
	for i, h := range hs {
		if i > 0 {
			d.Write([]byte{1})
		}
		d.Write([]byte(firstValue(h, ce.Key(ce.AttrSource))))
		d.Write([]byte{0})
		d.Write([]byte(firstValue(h, ce.Key(ce.AttrID))))
	}
	return "msg_" + hex.EncodeToString(d.Sum(nil)[:16])
}

// firstValue is the first value of stored header key k, "" when absent.
func firstValue(h nats.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
