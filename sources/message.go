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

	"github.com/herald-dev/herald/internal/ce"
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
			h.Set("Ce-"+name, ce.Encode(v))
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
			out.Header.Set("Ce-"+k, ce.Encode(v))
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
// ModeStructured) or an array of them (ModeBatch) that Herald's ingress
// accepts.
func validateStructured(mode Mode, body []byte) error {
	if mode == ModeStructured {
		_, err := ce.DecodeStructured(body)
		return err
	}
	_, err := ce.DecodeBatch(body)
	return err
}

// validateBinary checks a binary-mode message as Herald's ingress does:
// the required attributes, each given once and as UTF-8 text.
func validateBinary(h http.Header) error {
	_, err := ce.DecodeBinary(h, nil)
	return err
}

// cloudEventHeaders copies the CloudEvents headers of a binary-mode
// request: every ce- header, and Content-Type.
func cloudEventHeaders(src http.Header) http.Header {
	h := http.Header{}
	for k, vs := range src {
		if ce.IsKey(k) {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
		}
	}
	if ct := src.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}
