package ce

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// TestAppendStructuredRoundTrip stores events as the ingress does, writes
// them as a batch with AppendStructured and reads the batch back with
// DecodeBatch and with the CloudEvents SDK: every attribute, the content
// type and the data come back unchanged.
func TestAppendStructuredRoundTrip(t *testing.T) {
	t.Parallel()
	base := func(id string, more ...Attribute) []Attribute {
		return append([]Attribute{{AttrSpecVersion, "1.0"}, {AttrID, id}, {AttrSource, "/src"}, {AttrType, "t.created"}}, more...)
	}
	events := []*Event{
		{Attrs: base("json"), ContentType: "application/json", Data: []byte(`{"qty": 2, "items": ["a", "b"]}`)},
		{Attrs: base("vendor-json"), ContentType: "application/vnd.shop+json; charset=utf-8", Data: []byte(`[1,2]`)},
		{Attrs: base("json-params"), ContentType: "Application/JSON; charset=utf-8", Data: []byte(`"a string"`)},
		{Attrs: base("not-json"), ContentType: "application/json", Data: []byte(`{broken`)},
		{Attrs: base("binary"), ContentType: "application/octet-stream", Data: []byte{0, 1, 2, 0xff, '"', '\\'}},
		{Attrs: base("no-content-type"), Data: []byte("plain bytes")},
		{Attrs: base("text"), ContentType: "text/plain", Data: []byte("héllo\nworld")},
		{Attrs: base("no-data", Attribute{AttrSubject, "orders/1"})},
		{Attrs: base("escapes", Attribute{AttrSubject, "quote \" backslash \\ tab \t nl \n ctl \x01 € 😀"}, Attribute{"myext", "100% sure"})},
		{Attrs: base("time", Attribute{AttrTime, "2026-12-05T10:00:00.123Z"}, Attribute{AttrDataSchema, "https://schemas.example/o"})},
		{Attrs: base("trace"), TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "rojo=00f067aa0ba902b7"},
	}
	batch := []byte{'['}
	for i, e := range events {
		if i > 0 {
			batch = append(batch, ',')
		}
		batch = AppendStructured(batch, e.Header(), e.Data)
	}
	batch = append(batch, ']')
	if !json.Valid(batch) {
		t.Fatalf("not JSON: %s", batch)
	}
	got, err := DecodeBatch(batch)
	if err != nil {
		t.Fatalf("DecodeBatch: %v\n%s", err, batch)
	}
	if len(got) != len(events) {
		t.Fatalf("decoded %d events, want %d", len(got), len(events))
	}
	for i, want := range events {
		g := got[i]
		wantAttrs := attrMap(want.Attrs)
		if want.TraceParent != "" {
			wantAttrs["traceparent"] = want.TraceParent
			wantAttrs["tracestate"] = want.TraceState
		}
		if !maps.Equal(attrMap(g.Attrs), wantAttrs) {
			t.Errorf("event %d: attributes %v, want %v", i, attrMap(g.Attrs), wantAttrs)
		}
		if g.ContentType != want.ContentType {
			t.Errorf("event %d: datacontenttype %q, want %q", i, g.ContentType, want.ContentType)
		}
		if !bytes.Equal(g.Data, want.Data) {
			t.Errorf("event %d: data %q, want %q", i, g.Data, want.Data)
		}
	}

	// The CloudEvents SDK reads the same batch.
	var sdk []event.Event
	if err := json.Unmarshal(batch, &sdk); err != nil {
		t.Fatalf("the SDK refuses the batch: %v", err)
	}
	for i, want := range events {
		id, _ := want.Get(AttrID)
		if sdk[i].ID() != id || sdk[i].Source() != "/src" || sdk[i].Type() != "t.created" {
			t.Errorf("SDK event %d: id %q source %q type %q", i, sdk[i].ID(), sdk[i].Source(), sdk[i].Type())
		}
		if !bytes.Equal(sdk[i].Data(), want.Data) && !(len(want.Data) == 0 && len(sdk[i].Data()) == 0) {
			t.Errorf("SDK event %d: data %q, want %q", i, sdk[i].Data(), want.Data)
		}
	}
}

func attrMap(as []Attribute) map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		m[a.Name] = a.Value
	}
	return m
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `"\`, "\x00\x1f\x7f", "€😀", "\u2028", "a\xffb", "\xe2\x82"} {
		got := appendJSONString(nil, s)
		want, _ := json.Marshal(s)
		// encoding/json also escapes <, >, & and U+2028/9 for HTML; both
		// must decode to the same string.
		var a, b string
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("%q: %s is not a JSON string: %v", s, got, err)
		}
		_ = json.Unmarshal(want, &b)
		if a != b {
			t.Errorf("%q: decodes to %q, encoding/json's to %q", s, a, b)
		}
	}
}
