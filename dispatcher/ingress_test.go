package dispatcher

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// TestIngressStatus covers every answer of the ingress and checks that
// nothing is stored for refused requests.
func TestIngressStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("orders", func(tp *v1alpha1.Topic) { tp.Spec.MaxEventSize = 2048 }), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/orders"
	big := strings.Repeat("x", 3000)
	structured := map[string]string{"Content-Type": "application/cloudevents+json"}
	batch := map[string]string{"Content-Type": "application/cloudevents-batch+json"}

	tests := []struct {
		name      string
		method    string
		path      string
		header    map[string]string
		body      string
		chunked   bool
		status    int
		attribute string
		stored    bool
	}{
		{name: "binary 1.0", header: binary("b1"), body: `{"a":1}`, status: 202, stored: true},
		{name: "binary 0.3", header: map[string]string{"Ce-Specversion": "0.3", "Ce-Id": "b03", "Ce-Source": "/s", "Ce-Type": "t"}, body: "x", status: 202, stored: true},
		{name: "binary without data", header: map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "nodata", "Ce-Source": "/s", "Ce-Type": "t"}, status: 202, stored: true},
		{name: "structured 1.0", header: structured, body: `{"specversion":"1.0","id":"s1","source":"/s","type":"t","data":{"a":1}}`, status: 202, stored: true},
		{name: "structured 0.3", header: structured, body: `{"specversion":"0.3","id":"s03","source":"/s","type":"t","datacontentencoding":"base64","data":"aGk="}`, status: 202, stored: true},
		{name: "structured with charset", header: map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, body: `{"specversion":"1.0","id":"s2","source":"/s","type":"t"}`, status: 202, stored: true},
		{name: "batch", header: batch, body: `[{"specversion":"1.0","id":"k1","source":"/s","type":"t"},{"specversion":"0.3","id":"k2","source":"/s","type":"t"}]`, status: 202, stored: true},
		{name: "no specversion", header: map[string]string{"Content-Type": "application/json"}, body: `{"a":1}`, status: 400, attribute: "specversion"},
		{name: "unknown specversion", header: binary("v", "Ce-Specversion", "2.0"), status: 400, attribute: "specversion"},
		{name: "missing id", header: map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "/s", "Ce-Type": "t"}, status: 400, attribute: "id"},
		{name: "empty source", header: binary("e", "Ce-Source", ""), status: 400, attribute: "source"},
		{name: "source not a URI-reference", header: structured, body: `{"specversion":"1.0","id":"u","source":":/x","type":"t"}`, status: 400, attribute: "source"},
		{name: "missing type", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s"}`, status: 400, attribute: "type"},
		{name: "bad time", header: binary("t", "Ce-Time", "yesterday"), status: 400, attribute: "time"},
		{name: "empty subject", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s","type":"t","subject":""}`, status: 400, attribute: "subject"},
		{name: "upper-case attribute", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s","type":"t","myExt":"x"}`, status: 400, attribute: "myExt"},
		{name: "object attribute", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s","type":"t","ext":{"a":1}}`, status: 400, attribute: "ext"},
		{name: "bad base64", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s","type":"t","data_base64":"!!"}`, status: 400, attribute: "data_base64"},
		{name: "invalid JSON", header: structured, body: `{"specversion":"1.0",`, status: 400},
		{name: "batch with an invalid event", header: batch, body: `[{"specversion":"1.0","id":"ok1","source":"/s","type":"t"},{"specversion":"1.0","source":"/s","type":"t"}]`, status: 400, attribute: "id"},
		{name: "batch not an array", header: batch, body: `{"specversion":"1.0","id":"x","source":"/s","type":"t"}`, status: 400},
		{name: "GET", method: http.MethodGet, status: 405},
		{name: "unknown topic", path: "/default/nope", header: binary("n"), status: 404},
		{name: "bad path", path: "/just-one", header: binary("n"), status: 404},
		{name: "too large by Content-Length", header: binary("big"), body: big, status: 413},
		{name: "too large without Content-Length", header: binary("big2"), body: big, chunked: true, status: 413},
		{name: "too large structured", header: structured, body: `{"specversion":"1.0","id":"u","source":"/s","type":"t","data":"` + big + `"}`, status: 413},
		{name: "avro", header: map[string]string{"Content-Type": "application/cloudevents+avro"}, body: "x", status: 415},
		{name: "avro batch", header: map[string]string{"Content-Type": "application/cloudevents-batch+avro"}, body: "x", status: 415},
	}
	stored := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			target := url
			if tc.path != "" {
				target = r.url + tc.path
			}
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length: chunked encoding
			}
			req, _ := http.NewRequest(method, target, body)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, b)
			}
			if tc.status == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow = %q, want POST", resp.Header.Get("Allow"))
			}
			if tc.status >= 400 {
				var eb struct {
					Error     string `json:"error"`
					Attribute string `json:"attribute"`
				}
				if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" {
					t.Fatalf("error body %q is not {\"error\": ...}: %v", b, err)
				}
				if eb.Attribute != tc.attribute {
					t.Errorf("attribute = %q, want %q (%s)", eb.Attribute, tc.attribute, eb.Error)
				}
			}
		})
		if tc.stored {
			stored++
			if strings.HasPrefix(tc.name, "batch") {
				stored++
			}
		}
	}
	if got := e.streamMsgs(res.Plan.Stream); got != uint64(stored) {
		t.Errorf("stream holds %d messages, want %d (refused requests must store nothing)", got, stored)
	}
}

