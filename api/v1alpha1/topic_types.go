package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// StorageType is where JetStream keeps a Topic's events.
// +kubebuilder:validation:Enum=file;memory
type StorageType string

const (
	// StorageFile keeps events on disk; they survive a NATS restart.
	StorageFile StorageType = "file"
	// StorageMemory keeps events in memory; a NATS restart loses them.
	StorageMemory StorageType = "memory"
)

// TopicRetention bounds how much a Topic keeps. The oldest events are removed
// first when a limit is reached; events not yet delivered count as well, so a
// subscriber that falls behind past a limit misses the removed events.
// Unset fields mean no limit.
type TopicRetention struct {
	// MaxAge removes events older than this, for example P7D.
	// +optional
	MaxAge *Duration `json:"maxAge,omitempty"`

	// MaxBytes bounds the stream's size in bytes.
	// +optional
	// +kubebuilder:validation:Minimum=1024
	MaxBytes *int64 `json:"maxBytes,omitempty"`

	// MaxMessages bounds the number of events kept.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxMessages *int64 `json:"maxMessages,omitempty"`

	// Discard says what happens when maxBytes or maxMessages is reached: old
	// (default) removes the oldest events, delivered or not; new refuses new
	// events with 429 and Retry-After until space frees up, so producers see
	// backpressure instead of older events disappearing.
	// +optional
	// +kubebuilder:default=old
	Discard DiscardPolicy `json:"discard,omitempty"`
}

// DiscardPolicy says which events make room when a Topic is full.
// +kubebuilder:validation:Enum=old;new
type DiscardPolicy string

const (
	// DiscardOld removes the oldest events to make room.
	DiscardOld DiscardPolicy = "old"
	// DiscardNew refuses new events while the Topic is full.
	DiscardNew DiscardPolicy = "new"
)

// DispatcherMode says which dispatcher serves a Topic's ingress and
// delivers its events.
// +kubebuilder:validation:Enum=dedicated;shared
type DispatcherMode string

const (
	// DispatcherDedicated runs a dispatcher Deployment of the Topic's own,
	// sized by spec.dispatcher: for busy Topics, or Topics needing their
	// own ingress certificate.
	DispatcherDedicated DispatcherMode = "dedicated"
	// DispatcherShared serves the Topic from the shared dispatcher of its
	// namespace, one Deployment for all the namespace's shared Topics,
	// sized by the operator's settings: adding or removing a Topic changes
	// no Pod.
	DispatcherShared DispatcherMode = "shared"
)

