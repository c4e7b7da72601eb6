package dispatcher

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/duration"
)

// Pull subscriptions. A Subscription in pull mode has no delivery loop:
// consumers fetch its events from the Topic's ingress, as with Google
// Pub/Sub's pull API:
//
//	POST /<namespace>/<topic>/subscriptions/<name>:pull   {"maxEvents": n, "waitSeconds": s}
//	POST /<namespace>/<topic>/subscriptions/<name>:ack    {"ackIds": [...]}
//	POST /<namespace>/<topic>/subscriptions/<name>:nack   {"ackIds": [...], "delay": "PT10S"}
//	POST /<namespace>/<topic>/subscriptions/<name>:extend {"ackIds": [...], "seconds": n}
//
// An ackId is the base64url of the message's JetStream acknowledgement
// subject, so any dispatcher replica can act on it without shared state;
// one that does not name this Subscription's stream and consumer is
// refused. The consumer's AckWait is the Subscription's ack deadline:
// JetStream redelivers what is not acknowledged in time, and a pull that
// finds an event delivered more often than the retry policy allows
// dead-letters it (deadLetter, as push deliveries do) instead of returning
// it.

// Verbs of the pull API.
const (
	verbPull   = "pull"
	verbAck    = "ack"
	verbNack   = "nack"
	verbExtend = "extend"
)

// Bounds of pull requests.
const (
	// maxPullEvents bounds maxEvents, and maxAckIDs the ackIds of one
	// request (Pub/Sub's limits).
	maxPullEvents = 1000
	maxAckIDs     = 1000
	// maxPullWait bounds waitSeconds.
	maxPullWait = 30 * time.Second
	// minPullWait is the shortest wait worth a pull request.
	minPullWait = 50 * time.Millisecond
	// maxNackDelay bounds a nack's delay.
	maxNackDelay = 10 * time.Minute
	// pullBodyLimit bounds a request body (1000 ackIds fit easily).
	pullBodyLimit = 1 << 20
	// ackFlushTimeout bounds the wait for NATS to take acks.
	ackFlushTimeout = 5 * time.Second
)

// Headers of a pull answer in binary mode.
const (
	HeaderAckID           = "Herald-Ack-Id"
	HeaderDeliveryAttempt = "Herald-Delivery-Attempt"
)

// mediaOctetStream in a pull request's Accept asks for one event in
// binary mode.
const mediaOctetStream = "application/octet-stream"

// pullPath is a parsed /<namespace>/<topic>/subscriptions/<name>:<verb>.
type pullPath struct {
	ns, topic, name, verb string
}

// splitPullPath parses a pull API path.
func splitPullPath(p string) (pullPath, bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] != "subscriptions" {
		return pullPath{}, false
	}
	name, verb, ok := strings.Cut(parts[3], ":")
	if !ok || name == "" {
		return pullPath{}, false
	}
	return pullPath{ns: parts[0], topic: parts[1], name: name, verb: verb}, true
}

// pullRequest is the body of :pull.
type pullRequest struct {
	MaxEvents   int     `json:"maxEvents"`
	WaitSeconds float64 `json:"waitSeconds"`
}

// receivedEvent is one event of a :pull answer.
type receivedEvent struct {
	AckID           string          `json:"ackId"`
	DeliveryAttempt int             `json:"deliveryAttempt"`
	Event           json.RawMessage `json:"event"`
}

// pullResponse is the body of a :pull answer.
type pullResponse struct {
	ReceivedEvents []receivedEvent `json:"receivedEvents"`
}

// ackRequest is the body of :ack, :nack and :extend.
type ackRequest struct {
	AckIDs  []string `json:"ackIds"`
	Delay   string   `json:"delay,omitempty"`
	Seconds int      `json:"seconds,omitempty"`
}

