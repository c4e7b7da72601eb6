package ce

import (
	"net/http"
	"testing"
)

func TestPercentEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		decoded, encoded string
	}{
		{"plain-ASCII_value.1~", "plain-ASCII_value.1~"},
		{"a b", "a%20b"},
		{`say "hi"`, "say%20%22hi%22"},
		{"100%", "100%25"},
		{"€", "%E2%82%AC"},
		{"tab\there", "tab%09here"},
		{"line\r\nbreak", "line%0D%0Abreak"},
		{" lead and trail ", "%20lead%20and%20trail%20"},
		{"\x7f", "%7F"},
		{"ünï", "%C3%BCn%C3%AF"},
		{"~!#$&'()*+", "~!#$&'()*+"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := Encode(tc.decoded); got != tc.encoded {
			t.Errorf("Encode(%q) = %q, want %q", tc.decoded, got, tc.encoded)
		}
		if got := Decode(tc.encoded); got != tc.decoded {
			t.Errorf("Decode(%q) = %q, want %q", tc.encoded, got, tc.decoded)
		}
	}
	// Decoding is lenient and once only.
	for in, want := range map[string]string{
		"100% sure": "100% sure",
		"%zz":       "%zz",
		"%2":        "%2",
		"%2541":     "%41",
		"%e2%82%ac": "€",
	} {
		if got := Decode(in); got != want {
			t.Errorf("Decode(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStoredRoundTrip: an event survives the stored-message form.
func TestStoredRoundTrip(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"id 1"}, "Ce-Source": {"/src"}, "Ce-Type": {"t"},
		"Ce-Ext": {"%E2%82%AC x"}, "Content-Type": {"text/plain"}, "Traceparent": {"tp"},
	}
	e, err := DecodeBinary(h, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	back := FromStored(e.Header(), e.Data)
	for _, a := range e.Attrs {
		if v, ok := back.Get(a.Name); !ok || v != a.Value {
			t.Errorf("%s: got %q, want %q", a.Name, v, a.Value)
		}
	}
	if back.ContentType != "text/plain" || string(back.Data) != "data" || back.TraceParent != "tp" {
		t.Errorf("round trip lost content type, data or trace: %+v", back)
	}
	if v, _ := back.Get("ext"); v != "€ x" {
		t.Errorf("ext = %q", v)
	}
}
