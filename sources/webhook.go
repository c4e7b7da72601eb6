package sources

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// WebhookEventType is the type of webhook events when neither the spec
// nor the request names one.
const WebhookEventType = "dev.herald.webhook"

// GitHubEventTypePrefix prefixes the X-GitHub-Event header to make the
// event type (com.github.push, com.github.pull_request, …).
const GitHubEventTypePrefix = "com.github."

// retryAfterDefault is the Retry-After of a 503 when the sink sent none.
const retryAfterDefault = 5 * time.Second

// WebhookSendBudget bounds the time a webhook request spends sending its
// event, retries included, so that callers with a short timeout (GitHub
// waits 10s) get a 503 rather than a timeout.
const WebhookSendBudget = 8 * time.Second

// Webhook turns HTTP POSTs into CloudEvents sent to the sink.
//
// A request that is a CloudEvent (binary mode: it has ce-specversion;
// structured or batched JSON: Content-Type application/cloudevents+json or
// application/cloudevents-batch+json) is forwarded unchanged, but for the
// ceOverrides extensions. Any other request becomes an event with the
// following attributes (traceparent and tracestate are forwarded either way):
//
//	type    spec.eventType, else the request's Ce-Type or X-Event-Type header,
//	        else com.github.<X-GitHub-Event>, else dev.herald.webhook;
//	source  spec.eventSource, else the EventSource's path (SourcePath);
//	id      the X-GitHub-Delivery or X-Request-Id header, else a random UUID;
//	time    when the request arrived;
//	data    the body, with the request's Content-Type as datacontenttype.
//
// Answers: 202 once the sink accepted the event (2xx); 401 when a
// signature is required and missing or wrong (nothing is forwarded); 400
// for a malformed CloudEvent; 405 for any method but POST; 413 for a body
// over the limit; 415 for a structured format other than JSON; 502 when the
// sink refused the event (4xx); 503 with Retry-After when the sink stayed
// down or overloaded through every attempt (or WebhookSendBudget), so the
// caller retries.
type Webhook struct {
	eventType, source string
	verifier          *verifier
	sender            *Sender
	metrics           *Metrics
	maxBody           int64
	listen            string
	log               *slog.Logger
	ready             atomic.Bool
	newID             func() string
	now               func() time.Time
}

var (
	_ http.Handler = (*Webhook)(nil)
	_ ReadyChecker = (*Webhook)(nil)
)

// NewWebhook returns the webhook source of cfg (cfg.Webhook must be set).
func NewWebhook(cfg Config, opts Options) (*Webhook, error) {
	if cfg.Webhook == nil {
		return nil, errors.New("webhook: no webhook spec")
	}
	v, err := newVerifier(cfg.Webhook.Signature, cfg.WebhookSecret)
	if err != nil {
		return nil, err
	}
	cfg.Type = v1alpha1.EventSourceTypeWebhook
	sender, err := NewSenderFor(cfg, opts)
	if err != nil {
		return nil, err
	}
	w := &Webhook{
		eventType: cfg.Webhook.EventType,
		source:    cfg.Webhook.EventSource,
		verifier:  v,
		sender:    sender,
		metrics:   sender.metrics,
		maxBody:   cfg.MaxBodyBytes,
		listen:    cfg.Listen,
		log:       opts.logger().With("eventsource", cfg.Namespace+"/"+cfg.Name, "type", "webhook"),
		newID:     uuid.NewString,
		now:       time.Now,
	}
	if w.source == "" {
		w.source = SourcePath(cfg.Namespace, cfg.Name)
	}
	if w.maxBody <= 0 {
		w.maxBody = DefaultMaxBodyBytes
	}
	if w.listen == "" {
		w.listen = DefaultListen
	}
	return w, nil
}

// Ready reports whether Run or Serve is accepting requests.
func (w *Webhook) Ready() bool { return w.ready.Load() }

// Run listens on the configured address and serves until ctx ends.
func (w *Webhook) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", w.listen)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return w.Serve(ctx, ln)
}

// Serve serves webhook requests on ln, and GET /healthz and /readyz, until
// ctx ends; then it waits up to ShutdownGrace for requests in flight.
func (w *Webhook) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	HandleHealth(mux, w)
	mux.Handle("/", w)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	w.log.Info("webhook listening", "address", ln.Addr().String())
	w.ready.Store(true)
	defer w.ready.Store(false)
	return ServeUntil(ctx, srv, ln)
}

