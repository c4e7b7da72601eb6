package devmode

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/sources"
)

func (r *recorder) byType(typ string) *event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type() == typ {
			return e
		}
	}
	return nil
}

func pingYAML(name, schedule, data string) string {
	return fmt.Sprintf(`apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata:
  name: %s
spec:
  sink:
    ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}
  ping:
    schedule: %q
    data: '%s'
`, name, schedule, data)
}

// sourcesDev runs a Runtime with a webhook listener, and collects its
// banner and logs.
type sourcesDev struct {
	*runningDev
	banner, logs *syncBuffer
}

func startSourcesDev(t *testing.T, dir string) *sourcesDev {
	t.Helper()
	sd := &sourcesDev{banner: &syncBuffer{}, logs: &syncBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("banner:\n%s\nlogs:\n%s", sd.banner.String(), sd.logs.String())
		}
	})
	sd.runningDev = startDevConfig(t, Config{
		Paths:         []string{dir},
		DataDir:       t.TempDir(),
		WebhookListen: "127.0.0.1:0",
		Banner:        sd.banner,
		Log:           slog.New(slog.NewTextHandler(sd.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	eventually(t, 10*time.Second, func() bool { return strings.Contains(sd.banner.String(), "herald dev:") }, "no banner")
	return sd
}

func (sd *sourcesDev) running() []string { return sd.rt.cfg.Sources.(*GroupSources).Running() }

func TestDevRunsPingSources(t *testing.T) {
	sub := newRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL, ""))
	file := writeFile(t, dir, "ping.yaml", pingYAML("heartbeat", "@every 1s", `{"n":1}`)+"---\n"+pingYAML("bad", "every minute", `{}`))
	d := startSourcesDev(t, dir)
	ingress := d.rt.Endpoints().Ingress

	// The bad schedule is an error of its own; the other source runs.
	st := d.rt.Status()
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), `ping.yaml:12 (document 2): eventsource default/bad: spec.ping: schedule "every minute": `) {
		t.Errorf("errors = %v, want the bad schedule of default/bad", st.Errors)
	}
	if got := d.running(); !slices.Equal(got, []string{"default/heartbeat"}) {
		t.Errorf("running = %v, want [default/heartbeat]", got)
	}
	want := `ping default/heartbeat  "@every 1s" -> ` + ingress + "/default/orders"
	if !strings.Contains(d.banner.String(), "  "+want+"\n") {
		t.Errorf("banner lacks %q", want)
	}

	eventually(t, 10*time.Second, func() bool { return sub.byType(sources.PingEventType) != nil }, "no ping event reached the subscriber")
	e := sub.byType(sources.PingEventType)
	if e.Source() != sources.SourcePath("default", "heartbeat") || !strings.HasPrefix(e.ID(), "heartbeat-") ||
		string(e.Data()) != `{"n":1}` || e.DataContentType() != "application/json" {
		t.Errorf("ping event: source %q, id %q, data %q (%s)", e.Source(), e.ID(), e.Data(), e.DataContentType())
	}

	// A changed source restarts: the new data arrives.
	writeFile(t, dir, "ping.yaml", pingYAML("heartbeat", "@every 1s", `{"n":2}`))
	eventually(t, 10*time.Second, func() bool {
		sub.mu.Lock()
		defer sub.mu.Unlock()
		return slices.ContainsFunc(sub.events, func(e *event.Event) bool { return string(e.Data()) == `{"n":2}` })
	}, "no ping event with the new data")
	if !strings.Contains(d.logs.String(), "~ eventsource default/heartbeat: spec.ping changed, restarted") {
		t.Error("the reload did not log the restart")
	}

	// A removed source stops.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(d.running()) == 0 }, "the ping source still runs: %v", d.running())
	if st := d.rt.Status(); len(st.Sources) != 0 || len(st.Errors) != 0 {
		t.Errorf("after removal: sources %v, errors %v", st.Sources, st.Errors)
	}
	// The reload logs after the source has stopped; wait for the line rather than race it.
	eventually(t, 10*time.Second, func() bool {
		return strings.Contains(d.logs.String(), "- eventsource default/heartbeat stopped")
	}, "the reload did not log the stop")
}

const (
	hmacKey   = "hmac-key-value-7f3a"
	githubKey = "github-key-value-91c2"
)

