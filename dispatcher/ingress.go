package dispatcher

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/jserr"
)

// Retry-After values the ingress sends, in seconds.
const (
	retryAfterFull        = "1"
	retryAfterUnavailable = "2"
)

// ServeHTTP is the ingress: POST /<namespace>/<topic> with one CloudEvent in
// binary or structured (application/cloudevents+json) content mode, or a
// batch (application/cloudevents-batch+json), CloudEvents 1.0 or 0.3.
//
// It answers 202 once JetStream stored the event (a duplicate of source and
// id inside the Topic's duplicate window is answered 202 and stored once).
// A Herald-Dedup-Scope request header narrows deduplication to the events
// sent with the same scope: Herald's dispatchers send one naming the
// Subscription and the stored message a dead letter or reply comes from, so
// those of different Subscriptions are never merged, while a resent one is.
// Errors carry a JSON body {"error": "...", "attribute": "...", "reason":
// "..."}: 400 for an invalid event (attribute names the culprit), 404 for
// an unknown Topic, 405
// for methods but POST (with Allow: POST), 413 above the Topic's
// MaxEventSize, 415 for structured formats other than JSON, 429 with
// Retry-After while the stream refuses events because it is full, 503 with
// Retry-After while JetStream does not answer (at once while
// maxTopicPendingPublishes of the Topic's events await its answer, so that
// a Topic whose stream stalls holds no more of the dispatcher's publishes
// than that, whatever other Topics it serves). Nothing is stored for a
// request answered with an error.
//
// When the Topic's publish policy authenticates producers, the bearer
// token of the Authorization header is checked before the body is read:
// 401 with WWW-Authenticate: Bearer and "reason" (an auth.Reason) for a
// missing or invalid token, 503 with Retry-After when it cannot be checked
// (the keys or the TokenReview API unreachable, or no verifier). A decoded
// event no rule of the policy admits for the token's subject gets 403
// (reason "forbidden") naming the rules involved; in a batch every event
// must be admitted, the first refused one is named by "index".
//
// With a contract (plan.Contract), an event it does not allow is refused
// with 400 in enforce mode, "attribute" naming the culprit ("type", "data",
// "datacontenttype" or an extension) and "rule" the rule it breaks, the
// error a JSON pointer into the data and what the schema wants there, such
// as "/order/qty: must be >= 1"; in warn mode it is stored and counted.
//
// An event asking for delayed delivery (deliverat, deliverafter; see
// deliveryTime) is answered 202 once its schedule is stored and reaches
// the Subscriptions at that time; a bad value, both attributes, or a time
// beyond the Topic's MaxDelay get 400 naming the attribute.
//
// POST /<namespace>/<topic>/subscriptions/<name>:<verb> is the pull API
// of the Topic's pull Subscriptions (see pull.go).
//
// A batch is validated as a whole: one invalid event refuses it all (400
// with "index"). If storing some events of a valid batch fails, the answer
// is 503 (429 when the stream is full) with a per-event report; resending
// the batch is safe thanks to deduplication.
func (d *Dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ns, name, ok := splitTopicPath(r.URL.Path)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		d.metrics.rejected.WithLabelValues("", "", reasonMethod).Inc()
		writeError(w, http.StatusMethodNotAllowed, "only POST is allowed", "")
		return
	}
	var t *topicState
	if ok {
		t = d.topic(ns, name)
	} else if pp, isPull := splitPullPath(r.URL.Path); isPull {
		d.servePull(w, r, pp)
		return
	}
	if t == nil {
		d.metrics.rejected.WithLabelValues("", "", reasonUnknownTopic).Inc()
		writeError(w, http.StatusNotFound, fmt.Sprintf("no topic at %q: POST to /<namespace>/<topic>", r.URL.Path), "")
		return
	}
	if d.tracer != nil {
		sw, tr, span := d.startIngress(w, r, t)
		defer endIngress(sw, span)
		w, r = sw, tr
	}
	var adm *admission
	if t.publish != nil && t.publish.authenticate {
		a, ok := d.authenticate(w, r, t, t.publish)
		if !ok {
			return
		}
		if !a.all && len(a.rules) == 0 {
			forbid(w, t, a.noRule(), nil)
			return
		}
		adm = &a
	}
	mode, err := ce.ModeOf(r.Header.Get(ce.HeaderContentType))
	if err != nil {
		t.metrics.reject(reasonUnsupported)
		writeError(w, http.StatusUnsupportedMediaType, err.Error(), "")
		return
	}
	limit := int64(t.plan.MaxEventSize)
	if mode == ce.ModeBatch {
		limit = batchBodyLimit(t.plan.MaxEventSize)
	}
	if r.ContentLength > limit {
		t.metrics.reject(reasonTooLarge)
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds the limit of %d", r.ContentLength, limit), "")
		return
	}
	body, err := readBody(r.Body, r.ContentLength, limit)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			t.metrics.reject(reasonTooLarge)
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds the limit of %d bytes", limit), "")
			return
		}
		t.metrics.reject(reasonInvalid)
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error(), "")
		return
	}
	if mode == ce.ModeBatch {
		d.serveBatch(w, r, t, adm, body, start)
		return
	}
	var e *ce.Event
	if mode == ce.ModeStructured {
		e, err = ce.DecodeStructured(body)
		if e != nil {
			e.SetTrace(r.Header)
		}
	} else {
		e, err = ce.DecodeBinary(r.Header, body)
	}
	if err != nil {
		t.metrics.reject(reasonInvalid)
		writeEventError(w, err)
		return
	}
	if e.Size() > t.plan.MaxEventSize {
		t.metrics.reject(reasonTooLarge)
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("event of %d bytes exceeds the limit of %d", e.Size(), t.plan.MaxEventSize), "")
		return
	}
	if adm != nil {
		if msg := adm.refusal(e); msg != "" {
			forbid(w, t, msg, nil)
			return
		}
	}
	if v := d.checkContract(t, e, -1); v != nil {
		refuseContract(w, t, v, -1)
		return
	}
	if !d.nc.IsConnected() {
		t.metrics.reject(reasonUnavailable)
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, http.StatusServiceUnavailable, "event store unavailable", "")
		return
	}
	when, err := deliveryTime(e, start, t.plan.MaxDelay.Duration(), -1)
	if err == nil {
		err = checkPriority(t.plan, e, -1)
	}
	if err != nil {
		t.metrics.reject(reasonInvalid)
		writeEventError(w, err)
		return
	}
	if d.tracer != nil {
		traceEvent(r.Context(), e)
	}
	ack, err := d.publish(r.Context(), t, e, r.Header.Get(HeaderDedupScope), when)
	if err == nil {
		dup := ack.Duplicate
		if d.tracer != nil {
			trace.SpanFromContext(r.Context()).SetAttributes(attrSequence.Int64(int64(ack.Sequence)))
		}
		t.metrics.received.Inc()
		if dup {
			t.metrics.duplicates.Inc()
		}
		t.catalog.record(e, start)
		t.metrics.duration.Observe(time.Since(start).Seconds())
		w.WriteHeader(http.StatusAccepted)
		return
	}
	d.writePublishError(w, t, err)
}

