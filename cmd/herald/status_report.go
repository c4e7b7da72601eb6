package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/herald-dev/herald/plan"
)

// statusReport is herald status -o json: one document per sample. Its
// shape is stable; fields are added, never renamed or removed.
type statusReport struct {
	// Time is when the (second) sample was taken.
	Time time.Time `json:"time"`
	// RateWindowSeconds is the time between the two samples the rates come
	// from; null with one sample.
	RateWindowSeconds *float64 `json:"rateWindowSeconds"`
	// Topics are sorted by namespace and name, Subscriptions by namespace,
	// Topic and name.
	Topics        []topicStatus        `json:"topics"`
	Subscriptions []subscriptionStatus `json:"subscriptions"`
}

// topicStatus is one Topic in a statusReport.
type topicStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Stream is the Topic's JetStream stream.
	Stream string `json:"stream"`
	// EventsPerSecond is the rate at which the stream's last sequence grew
	// between the samples: events stored per second, copies replayed or
	// redriven into the Topic included. Null with one sample, or when the
	// stream was created again in between.
	EventsPerSecond *float64 `json:"eventsPerSecond"`
	// Events and Bytes are what the stream holds now.
	Events uint64 `json:"events"`
	Bytes  uint64 `json:"bytes"`
	// FirstSequence and LastSequence are the stream sequences of the oldest
	// and newest event it holds (LastSequence counts every event ever
	// stored); FirstEventTime and LastEventTime when they were stored, null
	// when it holds none.
	FirstSequence  uint64     `json:"firstSequence"`
	LastSequence   uint64     `json:"lastSequence"`
	FirstEventTime *time.Time `json:"firstEventTime"`
	LastEventTime  *time.Time `json:"lastEventTime"`
	// SubscriptionCount is how many Subscriptions the Topic's plan holds.
	SubscriptionCount int `json:"subscriptionCount"`
	// Problem says why figures are missing ("no stream").
	Problem string `json:"problem,omitempty"`
}

// subscriptionStatus is one Subscription in a statusReport. Its figures
// are those of its durable JetStream consumer (plan.ConsumerName).
type subscriptionStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Topic is the name of its Topic, in the same namespace.
	Topic    string `json:"topic"`
	Consumer string `json:"consumer"`
	// DeliveriesPerSecond is the rate at which the consumer's delivered
	// consumer sequence grew between the samples. JetStream numbers every
	// delivery of a consumer with the next consumer sequence, first
	// deliveries and redeliveries alike, so this counts each time an event
	// was handed to a dispatcher: events delivered, retried, dead-lettered
	// or dropped by the Subscription's filters. (The stream sequence of the
	// last delivery would count the other Subscriptions' redelivered copies
	// it skips, and the ack floor stalls behind a single slow event.) A
	// Subscription keeps up while its Pending does not grow. Null with one
	// sample, or when the consumer was created again or reset in between.
	DeliveriesPerSecond *float64 `json:"deliveriesPerSecond"`
	// Pending is the lag: events the consumer has not delivered yet.
	Pending uint64 `json:"pending"`
	// AckPending is in flight: events delivered and not acknowledged yet,
	// being delivered, queued in a dispatcher or waiting out a retry's
	// backoff.
	AckPending int `json:"ackPending"`
	// Redelivered is how many of AckPending were delivered more than once.
	Redelivered int `json:"redelivered"`
	// DeadLetters is how many events the Subscription dead-lettered since
	// it was created (plan.DeadLetterCounter); LastDeadLetterTime when the
	// last one was, null when none.
	DeadLetters        int64      `json:"deadLetters"`
	LastDeadLetterTime *time.Time `json:"lastDeadLetterTime"`
	// LastDeliveryTime is when the consumer last delivered an event, null
	// when never.
	LastDeliveryTime *time.Time `json:"lastDeliveryTime"`
	// WaitingPulls is the dispatchers' outstanding pull requests; 0 while
	// events are pending means no dispatcher is pulling.
	WaitingPulls int `json:"waitingPulls"`
	// Paused is true when the Subscription is paused (spec.paused): its
	// consumer holds its position and delivers nothing.
	Paused bool `json:"paused"`
	// Problem says why figures are missing ("no consumer").
	Problem string `json:"problem,omitempty"`
}

// Problems a report names.
const (
	problemNoStream   = "no stream"
	problemNoConsumer = "no consumer"
)

// buildStatusReport turns cur, and prev for the rates (nil: none), into a
// report.
func buildStatusReport(prev, cur *statusSample) *statusReport {
	rep := &statusReport{Time: cur.at.UTC(), Topics: []topicStatus{}, Subscriptions: []subscriptionStatus{}}
	if prev != nil {
		w := cur.at.Sub(prev.at).Seconds()
		rep.RateWindowSeconds = &w
	}
	for _, tp := range cur.plans {
		ts := topicStatus{Namespace: tp.Namespace, Name: tp.Name, Stream: tp.Stream, SubscriptionCount: len(tp.Subscriptions)}
		info := cur.streams[tp.Stream]
		if info == nil {
			ts.Problem = problemNoStream
		} else {
			st := info.State
			ts.Events, ts.Bytes, ts.FirstSequence, ts.LastSequence = st.Msgs, st.Bytes, st.FirstSeq, st.LastSeq
			if st.Msgs > 0 {
				ts.FirstEventTime, ts.LastEventTime = utcPtr(st.FirstTime), utcPtr(st.LastTime)
			}
			if prev != nil {
				if p := prev.streams[tp.Stream]; p != nil && p.Created.Equal(info.Created) {
					ts.EventsPerSecond = perSecond(p.State.LastSeq, st.LastSeq, serverTime(p.TimeStamp, prev.at), serverTime(info.TimeStamp, cur.at))
				}
			}
		}
		rep.Topics = append(rep.Topics, ts)
		for _, sp := range tp.Subscriptions {
			rep.Subscriptions = append(rep.Subscriptions, subscriptionStatusOf(prev, cur, tp, &sp))
		}
	}
	return rep
}

