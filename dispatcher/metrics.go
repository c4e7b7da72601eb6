package dispatcher

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the outcome label of herald_deliveries_total.
const (
	outcomeDelivered    = "delivered"
	outcomeRetried      = "retried"
	outcomeDeadLettered = "dead_lettered"
	outcomeFiltered     = "filtered"
)

// Values of the reason label of herald_events_rejected_total.
const (
	reasonInvalid       = "invalid"
	reasonTooLarge      = "too_large"
	reasonUnsupported   = "unsupported_format"
	reasonUnknownTopic  = "unknown_topic"
	reasonMethod        = "method"
	reasonBackpressure  = "backpressure"
	reasonUnavailable   = "unavailable"
	reasonPublishFailed = "publish_failed"
	// reasonUnauthenticated: no valid bearer token (401).
	reasonUnauthenticated = "unauthenticated"
	// reasonForbidden: the publish policy admits not the producer or not
	// this event (403).
	reasonForbidden = "forbidden"
	// reasonContract: the event breaks the Topic's enforced contract (400).
	reasonContract = "contract"
)

// Values of the outcome label of herald_replies_total.
const (
	replyForwarded     = "forwarded"
	replyNoDestination = "dropped_no_destination"
	replyHopLimit      = "dropped_hop_limit"
	replyInvalid       = "dropped_invalid"
	replyFailed        = "failed"
)

// metrics are the dispatcher's Prometheus collectors.
type metrics struct {
	received        *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	ingressDuration *prometheus.HistogramVec
	deliveries      *prometheus.CounterVec
	deadLetters     *prometheus.CounterVec
	replies         *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	batchEvents     *prometheus.HistogramVec
	pending         *prometheus.GaugeVec
	ackPending      *prometheus.GaugeVec
	share           *prometheus.GaugeVec
	history         *prometheus.CounterVec
	paused          *prometheus.GaugeVec
	scheduled       *prometheus.GaugeVec
	lanes           *prometheus.GaugeVec
	violations      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	topic := []string{"namespace", "topic"}
	sub := []string{"namespace", "topic", "subscription"}
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_received_total",
			Help: "Events accepted at the ingress (answered 2xx after JetStream stored them), duplicates included.",
		}, topic),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_duplicate_total",
			Help: "Accepted events JetStream recognised as duplicates of source and id inside the duplicate window.",
		}, topic),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_rejected_total",
			Help: "Ingress requests refused, by reason. Unknown topics are counted with empty namespace and topic.",
		}, append(topic, "reason")),
		ingressDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_ingress_duration_seconds",
			Help:    "Time from request to answer for accepted ingress requests, JetStream acknowledgement included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, topic),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Delivery outcomes per Subscription: delivered, retried, dead_lettered or filtered; code_class is 2xx..5xx, timeout, error or none.",
		}, append(sub, "outcome", "code_class")),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dead_letters_total",
			Help: "Events given up on per Subscription; sink is none when the event was dropped for lack of a dead-letter sink, failed when the sink refused it (it is retried), sink otherwise.",
		}, append(sub, "sink")),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_replies_total",
			Help: "CloudEvents returned by subscribers in 200 responses, by outcome.",
		}, append(sub, "outcome")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_duration_seconds",
			Help:    "Duration of one delivery attempt to a subscriber.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, sub),
		batchEvents: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_batch_events",
			Help:    "Events per request of Subscriptions delivered in batches.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, sub),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_consumer_pending",
			Help: "Events not yet delivered to the Subscription (its lag), as JetStream last reported.",
		}, sub),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_consumer_ack_pending",
			Help: "Deliveries under way or waiting for a retry, as JetStream last reported.",
		}, sub),
		share: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_delivery_share",
			Help: "The share of a Subscription's limits this replica holds: limit in_flight is deliveries at once (of maxInFlight), rate is events per second (of rateLimit); the replicas' shares add up to at most the limits.",
		}, append(sub, "limit")),
		paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_subscription_paused",
			Help: "1 while the Subscription is paused (spec.paused), its lag growing on purpose; 0 otherwise, as JetStream last reported.",
		}, sub),
		history: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_history_records_total",
			Help: "Delivery-history records of Topics with spec.history, by result: written (handed to NATS) or failed (the connection refused it; the record is lost, the delivery is not affected).",
		}, append(topic, "result")),
		scheduled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_scheduled_events_pending",
			Help: "Delayed events stored and waiting for their delivery time (deliverat, deliverafter), as JetStream last reported.",
		}, topic),
		lanes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_lane_pending",
			Help: "Events of one priority lane (high, normal, low) not yet delivered to a Subscription delivering by priority, as JetStream last reported; herald_consumer_pending is their sum.",
		}, append(sub, "lane")),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_contract_violations_total",
			Help: "Events breaking their Topic's contract, accepted (contract warn) or refused (enforce), by type (" + undeclaredTypeLabel + " for a type the contract does not declare) and rule: a JSON Schema keyword, undeclared_type, missing_extension, datacontenttype or invalid_json.",
		}, append(topic, "type", "rule")),
	}
	for _, c := range []prometheus.Collector{m.received, m.duplicates, m.rejected, m.ingressDuration,
		m.deliveries, m.deadLetters, m.replies, m.duration, m.batchEvents, m.pending, m.ackPending, m.share, m.history, m.paused, m.scheduled, m.lanes, m.violations} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("register metrics: %w (use one registry per dispatcher)", err)
			}
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// forgetSubscription removes the series of a Subscription no longer served.
func (m *metrics) forgetSubscription(ns, topic, sub string) {
	l := prometheus.Labels{"namespace": ns, "topic": topic, "subscription": sub}
	m.deliveries.DeletePartialMatch(l)
	m.deadLetters.DeletePartialMatch(l)
	m.replies.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.batchEvents.DeletePartialMatch(l)
	m.pending.DeletePartialMatch(l)
	m.ackPending.DeletePartialMatch(l)
	m.share.DeletePartialMatch(l)
	m.paused.DeletePartialMatch(l)
	m.lanes.DeletePartialMatch(l)
}

