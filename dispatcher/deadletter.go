package dispatcher

import (
	"context"
	"encoding/base64"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// HeaderDedupScope is the request header that narrows the ingress's
// deduplication: events are deduplicated on source, id and this value.
// Dispatchers send it with dead letters and forwarded replies, naming the
// Subscription and the stored message they come from, so the dead letters
// (or replies) of several Subscriptions for one event are distinct
// messages, while a resent one (a sink retry) is stored once.
const HeaderDedupScope = "Herald-Dedup-Scope"

// dedupScope is the HeaderDedupScope value of what r sends on behalf of
// msg: kind ("deadletter" or "reply"), the Subscription, and msg's place
// in its stream.
func (r *subRunner) dedupScope(kind string, msg jetstream.Msg) string {
	var seq uint64
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	return kind + ":" + r.ns + "/" + r.name + ":" + r.stream + ":" + strconv.FormatUint(seq, 10)
}

// deadLetter gives up on msg after its last attempt res at dest: it posts
// the original event with the error extensions to the dead-letter sink and
// acks msg once the sink answered 2xx. A failing sink leaves msg
// unacknowledged for a retry after the policy's backoff; that next delivery
// makes one more attempt at the subscriber before returning to the sink.
// Without a sink the event is dropped, logged and counted (sink="none").
func (r *subRunner) deadLetter(cfg *subConfig, msg jetstream.Msg, dest string, res *result, attempt int, at *attemptTrace) outcome {
	h := msg.Headers()
	if cfg.plan.DeadLetterURI == "" {
		r.countDeadLetter(msg)
		r.ack(msg)
		r.m.outcome(outcomeDeadLettered, res.codeClass())
		r.m.deadLetter("none")
		id, _ := ce.StoredAttr(h, ce.AttrID)
		src, _ := ce.StoredAttr(h, ce.AttrSource)
		r.log.Warn("event dropped: delivery failed and the subscription has no dead-letter sink",
			"id", id, "source", src, "destination", dest, "attempts", attempt, "result", res.describe())
		at.end(outcomeDeadLettered, 0)
		return outcome{done: true}
	}
	out := deliveryHeader(h, 8)
	out[ce.Key(ce.ExtErrorDest)] = []string{ce.Encode(dest)}
	if res.status != 0 {
		out[ce.Key(ce.ExtErrorCode)] = []string{strconv.Itoa(res.status)}
	}
	data := res.body
	if len(data) == 0 && res.err != nil {
		data = []byte(res.err.Error())
	}
	if len(data) > errorBodyLimit {
		data = data[:errorBodyLimit]
	}
	if len(data) > 0 {
		out[ce.Key(ce.ExtErrorData)] = []string{base64.StdEncoding.EncodeToString(data)}
	}
	out[ce.Key(ce.ExtAttempts)] = []string{strconv.Itoa(attempt)}
	out[ce.Key(ce.ExtSubscription)] = []string{r.ns + "/" + r.name}
	out[ce.Key(ce.ExtTopic)] = []string{r.ns + "/" + r.topic}
	out[ce.Key(ce.ExtDeadLetteredAt)] = []string{time.Now().UTC().Format(time.RFC3339)}
	out[HeaderDedupScope] = []string{r.dedupScope("deadletter", msg)}
	span := at.child("dead-letter", cfg.plan.DeadLetterURI, out)
	var dl result
	if nt := r.authorize(out, cfg.plan.DeadLetterAudience, cfg.plan.Delivery.Timeout.Duration()); nt != nil {
		dl = *nt
	} else {
		dl = r.d.post(cfg.deadLetterClient, cfg.plan.DeadLetterURI, out, msg.Data(), cfg.plan.Delivery.Timeout.Duration(), 0)
	}
	endChild(span, &dl)
	if dl.verdict() == verdictSuccess {
		r.countDeadLetter(msg)
		r.ack(msg)
		r.m.outcome(outcomeDeadLettered, res.codeClass())
		r.m.deadLetter("sink")
		at.end(outcomeDeadLettered, 0)
		return outcome{done: true}
	}
	r.m.deadLetter("failed")
	delay := retryBackoff(cfg.plan.Delivery, attempt)
	at.outcomeAt(cfg.plan.DeadLetterURI, &dl)
	at.end(outcomeRetried, delay)
	r.log.Warn("dead-letter sink refused the event; retrying later",
		"sink", cfg.plan.DeadLetterURI, "result", dl.describe(), "delay", delay)
	return outcome{delay: delay}
}

// countDeadLetter adds msg to its Subscription's dead-letter counter
// (plan.DeadLetterCounter) before msg is acked. The increment's message id
// is the dead letter's deduplication scope, so a dead letter sent again
// after a crash between the increment and the ack is counted once. A
// failed increment is logged; the dead letter stands.
func (r *subRunner) countDeadLetter(msg jetstream.Msg) {
	m := &nats.Msg{
		Subject: plan.DeadLetterCounter(r.ns, r.topic, r.name),
		Header: nats.Header{
			counterIncrHeader:     []string{"1"},
			jetstream.MsgIDHeader: []string{r.dedupScope("deadletter", msg)},
		},
	}
	// Also while the loop stops: the dead letter was sent.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.d.js.PublishMsg(ctx, m); err != nil {
		r.log.Warn("cannot count a dead letter", "error", err)
	}
}

// counterIncrHeader adds its value to a counter stream's subject.
const counterIncrHeader = "Nats-Incr"
