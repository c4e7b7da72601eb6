package sources

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // test vectors for HMAC-SHA1 webhooks
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

const testSecret = "It's a Secret to Everybody"

// webhookServer runs a webhook source in front of a real sink.
type webhookServer struct {
	*httptest.Server
	sink *sink
	hook *Webhook
}

func newWebhookServer(t *testing.T, spec v1alpha1.WebhookSource, sinkCodes ...int) *webhookServer {
	t.Helper()
	s := newSink(t, sinkCodes...)
	cfg := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypeWebhook, Namespace: "ns1", Name: "hook",
		Webhook: &spec, WebhookSecret: []byte(testSecret), MaxBodyBytes: 1024, Extensions: map[string]string{"team": "a"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, err := NewWebhook(cfg, Options{Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return &webhookServer{Server: srv, sink: s, hook: w}
}

func (ws *webhookServer) post(t *testing.T, header http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ws.URL+"/hooks/github", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func sign(h func() hash.Hash, body string, b64 bool) string {
	mac := hmac.New(h, []byte(testSecret))
	mac.Write([]byte(body))
	if b64 {
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookGitHubSignatureVector(t *testing.T) {
	// The example of GitHub's "Validating webhook deliveries" documentation.
	v, err := newVerifier(&v1alpha1.WebhookSignature{Type: v1alpha1.SignatureGitHub}, []byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := v.Sign([]byte("Hello, World!")); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if err := v.Verify(http.Header{GitHubSignatureHeader: {want}}, []byte("Hello, World!")); err != nil {
		t.Error(err)
	}
}

func TestWebhookSignatures(t *testing.T) {
	const body = `{"action":"opened"}`
	github := &v1alpha1.WebhookSignature{Type: v1alpha1.SignatureGitHub, SecretKeyRef: corev1.SecretKeySelector{Key: "k"}}
	hmacSig := func(header, alg, enc, prefix string) *v1alpha1.WebhookSignature {
		return &v1alpha1.WebhookSignature{Type: v1alpha1.SignatureHMAC, Header: header, Algorithm: alg, Encoding: enc, Prefix: prefix}
	}
	tests := []struct {
		name   string
		sig    *v1alpha1.WebhookSignature
		header http.Header
		want   int
	}{
		{"github good", github, http.Header{"X-Hub-Signature-256": {"sha256=" + sign(sha256.New, body, false)}}, 202},
		{"github upper-case hex", github, http.Header{"X-Hub-Signature-256": {"sha256=" + strings.ToUpper(sign(sha256.New, body, false))}}, 202},
		{"github bad", github, http.Header{"X-Hub-Signature-256": {"sha256=" + sign(sha256.New, body+" ", false)}}, 401},
		{"github no prefix", github, http.Header{"X-Hub-Signature-256": {sign(sha256.New, body, false)}}, 401},
		{"github missing", github, nil, 401},
		{"github wrong header", github, http.Header{"X-Hub-Signature": {"sha1=" + sign(sha1.New, body, false)}}, 401},
		{"hmac sha256 hex default", hmacSig("X-Signature", "", "", ""), http.Header{"X-Signature": {sign(sha256.New, body, false)}}, 202},
		{"hmac sha1 hex", hmacSig("X-Signature", "sha1", "hex", ""), http.Header{"X-Signature": {sign(sha1.New, body, false)}}, 202},
		{"hmac sha1 given sha256", hmacSig("X-Signature", "sha1", "hex", ""), http.Header{"X-Signature": {sign(sha256.New, body, false)}}, 401},
		{"hmac sha512 base64", hmacSig("X-Sig", "sha512", "base64", ""), http.Header{"X-Sig": {sign(sha512.New, body, true)}}, 202},
		{"hmac sha512 base64 given hex", hmacSig("X-Sig", "sha512", "base64", ""), http.Header{"X-Sig": {sign(sha512.New, body, false)}}, 401},
		{"hmac prefix", hmacSig("X-Sig", "sha256", "base64", "v1="), http.Header{"X-Sig": {"v1=" + sign(sha256.New, body, true)}}, 202},
		{"hmac prefix missing", hmacSig("X-Sig", "sha256", "base64", "v1="), http.Header{"X-Sig": {sign(sha256.New, body, true)}}, 401},
		{"hmac missing", hmacSig("X-Sig", "sha512", "hex", ""), nil, 401},
		{"hmac garbage", hmacSig("X-Sig", "sha512", "hex", ""), http.Header{"X-Sig": {"zz"}}, 401},
		{"no signature configured", nil, nil, 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWebhookServer(t, v1alpha1.WebhookSource{Signature: tt.sig})
			h := http.Header{"Content-Type": {"application/json"}}
			for k, v := range tt.header {
				h[k] = v
			}
			resp := ws.post(t, h, body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			// The send is synchronous: whatever the sink got, it got before the answer.
			got := ws.sink.events()
			if tt.want == 401 {
				if n := ws.sink.attemptCount(); n != 0 {
					t.Errorf("401 but the sink got %d requests", n)
				}
				return
			}
			if len(got) != 1 || string(got[0].Body) != body {
				t.Errorf("sink got %v", got)
			}
		})
	}
}

func TestWebhookPlainRequestAttributes(t *testing.T) {
	tests := []struct {
		name      string
		spec      v1alpha1.WebhookSource
		header    http.Header
		wantType  string
		wantSrc   string
		wantID    string
		wantCType string
	}{
		{"defaults", v1alpha1.WebhookSource{}, http.Header{"Content-Type": {"text/plain"}},
			WebhookEventType, "/apis/eventing.herald.dev/v1alpha1/namespaces/ns1/eventsources/hook", "", "text/plain"},
		{"spec wins", v1alpha1.WebhookSource{EventType: "com.example.order", EventSource: "https://shop.example"},
			http.Header{"X-Event-Type": {"ignored"}, "X-Github-Event": {"push"}, "X-Request-Id": {"req-1"}},
			"com.example.order", "https://shop.example", "req-1", ""},
		{"ce-type header", v1alpha1.WebhookSource{}, http.Header{"Ce-Type": {"com.example.a"}, "X-Event-Type": {"b"}},
			"com.example.a", "", "", ""},
		{"x-event-type header", v1alpha1.WebhookSource{}, http.Header{"X-Event-Type": {"com.example.b"}},
			"com.example.b", "", "", ""},
		{"github", v1alpha1.WebhookSource{}, http.Header{"X-Github-Event": {"push"}, "X-Github-Delivery": {"72d3162e"}, "X-Request-Id": {"r"}, "Content-Type": {"application/json"}},
			"com.github.push", "", "72d3162e", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWebhookServer(t, tt.spec)
			if resp := ws.post(t, tt.header, "payload"); resp.StatusCode != 202 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			got := ws.sink.events()
			if len(got) != 1 {
				t.Fatalf("sink got %d events", len(got))
			}
			h := got[0].Header
			if h.Get("Ce-Specversion") != "1.0" || h.Get("Ce-Type") != tt.wantType || h.Get("Ce-Time") == "" || h.Get("Ce-Team") != "a" {
				t.Errorf("headers %v", h)
			}
			if tt.wantSrc != "" && h.Get("Ce-Source") != tt.wantSrc {
				t.Errorf("source %q, want %q", h.Get("Ce-Source"), tt.wantSrc)
			}
			if tt.wantID != "" && h.Get("Ce-Id") != tt.wantID {
				t.Errorf("id %q, want %q", h.Get("Ce-Id"), tt.wantID)
			}
			if tt.wantID == "" {
				if _, err := uuid.Parse(h.Get("Ce-Id")); err != nil {
					t.Errorf("id %q is no UUID", h.Get("Ce-Id"))
				}
			}
			if h.Get("Content-Type") != tt.wantCType || string(got[0].Body) != "payload" {
				t.Errorf("content type %q, body %q", h.Get("Content-Type"), got[0].Body)
			}
		})
	}
}

func TestWebhookCloudEventPassThrough(t *testing.T) {
	ws := newWebhookServer(t, v1alpha1.WebhookSource{EventType: "not.used", EventSource: "/not/used"})
	binary := http.Header{
		"Ce-Specversion": {"0.3"},
		"Ce-Id":          {"abc"},
		"Ce-Source":      {"/origin"},
		"Ce-Type":        {"com.example.thing"},
		"Ce-Time":        {"2026-01-02T03:04:05.123Z"},
		"Ce-Subject":     {"a%20b"},
		"Ce-Myext":       {"v"},
		"Content-Type":   {"application/xml"},
		"X-Other":        {"dropped"},
		"Traceparent":    {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	if resp := ws.post(t, binary, "<a/>"); resp.StatusCode != 202 {
		t.Fatalf("binary: status %d", resp.StatusCode)
	}
	structured := `{"specversion":"1.0","id":"s1","source":"/origin","type":"com.example.thing","time":"2026-01-02T03:04:05.1Z","data":{"x":1}}`
	if resp := ws.post(t, http.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, structured); resp.StatusCode != 202 {
		t.Fatalf("structured: status %d", resp.StatusCode)
	}
	got := ws.sink.events()
	if len(got) != 2 {
		t.Fatalf("sink got %d", len(got))
	}
	for k, v := range binary {
		if k == "X-Other" {
			if got[0].Header.Get(k) != "" {
				t.Errorf("non-CloudEvents header %s forwarded", k)
			}
			continue
		}
		if got[0].Header.Get(k) != v[0] {
			t.Errorf("binary %s = %q, want %q", k, got[0].Header.Get(k), v[0])
		}
	}
	if got[0].Header.Get("Ce-Team") != "a" || string(got[0].Body) != "<a/>" {
		t.Errorf("binary overrides or body: %v %q", got[0].Header, got[0].Body)
	}
	if ct := got[1].Header.Get("Content-Type"); ct != "application/cloudevents+json; charset=utf-8" {
		t.Errorf("structured content type %q", ct)
	}
	for _, want := range []string{`"time":"2026-01-02T03:04:05.1Z"`, `"data":{"x":1}`, `"id":"s1"`, `"team":"a"`, `"type":"com.example.thing"`} {
		if !bytes.Contains(got[1].Body, []byte(want)) {
			t.Errorf("structured body %s lacks %s", got[1].Body, want)
		}
	}
}

func TestWebhookAnswers(t *testing.T) {
	tests := []struct {
		name       string
		sinkCodes  []int
		method     string
		header     http.Header
		body       string
		want       int
		retryAfter string
		forwarded  int
	}{
		{"accepted", []int{200}, "POST", nil, "x", 202, "", 1},
		{"sink retried then accepted", []int{503, 202}, "POST", nil, "x", 202, "", 1},
		{"sink 400", []int{400}, "POST", nil, "x", 502, "", 0},
		{"sink 422", []int{422}, "POST", nil, "x", 502, "", 0},
		{"sink not ready (404) then accepted", []int{404, 202}, "POST", nil, "x", 202, "", 1},
		{"sink conflict (409) then accepted", []int{409, 202}, "POST", nil, "x", 202, "", 1},
		{"sink 404 to the end", []int{404}, "POST", nil, "x", 503, "5", 0},
		{"sink down", []int{503}, "POST", nil, "x", 503, "5", 0},
		{"sink throttles", []int{429}, "POST", nil, "x", 503, "5", 0},
		{"GET", nil, "GET", nil, "", 405, "", 0},
		{"PUT", nil, "PUT", nil, "x", 405, "", 0},
		{"too large", nil, "POST", nil, strings.Repeat("x", 1025), 413, "", 0},
		{"binary event without id", nil, "POST", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}}, "x", 400, "", 0},
		{"binary id twice", nil, "POST", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"a", "b"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}}, "x", 400, "", 0},
		{"binary source not UTF-8", nil, "POST", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"a"}, "Ce-Type": {"t"}, "Ce-Source": {"/\xff\xfe"}}, "x", 400, "", 0},
		{"bad structured event", nil, "POST", http.Header{"Content-Type": {ContentTypeStructuredJSON}}, `{"specversion":"1.0"}`, 400, "", 0},
		{"structured avro", nil, "POST", http.Header{"Content-Type": {"application/cloudevents+avro"}}, "x", 415, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWebhookServer(t, v1alpha1.WebhookSource{}, tt.sinkCodes...)
			req, _ := http.NewRequest(tt.method, ws.URL, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.want == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
			if n := len(ws.sink.events()); n != tt.forwarded {
				t.Errorf("sink accepted %d events, want %d", n, tt.forwarded)
			}
		})
	}
}

func TestWebhookSinkRetryAfter(t *testing.T) {
	ws := newWebhookServer(t, v1alpha1.WebhookSource{}, 503)
	ws.sink.header.Set("Retry-After", "42")
	resp := ws.post(t, nil, "x")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "42" {
		t.Errorf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestWebhookServeHealth(t *testing.T) {
	s := newSink(t)
	cfg := Config{Sink: s.URL, Type: v1alpha1.EventSourceTypeWebhook, Namespace: "ns1", Name: "hook", Webhook: &v1alpha1.WebhookSource{}}
	w, err := NewWebhook(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	eventually(t, "ready", w.Ready)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(base+"/healthz", "text/plain", strings.NewReader("x"))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("POST /healthz is a webhook request: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