// TestIngressDuplicates: the same source and id inside the duplicate window
// is acknowledged every time and stored once.
func TestIngressDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("dups"), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	for range 3 {
		sendOK(t, r.url+"/default/dups", "same")
	}
	resp, _ := post(t, r.url+"/default/dups", map[string]string{"Content-Type": ce.MediaBatchJSON},
		[]byte(`[{"specversion":"1.0","id":"same","source":"/test","type":"t"},{"specversion":"1.0","id":"other","source":"/test","type":"t"}]`))
	if resp.StatusCode != 202 {
		t.Fatalf("batch: %d", resp.StatusCode)
	}
	sendOK(t, r.url+"/default/dups", "same", "Ce-Source", "/elsewhere")
	if got := e.streamMsgs(res.Plan.Stream); got != 3 {
		t.Errorf("stream holds %d messages, want 3", got)
	}
}

// TestIngressStreamFull: a Topic with discard new answers 429 with
// Retry-After once full.
func TestIngressStreamFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	two := int64(2)
	res := e.provision(newTopic("full", func(tp *v1alpha1.Topic) {
		tp.Spec.Retention = &v1alpha1.TopicRetention{MaxMessages: &two, Discard: v1alpha1.DiscardNew}
	}), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/full", "1")
	sendOK(t, r.url+"/default/full", "2")
	resp, body := post(t, r.url+"/default/full", binary("3"), []byte("{}"))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q (%s), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, body = post(t, r.url+"/default/full", map[string]string{"Content-Type": ce.MediaBatchJSON},
		[]byte(`[{"specversion":"1.0","id":"4","source":"/s","type":"t"}]`))
	if resp.StatusCode != http.StatusTooManyRequests || !bytes.Contains(body, []byte(`"results"`)) {
		t.Fatalf("batch got %d %s, want 429 with a per-event report", resp.StatusCode, body)
	}
}

// TestIngressNATSDown: while NATS is unreachable the ingress answers 503
// with Retry-After.
func TestIngressNATSDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("down"), nil, nil)
	r := e.start(e.connect(), Options{})
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/down", "1")
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	resp, body := post(t, r.url+"/default/down", binary("2"), []byte("{}"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q (%s), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if r.d.Ready() == nil {
		t.Error("Ready() = nil while NATS is down")
	}
}

// TestIngressTooManyPendingPublishes: once maxPendingPublishes events await
// their acknowledgement, a further request waits publishStallWait for a
// slot, then gets 503 with Retry-After and nothing is stored.
func TestIngressTooManyPendingPublishes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(newTopic("busy"), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	for range cap(r.d.publishSlots) {
		r.d.publishSlots <- struct{}{}
	}
	resp, body := post(t, r.url+"/default/busy", binary("1"), []byte("{}"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != retryAfterFull {
		t.Fatalf("got %d Retry-After %q (%s), want 503 with Retry-After %s", resp.StatusCode, resp.Header.Get("Retry-After"), body, retryAfterFull)
	}
	if n := e.streamMsgs(res.Plan.Stream); n != 0 {
		t.Errorf("%d events stored, want 0", n)
	}
	<-r.d.publishSlots
	sendOK(t, r.url+"/default/busy", "2")
}

// TestIngressTopicBacklog: once maxTopicPendingPublishes events of a Topic
// await their acknowledgement, a further request for that Topic gets 503
// with Retry-After at once and nothing is stored, while other Topics
// still store events.
func TestIngressTopicBacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	busy := e.provision(newTopic("busy"), nil, nil)
	other := e.provision(newTopic("other"), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &busy.Plan)
	r.waitDelivering(t, &other.Plan)
	pending := r.d.topic("default", "busy").pending
	pending.Add(maxTopicPendingPublishes)
	resp, body := post(t, r.url+"/default/busy", binary("1"), []byte("{}"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != retryAfterFull {
		t.Fatalf("got %d Retry-After %q (%s), want 503 with Retry-After %s", resp.StatusCode, resp.Header.Get("Retry-After"), body, retryAfterFull)
	}
	sendOK(t, r.url+"/default/other", "1")
	if n := e.streamMsgs(busy.Plan.Stream); n != 0 {
		t.Errorf("%d events stored, want 0", n)
	}
	pending.Add(-maxTopicPendingPublishes)
	sendOK(t, r.url+"/default/busy", "2")
	if n := pending.Load(); n != 0 {
		t.Errorf("%d publishes of the Topic pending after its request was answered", n)
	}
}