// splitTopicPath splits "/<namespace>/<topic>" (a trailing slash allowed).
func splitTopicPath(p string) (ns, name string, ok bool) {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	ns, name, ok = strings.Cut(p, "/")
	if !ok || ns == "" || name == "" || strings.IndexByte(name, '/') >= 0 {
		return "", "", false
	}
	return ns, name, true
}

var errTooLarge = errors.New("body too large")

// readBody reads at most limit bytes.
func readBody(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength >= 0 {
		b := make([]byte, contentLength)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// storedMsg is the JetStream message storing e in the Topic's stream,
// deduplicated on e's source and id within scope (the request's
// HeaderDedupScope, empty for most producers).
func storedMsg(t *topicState, e *ce.Event, scope string) *nats.Msg {
	h := e.Header(jetstream.MsgIDHeader, msgID(e, scope), jetstream.ExpectedStreamHeader, t.plan.Stream)
	return &nats.Msg{Subject: eventSubject(t.plan, e), Header: h, Data: e.Data}
}

// eventMsg is the message storing e: storedMsg, or scheduledMsg when
// when is set.
func eventMsg(t *topicState, e *ce.Event, scope string, when time.Time) *nats.Msg {
	if when.IsZero() {
		return storedMsg(t, e, scope)
	}
	return scheduledMsg(t, e, scope, when)
}

// msgID is the JetStream deduplication id of e: a digest of source, id and
// the deduplication scope, so the Nats-Msg-Id header stays short whatever
// their length.
func msgID(e *ce.Event, scope string) string {
	src, _ := e.Get(ce.AttrSource)
	id, _ := e.Get(ce.AttrID)
	h := sha256.New()
	h.Write([]byte(src))
	h.Write([]byte{0})
	h.Write([]byte(id))
	if scope != "" {
		h.Write([]byte{0})
		h.Write([]byte(scope))
	}
	var sum [sha256.Size]byte
	return base64.RawURLEncoding.EncodeToString(h.Sum(sum[:0])[:18])
}

// publishAsync starts storing e in the Topic's stream, for delivery at
// when (zero for at once).
func (d *Dispatcher) publishAsync(t *topicState, e *ce.Event, scope string, when time.Time) (jetstream.PubAckFuture, error) {
	return d.js.PublishMsgAsync(eventMsg(t, e, scope, when))
}

// errTopicBacklog refuses a publish that would take a Topic's publishes
// awaiting acknowledgement beyond maxTopicPendingPublishes.
var errTopicBacklog = errors.New("too many events of this Topic await storage")

// reserve takes n publishes of the Topic's budget, or nothing and false
// when they do not fit.
func (t *topicState) reserve(n int) bool {
	if t.pending.Add(int64(n)) > maxTopicPendingPublishes {
		t.pending.Add(-int64(n))
		return false
	}
	return true
}

// release returns n publishes to the Topic's budget.
func (t *topicState) release(n int) { t.pending.Add(-int64(n)) }

// releaseWhenResolved returns the publishes of pafs to the Topic's budget
// as JetStream acknowledges them or they fail, which the asynchronous
// publisher's timeout (publishAckTimeout) makes sure of; after twice that
// it returns the rest anyway.
func (t *topicState) releaseWhenResolved(pafs []jetstream.PubAckFuture) {
	deadline := time.NewTimer(2 * publishAckTimeout)
	defer deadline.Stop()
	for i, paf := range pafs {
		select {
		case <-paf.Ok():
		case <-paf.Err():
		case <-deadline.C:
			t.release(len(pafs) - i)
			return
		}
		t.release(1)
	}
}

// publish stores e in the Topic's stream, for delivery at when (zero for
// at once), and waits for JetStream's acknowledgement, at most
// publishAckTimeout; ctx ending first abandons
// the wait. It is a request whose reply the connection's reader hands
// straight to the waiting goroutine, cheaper than an asynchronous publish
// (whose acknowledgement goes through the reply subscription's goroutine
// and a timer) when each request carries one event. Beyond the Topic's
// budget (maxTopicPendingPublishes) it fails at once with errTopicBacklog.
// At most maxPendingPublishes wait at once; others get
// ErrTooManyStalledMsgs after publishStallWait.
func (d *Dispatcher) publish(ctx context.Context, t *topicState, e *ce.Event, scope string, when time.Time) (*jetstream.PubAck, error) {
	if !t.reserve(1) {
		return nil, errTopicBacklog
	}
	defer t.release(1)
	select {
	case d.publishSlots <- struct{}{}:
	default:
		stall := time.NewTimer(publishStallWait)
		select {
		case d.publishSlots <- struct{}{}:
			stall.Stop()
		case <-stall.C:
			return nil, jetstream.ErrTooManyStalledMsgs
		case <-ctx.Done():
			stall.Stop()
			return nil, ctx.Err()
		}
	}
	defer func() { <-d.publishSlots }()
	ctx, cancel := context.WithTimeout(ctx, publishAckTimeout)
	defer cancel()
	return d.js.PublishMsg(ctx, eventMsg(t, e, scope, when))
}

// awaitAck waits for JetStream's acknowledgement of a publish.
func awaitAck(ctx context.Context, paf jetstream.PubAckFuture) (duplicate bool, err error) {
	select {
	case ack := <-paf.Ok():
		return ack.Duplicate, nil
	case err := <-paf.Err():
		return false, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// publishStatus maps a failed publish to the status the producer gets.
func publishStatus(err error) (status int, reason, retryAfter string) {
	switch jserr.Classify(err) {
	case jserr.TooLarge:
		return http.StatusRequestEntityTooLarge, reasonTooLarge, ""
	case jserr.StreamFull:
		return http.StatusTooManyRequests, reasonBackpressure, retryAfterFull
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return http.StatusServiceUnavailable, reasonPublishFailed, retryAfterUnavailable
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return http.StatusRequestEntityTooLarge, reasonTooLarge, ""
	}
	if errors.Is(err, jetstream.ErrTooManyStalledMsgs) || errors.Is(err, errTopicBacklog) {
		return http.StatusServiceUnavailable, reasonBackpressure, retryAfterFull
	}
	return http.StatusServiceUnavailable, reasonUnavailable, retryAfterUnavailable
}

func (d *Dispatcher) writePublishError(w http.ResponseWriter, t *topicState, err error) {
	if errors.Is(err, context.Canceled) {
		// The producer went away; nobody reads the answer.
		t.metrics.reject(reasonUnavailable)
		return
	}
	status, reason, ra := publishStatus(err)
	t.metrics.reject(reason)
	if status >= 500 && d.publishErrLog.allow(time.Now()) {
		d.log.Warn("publish failed (logged at most once a second)", "topic", t.plan.Namespace+"/"+t.plan.Name, "error", err)
	}
	if ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	writeError(w, status, "storing the event: "+err.Error(), "")
}

// sampler lets one event through per period (a second when zero), for
// logs that could flood.
type sampler struct {
	period time.Duration
	last   atomic.Int64
}

func (s *sampler) allow(now time.Time) bool {
	period := s.period
	if period == 0 {
		period = time.Second
	}
	last := s.last.Load()
	return now.UnixNano()-last >= int64(period) && s.last.CompareAndSwap(last, now.UnixNano())
}

// errorBody is the JSON body of an error answer.
type errorBody struct {
	Error     string `json:"error"`
	Attribute string `json:"attribute,omitempty"`
	// Reason is why a request was refused for its credentials: an
	// auth.Reason (401, 503) or "forbidden" (403).
	Reason string `json:"reason,omitempty"`
	// Index is the position of the offending event in a batch.
	Index *int `json:"index,omitempty"`
	// Rule is the contract rule an event breaks (400): a JSON Schema
	// keyword, undeclared_type, missing_extension, datacontenttype or
	// invalid_json.
	Rule string `json:"rule,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, attribute string) {
	writeJSON(w, status, errorBody{Error: msg, Attribute: attribute})
}

// writeEventError answers a decoding error: 415 for an unsupported format,
// 400 otherwise.
func writeEventError(w http.ResponseWriter, err error) {
	if errors.Is(err, ce.ErrUnsupportedFormat) {
		writeError(w, http.StatusUnsupportedMediaType, err.Error(), "")
		return
	}
	body := errorBody{Error: err.Error()}
	var ee *ce.AttributeError
	if errors.As(err, &ee) {
		body.Attribute = ee.Attribute
		if ee.Index >= 0 {
			i := ee.Index
			body.Index = &i
		}
	}
	writeJSON(w, http.StatusBadRequest, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set(ce.HeaderContentType, "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Messages quote schema rules such as ">= 1" as they are.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
