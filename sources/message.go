package sources

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Content types of the CloudEvents HTTP binding.
const (
	ContentTypeStructuredJSON = "application/cloudevents+json"
	ContentTypeBatchJSON      = "application/cloudevents-batch+json"
	contentTypeStructured     = "application/cloudevents"
)

// Message is one CloudEvents HTTP message, ready to POST: binary mode (the
// attributes in ce- headers), structured or batched mode (the event in the
// body). Header holds only the CloudEvents headers and Content-Type.
type Message struct {
	Header http.Header
	Body   []byte
}

// Mode of a CloudEvents HTTP message.
type Mode int

// Modes of the HTTP binding; ModeNone is a request that is no CloudEvent.
const (
	ModeNone Mode = iota
	ModeBinary
	ModeStructured
	ModeBatch
	// ModeUnsupported is a structured format other than JSON.
	ModeUnsupported
)

// MessageMode says how h carries a CloudEvent: binary when it has
// ce-specversion, structured or batch by its Content-Type.
func MessageMode(h http.Header) Mode {
	if h.Get("Ce-Specversion") != "" {
		return ModeBinary
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ModeNone
	}
	switch {
	case mt == ContentTypeStructuredJSON:
		return ModeStructured
	case mt == ContentTypeBatchJSON:
		return ModeBatch
	case mt == contentTypeStructured, strings.HasPrefix(mt, contentTypeStructured+"+"), strings.HasPrefix(mt, contentTypeStructured+"-batch+"):
		return ModeUnsupported
	}
	return ModeNone
}

// EncodeBinary validates e and encodes it in binary mode.
func EncodeBinary(e event.Event) (Message, error) {
	if err := e.Validate(); err != nil {
		return Message{}, fmt.Errorf("invalid event: %w", err)
	}
	h := http.Header{}
	set := func(name, v string) {
		if v != "" {
			h.Set("Ce-"+name, encodeHeaderValue(v))
		}
	}
	set("Specversion", e.SpecVersion())
	set("Id", e.ID())
	set("Source", e.Source())
	set("Type", e.Type())
	set("Subject", e.Subject())
	if t := e.Time(); !t.IsZero() {
		set("Time", t.Format(time.RFC3339Nano))
	}
	if u := e.DataSchema(); u != "" {
		set("Dataschema", u)
	}
	for name, v := range e.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			return Message{}, fmt.Errorf("extension %s: %w", name, err)
		}
		set(name, s)
	}
	if ct := e.DataContentType(); ct != "" {
		h.Set("Content-Type", ct)
	}
	return Message{Header: h, Body: e.Data()}, nil
}

// encodeHeaderValue percent-encodes space, '"', '%' and every byte outside
// printable ASCII (HTTP binding 1.0.2, 3.1.3.2).
func encodeHeaderValue(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '"' || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '"' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// withExtensions returns m with every extension in ext set, replacing any
// value m had. m itself is not changed.
func withExtensions(m Message, ext map[string]string) (Message, error) {
	if len(ext) == 0 {
		return m, nil
	}
	out := Message{Header: m.Header.Clone(), Body: m.Body}
	switch MessageMode(m.Header) {
	case ModeBinary:
		for k, v := range ext {
			out.Header.Set("Ce-"+k, encodeHeaderValue(v))
		}
	case ModeStructured:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(m.Body, &obj); err != nil {
			return Message{}, fmt.Errorf("structured event: %w", err)
		}
		if err := setJSONExtensions(obj, ext); err != nil {
			return Message{}, err
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return Message{}, err
		}
		out.Body = b
	case ModeBatch:
		var batch []map[string]json.RawMessage
		if err := json.Unmarshal(m.Body, &batch); err != nil {
			return Message{}, fmt.Errorf("batch of events: %w", err)
		}
		for _, obj := range batch {
			if err := setJSONExtensions(obj, ext); err != nil {
				return Message{}, err
			}
		}
		b, err := json.Marshal(batch)
		if err != nil {
			return Message{}, err
		}
		out.Body = b
	default:
		return Message{}, fmt.Errorf("not a CloudEvents message")
	}
	return out, nil
}

func setJSONExtensions(obj map[string]json.RawMessage, ext map[string]string) error {
	if obj == nil {
		return fmt.Errorf("event is not a JSON object")
	}
	for k, v := range ext {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		obj[k] = b
	}
	return nil
}

// validateStructured checks that body is one JSON CloudEvent (mode
// ModeStructured) or an array of them (ModeBatch) with the required
// attributes.
func validateStructured(mode Mode, body []byte) error {
	check := func(raw []byte) error {
		var e event.Event
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		return e.Validate()
	}
	if mode == ModeStructured {
		return check(body)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		return fmt.Errorf("batch is not a JSON array: %w", err)
	}
	for i, raw := range batch {
		if err := check(raw); err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
	}
	return nil
}

// validateBinary checks the required attributes of a binary-mode message.
func validateBinary(h http.Header) error {
	var missing []string
	for _, a := range []string{"Specversion", "Id", "Source", "Type"} {
		if h.Get("Ce-"+a) == "" {
			missing = append(missing, "ce-"+strings.ToLower(a))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("binary CloudEvent without %s", strings.Join(missing, ", "))
	}
	switch v := h.Get("Ce-Specversion"); v {
	case "1.0", "0.3":
	default:
		return fmt.Errorf("ce-specversion %q: want 1.0 or 0.3", v)
	}
	return nil
}

// cloudEventHeaders copies the CloudEvents headers of a binary-mode
// request: every ce- header, and Content-Type.
func cloudEventHeaders(src http.Header) http.Header {
	h := http.Header{}
	for k, vs := range src {
		if len(k) > 3 && strings.EqualFold(k[:3], "ce-") {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	if ct := src.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}
