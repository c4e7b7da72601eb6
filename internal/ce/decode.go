package ce

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mode is a content mode of the CloudEvents HTTP binding.
type Mode int

// Content modes of the HTTP binding.
const (
	// ModeBinary carries the attributes in ce- headers and the data as the body.
	ModeBinary Mode = iota
	// ModeStructured carries one event in the JSON event format.
	ModeStructured
	// ModeBatch carries a JSON array of events.
	ModeBatch
)

// Media types of the structured and batched content modes Herald reads.
const (
	// MediaStructuredJSON is the structured mode's JSON event format.
	MediaStructuredJSON = "application/cloudevents+json"
	// MediaBatchJSON is the batched mode's JSON event format.
	MediaBatchJSON = "application/cloudevents-batch+json"
)

// ErrUnsupportedFormat is returned for a structured or batched event format
// other than JSON; the ingress answers it with 415.
var ErrUnsupportedFormat = errors.New("unsupported event format")

// AttributeError says why a request holds no valid CloudEvent; the
// ingress answers it with 400 and the attribute's name.
type AttributeError struct {
	// Attribute names the offending attribute; empty when the message is
	// not about one.
	Attribute string
	// Index is the position of the event in a batch, -1 otherwise.
	Index int
	msg   string
}

// Error is the attribute's name and what is wrong with it.
func (e *AttributeError) Error() string {
	if e.Attribute == "" {
		return e.msg
	}
	return e.Attribute + ": " + e.msg
}

// NewAttributeError says why attribute attr of an event is refused; index
// is the event's position in a batch, -1 for a single event.
func NewAttributeError(attr string, index int, msg string) *AttributeError {
	return &AttributeError{Attribute: attr, Index: index, msg: msg}
}

func attrErr(attr, format string, args ...any) *AttributeError {
	return &AttributeError{Attribute: attr, Index: -1, msg: fmt.Sprintf(format, args...)}
}

// ModeOf returns the content mode of a request with the given Content-Type.
func ModeOf(contentType string) (Mode, error) {
	if !strings.HasPrefix(strings.ToLower(contentType), "application/cloudevents") {
		return ModeBinary, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ModeBinary, fmt.Errorf("%w: %q", ErrUnsupportedFormat, contentType)
	}
	switch mt {
	case MediaStructuredJSON:
		return ModeStructured, nil
	case MediaBatchJSON:
		return ModeBatch, nil
	}
	if strings.HasPrefix(mt, "application/cloudevents+") || strings.HasPrefix(mt, "application/cloudevents-batch+") {
		return ModeBinary, fmt.Errorf("%w: %q (Herald reads %s and %s)", ErrUnsupportedFormat, mt, MediaStructuredJSON, MediaBatchJSON)
	}
	return ModeBinary, nil
}

// DecodeMessage decodes the single CloudEvent of an HTTP message in binary
// or structured mode: a request to the ingress or a subscriber's reply.
func DecodeMessage(h http.Header, body []byte) (*Event, error) {
	mode, err := ModeOf(h.Get(HeaderContentType))
	if err != nil {
		return nil, err
	}
	switch mode {
	case ModeStructured:
		e, err := DecodeStructured(body)
		if err != nil {
			return nil, err
		}
		e.SetTrace(h)
		return e, nil
	case ModeBatch:
		return nil, attrErr("", "a batch holds several events; one was expected")
	}
	return DecodeBinary(h, body)
}

// IsCloudEvent reports whether an HTTP message's headers announce a CloudEvent.
func IsCloudEvent(h http.Header) bool {
	if _, ok := h["Ce-Specversion"]; ok {
		return true
	}
	mode, err := ModeOf(h.Get(HeaderContentType))
	return err == nil && mode == ModeStructured
}

