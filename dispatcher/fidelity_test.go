package dispatcher

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/herald-dev/herald/internal/ce"
)

// TestFidelity: the subscriber receives every attribute and the data
// exactly as sent, whatever the content mode, in binary mode.
func TestFidelity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sub := newSink(t, nil)
	res := e.provision(newTopic("fidelity"), []subscription{{name: "all", uri: sub.url()}}, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/fidelity"
	binaryData := []byte{0, 1, 2, 0xff, 0xfe, '\r', '\n', ' '}

	tests := []struct {
		name   string
		header map[string]string
		body   []byte
		// want holds the decoded ce- attributes the subscriber must see;
		// an empty value means the attribute must be absent.
		want        map[string]string
		contentType string
		data        []byte
		wantHeader  map[string]string
	}{
		{
			name: "binary 1.0 with encoded values, extensions and trace context",
			header: map[string]string{
				"Ce-Specversion": "1.0", "Ce-Id": "f1", "Ce-Source": "/fid%20elity", "Ce-Type": "t",
				"Ce-Time":      "2020-01-02T03:04:05.123456789+01:00",
				"Ce-Subject":   "%22quoted%22 and %25 percent",
				"Ce-Myext":     "%E2%82%AC%20euro",
				"Ce-Raw":       "100% raw",
				"Content-Type": "application/octet-stream", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
				"tracestate": "congo=t61rcWkgMzE",
			},
			body: binaryData,
			want: map[string]string{
				"specversion": "1.0", "id": "f1", "source": "/fid elity", "type": "t",
				"time": "2020-01-02T03:04:05.123456789+01:00", "subject": `"quoted" and % percent`,
				"myext": "€ euro", "raw": "100% raw",
			},
			contentType: "application/octet-stream",
			data:        binaryData,
			wantHeader: map[string]string{
				"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "Tracestate": "congo=t61rcWkgMzE",
				"Prefer": "reply",
			},
		},
		{
			name:        "binary 0.3 stays 0.3",
			header:      map[string]string{"Ce-Specversion": "0.3", "Ce-Id": "f2", "Ce-Source": "/s", "Ce-Type": "t", "Ce-Schemaurl": "http://x/s", "Content-Type": "text/plain"},
			body:        []byte("hello"),
			want:        map[string]string{"specversion": "0.3", "id": "f2", "schemaurl": "http://x/s"},
			contentType: "text/plain",
			data:        []byte("hello"),
		},
		{
			name:   "structured JSON data keeps its exact bytes",
			header: map[string]string{"Content-Type": ce.MediaStructuredJSON, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			body: []byte(`{"specversion":"1.0","id":"f3","source":"/s","type":"t","time":"2021-06-01T00:00:00.1Z",
				"count":42,"flag":true,"nullext":null,"unicode":"\u00e9t\u00e9 \"q\"","datacontenttype":"application/json","data": { "a" : [1, 2.50] }}`),
			want: map[string]string{
				"specversion": "1.0", "id": "f3", "time": "2021-06-01T00:00:00.1Z", "count": "42", "flag": "true",
				"nullext": "", "unicode": `été "q"`, "datacontenttype": "",
			},
			contentType: "application/json",
			data:        []byte(`{ "a" : [1, 2.50] }`),
			wantHeader:  map[string]string{"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		},
		{
			name:        "structured data_base64",
			header:      map[string]string{"Content-Type": ce.MediaStructuredJSON},
			body:        []byte(`{"specversion":"1.0","id":"f4","source":"/s","type":"t","datacontenttype":"application/octet-stream","data_base64":"AAEC//7/"}`),
			want:        map[string]string{"id": "f4", "data_base64": ""},
			contentType: "application/octet-stream",
			data:        []byte{0, 1, 2, 0xff, 0xfe, 0xff},
		},
		{
			name:        "structured string data of a text type",
			header:      map[string]string{"Content-Type": ce.MediaStructuredJSON},
			body:        []byte(`{"specversion":"1.0","id":"f5","source":"/s","type":"t","datacontenttype":"text/plain","data":"line\nbreak"}`),
			want:        map[string]string{"id": "f5"},
			contentType: "text/plain",
			data:        []byte("line\nbreak"),
		},
		{
			name:        "structured 0.3 base64 data",
			header:      map[string]string{"Content-Type": ce.MediaStructuredJSON},
			body:        []byte(`{"specversion":"0.3","id":"f6","source":"/s","type":"t","datacontenttype":"text/plain","datacontentencoding":"base64","data":"aGk="}`),
			want:        map[string]string{"specversion": "0.3", "id": "f6", "datacontentencoding": ""},
			contentType: "text/plain",
			data:        []byte("hi"),
		},
		{
			name:   "structured without data",
			header: map[string]string{"Content-Type": ce.MediaStructuredJSON},
			body:   []byte(`{"specversion":"1.0","id":"f7","source":"/s","type":"t"}`),
			want:   map[string]string{"id": "f7"},
		},
	}
	for _, tc := range tests {
		resp, body := post(t, url, tc.header, tc.body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	eventually(t, 10*time.Second, func() bool { return sub.count() >= len(tests) }, "%d deliveries", len(tests))
	byID := map[string]received{}
	for _, rec := range sub.requests() {
		byID[rec.ce("id")] = rec
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.want["id"]
			rec, ok := byID[id]
			if !ok {
				t.Fatalf("event %s not delivered", id)
			}
			for name, want := range tc.want {
				vals, present := rec.header["Ce-"+string(bytes.ToUpper([]byte(name[:1])))+name[1:]]
				if want == "" {
					if present {
						t.Errorf("ce-%s present (%q), want absent", name, vals)
					}
					continue
				}
				if !present {
					t.Errorf("ce-%s missing", name)
					continue
				}
				if got := ce.Decode(vals[0]); got != want {
					t.Errorf("ce-%s = %q (wire %q), want %q", name, got, vals[0], want)
				}
				for i := 0; i < len(vals[0]); i++ {
					if c := vals[0][i]; c == ' ' || c == '"' || c > 0x7e {
						t.Errorf("ce-%s wire value %q is not percent-encoded", name, vals[0])
						break
					}
				}
			}
			if got := rec.header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if !bytes.Equal(rec.body, tc.data) {
				t.Errorf("data = %q, want %q", rec.body, tc.data)
			}
			for k, v := range tc.wantHeader {
				if got := rec.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			// The SDK reads what the subscriber got as a valid CloudEvent.
			req, _ := http.NewRequest(http.MethodPost, "http://x", bytes.NewReader(rec.body))
			req.Header = rec.header
			ev, err := cehttp.NewEventFromHTTPRequest(req)
			if err != nil {
				t.Fatalf("sdk-go cannot read the delivery: %v", err)
			}
			if ev.ID() != id || ev.SpecVersion() != rec.ce("specversion") {
				t.Errorf("sdk-go read id %q specversion %q", ev.ID(), ev.SpecVersion())
			}
		})
	}
}