// ServeUntil serves srv on ln until ctx ends, then shuts it down, waiting
// up to ShutdownGrace for requests in flight.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// HandleHealth registers GET /healthz (always 200) and GET /readyz (200
// once r is ready, when r is a ReadyChecker) on mux.
func HandleHealth(mux *http.ServeMux, r any) {
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(rw, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if rc, ok := r.(ReadyChecker); ok && !rc.Ready() {
			http.Error(rw, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(rw, "ok\n")
	})
}

// ServeHTTP handles one webhook request.
func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	code, msg, hdr := w.handle(rw, r)
	for k, v := range hdr {
		rw.Header().Set(k, v)
	}
	w.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	if code == http.StatusAccepted {
		rw.WriteHeader(code)
		return
	}
	http.Error(rw, msg, code)
}

// handle returns the status, message and headers of the answer to r.
func (w *Webhook) handle(rw http.ResponseWriter, r *http.Request) (int, string, map[string]string) {
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "only POST is accepted", map[string]string{"Allow": http.MethodPost}
	}
	if r.ContentLength > w.maxBody {
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", w.maxBody), nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", w.maxBody), nil
		}
		return http.StatusBadRequest, "read body: " + err.Error(), nil
	}
	if w.verifier != nil {
		if err := w.verifier.Verify(r.Header, body); err != nil {
			w.log.Info("request refused", "remote", r.RemoteAddr, "reason", err.Error())
			return http.StatusUnauthorized, err.Error(), nil
		}
	}
	var m Message
	switch mode := MessageMode(r.Header); mode {
	case ModeBinary:
		if err := validateBinary(r.Header); err != nil {
			return http.StatusBadRequest, err.Error(), nil
		}
		m = Message{Header: cloudEventHeaders(r.Header), Body: body}
	case ModeStructured, ModeBatch:
		if err := validateStructured(mode, body); err != nil {
			return http.StatusBadRequest, "invalid CloudEvent: " + err.Error(), nil
		}
		m = Message{Header: http.Header{"Content-Type": {r.Header.Get("Content-Type")}}, Body: body}
	case ModeUnsupported:
		return http.StatusUnsupportedMediaType, "structured CloudEvents are read in JSON only", nil
	default:
		m, err = EncodeBinary(w.event(r, body))
		if err != nil {
			return http.StatusBadRequest, err.Error(), nil
		}
	}
	for _, h := range []string{"Traceparent", "Tracestate"} {
		if v := r.Header.Get(h); v != "" {
			m.Header.Set(h, v)
		}
	}
	return w.forward(r.Context(), m)
}

// event is the CloudEvent of a plain request.
func (w *Webhook) event(r *http.Request, body []byte) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	e.SetType(w.typeOf(r.Header))
	e.SetSource(w.source)
	id := firstHeader(r.Header, "X-GitHub-Delivery", "X-Request-Id")
	if id == "" {
		id = w.newID()
	}
	e.SetID(id)
	e.SetTime(w.now().UTC())
	if len(body) > 0 {
		e.DataEncoded = body
		if ct := r.Header.Get("Content-Type"); ct != "" {
			e.SetDataContentType(ct)
		}
	}
	return e
}

func (w *Webhook) typeOf(h http.Header) string {
	if w.eventType != "" {
		return w.eventType
	}
	if t := firstHeader(h, "Ce-Type", "X-Event-Type"); t != "" {
		return t
	}
	if t := strings.TrimSpace(h.Get("X-GitHub-Event")); t != "" {
		return GitHubEventTypePrefix + t
	}
	return WebhookEventType
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(h.Get(n)); v != "" {
			return v
		}
	}
	return ""
}

// forward sends m and maps the outcome to the answer.
func (w *Webhook) forward(ctx context.Context, m Message) (int, string, map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, WebhookSendBudget)
	defer cancel()
	err := w.sender.SendMessage(ctx, m)
	if err == nil {
		return http.StatusAccepted, "", nil
	}
	var se *SendError
	if !errors.As(err, &se) {
		return http.StatusBadRequest, err.Error(), nil
	}
	if !se.Retryable {
		return http.StatusBadGateway, "the sink refused the event: " + se.Error(), nil
	}
	ra := se.RetryAfter
	if ra <= 0 {
		ra = retryAfterDefault
	}
	secs := int((ra + time.Second - 1) / time.Second)
	return http.StatusServiceUnavailable, "the sink is unavailable: " + se.Error(), map[string]string{"Retry-After": strconv.Itoa(secs)}
}
