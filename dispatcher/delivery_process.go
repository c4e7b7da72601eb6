package dispatcher

import (
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// outcome says what becomes of a message after process.
type outcome struct {
	// done: the message was acknowledged (delivered, filtered out or
	// dead-lettered).
	done bool
	// delay before the next attempt when not done.
	delay time.Duration
}

// deliverOnce processes msg and leaves a retry to JetStream (NakWithDelay),
// so retry state survives this process. The attempt number is the
// message's delivery count.
func (r *subRunner) deliverOnce(msg jetstream.Msg) {
	out := r.process(msg, deliveryCount(msg))
	if !out.done {
		_ = msg.NakWithDelay(out.delay)
	}
}

// deliverHeld processes msg and retries it in this process, keeping it
// from redelivery meanwhile, so no later message of its key overtakes it.
// When the loop stops during a wait, the message is released at once, like
// the later messages of its key queued behind it, so that the next pinned
// dispatcher gets them in order; its next delivery counts from the
// delivery count.
func (r *subRunner) deliverHeld(msg jetstream.Msg) {
	attempt := deliveryCount(msg)
	for {
		out := r.process(msg, attempt)
		if out.done {
			return
		}
		if !r.hold(msg, out.delay) {
			_ = msg.Nak()
			return
		}
		attempt++
	}
}

// deliveryCount is the attempt number of msg's current delivery.
func deliveryCount(msg jetstream.Msg) int {
	md, err := msg.Metadata()
	if err != nil || md.NumDelivered == 0 {
		return 1
	}
	return int(md.NumDelivered)
}

// process makes attempt number attempt at delivering msg: filter, rate
// limit, POST to the subscriber, reply forwarding, dead letter. It acks msg
// when done with it and otherwise returns the delay before a retry.
func (r *subRunner) process(msg jetstream.Msg, attempt int) outcome {
	cfg := r.cfg.Load()
	h := msg.Headers()
	view := eventView{h: h}
	if !cfg.filter.match(&view) {
		r.ack(msg)
		r.m.filtered.Inc()
		r.historyOf(cfg, msg, 0, outcomeFiltered, "", nil)
		return outcome{done: true}
	}
	if !r.waitRate(msg) {
		return outcome{}
	}
	cfg = r.cfg.Load()
	start := time.Now()
	hdr := subscriberHeader(h)
	at := r.startAttempt(msg, attempt)
	at.inject(hdr)
	var res result
	if cfg.signer != nil {
		if err := r.signDelivery(cfg, hdr, webhookID(h), msg.Data(), start); err != nil {
			res = result{err: err}
		}
	}
	if res.err == nil {
		if nt := r.authorize(hdr, cfg.plan.SubscriberAudience, cfg.plan.Delivery.Timeout.Duration()); nt != nil {
			res = *nt
		}
	}
	if res.err == nil {
		res = r.d.post(cfg.subscriberClient, cfg.plan.SubscriberURI, hdr, msg.Data(), cfg.plan.Delivery.Timeout.Duration(), cfg.maxEventSize)
		r.m.observe(res.elapsed)
	}
	at.request(cfg.plan.SubscriberURI, &res)
	dest := cfg.plan.SubscriberURI
	if res.verdict() == verdictSuccess && (res.reply != nil || res.replyErr != nil) {
		r.keepAlive(msg, start)
		res, dest = r.forwardReply(cfg, msg, &res, at)
		at.outcomeAt(dest, &res)
	}
	switch res.verdict() {
	case verdictSuccess:
		r.ack(msg)
		r.m.outcome(outcomeDelivered, res.codeClass())
		at.end(outcomeDelivered, 0)
		return outcome{done: true}
	case verdictRetry:
		if attempt <= cfg.plan.Delivery.Retry || res.noToken {
			r.m.outcome(outcomeRetried, res.codeClass())
			delay := retryDelay(cfg.plan.Delivery, attempt, res.status, res.retryAfter, time.Now())
			r.log.Debug("delivery failed; retrying", "destination", dest, "attempt", attempt, "result", res.describe(), "delay", delay)
			at.end(outcomeRetried, delay)
			return outcome{delay: delay}
		}
	}
	r.keepAlive(msg, start)
	return r.deadLetter(cfg, msg, dest, &res, attempt, at)
}

// keepAlive resets msg's AckWait when the attempt since start took longer
// than a heartbeat, before a second request for the same message.
func (r *subRunner) keepAlive(msg jetstream.Msg, start time.Time) {
	if time.Since(start) > time.Duration(r.heartbeat.Load()) {
		_ = msg.InProgress()
	}
}

func (r *subRunner) ack(msg jetstream.Msg) {
	if err := msg.Ack(); err != nil {
		r.log.Debug("ack", "error", err)
	}
}

// signDelivery signs a delivery to the subscriber with cfg's signer.
// Without its keys a delivery is not sent: the error makes it a retry,
// logged at most once every signingWarnEvery.
func (r *subRunner) signDelivery(cfg *subConfig, hdr http.Header, id string, data []byte, now time.Time) error {
	err := cfg.signer.sign(hdr, id, data, now)
	if err != nil {
		err = fmt.Errorf("cannot sign delivery: %w", err)
		if cfg.signer.warn.allow(now) {
			r.log.Warn("deliveries wait for the signing keys", "dir", cfg.signer.dir, "error", err)
		}
	}
	return err
}