// DecodeBinary decodes a binary-mode message: ce- headers are the context
// attributes (percent-decoded once), Content-Type is datacontenttype and the
// body is the data. Every attribute holds one value: a ce- header given
// twice, in any case, is refused rather than joined, as a list is no
// CloudEvents type and the producer's meaning is unknown.
func DecodeBinary(h http.Header, body []byte) (*Event, error) {
	e := &Event{Attrs: make([]Attribute, 0, 8)}
	for k, vs := range h {
		if !IsKey(k) || len(vs) == 0 {
			continue
		}
		name := AttrName(k)
		if len(vs) > 1 {
			return nil, attrErr(name, "given %d times; an attribute holds one value", len(vs))
		}
		if _, dup := e.Get(name); dup {
			return nil, attrErr(name, "given twice; an attribute holds one value")
		}
		e.Attrs = append(e.Attrs, Attribute{name, Decode(vs[0])})
	}
	if _, ok := e.Get(AttrSpecVersion); !ok {
		return nil, attrErr(AttrSpecVersion, "missing: a binary-mode CloudEvent carries a ce-specversion header")
	}
	e.ContentType = h.Get(HeaderContentType)
	if len(body) > 0 {
		e.Data = body
	}
	e.SetTrace(h)
	if err := Validate(e); err != nil {
		return nil, err
	}
	return e, nil
}

// SetTrace keeps the W3C trace context headers of h; values that are not
// printable ASCII (invalid trace context) are dropped.
func (e *Event) SetTrace(h http.Header) {
	e.TraceParent = printable(h.Get(HeaderTraceParent))
	e.TraceState = printable(h.Get(HeaderTraceState))
}

// printable returns s if it holds only printable ASCII and spaces, else "".
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7E {
			return ""
		}
	}
	return s
}

// DecodeStructured decodes one event of the JSON event format.
func DecodeStructured(body []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	e, err := decodeJSONEvent(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, attrErr("", "invalid JSON: data after the event object")
	}
	return e, nil
}

// DecodeBatch decodes a JSON batch: an array of JSON-format events.
func DecodeBatch(body []byte) ([]*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, attrErr("", "a batch is a JSON array of events")
	}
	var out []*Event
	for dec.More() {
		e, err := decodeJSONEvent(dec)
		if err != nil {
			var ee *AttributeError
			if errors.As(err, &ee) {
				ee.Index = len(out)
			}
			return nil, err
		}
		out = append(out, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, attrErr("", "invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, attrErr("", "invalid JSON: data after the batch")
	}
	return out, nil
}

// decodeJSONEvent reads one event object from dec. Members keep their
// order; attribute values keep their exact text; JSON data keeps its exact
// bytes.
func decodeJSONEvent(dec *json.Decoder) (*Event, error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, attrErr("", "a structured-mode CloudEvent is a JSON object")
	}
	e := &Event{Attrs: make([]Attribute, 0, 8)}
	var data, dataB64 json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, attrErr("", "invalid JSON: %v", err)
		}
		name := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, attrErr("", "invalid JSON: %v", err)
		}
		if seen[name] {
			return nil, attrErr(name, "appears twice")
		}
		seen[name] = true
		switch name {
		case "data":
			data = raw
			continue
		case "data_base64":
			dataB64 = raw
			continue
		}
		if !validAttrName(name) {
			return nil, attrErr(name, "attribute names hold only lower-case letters a-z and digits 0-9")
		}
		v, isString, ok := jsonScalar(raw)
		if !ok {
			return nil, attrErr(name, "must be a string, number or boolean")
		}
		if raw[0] == 'n' { // null: absent
			continue
		}
		if !isString && coreStringAttr(name) {
			return nil, attrErr(name, "must be a JSON string")
		}
		if name == AttrDataContentType {
			e.ContentType = v
			continue
		}
		e.Attrs = append(e.Attrs, Attribute{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, attrErr("", "invalid JSON: %v", err)
	}
	if _, ok := e.Get(AttrSpecVersion); !ok {
		return nil, attrErr(AttrSpecVersion, "missing")
	}
	if err := e.setJSONData(data, dataB64); err != nil {
		return nil, err
	}
	if err := Validate(e); err != nil {
		return nil, err
	}
	return e, nil
}

