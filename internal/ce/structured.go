package ce

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// AppendStructured appends the stored message with headers h and body data
// to dst as one CloudEvent in the JSON event format (structured content
// mode), the element of a batch (MediaBatchJSON): every context attribute
// as a JSON string, percent-decoded; datacontenttype from Content-Type;
// traceparent and tracestate as the distributed-tracing extension's
// attributes; data as JSON when datacontenttype is application/json or
// text/json and the bytes are valid JSON, else as data_base64 (the
// CloudEvents SDKs read other "+json" types' data only as a string).
// DecodeBatch reads it back into the same event.
//
// It writes JSON itself rather than through encoding/json because it runs
// once per delivered event of a batch: no map, no reflection, no
// intermediate strings.
func AppendStructured(dst []byte, h map[string][]string, data []byte) []byte {
	dst = append(dst, '{')
	first := true
	member := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
	}
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case IsKey(k):
			member(AttrName(k))
			dst = appendJSONString(dst, Decode(v[0]))
		case k == HeaderTraceParent && v[0] != "":
			member("traceparent")
			dst = appendJSONString(dst, v[0])
		case k == HeaderTraceState && v[0] != "":
			member("tracestate")
			dst = appendJSONString(dst, v[0])
		}
	}
	ct, hasCT := StoredAttr(h, AttrDataContentType)
	if hasCT {
		member(AttrDataContentType)
		dst = appendJSONString(dst, ct)
	}
	if len(data) > 0 {
		if hasCT && plainJSON(ct) && json.Valid(data) {
			member("data")
			dst = append(dst, data...)
		} else {
			member("data_base64")
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, data)
			dst = append(dst, '"')
		}
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (RFC 8259 §7), escaping
// quotes, backslashes and control characters, and writing invalid UTF-8 as
// U+FFFD as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainJSON reports whether ct is application/json or text/json, with or
// without parameters.
func plainJSON(ct string) bool {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	// Compared as written: readers differ on other spellings, and
	// data_base64 reads the same everywhere.
	return mt == "application/json" || mt == "text/json"
}
