package devmode

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/herald-dev/herald/internal/ce"
)

// maxDisplayBody bounds the request body the display sink reads.
const maxDisplayBody = 16 << 20

// Display is a CloudEvents sink that prints every event it receives, in
// binary, structured or batched mode, to a writer in a readable form (the
// format of Knative's event_display: context attributes, extensions, data
// with JSON indented) and answers 202 Accepted. A request that is no
// CloudEvent gets 400 and is logged.
type Display struct {
	mu  sync.Mutex
	out io.Writer
	log *slog.Logger
}

// NewDisplay returns a Display printing to out and logging refused requests
// to log (nil discards them).
func NewDisplay(out io.Writer, log *slog.Logger) *Display {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Display{out: out, log: log}
}

// ServeHTTP decodes the request's events, prints them and answers 202.
func (d *Display) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST a CloudEvent", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDisplayBody))
	var events []event.Event
	mode := ""
	if err == nil {
		events, mode, err = decodeRequest(r.Header, body)
	}
	if err != nil {
		d.log.Warn("display: refused a request", "remote", r.RemoteAddr, "path", r.URL.Path, "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var b strings.Builder
	for i := range events {
		FormatEvent(&b, &events[i], mode)
	}
	d.mu.Lock()
	_, _ = io.WriteString(d.out, b.String())
	d.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// decodeRequest decodes the events of a request in any content mode, by
// the rules of Herald's ingress, and names the mode.
func decodeRequest(h http.Header, body []byte) ([]event.Event, string, error) {
	m, err := ce.ModeOf(h.Get(ce.HeaderContentType))
	if err != nil {
		return nil, "", err
	}
	var decoded []*ce.Event
	mode := "binary"
	switch {
	case m == ce.ModeBatch:
		mode = "batched"
		decoded, err = ce.DecodeBatch(body)
	case m == ce.ModeStructured:
		mode = "structured"
		var e *ce.Event
		e, err = ce.DecodeStructured(body)
		decoded = []*ce.Event{e}
	case !ce.IsCloudEvent(h):
		return nil, "", fmt.Errorf("no CloudEvent: the request has neither ce-specversion nor a CloudEvents content type")
	default:
		var e *ce.Event
		e, err = ce.DecodeBinary(h, body)
		decoded = []*ce.Event{e}
	}
	if err != nil {
		return nil, "", err
	}
	events := make([]event.Event, len(decoded))
	for i, e := range decoded {
		if events[i], err = ce.SDKEvent(e.Header(), e.Data); err != nil {
			return nil, "", err
		}
	}
	return events, mode, nil
}

// FormatEvent writes e in the display format; mode (binary, structured,
// batched) is shown in the heading when not empty.
func FormatEvent(b *strings.Builder, e *event.Event, mode string) {
	b.WriteString("☁️  cloudevents.Event")
	if mode != "" {
		b.WriteString(" (" + mode + " mode)")
	}
	b.WriteString("\nContext Attributes,\n")
	attr := func(name, value string) {
		if value != "" {
			fmt.Fprintf(b, "  %s: %s\n", name, value)
		}
	}
	attr("specversion", e.SpecVersion())
	attr("type", e.Type())
	attr("source", e.Source())
	attr("subject", e.Subject())
	attr("id", e.ID())
	if t := e.Time(); !t.IsZero() {
		attr("time", types.FormatTime(t))
	}
	attr("dataschema", e.DataSchema())
	attr("datacontenttype", e.DataContentType())
	if ext := e.Extensions(); len(ext) > 0 {
		b.WriteString("Extensions,\n")
		keys := make([]string, 0, len(ext))
		for k := range ext {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v, err := types.Format(ext[k])
			if err != nil {
				v = fmt.Sprint(ext[k])
			}
			fmt.Fprintf(b, "  %s: %s\n", k, v)
		}
	}
	if data := e.Data(); len(data) > 0 {
		b.WriteString("Data,\n")
		b.WriteString(formatData(data, e.DataContentType()))
		b.WriteString("\n")
	}
	b.WriteString("\n")
}

// formatData indents JSON, prints other text as it is and binary data as
// base64, every line indented by two spaces.
func formatData(data []byte, contentType string) string {
	if isJSON(contentType) {
		var out bytes.Buffer
		if json.Indent(&out, data, "  ", "  ") == nil {
			return "  " + out.String()
		}
	}
	if utf8.Valid(data) {
		return "  " + strings.ReplaceAll(strings.TrimRight(string(data), "\n"), "\n", "\n  ")
	}
	return fmt.Sprintf("  (%d bytes, base64) %s", len(data), base64.StdEncoding.EncodeToString(data))
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// EventFromBinary decodes a CloudEvent stored in a Topic's stream (see
// ce.FromStored): ce- header values percent-encoded, keys in any case, as
// NATS keeps them.
func EventFromBinary(header map[string][]string, data []byte) (*event.Event, error) {
	e, err := ce.SDKEvent(header, data)
	if err != nil {
		return nil, err
	}
	return &e, nil
}
