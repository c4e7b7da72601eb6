// Package replay delivers stored events once more to one Subscription:
// dead letters it failed (redrive) or a range of its Topic's events
// (replay). It copies the selected events into the Subscription's Topic
// stream on the Subscription's redelivery subject (plan.RedeliverySubject),
// which only that Subscription's consumer reads besides the Topic's own
// subject. The Subscription's dispatcher then delivers them like any event:
// its filters, ordering, retries, backoff and dead-letter sink apply, and
// no other Subscription sees them.
//
// The copies are published with their own JetStream message ids (the run
// and the source sequence), so they are never swallowed by the Topic's
// deduplication of the original event, and a run that is repeated after an
// interruption publishes each copy once within the duplicate window.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Target is the Subscription events are delivered to again.
type Target struct {
	// Namespace, Topic and Subscription name it.
	Namespace, Topic, Subscription string
	// Stream is the Topic's stream; Subject the Subscription's redelivery
	// subject in it.
	Stream, Subject string
	// DeadLetterTopic is "namespace/name" of the Topic holding the
	// Subscription's dead letters; empty when its sink is no Topic.
	DeadLetterTopic string
}

// ErrNotFound means no Topic plan holds the Subscription.
var ErrNotFound = errors.New("subscription not found")

// NewTarget returns the Target of Subscription name of topic in namespace.
func NewTarget(namespace, topic, name string) *Target {
	return &Target{
		Namespace: namespace, Topic: topic, Subscription: name,
		Stream:  plan.StreamName(namespace, topic),
		Subject: plan.RedeliverySubject(namespace, topic, name),
	}
}

// FindTarget looks the Subscription up in the Topic plans the control plane
// published (plan.KVBucket), so that it works wherever NATS is reachable.
func FindTarget(ctx context.Context, js jetstream.JetStream, namespace, name string) (*Target, error) {
	kv, err := js.KeyValue(ctx, plan.KVBucket)
	if err != nil {
		return nil, fmt.Errorf("read the Topic plans (bucket %s): %w", plan.KVBucket, err)
	}
	keys, err := kv.ListKeysFiltered(ctx, plan.Key(namespace, "*"))
	if err != nil {
		return nil, fmt.Errorf("list the Topic plans: %w", err)
	}
	for key := range keys.Keys() {
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var tp plan.TopicPlan
		if json.Unmarshal(e.Value(), &tp) != nil || tp.Namespace != namespace {
			continue
		}
		for _, sp := range tp.Subscriptions {
			if sp.Name == name {
				_ = keys.Stop()
				t := NewTarget(namespace, tp.Name, name)
				t.DeadLetterTopic = sp.DeadLetterTopic
				return t, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no Topic in namespace %s has a Subscription %s", ErrNotFound, namespace, name)
}

// Options shape a run.
type Options struct {
	// RunID makes the message ids of the run's copies; the same RunID and
	// source publish each copy once within the Topic's duplicate window.
	RunID string
	// Rate bounds the copies per second; 0 is unbounded.
	Rate float64
	// DryRun selects and reports without publishing or marking anything.
	DryRun bool
}

// limiter returns the run's pacing, nil when unbounded.
func (o Options) limiter() *rate.Limiter {
	if o.Rate <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(o.Rate), 1)
}

// publishCopy publishes a stored message to t's redelivery subject without
// the headers in drop, with message id "<kind>.<run>.<source seq>".
func publishCopy(ctx context.Context, js jetstream.JetStream, t *Target, kind, run string, seq uint64, h nats.Header, data []byte, drop func(string) bool) (uint64, error) {
	out := nats.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Nats-") || (drop != nil && drop(k)) {
			continue
		}
		out[k] = v
	}
	m := &nats.Msg{Subject: t.Subject, Header: out, Data: data}
	// Before the copy exists, so that the record of its delivery is later.
	at := time.Now().UTC()
	ack, err := js.PublishMsg(ctx, m,
		jetstream.WithMsgID(kind+"."+run+"."+strconv.FormatUint(seq, 10)),
		jetstream.WithExpectStream(t.Stream))
	if err != nil {
		return 0, err
	}
	if !ack.Duplicate {
		recordCopy(js, t, kind, at, seq, ack.Sequence, out)
	}
	return ack.Sequence, nil
}

// recordCopy adds a replayed or redriven copy (kind replay or redrive),
// published at at and stored at copySeq from the message at seq, to the
// delivery history of t's Topic. Like the dispatcher's records it is published without
// waiting: a Topic without history stores none, and a lost record fails no
// run.
func recordCopy(js jetstream.JetStream, t *Target, kind string, at time.Time, seq, copySeq uint64, h nats.Header) {
	outcome := plan.HistoryReplayed
	if kind == "redrive" {
		outcome = plan.HistoryRedriven
	}
	rec := plan.HistoryRecord{Time: at, Subscription: t.Subscription, Sequence: copySeq, Outcome: outcome, From: seq}
	rec.ID, _ = ce.StoredAttr(h, ce.AttrID)
	rec.Source, _ = ce.StoredAttr(h, ce.AttrSource)
	rec.Type, _ = ce.StoredAttr(h, ce.AttrType)
	data, err := json.Marshal(&rec)
	if err != nil {
		return
	}
	_ = js.Conn().Publish(plan.HistorySubject(t.Namespace, t.Topic, rec.ID, t.Subscription, outcome), data)
}

// readStream calls fn for each message of stream on subjects with a stream
// sequence in [from, until] (until 0: up to the last one when the read
// began), in order, until fn returns false. It reads through an ephemeral
// consumer that acknowledges nothing and is deleted when it returns. A
// read that gets nothing while messages remain is an error, never an early
// end: callers record how far they got and try again.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, from, until uint64, fn func(m jetstream.Msg) bool) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	info := s.CachedInfo()
	last := info.State.LastSeq
	if until == 0 || until > last {
		until = last
	}
	if info.State.Msgs == 0 || from > until {
		return nil
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubjects:    subjects,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: time.Minute,
		Description:       "Herald replay read",
	}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	c, err := s.CreateConsumer(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.DeleteConsumer(dctx, c.CachedInfo().Name)
	}()
	pending := c.CachedInfo().NumPending
	for pending > 0 {
		ctxNext, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := c.Fetch(256, jetstream.FetchContext(ctxNext))
		if err != nil {
			cancel()
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				cancel()
				return err
			}
			if md.Sequence.Stream > until || !fn(m) || md.Sequence.Stream == until || md.NumPending == 0 {
				cancel()
				return nil
			}
			pending = md.NumPending
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if got == 0 {
			return fmt.Errorf("read %s: no answer while %d messages remain", stream, pending)
		}
	}
	return nil
}
