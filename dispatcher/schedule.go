package dispatcher

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/duration"
	"github.com/herald-dev/herald/plan"
)

// Delayed delivery. An event carrying deliverat (an RFC 3339 time) or
// deliverafter (a duration from receipt, ISO-8601 or Go) for a time ahead
// is stored at once as a JetStream message schedule ("@at") on a
// plan.ScheduleSubject of the Topic's stream, targeting the Topic's
// Subject (the LaneSubject of its priority), deduplicated like any event.
// At that time JetStream stores a copy on that subject (with the event's headers, without Nats-Msg-Id) and
// removes the schedule; the Subscriptions' consumers read only the copy, at
// its own stream position. Schedules live in the stream, so they survive
// restarts of the dispatcher and of NATS. The extension stays on the
// delivered event.

// deliveryTime returns when e asks to be delivered, received at now: the
// zero time for at once (no extension, or a time not ahead of now). An
// unparsable value, both extensions at once, a time further ahead than
// maxDelay, or any time ahead when maxDelay is zero, is an
// *ce.AttributeError naming the attribute (index is the event's position
// in a batch, -1 otherwise).
func deliveryTime(e *ce.Event, now time.Time, maxDelay time.Duration, index int) (time.Time, error) {
	at, hasAt := e.Get(ce.AttrDeliverAt)
	after, hasAfter := e.Get(ce.AttrDeliverAfter)
	var when time.Time
	attr := ce.AttrDeliverAt
	switch {
	case hasAt && hasAfter:
		return time.Time{}, ce.NewAttributeError(ce.AttrDeliverAfter, index, "deliverat and deliverafter exclude each other; set one")
	case hasAt:
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return time.Time{}, ce.NewAttributeError(attr, index, fmt.Sprintf("%q is no RFC 3339 time such as 2030-01-02T15:04:05Z", at))
		}
		when = t
	case hasAfter:
		attr = ce.AttrDeliverAfter
		d, err := duration.Parse(after)
		if err != nil {
			return time.Time{}, ce.NewAttributeError(attr, index, fmt.Sprintf("%q is no duration: use ISO-8601 such as PT30S or Go such as 30s", after))
		}
		when = now.Add(d)
	default:
		return time.Time{}, nil
	}
	delay := when.Sub(now)
	if delay <= 0 {
		return time.Time{}, nil
	}
	if maxDelay <= 0 {
		return time.Time{}, ce.NewAttributeError(attr, index, "this Topic does not take delayed events (its scheduling.maxDelay is PT0S, or its retention discards new events)")
	}
	if delay > maxDelay {
		return time.Time{}, ce.NewAttributeError(attr, index, fmt.Sprintf("asks for delivery %s ahead, beyond the Topic's maxDelay of %s", delay.Round(time.Second), maxDelay))
	}
	return when, nil
}

// scheduledMsg is the message schedule storing e in the Topic's stream for
// delivery at when: on its own ScheduleSubject, named after the
// deduplication id, so that a resent event replaces its pending schedule
// even outside the duplicate window.
func scheduledMsg(t *topicState, e *ce.Event, scope string, when time.Time) *nats.Msg {
	id := msgID(e, scope)
	h := e.Header(jetstream.MsgIDHeader, id, jetstream.ExpectedStreamHeader, t.plan.Stream,
		jetstream.ScheduleHeader, "@at "+when.UTC().Format(time.RFC3339Nano),
		jetstream.ScheduleTargetHeader, eventSubject(t.plan, e))
	return &nats.Msg{Subject: plan.ScheduleSubject(t.plan.Namespace, t.plan.Name, id), Header: h, Data: e.Data}
}

// pollScheduled sets herald_scheduled_events_pending of every served Topic
// that takes delayed events every lagInterval, from the stream's count of
// messages per ScheduleSubject (one per pending schedule), until ctx ends.
// Series of Topics no longer served or no longer taking delayed events
// are removed.
func (d *Dispatcher) pollScheduled(ctx context.Context) {
	tick := time.NewTicker(lagInterval)
	defer tick.Stop()
	seen := map[[2]string]bool{}
	for {
		now := map[[2]string]bool{}
		for ns, topics := range *d.topics.Load() {
			for name, t := range topics {
				if t.plan.MaxDelay <= 0 {
					continue
				}
				n, err := d.scheduledPending(ctx, t.plan)
				if err != nil {
					continue
				}
				now[[2]string{ns, name}] = true
				d.metrics.scheduled.WithLabelValues(ns, name).Set(float64(n))
			}
		}
		for k := range seen {
			if !now[k] {
				d.metrics.scheduled.DeleteLabelValues(k[0], k[1])
			}
		}
		seen = now
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// scheduledPending counts the pending schedules of a Topic's stream.
func (d *Dispatcher) scheduledPending(ctx context.Context, p *plan.TopicPlan) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := d.js.Stream(ctx, p.Stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(plan.ScheduleSubjects(p.Namespace, p.Name)))
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, nil
}
