package plan

import (
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Delivery history. A Topic with spec.history enabled has a stream of its
// own, HistoryStream, holding one HistoryRecord per delivery attempt and per
// outcome without an attempt (filtered, replayed, redriven), on the subject
// HistorySubject names: the event's id, the Subscription and the outcome
// are subject tokens, so the history of one event, or the dead letters of
// one Subscription, is read with a subject filter.
//
// Records are published without waiting for JetStream's acknowledgement; a
// Topic without history has no stream to store them.

// History outcomes: the last token of a HistorySubject and
// HistoryRecord.Outcome.
const (
	// HistoryRetried: the attempt failed and another follows.
	HistoryRetried = "retried"
	// HistoryDelivered: the attempt succeeded.
	HistoryDelivered = "delivered"
	// HistoryDeadLettered: the attempt failed for good; the event went to
	// the dead-letter sink (or was dropped without one).
	HistoryDeadLettered = "dead_lettered"
	// HistoryFiltered: the Subscription's filters do not select the event.
	HistoryFiltered = "filtered"
	// HistoryReplayed: a Replay copied the event to the Subscription again.
	HistoryReplayed = "replayed"
	// HistoryRedriven: the event's dead letter was redriven to the
	// Subscription.
	HistoryRedriven = "redriven"
)

// HistoryOutcomes lists every history outcome.
var HistoryOutcomes = []string{HistoryRetried, HistoryDelivered, HistoryDeadLettered, HistoryFiltered, HistoryReplayed, HistoryRedriven}

// HistoryStream is the stream of a Topic's delivery history.
func HistoryStream(namespace, topic string) string {
	return "herald_history_" + namespace + "_" + topic
}

// HistorySubjects covers every HistorySubject of a Topic.
func HistorySubjects(namespace, topic string) string {
	return "herald.history." + namespace + "." + topic + ".>"
}

// HistorySubject is the subject of a history record of the event with id
// eventID for subscription with outcome. Either of eventID's token and
// subscription may be "*" for a filter.
func HistorySubject(namespace, topic, eventID, subscription, outcome string) string {
	sub := subscription
	if sub != "*" {
		sub = ConsumerName(subscription)
	}
	id := eventID
	if id != "*" {
		id = Token(eventID)
	}
	return "herald.history." + namespace + "." + topic + "." + id + "." + sub + "." + outcome
}

// Token is a digest of s made of characters that subject tokens and
// key-value keys allow, standing for s where s may hold any character (an
// event id, an event type). Different strings may, very rarely, share one:
// what is stored under it carries s itself.
func Token(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// HistoryRecord is one entry of an event's delivery history.
type HistoryRecord struct {
	// Time the attempt ended or the outcome happened.
	Time time.Time `json:"time"`
	// Subscription is the name of the Subscription, in the Topic's namespace.
	Subscription string `json:"subscription"`
	// ID, Source and Type are the event's CloudEvents attributes.
	ID     string `json:"id"`
	Source string `json:"source"`
	Type   string `json:"type,omitempty"`
	// Sequence is the stream sequence of the stored message delivered: the
	// event, or its copy for a replay or redrive.
	Sequence uint64 `json:"sequence"`
	// Attempt is the number of the delivery attempt; 0 for outcomes
	// without one.
	Attempt int `json:"attempt,omitempty"`
	// Outcome is one of HistoryOutcomes.
	Outcome string `json:"outcome"`
	// Status is the HTTP status the destination answered; 0 when there was
	// no answer.
	Status int `json:"status,omitempty"`
	// Error says why an attempt failed when the status does not.
	Error string `json:"error,omitempty"`
	// LatencyMillis is how long the attempt's request took.
	LatencyMillis float64 `json:"latencyMs,omitempty"`
	// Destination is where the attempt was sent: the subscriber, or the
	// reply or dead-letter destination when that failed.
	Destination string `json:"destination,omitempty"`
	// From is the stream sequence of the event a replayed or redriven copy
	// was made from (for a redrive: of the dead letter in its Topic).
	From uint64 `json:"from,omitempty"`
}
