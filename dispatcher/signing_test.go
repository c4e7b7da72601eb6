package dispatcher

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// Standard Webhooks secrets for the tests: "whsec_" and the base64 of 32
// bytes, and a raw base64 one.
var (
	testKeyNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	testKeyOld = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

// verifyWebhook checks the Standard Webhooks headers of r with secret as a
// subscriber does: the HMAC-SHA256 of "id.timestamp.body" with the decoded
// secret must equal one of the space-separated v1 signatures.
func verifyWebhook(t *testing.T, r received, secret string) bool {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	id, ts := r.header.Get("webhook-id"), r.header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(r.body)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(r.header.Get("webhook-signature")) {
		v, s, ok := strings.Cut(sig, ",")
		if ok && v == "v1" && hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func writeKeys(t *testing.T, dir string, keys map[string]string) {
	t.Helper()
	for name, v := range keys {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func signed(s *v1alpha1.SubscriptionSpec) { s.Signing = &v1alpha1.Signing{SecretName: "keys"} }

// TestSignedDeliveries: during a rotation every attempt carries a signature
// with each key, so subscribers holding either verify it; retries keep the
// webhook-id; replies are not signed.
func TestSignedDeliveries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	writeKeys(t, dir, map[string]string{plan.SigningKeyFile: testKeyNew, plan.PreviousSigningKeyFile: testKeyOld + "\n"})
	sub := newSink(t, respondSeq(503, 200))
	res := e.provision(newTopic("signed"), []subscription{{name: "s", uri: sub.url(), spec: signed, signingDir: dir}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/signed", "ev-1")
	eventually(t, 10*time.Second, func() bool { return sub.count() >= 2 }, "a retry")
	got := sub.requests()
	for i, req := range got[:2] {
		if !verifyWebhook(t, req, testKeyNew) {
			t.Errorf("attempt %d: does not verify with the current key: %v", i+1, req.header)
		}
		if !verifyWebhook(t, req, testKeyOld) {
			t.Errorf("attempt %d: does not verify with the previous key: %v", i+1, req.header)
		}
		if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
			t.Errorf("attempt %d: %d signatures, want 2", i+1, n)
		}
		ts, err := strconv.ParseInt(req.header.Get("webhook-timestamp"), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
			t.Errorf("attempt %d: webhook-timestamp %q is not the current unix time", i+1, req.header.Get("webhook-timestamp"))
		}
	}
	if a, b := got[0].header.Get("webhook-id"), got[1].header.Get("webhook-id"); a == "" || a != b {
		t.Errorf("webhook-id changed across retries: %q, %q", a, b)
	}
	if verifyWebhook(t, got[0], base64.StdEncoding.EncodeToString([]byte("another key, 32 bytes long......"))) {
		t.Error("signature verifies with a key the Secret does not hold")
	}
}

// TestSigningWithoutKeys: a Subscription whose key is missing gets no
// unsigned delivery; the delivery is retried and goes out signed once the
// key appears.
func TestSigningWithoutKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	sub := newSink(t, nil)
	res := e.provision(newTopic("unsigned"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		signed(s)
		s.Delivery = fastRetry(1000)
	}, signingDir: dir}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/unsigned", "ev-1")
	retried := func() float64 {
		return testutil.ToFloat64(r.d.metrics.deliveries.WithLabelValues("default", "unsigned", "s", outcomeRetried, "error"))
	}
	eventually(t, 10*time.Second, func() bool { return retried() >= 2 }, "retries without a key")
	if n := sub.count(); n != 0 {
		t.Fatalf("subscriber got %d deliveries without a signing key", n)
	}
	writeKeys(t, dir, map[string]string{plan.SigningKeyFile: testKeyNew})
	eventually(t, 20*time.Second, func() bool { return sub.count() >= 1 }, "delivery once the key exists")
	if req := sub.requests()[0]; !verifyWebhook(t, req, testKeyNew) {
		t.Errorf("delivery does not verify: %v", req.header)
	}
}

// TestSignerRereadsChangedKeys: a signer notices a rotated key file after
// signingRecheck, and refuses an invalid key.
func TestSignerRereadsChangedKeys(t *testing.T) {
	dir := t.TempDir()
	writeKeys(t, dir, map[string]string{plan.SigningKeyFile: testKeyOld})
	s := newSigner(dir)
	now := time.Now()
	sign := func(at time.Time) (received, error) {
		hdr := http.Header{}
		err := s.sign(hdr, webhookID(map[string][]string{"ce-id": {"1"}, "ce-source": {"/x"}}), []byte("body"), at)
		return received{header: hdr, body: []byte("body")}, err
	}
	if req, err := sign(now); err != nil || !verifyWebhook(t, req, testKeyOld) {
		t.Fatalf("first key: %v %v", err, req.header)
	}
	writeKeys(t, dir, map[string]string{plan.SigningKeyFile: testKeyNew, plan.PreviousSigningKeyFile: testKeyOld})
	later := now.Add(2 * signingRecheck)
	if err := os.Chtimes(filepath.Join(dir, plan.SigningKeyFile), later, later); err != nil {
		t.Fatal(err)
	}
	req, err := sign(later)
	if err != nil || !verifyWebhook(t, req, testKeyNew) || !verifyWebhook(t, req, testKeyOld) {
		t.Fatalf("rotated keys: %v %v", err, req.header)
	}
	writeKeys(t, dir, map[string]string{plan.SigningKeyFile: "whsec_c2hvcnQ="})
	if _, err := sign(later.Add(2 * signingRecheck)); err == nil {
		t.Fatal("a 5-byte key was accepted")
	}
}