// setJSONData turns the data or data_base64 member into data bytes. JSON
// data is kept as the exact JSON text, except a JSON string with a
// non-JSON datacontenttype, which is the string's content. A 0.3 event with
// datacontentencoding base64 carries base64 in data; the decoded bytes are
// stored and datacontentencoding is dropped, as it describes the JSON
// encoding, not the event.
func (e *Event) setJSONData(data, dataB64 json.RawMessage) error {
	isNull := func(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }
	if !isNull(data) && !isNull(dataB64) {
		return attrErr("data_base64", "an event holds data or data_base64, not both")
	}
	sv, _ := e.Get(AttrSpecVersion)
	if enc, ok := e.Get(AttrDataEncoding); ok && sv == "0.3" {
		if !strings.EqualFold(enc, "base64") {
			return attrErr(AttrDataEncoding, "only base64 is defined")
		}
		dataB64, data = data, nil
		e.Remove(AttrDataEncoding)
	}
	switch {
	case !isNull(dataB64):
		var s string
		if err := json.Unmarshal(dataB64, &s); err != nil {
			return attrErr("data_base64", "must be a JSON string")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return attrErr("data_base64", "invalid base64: %v", err)
		}
		e.Data = b
	case !isNull(data):
		if data[0] == '"' && e.ContentType != "" && !isJSONMediaType(e.ContentType) {
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return attrErr("data", "invalid JSON string")
			}
			e.Data = []byte(s)
			return nil
		}
		e.Data = []byte(data)
	}
	return nil
}

// isJSONMediaType reports whether data of this media type is JSON.
func isJSONMediaType(ct string) bool {
	mt := ct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// jsonScalar returns the string form of a JSON string, number, boolean or
// null; ok is false for objects and arrays.
func jsonScalar(raw json.RawMessage) (v string, isString, ok bool) {
	if len(raw) == 0 {
		return "", false, false
	}
	switch raw[0] {
	case '{', '[':
		return "", false, false
	case '"':
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1]), true, true
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, false
		}
		return s, true, true
	}
	return string(raw), false, true
}

// coreStringAttr reports whether a spec-defined attribute of type String,
// URI, URI-reference or Timestamp.
func coreStringAttr(name string) bool {
	switch name {
	case AttrSpecVersion, AttrID, AttrSource, AttrType, AttrTime, AttrSubject,
		AttrDataSchema, AttrSchemaURL, AttrDataContentType, AttrDataEncoding:
		return true
	}
	return false
}

// validAttrName reports whether name is a valid context attribute name:
// lower-case ASCII letters and digits.
func validAttrName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validate checks what the CloudEvents spec (1.0 and 0.3) requires of the
// context attributes.
func Validate(e *Event) error {
	sv, _ := e.Get(AttrSpecVersion)
	if sv != "1.0" && sv != "0.3" {
		return attrErr(AttrSpecVersion, "%q is not supported (1.0 or 0.3)", sv)
	}
	for _, a := range e.Attrs {
		if !validAttrName(a.Name) {
			return attrErr(a.Name, "attribute names hold only lower-case letters a-z and digits 0-9")
		}
		if !validText(a.Value) {
			return attrErr(a.Name, "not UTF-8 text: attribute values are Unicode strings")
		}
	}
	for _, req := range []string{AttrID, AttrSource, AttrType} {
		v, ok := e.Get(req)
		if !ok {
			return attrErr(req, "missing")
		}
		if v == "" {
			return attrErr(req, "must not be empty")
		}
	}
	src, _ := e.Get(AttrSource)
	if _, err := url.Parse(src); err != nil {
		return attrErr(AttrSource, "not a URI-reference: %v", err)
	}
	if v, ok := e.Get(AttrTime); ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return attrErr(AttrTime, "%q is not an RFC 3339 timestamp", v)
		}
	}
	if v, ok := e.Get(AttrSubject); ok && v == "" {
		return attrErr(AttrSubject, "must not be empty when present")
	}
	schemaAttr := AttrDataSchema
	if sv == "0.3" {
		schemaAttr = AttrSchemaURL
	}
	if v, ok := e.Get(schemaAttr); ok {
		u, err := url.Parse(v)
		if err != nil || v == "" || (sv == "1.0" && !u.IsAbs()) {
			return attrErr(schemaAttr, "%q is not a URI", v)
		}
	}
	for i := 0; i < len(e.ContentType); i++ {
		if c := e.ContentType[i]; c < 0x20 || c > 0x7E {
			return attrErr(AttrDataContentType, "not a media type")
		}
	}
	return nil
}