// DispatcherSpec chooses and sizes the dispatcher that serves a Topic's
// ingress and delivers its events.
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'shared' || (!has(self.replicas) && !has(self.resources) && !has(self.tls) && !has(self.autoscaling))",message="replicas, resources, tls and autoscaling size a dedicated dispatcher: set mode: dedicated, or remove them (the operator's settings size the shared dispatcher)"
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || !has(self.autoscaling)",message="replicas and autoscaling exclude each other: with autoscaling the scaler sets the replicas"
type DispatcherSpec struct {
	// Mode is dedicated (a dispatcher Deployment of the Topic's own) or
	// shared (the dispatcher all shared Topics of the namespace have in
	// common). Without it, a Topic that sets replicas, resources, tls or
	// autoscaling is dedicated, any other the operator's default
	// (--default-dispatcher-mode, shared unless configured otherwise).
	// Changing it moves the Topic without losing events; its
	// status.address.url changes once the new dispatcher is available.
	// +optional
	Mode DispatcherMode `json:"mode,omitempty"`

	// Replicas of the dedicated dispatcher Deployment. Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=50
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the dedicated dispatcher container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Autoscaling scales the dedicated dispatcher between minReplicas and
	// maxReplicas on its Subscriptions' lag, through a KEDA ScaledObject
	// the operator creates when KEDA is installed; the operator then leaves
	// the Deployment's replicas to the scaler. Without KEDA, point a
	// HorizontalPodAutoscaler at the Deployment (see the README).
	// +optional
	Autoscaling *DispatcherAutoscaling `json:"autoscaling,omitempty"`

	// TLS serves the Topic's ingress over HTTPS on port 443 of its Service;
	// status.address.url then starts with https. Without it the ingress is
	// plain HTTP on port 80.
	// +optional
	TLS *DispatcherTLS `json:"tls,omitempty"`
}

// DispatcherAutoscaling scales a dedicated dispatcher on the lag of the
// Topic's Subscriptions: the events stored and not yet delivered.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
type DispatcherAutoscaling struct {
	// MinReplicas is the fewest replicas. Default 1. A dedicated dispatcher
	// does not scale to zero: its Service is the Topic's ingress. (A shared
	// Topic costs no Pod of its own.)
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	MinReplicas *int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most replicas.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=50
	MaxReplicas int32 `json:"maxReplicas"`

	// TargetLag is the lag, in events, each replica is meant to carry for
	// each Subscription: the scaler adds replicas while a Subscription's
	// lag exceeds TargetLag times the replicas. Default 100.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	TargetLag *int64 `json:"targetLag,omitempty"`
}

// DispatcherTLS is the certificate of a Topic's ingress.
type DispatcherTLS struct {
	// SecretName is a kubernetes.io/tls Secret in the Topic's namespace whose
	// keys tls.crt (the certificate chain, leaf first) and tls.key (its
	// private key) the dispatcher serves, as a cert-manager Certificate
	// writes them. The certificate should name
	// <topic>-dispatcher.<namespace>.svc.<cluster domain>. The dispatcher
	// picks up a renewed certificate within seconds, without a restart; a
	// missing Secret keeps its Pods from starting, which DispatcherAvailable
	// reports.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="secretName must be a Secret's name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	SecretName string `json:"secretName"`
}

// TopicSpec declares a durable event stream.
// +kubebuilder:validation:XValidation:rule="!has(self.contract) || self.contract == 'off' || (has(self.eventTypes) && size(self.eventTypes) > 0)",message="contract warn or enforce needs eventTypes: declare the event types the Topic carries"
// +kubebuilder:validation:XValidation:rule="!has(self.scheduling) || !has(self.retention) || !has(self.retention.discard) || self.retention.discard != 'new'",message="scheduling needs retention.discard old: JetStream cannot schedule messages in a stream that refuses new ones when full"
type TopicSpec struct {
	// Storage is file (default, survives restarts) or memory. It cannot change
	// once the Topic exists.
	// +optional
	// +kubebuilder:default=file
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage cannot change once the Topic exists; delete and recreate the Topic to change it"
	Storage StorageType `json:"storage,omitempty"`

	// Replicas is the number of NATS servers holding a copy of each event: 1,
	// 3 or 5 (JetStream R1/R3/R5). Default 1. Producers get their 2xx only
	// after this many servers stored the event.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Enum=1;3;5
	Replicas int32 `json:"replicas,omitempty"`

	// Retention bounds the stream by age, size and count.
	// +optional
	Retention *TopicRetention `json:"retention,omitempty"`

	// DuplicateWindow is how long Herald remembers the source and id of
	// accepted events; an event with the same source and id inside the window
	// is acknowledged but stored once. Default PT2M.
	// +optional
	DuplicateWindow *Duration `json:"duplicateWindow,omitempty"`

	// MaxEventSize is the largest event Herald accepts, in bytes, attributes
	// and data together. Larger events get 413. Default 1048576 (1 MiB).
	// +optional
	// +kubebuilder:default=1048576
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=8388608
	MaxEventSize int32 `json:"maxEventSize,omitempty"`

	// Dispatcher chooses the Topic's dispatcher (dedicated or shared) and
	// sizes a dedicated one.
	// +optional
	Dispatcher *DispatcherSpec `json:"dispatcher,omitempty"`

	// Delivery is the default delivery of the Topic's Subscriptions; a
	// Subscription's own delivery fields override it field by field.
	// +optional
	Delivery *DeliverySpec `json:"delivery,omitempty"`

	// Publishers admit producers: a request must carry a bearer token whose
	// audience is status.address.audience and whose identity one publisher
	// names, with an event that publisher's filters match; others get 401
	// (no valid token) or 403 (no publisher admits it). Without publishers the operator's default mode applies
	// (--default-publish-policy: allow-same-namespace unless configured
	// otherwise); status.publishPolicy shows which.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Publishers []Publisher `json:"publishers,omitempty"`

	// History keeps, per event and Subscription, a record of every delivery
	// attempt and its outcome, for `herald history`. Off unless enabled.
	// +optional
	History *TopicHistory `json:"history,omitempty"`

	// Scheduling bounds delayed delivery: events carrying the deliverat or
	// deliverafter extension are stored at once and delivered to the
	// Subscriptions at that time. Without it, events may ask for up to P7D.
	// +optional
	Scheduling *TopicScheduling `json:"scheduling,omitempty"`

	// EventTypes declares the event types the Topic carries: with contract
	// warn or enforce, an event of another type, or one whose data, content
	// type or extensions its declaration does not allow, violates the
	// contract. A schema that does not compile stalls the Topic.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=128
	EventTypes []EventTypeSpec `json:"eventTypes,omitempty"`

	// Contract is what the ingress does with an event eventTypes do not
	// allow: off (default: nothing), warn (accept it, count it in
	// herald_contract_violations_total and log a sample) or enforce
	// (refuse it with 400 naming the failing rule).
	// +optional
	// +kubebuilder:default=off
	Contract ContractMode `json:"contract,omitempty"`
}

// TopicScheduling bounds the delayed delivery of a Topic's events. A
// delayed event waits in the Topic's stream as a JetStream message
// schedule, so it counts against retention like any event, and is
// delivered at most retention.maxAge ahead.
type TopicScheduling struct {
	// MaxDelay is the furthest ahead an event may ask to be delivered;
	// events asking for more are refused with 400 naming the attribute.
	// PT0S refuses every delayed event. Default P7D.
	// +optional
	MaxDelay *Duration `json:"maxDelay,omitempty"`
}

// TopicHistory is the delivery history of a Topic's events: for each event
// and Subscription, every attempt (time, status code or error, latency) and
// the outcome (delivered, filtered, dead_lettered, replayed, redriven). It
// lives in a JetStream stream of its own, herald_history_<namespace>_<topic>,
// written without the delivery waiting for it: a record lost while NATS is
// unreachable does not hold up or fail a delivery.
type TopicHistory struct {
	// Enabled records the history. Turning it off deletes what was recorded.
	// +required
	Enabled bool `json:"enabled"`

	// MaxAge removes records older than this. Default P1D.
	// +optional
	MaxAge *Duration `json:"maxAge,omitempty"`

	// MaxBytes bounds the history stream's size; the oldest records go
	// first. Default: no bound other than maxAge.
	// +optional
	// +kubebuilder:validation:Minimum=1024
	MaxBytes *int64 `json:"maxBytes,omitempty"`
}

// StreamStatus is what JetStream last reported about a Topic's stream.
type StreamStatus struct {
	// Name of the JetStream stream.
	Name string `json:"name,omitempty"`
	// Messages currently stored.
	Messages uint64 `json:"messages,omitempty"`
	// Bytes currently stored.
	Bytes uint64 `json:"bytes,omitempty"`
	// LastSequence is the sequence number of the newest event.
	LastSequence uint64 `json:"lastSequence,omitempty"`
}

// TopicStatus is the observed state of a Topic.
type TopicStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, StreamReady, DispatcherAvailable, PlanPublished, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Address is where producers POST CloudEvents.
	// +optional
	Address *Addressable `json:"address,omitempty"`

	// Stream is what JetStream reports about the Topic's stream.
	// +optional
	Stream *StreamStatus `json:"stream,omitempty"`

	// Subscriptions is the number of Subscriptions in the Topic's plan.
	// +optional
	Subscriptions int32 `json:"subscriptions,omitempty"`

	// PublishPolicy is the publish policy the Topic's ingress enforces, from
	// spec.publishers or the operator's default mode.
	// +optional
	PublishPolicy *PublishPolicyStatus `json:"publishPolicy,omitempty"`

	// Dispatcher is the dispatcher serving the Topic at status.address.
	// +optional
	Dispatcher *DispatcherStatus `json:"dispatcher,omitempty"`

	// EventTypes is the catalog of the event types the Topic accepted, the
	// latest seen first, at most MaxObservedEventTypes (50) of them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	EventTypes []ObservedEventType `json:"eventTypes,omitempty"`

	// EventTypeCount is how many distinct event types the Topic accepted,
	// including those status.eventTypes leaves out.
	// +optional
	EventTypeCount int32 `json:"eventTypeCount,omitempty"`
}

