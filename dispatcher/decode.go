package dispatcher

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

// contentMode is a CloudEvents HTTP binding content mode.
type contentMode int

const (
	modeBinary contentMode = iota
	modeStructured
	modeBatch
)

// Media types of the structured and batched content modes Herald reads.
const (
	mediaStructuredJSON = "application/cloudevents+json"
	mediaBatchJSON      = "application/cloudevents-batch+json"
)

// errUnsupportedFormat is returned for a structured or batched event format
// other than JSON.
var errUnsupportedFormat = errors.New("unsupported event format")

// eventError says why a request holds no valid CloudEvent.
type eventError struct {
	// Attribute names the offending attribute; empty when the message is
	// not about one.
	Attribute string
	// Index is the position of the event in a batch, -1 otherwise.
	Index int
	msg   string
}

func (e *eventError) Error() string {
	if e.Attribute == "" {
		return e.msg
	}
	return e.Attribute + ": " + e.msg
}

func attrErr(attr, format string, args ...any) *eventError {
	return &eventError{Attribute: attr, Index: -1, msg: fmt.Sprintf(format, args...)}
}

// modeOf returns the content mode of a request with the given Content-Type.
func modeOf(contentType string) (contentMode, error) {
	if !strings.HasPrefix(strings.ToLower(contentType), "application/cloudevents") {
		return modeBinary, nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return modeBinary, fmt.Errorf("%w: %q", errUnsupportedFormat, contentType)
	}
	switch mt {
	case mediaStructuredJSON:
		return modeStructured, nil
	case mediaBatchJSON:
		return modeBatch, nil
	}
	if strings.HasPrefix(mt, "application/cloudevents+") || strings.HasPrefix(mt, "application/cloudevents-batch+") {
		return modeBinary, fmt.Errorf("%w: %q (Herald reads %s and %s)", errUnsupportedFormat, mt, mediaStructuredJSON, mediaBatchJSON)
	}
	return modeBinary, nil
}

// decodeMessage decodes the single CloudEvent of an HTTP message in binary
// or structured mode: a request to the ingress or a subscriber's reply.
func decodeMessage(h http.Header, body []byte) (*event, error) {
	mode, err := modeOf(h.Get(headerContentType))
	if err != nil {
		return nil, err
	}
	switch mode {
	case modeStructured:
		e, err := decodeStructured(body)
		if err != nil {
			return nil, err
		}
		e.setTrace(h)
		return e, nil
	case modeBatch:
		return nil, attrErr("", "a batch holds several events; one was expected")
	}
	return decodeBinary(h, body)
}

// isCloudEvent reports whether an HTTP message's headers announce a CloudEvent.
func isCloudEvent(h http.Header) bool {
	if _, ok := h["Ce-Specversion"]; ok {
		return true
	}
	mode, err := modeOf(h.Get(headerContentType))
	return err == nil && mode == modeStructured
}

// decodeBinary decodes a binary-mode message: ce- headers are the context
// attributes (percent-decoded), Content-Type is datacontenttype and the body
// is the data.
func decodeBinary(h http.Header, body []byte) (*event, error) {
	e := &event{attrs: make([]attribute, 0, 8)}
	for k, vs := range h {
		if len(k) <= len(ceHeaderPrefix) || !strings.EqualFold(k[:len(ceHeaderPrefix)], ceHeaderPrefix) || len(vs) == 0 {
			continue
		}
		name := headerAttrName(k)
		v := vs[0]
		if len(vs) > 1 {
			v = strings.Join(vs, ",")
		}
		e.attrs = append(e.attrs, attribute{name, percentDecode(v)})
	}
	if _, ok := e.get(attrSpecVersion); !ok {
		return nil, attrErr(attrSpecVersion, "missing: a binary-mode CloudEvent carries a ce-specversion header")
	}
	e.contentType = h.Get(headerContentType)
	if len(body) > 0 {
		e.data = body
	}
	e.setTrace(h)
	if err := validate(e); err != nil {
		return nil, err
	}
	return e, nil
}

