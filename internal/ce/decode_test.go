package ce

import (
	"errors"
	"net/http"
	"testing"
)

// TestSingleValued: every attribute holds one value in every mode, and
// values are UTF-8 text; the error names the attribute.
func TestSingleValued(t *testing.T) {
	t.Parallel()
	base := func() http.Header {
		return http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/s"}, "Ce-Type": {"t"}}
	}
	twice := base()
	twice["Ce-Id"] = []string{"a", "b"}
	twoKeys := base()
	twoKeys["ce-id"] = []string{"b"} // a header map not built by net/http
	extTwice := base()
	extTwice["Ce-Color"] = []string{"red", "blue"}
	raw := base()
	raw["Ce-Source"] = []string{"/\xff\xfe"}
	encoded := base()
	encoded["Ce-Source"] = []string{"/%FF%FE"}
	reply := base()
	reply["Ce-Type"] = []string{"t", "u"}
	tests := []struct {
		name   string
		decode func() error
		attr   string
	}{
		{"id twice", func() error { _, err := DecodeBinary(twice, nil); return err }, AttrID},
		{"id under two keys", func() error { _, err := DecodeBinary(twoKeys, nil); return err }, AttrID},
		{"extension twice", func() error { _, err := DecodeBinary(extTwice, nil); return err }, "color"},
		{"source not UTF-8", func() error { _, err := DecodeBinary(raw, nil); return err }, AttrSource},
		{"source encoded not UTF-8", func() error { _, err := DecodeBinary(encoded, nil); return err }, AttrSource},
		{"reply with type twice", func() error { _, err := DecodeMessage(reply, nil); return err }, AttrType},
		{"structured source not UTF-8", func() error {
			_, err := DecodeStructured([]byte("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/\xff\",\"type\":\"t\"}"))
			return err
		}, AttrSource},
		{"batched extension not UTF-8", func() error {
			_, err := DecodeBatch([]byte("[{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"x\":\"\xe9\"}]"))
			return err
		}, "x"},
	}
	for _, tc := range tests {
		var ae *AttributeError
		if err := tc.decode(); !errors.As(err, &ae) || ae.Attribute != tc.attr {
			t.Errorf("%s: err = %v, want an AttributeError about %s", tc.name, err, tc.attr)
		}
	}
	if _, err := DecodeBinary(base(), nil); err != nil {
		t.Errorf("a valid event: %v", err)
	}
}