// topicMetrics are the ingress series of one Topic, bound once.
type topicMetrics struct {
	received, duplicates prometheus.Counter
	duration             prometheus.Observer
	rejected             *prometheus.CounterVec
	violations           *prometheus.CounterVec
	ns, topic            string
}

func (m *metrics) forTopic(ns, topic string) *topicMetrics {
	return &topicMetrics{
		received:   m.received.WithLabelValues(ns, topic),
		duplicates: m.duplicates.WithLabelValues(ns, topic),
		duration:   m.ingressDuration.WithLabelValues(ns, topic),
		rejected:   m.rejected,
		violations: m.violations,
		ns:         ns, topic: topic,
	}
}

func (t *topicMetrics) reject(reason string) {
	t.rejected.WithLabelValues(t.ns, t.topic, reason).Inc()
}

// undeclaredTypeLabel is the type label of violations by events of a type
// the contract does not declare, which keeps the label's values bounded by
// the declared types.
const undeclaredTypeLabel = "(undeclared)"

// violation counts an event breaking the Topic's contract.
func (t *topicMetrics) violation(typ string, declared bool, rule string) {
	if !declared {
		typ = undeclaredTypeLabel
	}
	t.violations.WithLabelValues(t.ns, t.topic, typ, rule).Inc()
}

// subMetrics are the delivery series of one Subscription.
type subMetrics struct {
	m             *metrics
	ns, topic, sb string
	duration      prometheus.Observer
	delivered2xx  prometheus.Counter
	filtered      prometheus.Counter
}

func (m *metrics) forSubscription(ns, topic, sub string) *subMetrics {
	// Dead-letter series exist from the start, so that increase() sees
	// the first dead letter.
	for _, sink := range []string{"sink", "none", "failed"} {
		m.deadLetters.WithLabelValues(ns, topic, sub, sink)
	}
	return &subMetrics{
		m: m, ns: ns, topic: topic, sb: sub,
		duration:     m.duration.WithLabelValues(ns, topic, sub),
		delivered2xx: m.deliveries.WithLabelValues(ns, topic, sub, outcomeDelivered, "2xx"),
		filtered:     m.deliveries.WithLabelValues(ns, topic, sub, outcomeFiltered, "none"),
	}
}

func (s *subMetrics) outcome(outcome, codeClass string) {
	if outcome == outcomeDelivered && codeClass == "2xx" {
		s.delivered2xx.Inc()
		return
	}
	s.m.deliveries.WithLabelValues(s.ns, s.topic, s.sb, outcome, codeClass).Inc()
}

// outcomes counts n deliveries with the same outcome (a batch's).
func (s *subMetrics) outcomes(outcome, codeClass string, n int) {
	if outcome == outcomeDelivered && codeClass == "2xx" {
		s.delivered2xx.Add(float64(n))
		return
	}
	s.m.deliveries.WithLabelValues(s.ns, s.topic, s.sb, outcome, codeClass).Add(float64(n))
}

func (s *subMetrics) batch(events int) {
	s.m.batchEvents.WithLabelValues(s.ns, s.topic, s.sb).Observe(float64(events))
}

func (s *subMetrics) deadLetter(sink string) {
	s.m.deadLetters.WithLabelValues(s.ns, s.topic, s.sb, sink).Inc()
}

func (s *subMetrics) reply(outcome string) {
	s.m.replies.WithLabelValues(s.ns, s.topic, s.sb, outcome).Inc()
}

func (s *subMetrics) observe(d time.Duration) { s.duration.Observe(d.Seconds()) }

func (s *subMetrics) lag(pending uint64, ackPending int, paused bool) {
	s.m.pending.WithLabelValues(s.ns, s.topic, s.sb).Set(float64(pending))
	s.m.ackPending.WithLabelValues(s.ns, s.topic, s.sb).Set(float64(ackPending))
	p := 0.0
	if paused {
		p = 1
	}
	s.m.paused.WithLabelValues(s.ns, s.topic, s.sb).Set(p)
}

// lanePending records the lag of one priority lane.
func (s *subMetrics) lanePending(lane string, pending uint64) {
	s.m.lanes.WithLabelValues(s.ns, s.topic, s.sb, lane).Set(float64(pending))
}

// Values of the limit label of herald_delivery_share.
const (
	limitInFlight = "in_flight"
	limitRate     = "rate"
)

// share records the share of the limits this replica holds; without
// hasRate the Subscription has no rate limit and the rate series goes.
func (s *subMetrics) share(inFlight int, perSecond float64, hasRate bool) {
	s.m.share.WithLabelValues(s.ns, s.topic, s.sb, limitInFlight).Set(float64(inFlight))
	if hasRate {
		s.m.share.WithLabelValues(s.ns, s.topic, s.sb, limitRate).Set(perSecond)
	} else {
		s.m.share.DeleteLabelValues(s.ns, s.topic, s.sb, limitRate)
	}
}

// codeClass is the code_class label of an attempt's result.
func codeClass(status int, timedOut bool) string {
	switch {
	case timedOut:
		return "timeout"
	case status == 0:
		return "error"
	case status < 200 || status >= 600:
		return "other"
	}
	return [...]string{"2xx", "3xx", "4xx", "5xx"}[status/100-2]
}