// DispatcherStatus names the dispatcher serving a Topic.
type DispatcherStatus struct {
	// Mode is dedicated or shared.
	Mode DispatcherMode `json:"mode"`
	// Name of the dispatcher's Deployment and Service, in the Topic's namespace.
	Name string `json:"name"`
}

// EffectiveDispatcherMode is the mode of t's dispatcher: spec.dispatcher.mode;
// without it dedicated when spec.dispatcher sets replicas, resources, tls or
// autoscaling,
// which only a dedicated dispatcher honours, else def.
func (t *Topic) EffectiveDispatcherMode(def DispatcherMode) DispatcherMode {
	d := t.Spec.Dispatcher
	switch {
	case d != nil && d.Mode != "":
		return d.Mode
	case d != nil && (d.Replicas != nil || d.Resources != nil || d.TLS != nil || d.Autoscaling != nil):
		return DispatcherDedicated
	case def == "":
		return DispatcherShared
	}
	return def
}

// Topic is a durable stream of CloudEvents. Producers POST events to
// status.address.url; Herald stores each event in NATS JetStream before it
// answers and delivers it to every matching Subscription.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=htopic,categories=herald
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.address.url`
// +kubebuilder:printcolumn:name="Messages",type=integer,JSONPath=`.status.stream.messages`,priority=1
// +kubebuilder:printcolumn:name="Publishers",type=string,JSONPath=`.status.publishPolicy.source`,priority=1
// +kubebuilder:printcolumn:name="Dispatcher",type=string,JSONPath=`.status.dispatcher.mode`,priority=1
// +kubebuilder:printcolumn:name="History",type=boolean,JSONPath=`.spec.history.enabled`,priority=1
// +kubebuilder:printcolumn:name="Contract",type=string,JSONPath=`.spec.contract`,priority=1
// +kubebuilder:printcolumn:name="Types",type=integer,JSONPath=`.status.eventTypeCount`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="Topic names are at most 52 characters so that the dispatcher's Service name (<name>-dispatcher) fits 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="Topic names start with a letter and hold only lower-case letters, digits and '-', because they name a Service"
type Topic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares the stream and its dispatcher.
	// +optional
	// +kubebuilder:default={}
	Spec TopicSpec `json:"spec,omitempty"`

	// Status is the observed state.
	// +optional
	Status TopicStatus `json:"status,omitempty"`
}

// TopicList is a list of Topics.
// +kubebuilder:object:root=true
type TopicList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Topic `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Topic{}, &TopicList{})
}