// setTrace keeps the W3C trace context headers of h; values that are not
// printable ASCII (invalid trace context) are dropped.
func (e *event) setTrace(h http.Header) {
	e.traceParent = printable(h.Get(headerTraceParent))
	e.traceState = printable(h.Get(headerTraceState))
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

// headerAttrName maps a ce- header key to its attribute name.
func headerAttrName(k string) string {
	switch k {
	case "Ce-Id":
		return attrID
	case "Ce-Source":
		return attrSource
	case "Ce-Type":
		return attrType
	case "Ce-Specversion":
		return attrSpecVersion
	case "Ce-Time":
		return attrTime
	case "Ce-Subject":
		return attrSubject
	case "Ce-Dataschema":
		return attrDataSchema
	case "Ce-Partitionkey":
		return attrPartitionKey
	case "Ce-Traceparent":
		return "traceparent"
	case "Ce-Heraldhops":
		return "heraldhops"
	}
	return strings.ToLower(k[len(ceHeaderPrefix):])
}

// decodeStructured decodes one event of the JSON event format.
func decodeStructured(body []byte) (*event, error) {
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

// decodeBatch decodes a JSON batch: an array of JSON-format events.
func decodeBatch(body []byte) ([]*event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, attrErr("", "a batch is a JSON array of events")
	}
	var out []*event
	for dec.More() {
		e, err := decodeJSONEvent(dec)
		if err != nil {
			var ee *eventError
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
func decodeJSONEvent(dec *json.Decoder) (*event, error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, attrErr("", "a structured-mode CloudEvent is a JSON object")
	}
	e := &event{attrs: make([]attribute, 0, 8)}
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
		if name == attrDataContentType {
			e.contentType = v
			continue
		}
		e.attrs = append(e.attrs, attribute{name, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, attrErr("", "invalid JSON: %v", err)
	}
	if _, ok := e.get(attrSpecVersion); !ok {
		return nil, attrErr(attrSpecVersion, "missing")
	}
	if err := e.setJSONData(data, dataB64); err != nil {
		return nil, err
	}
	if err := validate(e); err != nil {
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
func (e *event) setJSONData(data, dataB64 json.RawMessage) error {
	isNull := func(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }
	if !isNull(data) && !isNull(dataB64) {
		return attrErr("data_base64", "an event holds data or data_base64, not both")
	}
	sv, _ := e.get(attrSpecVersion)
	if enc, ok := e.get(attrDataEncoding); ok && sv == "0.3" {
		if !strings.EqualFold(enc, "base64") {
			return attrErr(attrDataEncoding, "only base64 is defined")
		}
		dataB64, data = data, nil
		e.remove(attrDataEncoding)
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
		e.data = b
	case !isNull(data):
		if data[0] == '"' && e.contentType != "" && !isJSONMediaType(e.contentType) {
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				return attrErr("data", "invalid JSON string")
			}
			e.data = []byte(s)
			return nil
		}
		e.data = []byte(data)
	}
	return nil
}

func (e *event) remove(name string) {
	for i := range e.attrs {
		if e.attrs[i].name == name {
			e.attrs = append(e.attrs[:i], e.attrs[i+1:]...)
			return
		}
	}
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
	case attrSpecVersion, attrID, attrSource, attrType, attrTime, attrSubject,
		attrDataSchema, attrSchemaURL, attrDataContentType, attrDataEncoding:
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
func validate(e *event) error {
	sv, _ := e.get(attrSpecVersion)
	if sv != "1.0" && sv != "0.3" {
		return attrErr(attrSpecVersion, "%q is not supported (1.0 or 0.3)", sv)
	}
	for _, a := range e.attrs {
		if !validAttrName(a.name) {
			return attrErr(a.name, "attribute names hold only lower-case letters a-z and digits 0-9")
		}
	}
	for _, req := range []string{attrID, attrSource, attrType} {
		v, ok := e.get(req)
		if !ok {
			return attrErr(req, "missing")
		}
		if v == "" {
			return attrErr(req, "must not be empty")
		}
	}
	src, _ := e.get(attrSource)
	if _, err := url.Parse(src); err != nil {
		return attrErr(attrSource, "not a URI-reference: %v", err)
	}
	if v, ok := e.get(attrTime); ok {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return attrErr(attrTime, "%q is not an RFC 3339 timestamp", v)
		}
	}
	if v, ok := e.get(attrSubject); ok && v == "" {
		return attrErr(attrSubject, "must not be empty when present")
	}
	schemaAttr := attrDataSchema
	if sv == "0.3" {
		schemaAttr = attrSchemaURL
	}
	if v, ok := e.get(schemaAttr); ok {
		u, err := url.Parse(v)
		if err != nil || v == "" || (sv == "1.0" && !u.IsAbs()) {
			return attrErr(schemaAttr, "%q is not a URI", v)
		}
	}
	for i := 0; i < len(e.contentType); i++ {
		if c := e.contentType[i]; c < 0x20 || c > 0x7E {
			return attrErr(attrDataContentType, "not a media type")
		}
	}
	return nil
}
