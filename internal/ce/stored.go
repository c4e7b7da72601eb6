package ce

import "unicode/utf8"

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

// Attribute names with a fixed meaning in CloudEvents 1.0 and 0.3.
const (
	AttrSpecVersion     = "specversion"
	AttrID              = "id"
	AttrSource          = "source"
	AttrType            = "type"
	AttrTime            = "time"
	AttrSubject         = "subject"
	AttrDataSchema      = "dataschema"
	AttrSchemaURL       = "schemaurl"
	AttrDataContentType = "datacontenttype"
	AttrDataEncoding    = "datacontentencoding"
	// AttrPartitionKey is the partitioning extension's key.
	AttrPartitionKey = "partitionkey"
	// AttrDeliverAt asks for delivery at a time (RFC 3339), Herald's
	// delayed-delivery extension.
	AttrDeliverAt = "deliverat"
	// AttrDeliverAfter asks for delivery after a duration from receipt
	// (ISO-8601 such as PT30S, or Go such as 30s), Herald's
	// delayed-delivery extension.
	AttrDeliverAfter = "deliverafter"
	// AttrPriority is Herald's priority extension: high, normal or low.
	AttrPriority = "priority"
)

// Attribute is one context attribute, value decoded.
type Attribute struct {
	Name, Value string
}

// Event is a decoded CloudEvent in the shape Herald stores it.
type Event struct {
	// Attrs holds every context attribute but datacontenttype, specversion
	// included, in the order received.
	Attrs []Attribute
	// ContentType is datacontenttype; empty when absent.
	ContentType string
	Data        []byte
	// TraceParent and TraceState are the W3C trace context HTTP headers.
	TraceParent, TraceState string
}

// Get returns the value of the named attribute (datacontenttype included).
func (e *Event) Get(name string) (string, bool) {
	if name == AttrDataContentType {
		return e.ContentType, e.ContentType != ""
	}
	for _, a := range e.Attrs {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// Set replaces or appends an attribute.
func (e *Event) Set(name, value string) {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs[i].Value = value
			return
		}
	}
	e.Attrs = append(e.Attrs, Attribute{name, value})
}

// Remove deletes an attribute, if present.
func (e *Event) Remove(name string) {
	for i := range e.Attrs {
		if e.Attrs[i].Name == name {
			e.Attrs = append(e.Attrs[:i], e.Attrs[i+1:]...)
			return
		}
	}
}

// Size is the event's size as a Topic's maxEventSize counts it: attribute
// names and values and the data.
func (e *Event) Size() int {
	n := len(e.Data) + len(e.ContentType)
	for _, a := range e.Attrs {
		n += len(a.Name) + len(a.Value)
	}
	return n
}

// Header returns the stored message headers of e, plus the extra headers
// given as key, value pairs. The values share one backing array (one
// allocation instead of one per header); each is a one-element slice whose
// capacity is one, so appending to one never overwrites another.
func (e *Event) Header(extra ...string) map[string][]string {
	n := len(e.Attrs) + 3 + len(extra)/2
	h := make(map[string][]string, n)
	vals := make([]string, 0, n)
	one := func(v string) []string {
		vals = append(vals, v)
		return vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for _, a := range e.Attrs {
		h[Key(a.Name)] = one(Encode(a.Value))
	}
	if e.ContentType != "" {
		h[HeaderContentType] = one(e.ContentType)
	}
	if e.TraceParent != "" {
		h[HeaderTraceParent] = one(e.TraceParent)
	}
	if e.TraceState != "" {
		h[HeaderTraceState] = one(e.TraceState)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = one(extra[i+1])
	}
	return h
}

// FromStored is the inverse of Header: a stored message back as an event
// (data shared with the message). Header keys may be in any case, as NATS
// keeps them; ce- values are percent-decoded once.
func FromStored(h map[string][]string, data []byte) *Event {
	e := &Event{Data: data}
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		switch {
		case IsKey(k):
			e.Attrs = append(e.Attrs, Attribute{AttrName(k), Decode(v[0])})
		case k == HeaderContentType:
			e.ContentType = v[0]
		case k == HeaderTraceParent:
			e.TraceParent = v[0]
		case k == HeaderTraceState:
			e.TraceState = v[0]
		}
	}
	return e
}

// StoredAttr returns the decoded value of attribute name from a stored
// message's headers.
func StoredAttr(h map[string][]string, name string) (string, bool) {
	if name == AttrDataContentType {
		v := h[HeaderContentType]
		if len(v) == 0 || v[0] == "" {
			return "", false
		}
		return v[0], true
	}
	v, ok := h[Key(name)]
	if !ok || len(v) == 0 {
		return "", false
	}
	return Decode(v[0]), true
}

// validText reports whether s is Unicode text (UTF-8), as every
// CloudEvents attribute's string form is.
func validText(s string) bool { return utf8.ValidString(s) }
