package plan

import (
	"fmt"
	"strings"
)

// Priority is the value of an event's priority extension, which picks the
// lane of its Topic's stream the event is stored on.
type Priority string

// Priorities. An event without the extension is PriorityNormal.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Lanes are the priorities in the order a dispatcher prefers them.
var Lanes = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// ParsePriority returns the priority an extension value names, ignoring
// case; an empty value is PriorityNormal. Any other value is an error.
func ParsePriority(v string) (Priority, error) {
	switch {
	case v == "" || strings.EqualFold(v, string(PriorityNormal)):
		return PriorityNormal, nil
	case strings.EqualFold(v, string(PriorityHigh)):
		return PriorityHigh, nil
	case strings.EqualFold(v, string(PriorityLow)):
		return PriorityLow, nil
	}
	return "", fmt.Errorf("%q is no priority: use high, normal or low", v)
}

// LaneSubject is the subject of a Topic's stream events of priority p are
// published to: Subject for PriorityNormal, a subject of LaneSubjects for
// the others.
func LaneSubject(namespace, topic string, p Priority) string {
	if p == PriorityNormal || p == "" {
		return Subject(namespace, topic)
	}
	return "herald.lane." + namespace + "." + topic + "." + string(p)
}

// LaneSubjects is the wildcard covering the LaneSubjects of a Topic but
// Subject, part of its stream's subjects.
func LaneSubjects(namespace, topic string) string {
	return "herald.lane." + namespace + "." + topic + ".*"
}

// EventSubjects are the subjects of a Topic's stream holding the events
// accepted by its ingress, whatever their priority (not the redelivery or
// schedule subjects).
func EventSubjects(namespace, topic string) []string {
	return []string{Subject(namespace, topic), LaneSubjects(namespace, topic)}
}

// LaneConsumer is the durable consumer reading lane p for the Subscription
// whose consumer (ConsumerName) is consumer: consumer itself for
// PriorityNormal, consumer + "__" + p for the others. Subscription names
// hold no "..", so no ConsumerName holds "__" and the names cannot clash.
func LaneConsumer(consumer string, p Priority) string {
	if p == PriorityNormal || p == "" {
		return consumer
	}
	return consumer + "__" + string(p)
}

// LaneWeights are the relative shares of a priority Subscription's free
// delivery slots that go to each lane holding events; each is at least 1.
type LaneWeights struct {
	High   int `json:"high"`
	Normal int `json:"normal"`
	Low    int `json:"low"`
}

// Weight is the weight of lane p.
func (w LaneWeights) Weight(p Priority) int {
	switch p {
	case PriorityHigh:
		return w.High
	case PriorityLow:
		return w.Low
	}
	return w.Normal
}