func webhookYAML(eventType string, github bool) string {
	s := `apiVersion: v1
kind: Secret
metadata:
  name: hooks
type: Opaque
stringData:
  hmac: ` + hmacKey + `
data:
  github: ` + base64.StdEncoding.EncodeToString([]byte(githubKey)) + `
---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata:
  name: signed
spec:
  sink:
    ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}
  webhook:
    eventType: ` + eventType + `
    signature:
      type: hmac
      header: X-Signature
      prefix: sha256=
      secretKeyRef: {name: hooks, key: hmac}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata:
  name: nokey
spec:
  sink:
    ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}
  webhook:
    signature:
      type: github
      secretKeyRef: {name: missing, key: token}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata:
  name: watcher
spec:
  sink:
    ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}
  apiServer:
    resources:
    - {apiVersion: v1, kind: ConfigMap}
`
	if github {
		s += `---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata:
  name: github
spec:
  sink:
    uri: ` + "http://INGRESS/default/orders" + `
  webhook:
    signature:
      type: github
      secretKeyRef: {name: hooks, key: github}
`
	}
	return s
}

func hmacHex(key, body string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// postWebhook POSTs body to url and returns the status. While the
// dispatcher has not seen a fresh plan the sink answers 404 and the webhook
// 502; want is retried until then.
func postWebhook(t *testing.T, url string, hdr map[string]string, body string, want int) {
	t.Helper()
	last := 0
	eventually(t, 10*time.Second, func() bool {
		last = postEvent(t, url, hdr, body)
		if last != want && last != http.StatusBadGateway && last != http.StatusServiceUnavailable {
			t.Fatalf("POST %s: status %d, want %d", url, last, want)
		}
		return last == want
	}, "POST %s: status %d, want %d", url, last, want)
}

func TestDevRunsWebhookSources(t *testing.T) {
	sub := newRecorder(t)
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("audit", "orders", sub.srv.URL, ""))
	// The github webhook's sink is a uri: the ingress address is known only
	// once the runtime listens, so that source is added by a reload.
	file := writeFile(t, dir, "webhooks.yaml", webhookYAML("com.example.signed", false))
	d := startSourcesDev(t, dir)
	ingress, hooks := d.rt.Endpoints().Ingress, d.rt.Endpoints().Webhooks
	writeFile(t, dir, "webhooks.yaml", strings.ReplaceAll(webhookYAML("com.example.signed", true), "http://INGRESS", ingress))
	eventually(t, 10*time.Second, func() bool { return len(d.running()) == 2 }, "running %v, want default/github and default/signed", d.running())

	st := d.rt.Status()
	if got := d.running(); !slices.Equal(got, []string{"default/github", "default/signed"}) {
		t.Errorf("running = %v", got)
	}
	const missing = "webhooks.yaml:26 (document 3): eventsource default/nokey: spec.webhook.signature.secretKeyRef: secret default/missing is not declared in the manifests"
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), missing) {
		t.Errorf("errors = %v, want one containing %q", st.Errors, missing)
	}
	const note = "eventsource default/watcher: apiServer sources need a cluster; herald dev runs ping and webhook"
	if !slices.Contains(st.Notes, note) {
		t.Errorf("notes = %q, want %q", st.Notes, note)
	}
	want := "webhook default/signed  POST " + hooks + "/default/signed -> " + ingress + "/default/orders, signed (hmac in X-Signature)"
	if !strings.Contains(d.banner.String(), "  "+want+"\n") {
		t.Errorf("banner lacks %q", want)
	}
	for _, want := range []string{"  ! " + filepath.Join(dir, missing), "  note: " + note} {
		if !strings.Contains(d.banner.String(), want) {
			t.Errorf("banner lacks %q", want)
		}
	}

	// A good hmac signature: 202, and the subscriber gets the body.
	body := `{"order":7}`
	signed := hooks + sources.WebhookPath("default", "signed")
	postWebhook(t, signed, map[string]string{"X-Signature": "sha256=" + hmacHex(hmacKey, body), "X-Request-Id": "w-1",
		"Content-Type": "application/json"}, body, http.StatusAccepted)
	eventually(t, 10*time.Second, func() bool { return sub.byID("w-1") != nil }, "the subscriber did not get w-1")
	if e := sub.byID("w-1"); e.Type() != "com.example.signed" || string(e.Data()) != body || e.Source() != sources.SourcePath("default", "signed") {
		t.Errorf("w-1: type %q, source %q, data %q", e.Type(), e.Source(), e.Data())
	}

	// GitHub's header, with the key from the Secret's base64 data.
	postWebhook(t, hooks+"/default/github", map[string]string{sources.GitHubSignatureHeader: "sha256=" + hmacHex(githubKey, body),
		"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-1"}, body, http.StatusAccepted)
	eventually(t, 10*time.Second, func() bool { return sub.byID("gh-1") != nil }, "the subscriber did not get gh-1")
	if e := sub.byID("gh-1"); e.Type() != "com.github.push" {
		t.Errorf("gh-1: type %q, want com.github.push", e.Type())
	}

	// A bad or missing signature: 401 and nothing delivered. The subscriber
	// gets the events of a topic in order (maxInFlight 1), so once w-2,
	// accepted after them, arrived, they would have too.
	for _, hdr := range []map[string]string{
		{"X-Signature": "sha256=" + hmacHex("wrong key", body), "X-Request-Id": "w-bad"},
		{"X-Signature": "sha256=" + hmacHex(hmacKey, body+" "), "X-Request-Id": "w-tampered"},
		{"X-Request-Id": "w-unsigned"},
	} {
		if code := postEvent(t, signed, hdr, body); code != http.StatusUnauthorized {
			t.Errorf("POST %s: status %d, want 401", hdr["X-Request-Id"], code)
		}
	}
	postWebhook(t, signed, map[string]string{"X-Signature": "sha256=" + hmacHex(hmacKey, body), "X-Request-Id": "w-2"}, body, http.StatusAccepted)
	eventually(t, 10*time.Second, func() bool { return sub.byID("w-2") != nil }, "the subscriber did not get w-2")
	for _, id := range []string{"w-bad", "w-tampered", "w-unsigned"} {
		if sub.byID(id) != nil {
			t.Errorf("%s was delivered", id)
		}
	}

	// A changed webhook restarts with the new spec; a removed one answers 404.
	writeFile(t, dir, "webhooks.yaml", webhookYAML("com.example.changed", false))
	eventually(t, 10*time.Second, func() bool {
		s := d.rt.Status().Sources
		return len(s) == 1 && s[0].Source.Spec.Webhook.EventType == "com.example.changed"
	}, "the changed webhook was not loaded")
	if code := postEvent(t, hooks+"/default/github", nil, body); code != http.StatusNotFound {
		t.Errorf("POST to the removed webhook: status %d, want 404", code)
	}
	postWebhook(t, signed, map[string]string{"X-Signature": "sha256=" + hmacHex(hmacKey, body), "X-Request-Id": "w-3"}, body, http.StatusAccepted)
	eventually(t, 10*time.Second, func() bool { return sub.byID("w-3") != nil }, "the subscriber did not get w-3")
	if e := sub.byID("w-3"); e.Type() != "com.example.changed" {
		t.Errorf("w-3: type %q, want com.example.changed", e.Type())
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(d.running()) == 0 }, "sources still running: %v", d.running())
	if code := postEvent(t, signed, nil, body); code != http.StatusNotFound {
		t.Errorf("POST to the removed webhook: status %d, want 404", code)
	}

	// No key is ever printed.
	for _, out := range []string{d.banner.String(), d.logs.String()} {
		for _, key := range []string{hmacKey, githubKey, base64.StdEncoding.EncodeToString([]byte(githubKey))} {
			if strings.Contains(out, key) {
				t.Errorf("a signature key was printed")
			}
		}
	}
}

