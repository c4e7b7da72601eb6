package dispatcher

import (
	"encoding/base64"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// Extensions Herald adds to a dead-lettered event. The knative* names and
// meanings follow Knative Eventing so existing tooling reads them.
const (
	// extErrorDest is the URI of the destination that failed (the
	// subscriber, or the reply destination when forwarding a reply failed).
	extErrorDest = "knativeerrordest"
	// extErrorCode is the HTTP status of the last attempt; absent when the
	// last attempt got no response.
	extErrorCode = "knativeerrorcode"
	// extErrorData is the start (at most errorBodyLimit bytes) of the last
	// response's body, or of the transport error's text when there was no
	// response, base64-encoded as Knative does.
	extErrorData = "knativeerrordata"
	// extAttempts is the number of attempts made, in decimal.
	extAttempts = "heraldattempts"
)

// deadLetter gives up on msg after its last attempt res at dest: it posts
// the original event with the error extensions to the dead-letter sink and
// acks msg once the sink answered 2xx. A failing sink leaves msg
// unacknowledged for a retry after the policy's backoff; that next delivery
// makes one more attempt at the subscriber before returning to the sink.
// Without a sink the event is dropped, logged and counted (sink="none").
func (r *subRunner) deadLetter(cfg *subConfig, msg jetstream.Msg, dest string, res *result, attempt int) outcome {
	h := msg.Headers()
	if cfg.plan.DeadLetterURI == "" {
		r.ack(msg)
		r.m.outcome(outcomeDeadLettered, res.codeClass())
		r.m.deadLetter("none")
		id, _ := storedAttr(h, attrID)
		src, _ := storedAttr(h, attrSource)
		r.log.Warn("event dropped: delivery failed and the subscription has no dead-letter sink",
			"id", id, "source", src, "destination", dest, "attempts", attempt, "result", res.describe())
		return outcome{done: true}
	}
	out := deliveryHeader(h, 4)
	out[ceKey(extErrorDest)] = []string{percentEncode(dest)}
	if res.status != 0 {
		out[ceKey(extErrorCode)] = []string{strconv.Itoa(res.status)}
	}
	data := res.body
	if len(data) == 0 && res.err != nil {
		data = []byte(res.err.Error())
	}
	if len(data) > errorBodyLimit {
		data = data[:errorBodyLimit]
	}
	if len(data) > 0 {
		out[ceKey(extErrorData)] = []string{base64.StdEncoding.EncodeToString(data)}
	}
	out[ceKey(extAttempts)] = []string{strconv.Itoa(attempt)}
	dl := r.d.post(cfg.plan.DeadLetterURI, out, msg.Data(), cfg.plan.Delivery.Timeout.Duration(), 0)
	if dl.verdict() == verdictSuccess {
		r.ack(msg)
		r.m.outcome(outcomeDeadLettered, res.codeClass())
		r.m.deadLetter("sink")
		return outcome{done: true}
	}
	r.m.deadLetter("failed")
	delay := cfg.plan.Delivery.Backoff(attempt)
	r.log.Warn("dead-letter sink refused the event; retrying later",
		"sink", cfg.plan.DeadLetterURI, "result", dl.describe(), "delay", delay)
	return outcome{delay: delay}
}
