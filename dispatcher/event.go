package dispatcher

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/nats-io/nats.go"
)

// Stored message format. An accepted CloudEvent is one JetStream message:
//
//   - one header "ce-<name>" per context attribute except datacontenttype,
//     holding the value in its HTTP-binding form (percent-encoded as in HTTP
//     binding 1.0.2 §3.1.3.2): NATS header values are trimmed and end at a
//     line break, the encoded form holds neither spaces at its ends nor
//     control characters, so every value survives storage byte for byte;
//   - "Content-Type" holding datacontenttype, when the event has one;
//   - "traceparent" and "tracestate" as received in the HTTP request;
//   - the data bytes as the body.
//
// Delivery copies these headers onto the HTTP request unchanged, which is
// binary content mode.
const (
	ceHeaderPrefix    = "ce-"
	headerContentType = "Content-Type"
	headerTraceParent = "traceparent"
	headerTraceState  = "tracestate"
)

// Attribute names with a fixed meaning.
const (
	attrSpecVersion     = "specversion"
	attrID              = "id"
	attrSource          = "source"
	attrType            = "type"
	attrTime            = "time"
	attrSubject         = "subject"
	attrDataSchema      = "dataschema"
	attrSchemaURL       = "schemaurl"
	attrDataContentType = "datacontenttype"
	attrDataEncoding    = "datacontentencoding"
	attrPartitionKey    = "partitionkey"
)

// attribute is one context attribute, value decoded.
type attribute struct {
	name, value string
}

// event is a decoded CloudEvent in the shape Herald stores it.
type event struct {
	// attrs holds every context attribute but datacontenttype, specversion
	// included, in the order received.
	attrs []attribute
	// contentType is datacontenttype; empty when absent.
	contentType string
	data        []byte
	// traceParent and traceState are the W3C trace context HTTP headers.
	traceParent, traceState string
	// dedupScope is the request's Herald-Dedup-Scope header: events are
	// deduplicated on source and id within it. Empty for most producers.
	dedupScope string
}

// get returns the value of the named attribute (datacontenttype included).
func (e *event) get(name string) (string, bool) {
	if name == attrDataContentType {
		return e.contentType, e.contentType != ""
	}
	for _, a := range e.attrs {
		if a.name == name {
			return a.value, true
		}
	}
	return "", false
}

// set replaces or appends an attribute.
func (e *event) set(name, value string) {
	for i := range e.attrs {
		if e.attrs[i].name == name {
			e.attrs[i].value = value
			return
		}
	}
	e.attrs = append(e.attrs, attribute{name, value})
}

// size is the event's size as MaxEventSize counts it: attribute names and
// values and the data.
func (e *event) size() int {
	n := len(e.data) + len(e.contentType)
	for _, a := range e.attrs {
		n += len(a.name) + len(a.value)
	}
	return n
}

// msgID is the JetStream deduplication id of the event: a digest of source,
// id and the deduplication scope, so the Nats-Msg-Id header stays short
// whatever their length.
func (e *event) msgID() string {
	src, _ := e.get(attrSource)
	id, _ := e.get(attrID)
	h := sha256.New()
	h.Write([]byte(src))
	h.Write([]byte{0})
	h.Write([]byte(id))
	if e.dedupScope != "" {
		h.Write([]byte{0})
		h.Write([]byte(e.dedupScope))
	}
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:18])
}

// header returns the stored message headers of e, plus the extra headers
// given as key, value pairs. The values share one backing array (one
// allocation instead of one per header); each is a one-element slice whose
// capacity is one, so appending to one never overwrites another.
func (e *event) header(extra ...string) nats.Header {
	n := len(e.attrs) + 3 + len(extra)/2
	h := make(nats.Header, n)
	vals := make([]string, 0, n)
	one := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for _, a := range e.attrs {
		h[ceKey(a.name)] = one(percentEncode(a.value))
	}
	if e.contentType != "" {
		h[headerContentType] = one(e.contentType)
	}
	if e.traceParent != "" {
		h[headerTraceParent] = one(e.traceParent)
	}
	if e.traceState != "" {
		h[headerTraceState] = one(e.traceState)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = one(extra[i+1])
	}
	return h
}

// eventFromHeader is the inverse of header: the stored message back as an
// event (data shared with the message).
func eventFromHeader(h nats.Header, data []byte) *event {
	e := &event{data: data}
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case len(k) > len(ceHeaderPrefix) && strings.EqualFold(k[:len(ceHeaderPrefix)], ceHeaderPrefix):
			e.attrs = append(e.attrs, attribute{strings.ToLower(k[len(ceHeaderPrefix):]), percentDecode(v[0])})
		case k == headerContentType:
			e.contentType = v[0]
		case k == headerTraceParent:
			e.traceParent = v[0]
		case k == headerTraceState:
			e.traceState = v[0]
		}
	}
	return e
}

// storedAttr returns the decoded value of attribute name from a stored
// message's headers.
func storedAttr(h nats.Header, name string) (string, bool) {
	if name == attrDataContentType {
		v := h[headerContentType]
		if len(v) == 0 || v[0] == "" {
			return "", false
		}
		return v[0], true
	}
	v, ok := h[ceKey(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return percentDecode(v[0]), true
}

// commonKeys avoids building the header key of the usual attributes.
var commonKeys = map[string]string{}

func init() {
	for _, n := range []string{attrSpecVersion, attrID, attrSource, attrType, attrTime, attrSubject,
		attrDataSchema, attrSchemaURL, attrPartitionKey, "traceparent", "tracestate",
		extErrorDest, extErrorCode, extErrorData, extAttempts, extSubscription, extTopic, extDeadLetteredAt, extHops} {
		commonKeys[n] = ceHeaderPrefix + n
	}
}

// ceKey is the stored header key of attribute name.
func ceKey(name string) string {
	if k, ok := commonKeys[name]; ok {
		return k
	}
	return ceHeaderPrefix + name
}

const upperHex = "0123456789ABCDEF"

// mustEncode reports whether HTTP binding 1.0.2 §3.1.3.2 requires b to be
// percent-encoded in a header value: space, '"', '%' and everything outside
// printable ASCII.
func mustEncode(b byte) bool {
	return b <= 0x20 || b >= 0x7F || b == '"' || b == '%'
}

// percentEncode encodes s for a ce- HTTP header value.
func percentEncode(s string) string {
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

// percentDecode decodes a ce- HTTP header value once. A '%' not followed by
// two hex digits stays as it is, so values from senders that do not encode
// survive.
func percentDecode(s string) string {
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