// TestDevWebhookSecrets covers how webhook keys are found: data and
// stringData (which wins), a missing key, a Secret with errors kept at its
// last valid version, and another namespace's Secret not used.
func TestDevWebhookSecrets(t *testing.T) {
	dir := t.TempDir()
	es := func(name, ns, secret, key string) string {
		return fmt.Sprintf(`apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: %s, namespace: %s}
spec:
  sink: {uri: "http://127.0.0.1:1/"}
  webhook:
    signature:
      type: github
      secretKeyRef: {name: %s, key: %s}
`, name, ns, secret, key)
	}
	writeFile(t, dir, "secrets.yaml", `apiVersion: v1
kind: Secret
metadata: {name: keys}
data: {a: `+base64.StdEncoding.EncodeToString([]byte("from-data"))+`, b: `+base64.StdEncoding.EncodeToString([]byte("from-data"))+`}
stringData: {b: from-string-data}
---
apiVersion: v1
kind: Secret
metadata: {name: elsewhere, namespace: other}
stringData: {a: x}
`)
	writeFile(t, dir, "sources.yaml", strings.Join([]string{
		es("use-a", "default", "keys", "a"),
		es("use-b", "default", "keys", "b"),
		es("no-key", "default", "keys", "c"),
		es("other-ns", "default", "elsewhere", "a"),
	}, "---\n"))
	d := startSourcesDev(t, dir)
	st := d.rt.Status()
	got := map[string]string{}
	for _, rs := range st.Sources {
		got[rs.Key()] = string(rs.WebhookSecret)
	}
	if got["default/use-a"] != "from-data" || got["default/use-b"] != "from-string-data" || len(got) != 2 {
		t.Errorf("keys = %v", got)
	}
	var msgs []string
	for _, err := range st.Errors {
		msgs = append(msgs, err.Error())
	}
	wantErrs := []string{
		`eventsource default/no-key: spec.webhook.signature.secretKeyRef: secret default/keys has no key "c"`,
		`eventsource default/other-ns: spec.webhook.signature.secretKeyRef: secret default/elsewhere is not declared in the manifests`,
	}
	if len(msgs) != len(wantErrs) {
		t.Fatalf("errors = %q, want %q", msgs, wantErrs)
	}
	for i, want := range wantErrs {
		if !strings.Contains(msgs[i], want) {
			t.Errorf("error %d = %q, want it to contain %q", i, msgs[i], want)
		}
	}

	// A Secret with errors: its last valid version keeps serving, and the
	// error names no value.
	writeFile(t, dir, "secrets.yaml", `apiVersion: v1
kind: Secret
metadata: {name: keys}
data: {a: "not base64 at all!"}
`)
	eventually(t, 10*time.Second, func() bool { return len(d.rt.Status().Errors) == 3 }, "errors = %v", d.rt.Status().Errors)
	st = d.rt.Status()
	if e := st.Errors[0].Error(); !strings.Contains(e, "secret default/keys: data: a value is not valid base64") || strings.Contains(e, "not base64 at all") {
		t.Errorf("error = %q", e)
	}
	if len(st.Sources) != 2 {
		t.Errorf("sources = %d, want the 2 of the last valid Secret", len(st.Sources))
	}
}

