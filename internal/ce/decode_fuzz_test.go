package ce

import (
	"bytes"
	"net/http"
	"testing"
)

// FuzzDecode feeds arbitrary bodies, in every content mode, and
// header values to the decoders. Whatever they accept must be valid (UTF-8
// values included) and survive the stored form unchanged.
func FuzzDecode(f *testing.F) {
	f.Add(0, []byte(`{"a":1}`), "1.0", "id", "/src", "t", "")
	f.Add(0, []byte{0, 0xff}, "0.3", "%E2%82%AC", "/s%20x", "t", "2020-01-01T00:00:00Z")
	f.Add(1, []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"x":[1,2]}}`), "", "", "", "", "")
	f.Add(1, []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAE="}`), "", "", "", "", "")
	f.Add(1, []byte(`{"specversion":"0.3","id":"1","source":"/s","type":"t","datacontentencoding":"base64","data":"aGk="}`), "", "", "", "", "")
	f.Add(1, []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","n":1.5e3,"b":false,"z":null}`), "", "", "", "", "")
	f.Add(2, []byte(`[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"0.3","id":"2","source":"/s","type":"t","data":"x"}]`), "", "", "", "", "")
	f.Add(2, []byte(`[]`), "", "", "", "", "")
	f.Add(1, []byte(`{"specversion":"1.0","id":"1","id":"2"}`), "", "", "", "", "")
	f.Add(0, []byte(nil), "1.0", "", "", "", "not a time")
	f.Add(0, []byte("x"), "1.0", "id", "/\xff\xfe", "t", "")
	f.Add(0, []byte("x"), "1.0", "100% sure %zz%4", "/%FF", "t", "")
	f.Add(1, []byte("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/\xff\",\"type\":\"t\"}"), "", "", "", "", "")
	f.Fuzz(func(t *testing.T, mode int, body []byte, specversion, id, source, typ, tm string) {
		var events []*Event
		switch mode % 3 {
		case 0:
			h := http.Header{}
			for k, v := range map[string]string{"Ce-Specversion": specversion, "Ce-Id": id, "Ce-Source": source, "Ce-Type": typ, "Ce-Time": tm} {
				if v != "" {
					h[k] = []string{v}
				}
			}
			e, err := DecodeBinary(h, body)
			if err != nil {
				return
			}
			events = []*Event{e}
		case 1:
			e, err := DecodeStructured(body)
			if err != nil {
				return
			}
			events = []*Event{e}
		default:
			var err error
			if events, err = DecodeBatch(body); err != nil {
				return
			}
		}
		for _, e := range events {
			if err := Validate(e); err != nil {
				t.Fatalf("decoder accepted an invalid event: %v", err)
			}
			back := FromStored(e.Header(), e.Data)
			if len(back.Attrs) != len(e.Attrs) {
				t.Fatalf("stored form has %d attributes, want %d", len(back.Attrs), len(e.Attrs))
			}
			for _, a := range e.Attrs {
				if v, ok := back.Get(a.Name); !ok || v != a.Value {
					t.Fatalf("attribute %s: stored %q, want %q", a.Name, v, a.Value)
				}
			}
			if !bytes.Equal(back.Data, e.Data) || back.ContentType != e.ContentType {
				t.Fatal("data or content type changed in the stored form")
			}
			for k, vs := range e.Header() {
				for i := 0; i < len(vs[0]); i++ {
					if c := vs[0][i]; c < 0x20 || c == 0x7f {
						t.Fatalf("header %s holds control byte %#x", k, c)
					}
				}
			}
		}
	})
}
