package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/devmode"
)

// devObjects add to objects the manifests of devmode's tests and the cases
// where decoding matters (unknown fields, wrong types, status, defaults).
// wantErr documents the API server's verdict as objects' does; operatorErr,
// when set, is what herald dev reports of an object the API server accepts
// but the operator would put into its status instead of applying it.
var devObjects = []struct {
	name, yaml, wantErr, operatorErr string
}{
	{"topic unknown field", head(topicHead, "unknown") + "spec:\n  storag: file\n", `unknown field "spec.storag"`, ""},
	{"topic two unknown fields", head(topicHead, "unknown2") + "spec:\n  storag: file\n  retention: {maxAges: 1h}\n", `unknown field "spec.retention.maxAges"`, ""},
	{"topic unknown metadata field", head(topicHead, "unknownmeta") + "  labelz: {a: b}\n", `unknown field "metadata.labelz"`, ""},
	{"topic replicas of the wrong type", head(topicHead, "rtype") + "spec:\n  replicas: three\n", "spec.replicas: Invalid value: \"string\"", ""},
	{"topic with status, which create drops", head(topicHead, "status") + "status:\n  observedGeneration: many\n", "", ""},
	{"topic upper-case name", head(topicHead, "Orders"), "a lowercase RFC 1123 subdomain", ""},
	{"topic name and replicas", head(topicHead, "Orders_"+strings.Repeat("o", 50)) + "spec: {replicas: 2}\n", "spec.replicas: Unsupported value: 2", ""},
	{"topic memory with retention", head(topicHead, "ret") + "spec:\n  storage: memory\n  retention: {maxAge: P1D, maxBytes: 1048576, maxMessages: 10, discard: new}\n", "", ""},
	{"topic retention bytes too small", head(topicHead, "retb") + "spec:\n  retention: {maxBytes: 10}\n", "spec.retention.maxBytes", ""},
	{"topic dead-letter ref", head(topicHead, "dlref") + "spec:\n  delivery:\n    deadLetterSink: {ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: dlq}}\n", "", ""},
	{"subscription valid with filters and dead letters", head(subHead, "valid") + "spec:\n  topic: t\n  subscriber: {uri: 'http://127.0.0.1:1/'}\n" +
		"  filters: [{exact: {type: a}}, {any: [{prefix: {source: /x}}, {cesql: \"subject = 'y'\"}]}]\n" +
		"  delivery: {retry: 2, backoffDelay: PT0.1S, deadLetterSink: {ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: dlq}}}\n", "", ""},
	{"subscription upper-case name", head(subHead, "Audit") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n", "a lowercase RFC 1123 subdomain", ""},
	{"subscription long name and bad filters", head(subHead, strings.Repeat("s", 64)) + "spec:\n  topic: t\n  subscriber: {uri: 'http://x/'}\n" +
		"  filters: [{exact: {type: a}, prefix: {type: b}}, {cesql: \"type =\"}]\n  delivery: {timeout: 5 minutes}\n", "Subscription names are at most 63 characters", ""},
	{"subscription seventeen filters", head(subHead, "many") + "spec:\n  topic: t\n  subscriber: {uri: 'http://x/'}\n  filters:\n" +
		strings.Repeat("  - exact: {type: a}\n", 17), "Too many: 17", ""},
	{"subscription max in flight too large", head(subHead, "mifmax") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  maxInFlight: 10001\n", "should be less than or equal to 10000", ""},
	{"subscription empty reply", head(subHead, "reply") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  reply: {}\n", "a destination needs a ref, a uri, or both", ""},
	{"subscription long topic", head(subHead, "longtopic") + "spec:\n  topic: " + strings.Repeat("t", 53) + "\n  subscriber: {uri: 'http://s.example/'}\n", "spec.topic: Too long", ""},
	{"subscription cesql the dispatcher cannot compile", head(subHead, "cesql") + "spec:\n  topic: t\n  subscriber: {uri: 'http://x/'}\n  filters: [{cesql: \"type =\"}]\n", "", "spec.filters[0]"},
	{"subscription caCerts that do not parse", head(subHead, "cabad") + subHTTPS + caCerts("    ", strings.Replace(testCA, "-----\n", "-----\nAAAA", 1)), "", "spec.subscriber.caCerts: block 1: x509:"},
	{"topic dead-letter sink caCerts that do not parse", head(topicHead, "dlscabad") + "spec:\n  delivery:\n    deadLetterSink:\n      uri: https://d.example/\n" +
		caCerts("      ", strings.Replace(testCA, "-----\n", "-----\nAAAA", 1)), "", "spec.delivery.deadLetterSink.caCerts: block 1: x509:"},
	{"eventsource ping timezone", head(srcHead, "tz") + "spec:\n" + pingSink + "  ping: {schedule: '61 * * * *', timezone: Mars/Olympus}\n", "", `spec.ping: timezone "Mars/Olympus"`},
	{"eventsource webhook signature enums", head(srcHead, "sig") + "spec:\n" + pingSink + "  webhook:\n    signature: {type: hmac, algorithm: md5, encoding: base32, secretKeyRef: {name: s}}\n",
		`Unsupported value: "md5"`, ""},
	{"eventsource webhook valid", head(srcHead, "hook") + "spec:\n" + pingSink + "  webhook:\n    signature: {type: hmac, header: X-Signature, prefix: sha256=, algorithm: sha256, encoding: hex, secretKeyRef: {name: s, key: k}}\n", "", ""},
	{"eventsource container without image", head(srcHead, "noimage") + "spec:\n" + pingSink + "  container: {}\n", "Required value", ""},
}

// check is one object for both: the API server's verdict is wantErr's.
type check struct{ name, yaml, wantErr, operatorErr string }

// TestDevAgreesWithAPIServer feeds each object to the API server (a strict
// dry-run create, as kubectl apply sends it) and to herald dev (its loader
// and validator) and requires the same verdict and, for a refusal, herald
// dev's message to hold every one of the API server's.
func TestDevAgreesWithAPIServer(t *testing.T) {
	var checks []check
	for _, o := range objects {
		checks = append(checks, check{o.name, o.yaml, o.wantErr, ""})
	}
	for _, o := range devObjects {
		checks = append(checks, check(o))
	}
	checks = append(checks, sampleChecks(t)...)
	refused := 0
	for _, c := range checks {
		if c.wantErr != "" {
			refused++
		}
	}
	if refused < 50 {
		t.Fatalf("%d objects the API server refuses, want at least 50", refused)
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := decode(t, c.yaml)
			apiErr := k8s.Create(context.Background(), u.DeepCopy(), strictDryRun...)
			switch {
			case c.wantErr == "" && apiErr != nil:
				t.Fatalf("the API server refused, want accepted: %v", apiErr)
			case c.wantErr != "" && apiErr == nil:
				t.Fatalf("the API server accepted, want refused with %q", c.wantErr)
			case apiErr != nil && !strings.Contains(apiErr.Error(), c.wantErr):
				t.Fatalf("the API server refused with\n  %v\nwant a message containing\n  %q", apiErr, c.wantErr)
			}

			doc, err := yaml.Marshal(u.Object)
			if err != nil {
				t.Fatal(err)
			}
			devErr := devValidate(t, doc)
			switch {
			case apiErr == nil && c.operatorErr == "" && devErr != nil:
				t.Fatalf("herald dev refused what the API server accepts: %v", devErr)
			case apiErr == nil && c.operatorErr != "" && (devErr == nil || !strings.Contains(devErr.Error(), c.operatorErr)):
				t.Fatalf("herald dev: %v; want the operator's refusal %q", devErr, c.operatorErr)
			case apiErr != nil && devErr == nil:
				t.Fatalf("herald dev accepted what the API server refuses with: %v", apiErr)
			case apiErr != nil:
				for _, want := range apiMessages(t, apiErr) {
					if !strings.Contains(devErr.Error(), want) {
						t.Errorf("herald dev refused with\n  %v\nwhich lacks the API server's\n  %s", devErr, want)
					}
				}
			}
		})
	}
}

// devValidate loads doc as herald dev reads a manifest file and validates
// the object it holds.
func devValidate(t *testing.T, doc []byte) error {
	t.Helper()
	p := filepath.Join(t.TempDir(), "o.yaml")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	fr := devmode.LoadFile(p)
	if len(fr.Errors) > 0 {
		return errors.Join(fr.Errors...)
	}
	if len(fr.Objects) != 1 {
		t.Fatalf("herald dev read %d objects, want 1", len(fr.Objects))
	}
	return devmode.Validate(fr.Objects[0])
}

// apiMessages are the parts of the API server's refusal herald dev must
// repeat: for an invalid object the kind and name, then each cause; for
// strict decoding each unknown field.
func apiMessages(t *testing.T, err error) []string {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("the API server's refusal is %T, not a status: %v", err, err)
	}
	switch {
	case apierrors.IsInvalid(err):
		// The schema validator reports in map order, so the order of the
		// causes varies between runs: each must be there.
		head, _, _ := strings.Cut(se.ErrStatus.Message, ": ")
		msgs := []string{head + ": "}
		for _, c := range se.ErrStatus.Details.Causes {
			msgs = append(msgs, c.Field+": "+c.Message)
		}
		return msgs
	case apierrors.IsBadRequest(err):
		_, fields, ok := strings.Cut(se.ErrStatus.Message, "strict decoding error: ")
		if !ok {
			t.Fatalf("the API server refused with an unexpected bad request: %v", err)
		}
		return strings.Split(fields, ", ")
	}
	t.Fatalf("the API server refused with reason %s: %v", apierrors.ReasonForError(err), err)
	return nil
}

// sampleChecks are the eventing.herald.dev objects of config/samples and
// its subdirectories, all of which both accept.
func sampleChecks(t *testing.T) []check {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*", "*.yaml"))
	top, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	var checks []check
	for _, f := range append(files, top...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !bytes.Contains(doc, []byte("apiVersion: eventing.herald.dev/")) {
				continue
			}
			checks = append(checks, check{name: fmt.Sprintf("%s document %d", f, i), yaml: string(doc)})
		}
	}
	if len(checks) < 6 {
		t.Fatalf("found %d sample objects, want at least 6", len(checks))
	}
	return checks
}
