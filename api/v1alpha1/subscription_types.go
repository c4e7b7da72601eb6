package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ordering says in which order a Subscription's events reach the subscriber.
// +kubebuilder:validation:Enum=unordered;ordered;perKey
type Ordering string

const (
	// OrderingUnordered delivers up to maxInFlight events in parallel, in no
	// particular order. Highest throughput.
	OrderingUnordered Ordering = "unordered"
	// OrderingOrdered delivers one event at a time in the order the Topic
	// stored them; a failing event blocks later ones until it is delivered or
	// dead-lettered.
	OrderingOrdered Ordering = "ordered"
	// OrderingPerKey delivers events with the same partitionkey extension one
	// at a time in order, and events of different keys in parallel (up to
	// maxInFlight). Events without a partitionkey share one key.
	OrderingPerKey Ordering = "perKey"
)

// SubscriptionMode says how a Subscription's events reach its consumers.
// +kubebuilder:validation:Enum=push;pull
type SubscriptionMode string

const (
	// ModePush delivers each event to the subscriber as an HTTP POST.
	ModePush SubscriptionMode = "push"
	// ModePull keeps the events until consumers fetch them over HTTP from
	// the Topic's ingress (POST .../subscriptions/<name>:pull) and
	// acknowledge them (:ack); there is no subscriber.
	ModePull SubscriptionMode = "pull"
)

// Pull shapes a pull Subscription.
type Pull struct {
	// AckDeadline is how long a consumer has to acknowledge (or nack, or
	// extend) a pulled event before it is delivered again: between 1s and
	// PT10M. Default PT10S.
	// +optional
	AckDeadline *Duration `json:"ackDeadline,omitempty"`
}

// RateLimit bounds how fast Herald delivers to a subscriber.
type RateLimit struct {
	// EventsPerSecond is the sustained delivery rate, attempts and retries together.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	EventsPerSecond int32 `json:"eventsPerSecond"`

	// Burst is how many events may go above the rate at once. Default: equal
	// to eventsPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Burst *int32 `json:"burst,omitempty"`
}