// servePull answers the pull API for the pull Subscription p names: 404
// for an unknown Topic or Subscription or one in push mode, 401/403/503 as
// for publishing when its consume policy authenticates, 400 for an
// invalid body or ackId, 503 while its consumer is not found or NATS does
// not answer.
func (d *Dispatcher) servePull(w http.ResponseWriter, r *http.Request, p pullPath) {
	t := d.topic(p.ns, p.topic)
	if t == nil {
		d.metrics.rejected.WithLabelValues("", "", reasonUnknownTopic).Inc()
		writeError(w, http.StatusNotFound, fmt.Sprintf("no topic at /%s/%s", p.ns, p.topic), "")
		return
	}
	rn, why := d.pullRunner(t, p.name)
	if rn == nil {
		t.metrics.reject(reasonUnknownTopic)
		writeError(w, http.StatusNotFound, why, "")
		return
	}
	cfg := rn.cfg.Load()
	if cfg.consume == nil || cfg.consume.authenticate {
		pp := cfg.consume
		if pp == nil {
			pp = &publishPolicy{authenticate: true, audience: topicAudience(t.plan), source: "deny-all", action: "pull", listed: "consumers", owner: "Subscription"}
		}
		a, ok := d.authenticate(w, r, t, pp)
		if !ok {
			return
		}
		if !a.all {
			forbid(w, t, a.noRule(), nil)
			return
		}
	}
	body, err := readBody(r.Body, r.ContentLength, pullBodyLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading body: "+err.Error(), "")
		return
	}
	switch p.verb {
	case verbPull:
		var req pullRequest
		if !decodeStrict(w, body, &req) {
			return
		}
		rn.servePullEvents(w, r, cfg, req)
	case verbAck, verbNack, verbExtend:
		var req ackRequest
		if !decodeStrict(w, body, &req) {
			return
		}
		rn.serveAcks(w, t, cfg, p.verb, req)
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown verb %q: want :pull, :ack, :nack or :extend", p.verb), "")
	}
}

// pullRunner returns the loop of t's pull Subscription name, or nil and
// why not.
func (d *Dispatcher) pullRunner(t *topicState, name string) (*subRunner, string) {
	d.mu.Lock()
	rn := d.runners[t.key+"/"+name]
	d.mu.Unlock()
	switch {
	case rn == nil:
		return nil, fmt.Sprintf("no subscription %q on topic %s/%s", name, t.plan.Namespace, t.plan.Name)
	case !rn.pullMode:
		return nil, fmt.Sprintf("subscription %s/%s delivers in push mode; only Subscriptions with mode pull are pulled", t.plan.Namespace, name)
	}
	return rn, ""
}

// decodeStrict decodes a JSON body into v, refusing unknown fields; an
// empty body leaves v zero. False means a 400 was written.
func decodeStrict(w http.ResponseWriter, body []byte, v any) bool {
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), "")
		return false
	}
	return true
}

