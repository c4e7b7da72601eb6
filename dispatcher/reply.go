package dispatcher

import (
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
)

// extHops counts how many replies led to an event. A reply to an event
// with heraldhops n carries n+1; replies above maxReplyHops are dropped,
// which ends reply loops.
const (
	extHops      = "heraldhops"
	maxReplyHops = 8
)

// forwardReply sends the CloudEvent a subscriber returned in a 200 response
// to the Subscription's reply destination. It returns the result that
// decides msg's fate and the destination it concerns: the subscriber's own
// result when nothing was forwarded (no reply destination, hop limit,
// invalid reply: counted and dropped), else the reply POST's, so a failing
// reply destination is retried, and dead-lettered, like a failing
// subscriber.
//
// The reply carries the trace context the subscriber gave it; without one,
// that of the reply span (tracing on) or of the stored event.
func (r *subRunner) forwardReply(cfg *subConfig, msg jetstream.Msg, res *result, at *attemptTrace) (result, string) {
	if res.replyErr != nil {
		r.m.reply(replyInvalid)
		r.log.Warn("dropping invalid reply", "error", res.replyErr)
		return *res, cfg.plan.SubscriberURI
	}
	if cfg.plan.ReplyURI == "" {
		r.m.reply(replyNoDestination)
		return *res, cfg.plan.SubscriberURI
	}
	hops := 1
	if v, ok := ce.StoredAttr(msg.Headers(), extHops); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			hops = n + 1
		}
	}
	if hops > maxReplyHops {
		r.m.reply(replyHopLimit)
		r.log.Warn("dropping reply: hop limit reached", "hops", hops, "limit", maxReplyHops)
		return *res, cfg.plan.SubscriberURI
	}
	rep := res.reply
	rep.Set(extHops, strconv.Itoa(hops))
	own := rep.TraceParent != ""
	if !own {
		rep.TraceParent = msg.Headers().Get(ce.HeaderTraceParent)
		rep.TraceState = msg.Headers().Get(ce.HeaderTraceState)
	}
	rh := http.Header(rep.Header(HeaderDedupScope, r.dedupScope("reply", msg)))
	// The reply span's context replaces the stored one, not the
	// subscriber's own.
	carrier := map[string][]string(rh)
	if own {
		carrier = map[string][]string{}
	}
	span := at.child("reply", cfg.plan.ReplyURI, carrier)
	if nt := r.authorize(rh, cfg.plan.ReplyAudience, cfg.plan.Delivery.Timeout.Duration()); nt != nil {
		r.m.reply(replyFailed)
		endChild(span, nt)
		return *nt, cfg.plan.ReplyURI
	}
	rr := r.d.post(cfg.replyClient, cfg.plan.ReplyURI, rh, rep.Data, cfg.plan.Delivery.Timeout.Duration(), 0)
	endChild(span, &rr)
	if rr.verdict() == verdictSuccess {
		r.m.reply(replyForwarded)
	} else {
		r.m.reply(replyFailed)
	}
	return rr, cfg.plan.ReplyURI
}