// SubscriptionSpec declares which events of a Topic go to which subscriber, and how.
// +kubebuilder:validation:XValidation:rule="!has(self.batch) || !has(self.ordering) || self.ordering == 'unordered'",message="batch needs ordering unordered: a batch is delivered and acknowledged as a whole, so its events cannot keep an order"
// +kubebuilder:validation:XValidation:rule="!has(self.batch) || !has(self.reply)",message="batch cannot be combined with reply: the response to a batch carries no reply event"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'pull') || has(self.subscriber)",message="subscriber is required unless mode is pull"
// +kubebuilder:validation:XValidation:rule="!(has(self.mode) && self.mode == 'pull') || !has(self.subscriber)",message="a pull Subscription has no subscriber: its consumers fetch events over HTTP; remove subscriber or set mode push"
// +kubebuilder:validation:XValidation:rule="!(has(self.mode) && self.mode == 'pull') || (!has(self.reply) && !has(self.batch) && !has(self.signing) && !has(self.rateLimit) && (!has(self.ordering) || self.ordering == 'unordered'))",message="reply, batch, signing, rateLimit and ordering ordered or perKey shape deliveries to a subscriber; a pull Subscription takes none of them"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'pull') || (!has(self.pull) && !has(self.consumers))",message="pull and consumers apply to mode pull only"
// +kubebuilder:validation:XValidation:rule="!has(self.priority) || !self.priority.enabled || !has(self.ordering) || self.ordering == 'unordered'",message="priority needs ordering unordered: ordered and perKey Subscriptions keep strict order and ignore the priority extension"
// +kubebuilder:validation:XValidation:rule="!has(self.priority) || !self.priority.enabled || !has(self.mode) || self.mode == 'push'",message="priority applies to mode push only: a pull Subscription's consumers fetch in stream order"
type SubscriptionSpec struct {
	// Topic is the name of a Topic in the Subscription's namespace. It cannot
	// change once the Subscription exists.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=52
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="topic cannot change once the Subscription exists; delete and recreate the Subscription to subscribe to another Topic"
	Topic string `json:"topic"`

	// Mode is push (default: Herald POSTs each event to the subscriber)
	// or pull (consumers fetch events over HTTP from the Topic's ingress,
	// at POST /<namespace>/<topic>/subscriptions/<name>:pull, and
	// acknowledge them; see the README's "Pull subscriptions").
	// +optional
	// +kubebuilder:default=push
	Mode SubscriptionMode `json:"mode,omitempty"`

	// Subscriber receives the events, as HTTP POSTs in CloudEvents binary
	// mode. Required in push mode, refused in pull mode.
	// +optional
	Subscriber Destination `json:"subscriber,omitzero"`

	// Pull shapes a pull Subscription: its ack deadline.
	// +optional
	Pull *Pull `json:"pull,omitempty"`

	// Consumers name who may pull from a pull Subscription, each entry
	// exactly one of serviceAccount (namespace defaulting to the
	// Subscription's), namespace or sub, as a Topic's publishers do;
	// consumers authenticate like producers, with a bearer token for the
	// Topic's status.address.audience. Without consumers the operator's
	// default publish policy applies (--default-publish-policy).
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(c, !has(c.filters) && !has(c.namespaceSelector))",message="consumers name identities by serviceAccount, namespace or sub; filters and namespaceSelector apply to a Topic's publishers only"
	Consumers []Publisher `json:"consumers,omitempty"`

	// Reply receives the CloudEvent a subscriber returns in a 200 response.
	// Without it, such replies are dropped.
	// +optional
	Reply *Destination `json:"reply,omitempty"`

	// Filters select the events the subscriber receives; all of them must
	// match. No filters means every event.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Filters []SubscriptionsAPIFilter `json:"filters,omitempty"`

	// Delivery overrides the Topic's default delivery field by field. Field
	// names and duration formats follow Knative's delivery spec.
	// +optional
	Delivery *DeliverySpec `json:"delivery,omitempty"`

	// Ordering is unordered (default), ordered, or perKey (FIFO per
	// partitionkey extension, parallel across keys).
	// +optional
	// +kubebuilder:default=unordered
	Ordering Ordering `json:"ordering,omitempty"`

	// MaxInFlight is how many deliveries may be under way at once for this
	// Subscription, in total across the dispatcher's replicas, which split
	// it between them. Ignored with ordering ordered, which has one.
	// Default 64.
	// +optional
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// Batch delivers several events in one request, in CloudEvents batch
	// content mode (application/cloudevents-batch+json: a JSON array of
	// events in structured form), to subscribers that take many events at a
	// time. A 2xx response acknowledges every event of the batch; any other
	// answer fails each of them, and each is then retried and dead-lettered
	// on its own, with the delivery policy. maxInFlight bounds the batches
	// under way at once. Only with ordering unordered and without reply.
	// +optional
	Batch *Batch `json:"batch,omitempty"`

	// RateLimit bounds the delivery rate, in total across the dispatcher's
	// replicas, which split it between them.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// StartPosition is where a new Subscription starts reading the Topic:
	// latest (default, only events accepted from now on), earliest (every
	// event the Topic still holds) or an RFC 3339 time such as
	// 2026-01-02T15:04:05Z. It cannot change once the Subscription exists.
	// +optional
	// +kubebuilder:default=latest
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self in ['latest', 'earliest'] || self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$')",message="startPosition is latest, earliest, or an RFC 3339 time such as 2026-01-02T15:04:05Z"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="startPosition cannot change once the Subscription exists; delete and recreate the Subscription to start from another position"
	StartPosition string `json:"startPosition,omitempty"`

	// Paused stops delivery and keeps the Subscription's position; events
	// accepted meanwhile are delivered when it is set back to false.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Signing signs every delivery to the subscriber with Standard Webhooks
	// headers (webhook-id, webhook-timestamp, webhook-signature). Replies
	// and dead-letter sinks are not signed.
	// +optional
	Signing *Signing `json:"signing,omitempty"`

	// Priority, when enabled, delivers events by their priority extension
	// (high, normal or low; none is normal): each priority is read from a
	// lane of its own, and free delivery slots go to the lanes holding
	// events in proportion to their weights, so high events overtake a
	// backlog of normal ones and low ones still progress. Only with
	// ordering unordered and mode push. Without it, events are delivered
	// in the order the Topic stored them, whatever their priority.
	// +optional
	Priority *Priority `json:"priority,omitempty"`

	// Types names the event types the subscriber consumes, for people and
	// for the contract check: when the Topic has a contract (warn or
	// enforce), a type named here or in an exact or prefix filter on type
	// that the Topic's eventTypes do not declare sets the condition
	// TypesDeclared False (reason UndeclaredType). Types filter nothing;
	// filters do.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Types []string `json:"types,omitempty"`
}

// Priority turns on priority lanes for a Subscription.
type Priority struct {
	// Enabled delivers by priority; false (or no priority) delivers in the
	// order the Topic stored the events.
	Enabled bool `json:"enabled"`

	// Weights share the delivery slots between the lanes holding events.
	// +optional
	Weights *PriorityWeights `json:"weights,omitempty"`
}

