package devmode

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// syncBuffer is a bytes.Buffer safe for a server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDisplayPrintsEvents(t *testing.T) {
	tests := []struct {
		name    string
		header  http.Header
		body    string
		status  int
		want    []string
		notWant []string
	}{
		{
			name: "binary mode",
			header: http.Header{
				"Ce-Specversion": {"1.0"}, "Ce-Type": {"com.example.order.created"}, "Ce-Source": {"/shop"},
				"Ce-Id": {"42"}, "Ce-Subject": {"order-7"}, "Ce-Time": {"2026-01-02T15:04:05.123456789Z"},
				"Ce-Partitionkey": {"k%201"}, "Content-Type": {"application/json"},
			},
			body:   `{"id":1,"items":["a"]}`,
			status: http.StatusAccepted,
			want: []string{
				"☁️  cloudevents.Event (binary mode)\n",
				"Context Attributes,\n",
				"  specversion: 1.0\n", "  type: com.example.order.created\n", "  source: /shop\n",
				"  subject: order-7\n", "  id: 42\n", "  time: 2026-01-02T15:04:05.123456789Z\n",
				"  datacontenttype: application/json\n",
				"Extensions,\n  partitionkey: k 1\n",
				"Data,\n  {\n    \"id\": 1,\n    \"items\": [\n      \"a\"\n    ]\n  }\n",
			},
		},
		{
			name:   "structured mode",
			header: http.Header{"Content-Type": {"application/cloudevents+json"}},
			body: `{"specversion":"1.0","type":"com.example.order.shipped","source":"/s","id":"7",
				"datacontenttype":"text/plain","tenant":"acme","data":"hello\nworld"}`,
			status: http.StatusAccepted,
			want: []string{
				"☁️  cloudevents.Event (structured mode)\n",
				"  type: com.example.order.shipped\n", "  id: 7\n", "  datacontenttype: text/plain\n",
				"Extensions,\n  tenant: acme\n",
				"Data,\n  hello\n  world\n",
			},
		},
		{
			name:   "batched mode",
			header: http.Header{"Content-Type": {"application/cloudevents-batch+json"}},
			body:   `[{"specversion":"1.0","type":"a","source":"/s","id":"1"},{"specversion":"1.0","type":"b","source":"/s","id":"2"}]`,
			status: http.StatusAccepted,
			want:   []string{"  type: a\n", "  type: b\n", "(batched mode)"},
		},
		{
			name: "binary mode, one bad escape leaves the others decoded",
			header: http.Header{
				"Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}, "Ce-Id": {"1"},
				"Ce-Subject": {"100% sure, caf%C3%A9"},
			},
			status: http.StatusAccepted,
			want:   []string{"  subject: 100% sure, café\n"},
		},
		{
			name: "binary mode, an attribute given twice",
			header: http.Header{
				"Ce-Specversion": {"1.0"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}, "Ce-Id": {"1", "2"},
			},
			status:  http.StatusBadRequest,
			notWant: []string{"cloudevents.Event"},
		},
		{
			name:    "no cloudevent",
			header:  http.Header{"Content-Type": {"application/json"}},
			body:    `{}`,
			status:  http.StatusBadRequest,
			notWant: []string{"cloudevents.Event"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			srv := httptest.NewServer(NewDisplay(&out, nil))
			defer srv.Close()
			req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			got := out.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("output has %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestFilterSummary(t *testing.T) {
	fr := LoadFile(writeFile(t, t.TempDir(), "s.yaml", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topic: t
  subscriber: {uri: "http://x/"}
  filters:
  - exact: {type: com.example.order.created}
  - any: [{prefix: {source: /shop}}, {not: {suffix: {subject: .tmp}}}]
  - cesql: "tenant = 'acme'"
`))
	if len(fr.Objects) != 1 {
		t.Fatal(fr.Errors)
	}
	rs := resolveOK(t, fr.Objects[0])
	got := FilterSummary(rs.Filters)
	want := `type = "com.example.order.created" and (source starts with "/shop" or not subject ends with ".tmp") and cesql(tenant = 'acme')`
	if got != want {
		t.Errorf("FilterSummary =\n  %s\nwant\n  %s", got, want)
	}
	if got := FilterSummary(nil); got != "none (every event)" {
		t.Errorf("FilterSummary(nil) = %q", got)
	}
}

func resolveOK(t *testing.T, o *Object) plan.SubscriptionPlan {
	t.Helper()
	topic := &v1alpha1.Topic{}
	topic.Namespace, topic.Name = o.Subscription.Namespace, o.Subscription.Spec.Topic
	rs, err := resolveSubscription(&Resolver{IngressURL: "http://127.0.0.1:1"}, topic, o.Subscription)
	if err != nil {
		t.Fatal(err)
	}
	sp, _, err := compiler.CompileSubscription(topic, rs)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