// servePullEvents answers :pull: up to maxEvents events (default 1),
// waiting up to waitSeconds (default 0: answer at once) for the first and
// answering as soon as there is one. With Accept: application/octet-stream
// and at most one event, the event comes in binary mode (204 without one).
func (r *subRunner) servePullEvents(w http.ResponseWriter, req *http.Request, cfg *subConfig, pr pullRequest) {
	binary := strings.Contains(req.Header.Get("Accept"), mediaOctetStream)
	switch {
	case pr.MaxEvents < 0 || pr.MaxEvents > maxPullEvents:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("maxEvents must be between 1 and %d", maxPullEvents), "")
		return
	case pr.WaitSeconds < 0 || pr.WaitSeconds > maxPullWait.Seconds():
		writeError(w, http.StatusBadRequest, fmt.Sprintf("waitSeconds must be between 0 and %d", int(maxPullWait.Seconds())), "")
		return
	case binary && pr.MaxEvents > 1:
		writeError(w, http.StatusBadRequest, "binary mode (Accept: application/octet-stream) carries one event; ask for maxEvents 1", "")
		return
	}
	n := max(pr.MaxEvents, 1)
	msgs, err := r.pullEvents(cfg, n, time.Duration(pr.WaitSeconds*float64(time.Second)))
	if req.Context().Err() != nil {
		// Nobody reads the answer: release the events at once.
		for _, m := range msgs {
			_ = m.Nak()
		}
		return
	}
	if err != nil && len(msgs) == 0 {
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, http.StatusServiceUnavailable, "pulling: "+err.Error(), "")
		return
	}
	if binary {
		if len(msgs) == 0 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		m := msgs[0]
		h := deliveryHeader(m.Headers(), 2)
		h[HeaderAckID] = []string{ackID(m)}
		h[HeaderDeliveryAttempt] = []string{strconv.Itoa(deliveryCount(m))}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(m.Data())
		return
	}
	resp := pullResponse{ReceivedEvents: make([]receivedEvent, 0, len(msgs))}
	for _, m := range msgs {
		resp.ReceivedEvents = append(resp.ReceivedEvents, receivedEvent{
			AckID:           ackID(m),
			DeliveryAttempt: deliveryCount(m),
			Event:           ce.AppendStructured(nil, m.Headers(), m.Data()),
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// errPullNotReady: the loop has not found the consumer (yet).
var errPullNotReady = errors.New("the Subscription's consumer is not ready")

// pullEvents fetches up to n events for a consumer, waiting up to wait for
// the first one. Events the filters leave out are acknowledged, and events
// delivered more often than the retry policy allows are dead-lettered;
// neither counts towards n. Pull requests ask for no more than they can
// return and end before the answer is written, so no event is sent to a
// request nobody reads.
func (r *subRunner) pullEvents(cfg *subConfig, n int, wait time.Duration) ([]jetstream.Msg, error) {
	cp := r.pullCons.Load()
	if cp == nil {
		return nil, errPullNotReady
	}
	cons := *cp
	deadline := time.Now().Add(wait)
	var out []jetstream.Msg
	for len(out) < n {
		batch, err := cons.FetchNoWait(n - len(out))
		if err != nil {
			return out, err
		}
		got, err := r.takePulled(cfg, batch, &out)
		if err != nil {
			return out, err
		}
		if got > 0 {
			continue
		}
		left := time.Until(deadline)
		if len(out) > 0 || left < minPullWait {
			break
		}
		ctx, cancel := context.WithTimeout(r.ctx, left)
		batch, err = cons.Fetch(1, jetstream.FetchContext(ctx))
		if err == nil {
			got, err = r.takePulled(cfg, batch, &out)
		}
		cancel()
		if err != nil {
			return out, err
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

// takePulled reads batch, appending to out the messages to return, and
// reports how many messages it held.
func (r *subRunner) takePulled(cfg *subConfig, batch jetstream.MessageBatch, out *[]jetstream.Msg) (int, error) {
	got := 0
	for msg := range batch.Messages() {
		got++
		if !cfg.filter.match(&eventView{h: msg.Headers()}) {
			r.ack(msg)
			r.m.filtered.Inc()
			r.historyOf(cfg, msg, 0, outcomeFiltered, "", nil)
			continue
		}
		if attempts := deliveryCount(msg) - 1; attempts > cfg.plan.Delivery.Retry {
			r.deadLetterPulled(cfg, msg, attempts)
			continue
		}
		*out = append(*out, msg)
	}
	err := batch.Error()
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, jetstream.ErrNoMessages) {
		return got, nil
	}
	return got, err
}

// deadLetterPulled gives up on msg, pulled attempts times without being
// acknowledged, through the dead-letter path push deliveries take; when
// the sink refuses it, msg comes back after the policy's backoff.
func (r *subRunner) deadLetterPulled(cfg *subConfig, msg jetstream.Msg, attempts int) {
	res := result{err: fmt.Errorf("not acknowledged after %d deliveries (nacked, or past the ack deadline)", attempts)}
	dest := "/" + r.ns + "/" + r.topic + "/subscriptions/" + r.name + ":" + verbPull
	if out := r.deadLetter(cfg, msg, dest, &res, attempts, r.startAttempt(msg, attempts)); !out.done {
		_ = msg.NakWithDelay(out.delay)
	}
}

// ackID is the opaque acknowledgement id of a pulled message.
func ackID(m jetstream.Msg) string {
	return base64.RawURLEncoding.EncodeToString([]byte(m.Reply()))
}

// ackSubject decodes id into the acknowledgement subject of a message of
// stream and consumer, and the message's delivery count; ok is false when
// id is no such subject. Acknowledgement subjects are
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>,
// or, from newer servers, with a domain and an account hash before the
// stream and a token at the end.
func ackSubject(id, stream, consumer string) (subject string, delivered int, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) > 512 {
		return "", 0, false
	}
	subject = string(b)
	tokens := strings.Split(subject, ".")
	if len(tokens) < 9 || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return "", 0, false
	}
	for _, tok := range tokens {
		if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
			return "", 0, false
		}
	}
	at := 2
	switch {
	case len(tokens) == 9:
	case len(tokens) >= 11:
		at = 4
	default:
		return "", 0, false
	}
	if tokens[at] != stream || tokens[at+1] != consumer {
		return "", 0, false
	}
	for _, tok := range tokens[at+2 : at+7] {
		if _, err := strconv.ParseUint(tok, 10, 64); err != nil {
			return "", 0, false
		}
	}
	delivered, err = strconv.Atoi(tokens[at+2])
	if err != nil || delivered < 1 {
		return "", 0, false
	}
	return subject, delivered, true
}

// serveAcks answers :ack (acknowledge: the events are done), :nack
// (deliver again after delay, an ISO-8601 or Go duration up to
// maxNackDelay, or the retry policy's backoff for the delivery count) and
// :extend (JetStream restarts the ack deadline from now: the full
// deadline, which is why seconds may not exceed it). Every ackId is
// checked before any is acted on; the answer is 200 {} once NATS took
// them. As with Pub/Sub, acting on an ackId whose deadline passed may
// succeed while the event is delivered again.
func (r *subRunner) serveAcks(w http.ResponseWriter, t *topicState, cfg *subConfig, verb string, req ackRequest) {
	if len(req.AckIDs) == 0 || len(req.AckIDs) > maxAckIDs {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ackIds must hold 1 to %d ackIds", maxAckIDs), "")
		return
	}
	if verb != verbNack && req.Delay != "" || verb != verbExtend && req.Seconds != 0 {
		writeError(w, http.StatusBadRequest, "delay belongs to :nack and seconds to :extend", "")
		return
	}
	var delay time.Duration
	if req.Delay != "" {
		var err error
		if delay, err = duration.Parse(req.Delay); err != nil || delay > maxNackDelay {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("delay %q: want an ISO-8601 or Go duration of at most %s", req.Delay, maxNackDelay), "")
			return
		}
	}
	deadline := cfg.plan.AckDeadline.Duration()
	if req.Seconds < 0 || time.Duration(req.Seconds)*time.Second > deadline {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be between 0 and the ack deadline, %s: an extension restarts the full deadline from now", deadline), "")
		return
	}
	subjects := make([]string, len(req.AckIDs))
	bodies := make([][]byte, len(req.AckIDs))
	for i, id := range req.AckIDs {
		subject, delivered, ok := ackSubject(id, r.stream, r.consumer)
		if !ok {
			i := i
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("ackIds[%d] is no ackId of subscription %s/%s", i, r.ns, r.name), Index: &i})
			return
		}
		subjects[i] = subject
		switch verb {
		case verbAck:
			bodies[i] = []byte("+ACK")
		case verbExtend:
			bodies[i] = []byte("+WPI")
		case verbNack:
			d := delay
			if req.Delay == "" {
				d = retryBackoff(cfg.plan.Delivery, delivered)
			}
			bodies[i] = fmt.Appendf(nil, `-NAK {"delay": %d}`, d.Nanoseconds())
		}
	}
	for i := range subjects {
		if err := r.d.nc.Publish(subjects[i], bodies[i]); err != nil {
			w.Header().Set("Retry-After", retryAfterUnavailable)
			writeError(w, http.StatusServiceUnavailable, verb+": "+err.Error(), "")
			return
		}
	}
	if err := r.d.nc.FlushTimeout(ackFlushTimeout); err != nil {
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, http.StatusServiceUnavailable, verb+": "+err.Error(), "")
		return
	}
	switch verb {
	case verbAck:
		r.m.outcomes(outcomeDelivered, "none", len(subjects))
	case verbNack:
		r.m.outcomes(outcomeRetried, "none", len(subjects))
	}
	writeJSON(w, http.StatusOK, struct{}{})
}
