package devmode

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/plan"
)

// Standard Webhooks secrets of 32 bytes.
var (
	devKeyNew = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	devKeyOld = "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
)

func signingSecretYAML(keys ...string) string {
	s := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: audit-signing\nstringData:\n"
	for i := 0; i+1 < len(keys); i += 2 {
		s += "  " + keys[i] + ": " + keys[i+1] + "\n"
	}
	return s
}

func signedSubscriptionYAML(uri string) string {
	return subscriptionYAML("audit", "orders", uri, "") + "  signing:\n    secretName: audit-signing\n"
}

// verifies reports whether headers h of a delivery of body carry a
// Standard Webhooks signature made with secret.
func verifies(h http.Header, body, secret string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + body))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// TestDevSignsFromASecretManifest: herald dev signs a Subscription's
// deliveries with the keys of a Secret in the manifests, both during a
// rotation.
func TestDevSignsFromASecretManifest(t *testing.T) {
	sub := newRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", strings.Join([]string{
		fmt.Sprintf(topicYAML, "orders"),
		signedSubscriptionYAML(sub.srv.URL),
		signingSecretYAML(plan.SigningKeyFile, devKeyNew, plan.PreviousSigningKeyFile, devKeyOld),
	}, "---\n"))
	dataDir := t.TempDir()
	d := startDev(t, []string{dir}, dataDir)
	if st := d.rt.Status(); len(st.Errors) != 0 {
		t.Fatalf("errors: %v", st.Errors)
	}
	url := d.rt.Endpoints().Ingress + "/default/orders"
	body := `{"id":1}`
	eventually(t, 5*time.Second, func() bool {
		return postEvent(t, url, map[string]string{"ce-specversion": "1.0", "ce-id": "e-1", "ce-type": "t", "ce-source": "/test", "content-type": "application/json"}, body) == http.StatusAccepted
	}, "event not accepted")
	eventually(t, 10*time.Second, func() bool { return sub.byID("e-1") != nil }, "subscriber did not get e-1")
	sub.mu.Lock()
	h := sub.raw[0]
	sub.mu.Unlock()
	if !verifies(h, body, devKeyNew) || !verifies(h, body, devKeyOld) {
		t.Errorf("delivery does not verify with both keys: %v", h)
	}
	keyDir := filepath.Join(dataDir, "signing", "default", "audit")
	fi, err := os.Stat(filepath.Join(keyDir, plan.SigningKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file %v, %v; want mode 0600", fi, err)
	}
}

// TestLoadSigningKeys: the loader writes a Subscription's signing keys to
// its data directory and points the plan there, removes a previous key the
// Secret no longer holds, and reports a missing Secret, key or an invalid
// key against the Subscription, leaving it out of the plan.
func TestLoadSigningKeys(t *testing.T) {
	dir := t.TempDir()
	manifest := func(secret string) {
		parts := []string{fmt.Sprintf(topicYAML, "orders"), signedSubscriptionYAML("http://127.0.0.1:1/a")}
		if secret != "" {
			parts = append(parts, secret)
		}
		writeFile(t, dir, "m.yaml", strings.Join(parts, "---\n"))
	}
	l, _ := testLoader(t, dir)
	keyDir := filepath.Join(l.dataDir, "signing", "default", "audit")

	manifest(signingSecretYAML(plan.SigningKeyFile, devKeyNew, plan.PreviousSigningKeyFile, devKeyOld))
	st := load(t, l)
	if len(st.Errors) != 0 || len(st.Topics) != 1 || len(st.Topics[0].Plan.Subscriptions) != 1 {
		t.Fatalf("errors %v topics %+v", st.Errors, st.Topics)
	}
	if got := st.Topics[0].Plan.Subscriptions[0].SigningKeyDir; got != keyDir {
		t.Errorf("signingKeyDir %q, want %q", got, keyDir)
	}
	for file, want := range map[string]string{plan.SigningKeyFile: devKeyNew, plan.PreviousSigningKeyFile: devKeyOld} {
		if b, err := os.ReadFile(filepath.Join(keyDir, file)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", file, b, err, want)
		}
	}

	manifest(signingSecretYAML(plan.SigningKeyFile, devKeyNew))
	if st := load(t, l); len(st.Errors) != 0 {
		t.Fatalf("errors %v", st.Errors)
	}
	if _, err := os.Stat(filepath.Join(keyDir, plan.PreviousSigningKeyFile)); !os.IsNotExist(err) {
		t.Errorf("previous key still written after the rotation ended: %v", err)
	}

	// A Subscription left out of the plan keeps no keys on disk.
	for _, tc := range []struct{ name, secret, wantErr string }{
		{"no secret", "", "secret default/audit-signing is not declared in the manifests"},
		{"no key", signingSecretYAML("other", devKeyNew), `secret default/audit-signing has no key "signingKey"`},
		{"short key", signingSecretYAML(plan.SigningKeyFile, "whsec_c2hvcnQ="), `key "signingKey" of secret default/audit-signing: signing key is 5 bytes`},
	} {
		manifest(tc.secret)
		st := load(t, l)
		if errs := errorsAbout(st, "subscription default/audit"); len(errs) != 1 || !strings.Contains(errs[0], "spec.signing: "+tc.wantErr) {
			t.Errorf("%s: errors %q; want %q", tc.name, errs, tc.wantErr)
		}
		if len(st.Topics) != 1 || len(st.Topics[0].Plan.Subscriptions) != 0 {
			t.Errorf("%s: topics %+v; want audit left out of the plan", tc.name, st.Topics)
		}
		if _, err := os.Stat(keyDir); !os.IsNotExist(err) {
			t.Errorf("%s: keys still in the data directory: %v", tc.name, err)
		}
	}
}