func subscriptionStatusOf(prev, cur *statusSample, tp *plan.TopicPlan, sp *plan.SubscriptionPlan) subscriptionStatus {
	ss := subscriptionStatus{Namespace: tp.Namespace, Name: sp.Name, Topic: tp.Name, Consumer: sp.Consumer, Paused: sp.Paused}
	if dl, ok := cur.counters[plan.DeadLetterCounter(tp.Namespace, tp.Name, sp.Name)]; ok {
		ss.DeadLetters, ss.LastDeadLetterTime = dl.Count, utcPtr(dl.Last)
	}
	info := cur.consumers[tp.Stream][sp.Consumer]
	if info == nil {
		ss.Problem = problemNoConsumer
		return ss
	}
	ss.Paused = ss.Paused || info.Paused
	if info.Delivered.Last != nil {
		ss.LastDeliveryTime = utcPtr(*info.Delivered.Last)
	}
	// A priority Subscription reads each lane with a consumer of its own
	// (plan.LaneConsumer); its figures are their sums.
	names := []string{sp.Consumer}
	if sp.Priority != nil {
		names = names[:0]
		for _, l := range plan.Lanes {
			names = append(names, plan.LaneConsumer(sp.Consumer, l))
		}
	}
	var rate float64
	rated := prev != nil
	for _, name := range names {
		c := cur.consumers[tp.Stream][name]
		if c == nil {
			rated = false
			continue
		}
		ss.Pending += c.NumPending
		ss.AckPending += c.NumAckPending
		ss.Redelivered += c.NumRedelivered
		ss.WaitingPulls += c.NumWaiting
		if c.Delivered.Last != nil && (ss.LastDeliveryTime == nil || c.Delivered.Last.After(*ss.LastDeliveryTime)) {
			ss.LastDeliveryTime = utcPtr(*c.Delivered.Last)
		}
		if !rated {
			continue
		}
		p := prev.consumers[tp.Stream][name]
		if p == nil || !p.Created.Equal(c.Created) {
			rated = false
			continue
		}
		r := perSecond(p.Delivered.Consumer, c.Delivered.Consumer, serverTime(p.TimeStamp, prev.at), serverTime(c.TimeStamp, cur.at))
		if r == nil {
			rated = false
			continue
		}
		rate += *r
	}
	if rated {
		ss.DeliveriesPerSecond = &rate
	}
	return ss
}

// perSecond is the rate at which a cumulative figure went from a at ta to
// b at tb; nil when it went down (reset) or no time passed.
func perSecond(a, b uint64, ta, tb time.Time) *float64 {
	dt := tb.Sub(ta).Seconds()
	if b < a || dt <= 0 {
		return nil
	}
	r := float64(b-a) / dt
	return &r
}

// serverTime is the time the server gathered an info (its ts field),
// local when it sent none: rates then rest on the server's clock, not on
// the round trips of the requests.
func serverTime(ts, local time.Time) time.Time {
	if ts.IsZero() {
		return local
	}
	return ts
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// writeStatusJSON writes rep as indented JSON, or on one line.
func writeStatusJSON(out io.Writer, rep *statusReport, indent bool) error {
	enc := json.NewEncoder(out)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(rep)
}

// writeStatusTable writes rep as two tables, Topics and Subscriptions;
// scope names what was asked for when there is nothing to show.
func writeStatusTable(out io.Writer, rep *statusReport, scope string, now time.Time) error {
	if len(rep.Topics) == 0 {
		_, err := fmt.Fprintf(out, "No Topics found (%s).\n", scope)
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tIN/S\tEVENTS\tSIZE\tLAST EVENT\tSUBSCRIPTIONS")
	for _, t := range rep.Topics {
		if t.Problem != "" {
			fmt.Fprintf(w, "%s/%s\t-\t<%s>\t-\t-\t%d\n", t.Namespace, t.Name, t.Problem, t.SubscriptionCount)
			continue
		}
		fmt.Fprintf(w, "%s/%s\t%s\t%d\t%s\t%s\t%d\n", t.Namespace, t.Name, formatRate(t.EventsPerSecond),
			t.Events, formatBytes(t.Bytes), formatAgo(t.LastEventTime, now), t.SubscriptionCount)
	}
	if err := w.Flush(); err != nil || len(rep.Subscriptions) == 0 {
		return err
	}
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SUBSCRIPTION\tTOPIC\tOUT/S\tLAG\tIN FLIGHT\tREDELIVERED\tDEAD LETTERS\tSTATE")
	for _, s := range rep.Subscriptions {
		state := "active"
		switch {
		case s.Problem != "":
			state = s.Problem
		case s.Paused:
			state = "paused"
		}
		if s.Problem != "" {
			fmt.Fprintf(w, "%s/%s\t%s\t-\t-\t-\t-\t%d\t%s\n", s.Namespace, s.Name, s.Topic, s.DeadLetters, state)
			continue
		}
		fmt.Fprintf(w, "%s/%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Namespace, s.Name, s.Topic, formatRate(s.DeliveriesPerSecond),
			s.Pending, s.AckPending, s.Redelivered, s.DeadLetters, state)
	}
	return w.Flush()
}

// formatRate prints a rate with one decimal, "-" when unknown.
func formatRate(r *float64) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *r)
}

// formatBytes prints n in binary units, as nats stream report does.
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// formatAgo prints how long before now t was, as kubectl prints ages.
func formatAgo(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return duration.HumanDuration(max(now.Sub(*t), 0)) + " ago"
}