func TestSourceSummaryAndChanges(t *testing.T) {
	ep := Endpoints{Webhooks: "http://127.0.0.1:8082"}
	sink := "http://127.0.0.1:8080/default/orders"
	github := ResolvedSource{SinkURI: sink, Source: &v1alpha1.EventSource{}}
	github.Source.Namespace, github.Source.Name = "default", "github"
	github.Source.Spec.Webhook = &v1alpha1.WebhookSource{Signature: &v1alpha1.WebhookSignature{Type: v1alpha1.SignatureGitHub}}
	heartbeat := ResolvedSource{SinkURI: sink, Source: &v1alpha1.EventSource{}}
	heartbeat.Source.Namespace, heartbeat.Source.Name = "default", "heartbeat"
	heartbeat.Source.Spec.Ping = &v1alpha1.PingSource{Schedule: "* * * * *"}
	for rs, want := range map[*ResolvedSource]string{
		&github:    "webhook default/github  POST http://127.0.0.1:8082/default/github -> " + sink + ", signed (github)",
		&heartbeat: `ping default/heartbeat  "* * * * *" -> ` + sink,
	} {
		if got := SourceSummary(ep, *rs); got != want {
			t.Errorf("SourceSummary = %q, want %q", got, want)
		}
	}

	rekeyed := github
	rekeyed.WebhookSecret = []byte("new key")
	moved := heartbeat
	moved.SinkURI = "http://elsewhere/"
	got := Changes(&Status{Sources: []ResolvedSource{github, heartbeat}}, &Status{Sources: []ResolvedSource{rekeyed}})
	want := []string{
		"~ eventsource default/github: signature key changed, restarted: webhook at /default/github -> " + sink,
		"- eventsource default/heartbeat stopped",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Changes =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	got = Changes(&Status{Sources: []ResolvedSource{heartbeat}}, &Status{Sources: []ResolvedSource{moved, github}})
	want = []string{
		"~ eventsource default/heartbeat: sink URI changed, restarted: ping \"* * * * *\" -> http://elsewhere/",
		"+ eventsource default/github: webhook at /default/github -> " + sink,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Changes =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestDevWebhookListenerDisabled(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "orders.yaml", fmt.Sprintf(topicYAML, "orders"))
	writeFile(t, dir, "hook.yaml", `apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: hook}
spec:
  sink: {ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}}
  webhook: {}
`)
	d := startDev(t, []string{dir}, t.TempDir())
	st := d.rt.Status()
	if d.rt.Endpoints().Webhooks != "" || len(st.Sources) != 0 || len(st.Errors) != 0 ||
		!slices.Contains(st.Notes, "eventsource default/hook: not served: the webhook listener is disabled (--webhook-listen is empty)") {
		t.Errorf("webhooks %q, sources %v, errors %v, notes %q", d.rt.Endpoints().Webhooks, st.Sources, st.Errors, st.Notes)
	}
}