// PriorityWeights are the relative shares of the delivery slots each lane
// gets while it holds events: with high 8, normal 3 and low 1, twelve
// deliveries started while every lane has a backlog take 8 high, 3 normal
// and 1 low event. A lane without events leaves its share to the others.
type PriorityWeights struct {
	// High is the weight of events with priority high. Default 8.
	// +optional
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	High int32 `json:"high,omitempty"`

	// Normal is the weight of events with priority normal or none.
	// Default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Normal int32 `json:"normal,omitempty"`

	// Low is the weight of events with priority low. Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Low int32 `json:"low,omitempty"`
}

// Batch shapes the batches of a Subscription that takes events in batches.
type Batch struct {
	// MaxEvents is the most events one request carries. Default 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxEvents int32 `json:"maxEvents,omitempty"`

	// MaxWait is how long a batch that is not full may wait for more events
	// before it is sent, at most PT10S. Default: none, a batch carries the
	// events that are ready when a delivery can start.
	// +optional
	MaxWait *Duration `json:"maxWait,omitempty"`
}

// Signing names the Secret holding a Subscription's signing keys.
type Signing struct {
	// SecretName is a Secret in the Subscription's namespace. Its key
	// signingKey holds the Standard Webhooks secret deliveries are signed
	// with ("whsec_" followed by the base64 of 24 to 64 random bytes, or
	// the base64 alone); during a key rotation, its key previousSigningKey
	// holds the old secret and deliveries carry a signature with each.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretName must be a Secret name: lower-case letters, digits, '-' and '.'"
	SecretName string `json:"secretName"`
}

// ConsumerStatus is what JetStream last reported about a Subscription's consumer.
type ConsumerStatus struct {
	// Name of the durable JetStream consumer.
	Name string `json:"name,omitempty"`
	// Pending is the number of events not yet delivered: the Subscription's lag.
	Pending uint64 `json:"pending"`
	// AckPending is the number of deliveries under way or waiting for a retry.
	AckPending int64 `json:"ackPending"`
	// Redelivered is the number of events delivered more than once and not yet acknowledged.
	Redelivered int64 `json:"redelivered"`
}

// SubscriptionStatus is the observed state of a Subscription.
type SubscriptionStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, TopicReady, SubscriberResolved, ConsumerReady, TypesDeclared.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// SubscriberURI is the resolved address of spec.subscriber.
	// +optional
	SubscriberURI string `json:"subscriberUri,omitempty"`

	// ReplyURI is the resolved address of spec.reply.
	// +optional
	ReplyURI string `json:"replyUri,omitempty"`

	// DeadLetterSinkURI is the resolved address of the effective dead-letter sink.
	// +optional
	DeadLetterSinkURI string `json:"deadLetterSinkUri,omitempty"`

	// Consumer is what JetStream reports about the Subscription's consumer.
	// +optional
	Consumer *ConsumerStatus `json:"consumer,omitempty"`

	// DeadLetters counts the events the Subscription gave up on (sent to
	// its dead-letter sink, or dropped when it has none), across dispatcher
	// replicas and restarts.
	// +optional
	DeadLetters *DeadLetterStatus `json:"deadLetters,omitempty"`
}

// DeadLetterStatus counts a Subscription's dead letters.
type DeadLetterStatus struct {
	// Count is the number of events dead-lettered since the Subscription
	// was created.
	Count int64 `json:"count"`
	// LastTime is when the last one was dead-lettered.
	// +optional
	LastTime *metav1.Time `json:"lastTime,omitempty"`
}

// Subscription delivers the events of a Topic that match its filters to a
// subscriber, with retries, backoff, ordering and a dead-letter sink.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hsub,categories=herald
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.spec.topic`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Subscriber",type=string,JSONPath=`.status.subscriberUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Lag",type=integer,JSONPath=`.status.consumer.pending`,priority=1
// +kubebuilder:printcolumn:name="Dead Letters",type=integer,JSONPath=`.status.deadLetters.count`,priority=1
// +kubebuilder:printcolumn:name="Last Dead Letter",type=date,JSONPath=`.status.deadLetters.lastTime`,priority=1
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="Subscription names are at most 63 characters because they name a JetStream consumer"
type Subscription struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares the Subscription.
	Spec SubscriptionSpec `json:"spec"`

	// Status is the observed state.
	// +optional
	Status SubscriptionStatus `json:"status,omitempty"`
}

// SubscriptionList is a list of Subscriptions.
// +kubebuilder:object:root=true
type SubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Subscription `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Subscription{}, &SubscriptionList{})
}
