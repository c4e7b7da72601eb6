package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReplayFrom says which events a Replay delivers again: exactly one of
// time, sequence or deadLetters.
// +kubebuilder:validation:XValidation:rule="[has(self.time), has(self.sequence), has(self.deadLetters)].filter(x, x).size() == 1",message="from needs exactly one of time, sequence or deadLetters"
type ReplayFrom struct {
	// Time replays the Topic's events stored at or after this time.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// Sequence replays the Topic's events from this stream sequence on.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Sequence *int64 `json:"sequence,omitempty"`

	// DeadLetters redrives the Subscription's dead letters from its
	// dead-letter Topic (its delivery.deadLetterSink, or its Topic's, must be
	// a ref to a Topic), without the dead-letter extensions. Dead letters
	// redriven before, by a Replay or herald deadletters redrive, are skipped
	// unless again is set.
	// +optional
	DeadLetters *DeadLetterSelector `json:"deadLetters,omitempty"`
}

// DeadLetterSelector picks dead letters; empty takes all.
// +kubebuilder:validation:XValidation:rule="!has(self.since) || !has(self.until) || timestamp(self.until) >= timestamp(self.since)",message="deadLetters.until must not be before deadLetters.since"
type DeadLetterSelector struct {
	// IDs takes only the dead letters with these CloudEvent ids.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	IDs []string `json:"ids,omitempty"`

	// Since takes only dead letters dead-lettered at or after this time.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`

	// Until takes only dead letters dead-lettered at or before this time.
	// +optional
	Until *metav1.Time `json:"until,omitempty"`

	// Filter is a CESQL expression a dead letter, its dead-letter extensions
	// included, must satisfy, e.g. "knativeerrorcode = '503'".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`

	// Again also takes dead letters that were redriven before.
	// +optional
	Again bool `json:"again,omitempty"`
}

// ReplayUntil ends a Replay of time or sequence: exactly one of time or
// sequence. Without it, a Replay ends with the last event the Topic held
// when it started.
// +kubebuilder:validation:XValidation:rule="has(self.time) != has(self.sequence)",message="until needs exactly one of time or sequence"
type ReplayUntil struct {
	// Time ends the Replay with the last event stored at or before it.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// Sequence ends the Replay with the event at this stream sequence.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Sequence *int64 `json:"sequence,omitempty"`
}

// ReplayRateLimit bounds how fast a Replay hands events to the Subscription.
type ReplayRateLimit struct {
	// EventsPerSecond is the most events handed over per second.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	EventsPerSecond int32 `json:"eventsPerSecond"`
}

// ReplaySpec says which events to deliver once more, and to which
// Subscription. A Replay runs once; its spec cannot change.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a Replay runs once and its spec cannot change; create another Replay"
// +kubebuilder:validation:XValidation:rule="!has(self.until) || !has(self.from.deadLetters)",message="until applies to a Replay from time or sequence; bound dead letters with deadLetters.since and deadLetters.until"
// +kubebuilder:validation:XValidation:rule="!has(self.until) || !has(self.until.time) || !has(self.from.time) || timestamp(self.until.time) > timestamp(self.from.time)",message="until.time must be after from.time"
// +kubebuilder:validation:XValidation:rule="!has(self.until) || !has(self.until.sequence) || !has(self.from.sequence) || self.until.sequence >= self.from.sequence",message="until.sequence must not be before from.sequence"
type ReplaySpec struct {
	// Subscription is the name of a Subscription in the Replay's namespace;
	// only it receives the events, with its own filters, ordering and
	// delivery policy (retries, backoff, dead-letter sink).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Subscription string `json:"subscription"`

	// From selects the first event (time, sequence) or the dead letters.
	From ReplayFrom `json:"from"`

	// Until ends a Replay from time or sequence.
	// +optional
	Until *ReplayUntil `json:"until,omitempty"`

	// RateLimit bounds the pace; without it events are handed over as fast
	// as JetStream stores them (the Subscription's own rateLimit still
	// bounds delivery).
	// +optional
	RateLimit *ReplayRateLimit `json:"rateLimit,omitempty"`
}

// ReplayStatus reports a Replay's progress.
type ReplayStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (True once Complete), Complete, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Topic is the Subscription's Topic.
	// +optional
	Topic string `json:"topic,omitempty"`

	// FromSequence and UntilSequence are the stream sequences the Replay
	// covers: of the Topic's stream, or of the dead-letter Topic's stream
	// for deadLetters. Set when it starts.
	// +optional
	FromSequence int64 `json:"fromSequence,omitempty"`
	// +optional
	UntilSequence int64 `json:"untilSequence,omitempty"`

	// Position is the last sequence handled; the Replay resumes after it.
	// +optional
	Position int64 `json:"position,omitempty"`

	// Replayed counts the events handed to the Subscription.
	// +optional
	Replayed int64 `json:"replayed"`

	// StartTime and CompletionTime bound the run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// Replay delivers stored events once more to one Subscription, without
// recreating it and without reaching its Topic's other Subscriptions: the
// Topic's events from a time or sequence (optionally until another), or
// the Subscription's dead letters. It runs once; deleting a running Replay
// stops it.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hreplay,categories=herald
// +kubebuilder:printcolumn:name="Subscription",type=string,JSONPath=`.spec.subscription`
// +kubebuilder:printcolumn:name="Replayed",type=integer,JSONPath=`.status.replayed`
// +kubebuilder:printcolumn:name="Complete",type=string,JSONPath=`.status.conditions[?(@.type=="Complete")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Replay struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ReplaySpec   `json:"spec,omitempty"`
	Status ReplayStatus `json:"status,omitempty"`
}

// ReplayList is a list of Replays.
// +kubebuilder:object:root=true
type ReplayList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Replay `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Replay{}, &ReplayList{})
}
