package ce

import "strings"

// Header keys of the HTTP binding and the stored message format.
const (
	// HeaderPrefix starts the key of every context attribute's header in
	// binary mode. Stored messages use it in lower case.
	HeaderPrefix      = "ce-"
	HeaderContentType = "Content-Type"
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// keys avoids building the header key of the usual attributes.
var keys = map[string]string{
	AttrSpecVersion: "ce-specversion", AttrID: "ce-id", AttrSource: "ce-source", AttrType: "ce-type",
	AttrTime: "ce-time", AttrSubject: "ce-subject", AttrDataSchema: "ce-dataschema",
	AttrSchemaURL: "ce-schemaurl", AttrPartitionKey: "ce-partitionkey",
	"traceparent": "ce-traceparent", "tracestate": "ce-tracestate",
}

// Key is the stored header key of attribute name: "ce-" and the name.
// net/http canonicalises it on the way out (Ce-Name), which is the same
// HTTP header.
func Key(name string) string {
	if k, ok := keys[name]; ok {
		return k
	}
	return HeaderPrefix + name
}

// IsKey reports whether header key k, in any case, is a context
// attribute's: "ce-" followed by at least one character.
func IsKey(k string) bool {
	return len(k) > len(HeaderPrefix) && strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix)
}

// AttrName maps a ce- header key, in any case, to its attribute name.
func AttrName(k string) string {
	switch k {
	case "Ce-Id", "ce-id":
		return AttrID
	case "Ce-Source", "ce-source":
		return AttrSource
	case "Ce-Type", "ce-type":
		return AttrType
	case "Ce-Specversion", "ce-specversion":
		return AttrSpecVersion
	case "Ce-Time", "ce-time":
		return AttrTime
	case "Ce-Subject", "ce-subject":
		return AttrSubject
	case "Ce-Dataschema", "ce-dataschema":
		return AttrDataSchema
	case "Ce-Partitionkey", "ce-partitionkey":
		return AttrPartitionKey
	case "Ce-Traceparent", "ce-traceparent":
		return "traceparent"
	case "Ce-Heraldhops", "ce-heraldhops":
		return "heraldhops"
	}
	return strings.ToLower(k[len(HeaderPrefix):])
}

const upperHex = "0123456789ABCDEF"

// mustEncode reports whether HTTP binding 1.0.2 §3.1.3.2 requires b to be
// percent-encoded in a header value: space, '"', '%' and everything outside
// printable ASCII.
func mustEncode(b byte) bool {
	return b <= 0x20 || b >= 0x7F || b == '"' || b == '%'
}

// Encode percent-encodes s for a ce- header value (HTTP binding 1.0.2
// §3.1.3.2): space, '"', '%' and every byte outside printable ASCII become
// %XX with upper-case hex digits; s is returned as it is when nothing needs
// encoding.
func Encode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Decode decodes a ce- header value once. Each escape is judged on its
// own: a '%' not followed by two hex digits stays as it is, and the rest of
// the value is still decoded, so values from senders that do not encode
// survive.
func Decode(s string) string {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// EncodeHeaders percent-encodes, in place, every value of the ce- headers
// of h, for a writer that sets them as they are.
func EncodeHeaders(h map[string][]string) { mapValues(h, Encode) }

// DecodeHeaders percent-decodes, in place, every value of the ce- headers
// of h, once.
func DecodeHeaders(h map[string][]string) { mapValues(h, Decode) }

func mapValues(h map[string][]string, f func(string) string) {
	for k, vs := range h {
		if !IsKey(k) {
			continue
		}
		for i, v := range vs {
			vs[i] = f(v)
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
