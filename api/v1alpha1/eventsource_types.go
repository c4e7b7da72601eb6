package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CloudEventOverrides changes every event a source sends.
type CloudEventOverrides struct {
	// Extensions are set as CloudEvent extension attributes on every event,
	// replacing any the source set. Names are lower-case letters and digits.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z0-9]{1,20}$'))",message="extension names are 1 to 20 lower-case letters or digits (CloudEvents 1.0 attribute naming)"
	Extensions map[string]string `json:"extensions,omitempty"`
}

// PingSource sends an event on a cron schedule.
// +kubebuilder:validation:XValidation:rule="!(has(self.data) && has(self.dataBase64))",message="set data or dataBase64, not both"
type PingSource struct {
	// Schedule in cron format with five fields (minute hour day-of-month month
	// day-of-week), or a descriptor such as @hourly or @every 10s.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Schedule string `json:"schedule"`

	// Timezone of the schedule, an IANA name such as Europe/Berlin. Default UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Timezone string `json:"timezone,omitempty"`

	// ContentType of the event data. Default application/json when data or
	// dataBase64 is set.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ContentType string `json:"contentType,omitempty"`

	// Data is the event data as text.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Data string `json:"data,omitempty"`

	// DataBase64 is the event data as base64, for binary data.
	// +optional
	// +kubebuilder:validation:MaxLength=87384
	DataBase64 string `json:"dataBase64,omitempty"`
}

// APIServerMode says what an apiServer source puts in an event's data.
// +kubebuilder:validation:Enum=Reference;Resource
type APIServerMode string

const (
	// APIServerModeReference sends an object reference (apiVersion, kind,
	// namespace, name, uid, resourceVersion).
	APIServerModeReference APIServerMode = "Reference"
	// APIServerModeResource sends the whole object.
	APIServerModeResource APIServerMode = "Resource"
)

// APIServerResource names a kind of Kubernetes object to watch.
type APIServerResource struct {
	// APIVersion of the objects, for example v1 or apps/v1.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	APIVersion string `json:"apiVersion"`

	// Kind of the objects, for example ConfigMap or Deployment.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`

	// Selector limits the objects to those whose labels match.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// APIServerSource sends an event for each add, update and delete of the
// watched Kubernetes objects.
type APIServerSource struct {
	// Resources are the kinds of objects to watch.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Resources []APIServerResource `json:"resources"`

	// Namespaces to watch. Default: the EventSource's own namespace. Watching
	// other namespaces needs a ServiceAccount bound to a Role there.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Namespaces []string `json:"namespaces,omitempty"`

	// Mode is Reference (default: an object reference) or Resource (the whole object).
	// +optional
	// +kubebuilder:default=Reference
	Mode APIServerMode `json:"mode,omitempty"`

	// ServiceAccountName is the ServiceAccount the adapter runs as; it must be
	// allowed to get, list and watch the resources. Default: default.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// SignatureType selects how a webhook request's signature is checked.
// +kubebuilder:validation:Enum=github;hmac
type SignatureType string

const (
	// SignatureGitHub checks GitHub's X-Hub-Signature-256 header (sha256=<hex HMAC-SHA256 of the body>).
	SignatureGitHub SignatureType = "github"
	// SignatureHMAC checks an HMAC of the body in the named header, with the
	// given algorithm, encoding and optional prefix.
	SignatureHMAC SignatureType = "hmac"
)

// WebhookSignature makes a webhook refuse requests without a valid HMAC signature.
// +kubebuilder:validation:XValidation:rule="self.type != 'hmac' || has(self.header)",message="a signature of type hmac needs header, the name of the HTTP header carrying the signature"
type WebhookSignature struct {
	// Type is github or hmac.
	Type SignatureType `json:"type"`

	// SecretKeyRef names the key of a Secret in the EventSource's namespace
	// holding the shared HMAC key.
	SecretKeyRef corev1.SecretKeySelector `json:"secretKeyRef"`

	// Header carrying the signature, for type hmac (for example X-Signature).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Header string `json:"header,omitempty"`

	// Algorithm of the HMAC for type hmac: sha1, sha256 (default) or sha512.
	// +optional
	// +kubebuilder:validation:Enum=sha1;sha256;sha512
	Algorithm string `json:"algorithm,omitempty"`

	// Encoding of the signature for type hmac: hex (default) or base64.
	// +optional
	// +kubebuilder:validation:Enum=hex;base64
	Encoding string `json:"encoding,omitempty"`

	// Prefix before the encoded signature for type hmac, for example sha256=.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Prefix string `json:"prefix,omitempty"`
}

// WebhookSource turns HTTP POSTs into CloudEvents. A request that already is
// a CloudEvent passes through unchanged.
type WebhookSource struct {
	// EventType is the type of the events. Default: the Ce-Type or
	// X-Event-Type header of the request, else dev.herald.webhook.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	EventType string `json:"eventType,omitempty"`

	// EventSource is the source attribute of the events. Default: the
	// EventSource's path, /apis/eventing.herald.dev/v1alpha1/namespaces/<ns>/eventsources/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	EventSource string `json:"eventSource,omitempty"`

	// Signature makes the webhook refuse requests without a valid signature (401).
	// +optional
	Signature *WebhookSignature `json:"signature,omitempty"`
}

// ContainerSource runs a user's pod template as a Deployment with K_SINK (the
// resolved sink URL) and K_CE_OVERRIDES (JSON of ceOverrides) in the
// environment of every container, like Knative's SinkBinding.
type ContainerSource struct {
	// Template of the pods, a Kubernetes PodTemplateSpec. The API server keeps
	// it as given (as Knative's ContainerSource does, which keeps the CRD small
	// enough for client-side kubectl apply); Herald reports a template the
	// Deployment refuses in the DeploymentAvailable condition.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	Template corev1.PodTemplateSpec `json:"template"`
}

// EventSourceSpec declares where events come from and where they go.
// +kubebuilder:validation:XValidation:rule="[has(self.ping), has(self.apiServer), has(self.webhook), has(self.container)].filter(x, x).size() == 1",message="an EventSource sets exactly one of ping, apiServer, webhook or container"
// +kubebuilder:validation:XValidation:rule="!has(self.sink.caCerts)",message="sink.caCerts is not supported for EventSources yet; the adapters trust the system roots"
type EventSourceSpec struct {
	// Sink receives the events, usually a Topic. Its caCerts is not
	// supported yet.
	Sink Destination `json:"sink"`

	// CEOverrides changes every event the source sends.
	// +optional
	CEOverrides *CloudEventOverrides `json:"ceOverrides,omitempty"`

	// Ping sends an event on a cron schedule.
	// +optional
	Ping *PingSource `json:"ping,omitempty"`

	// APIServer sends events for changes to Kubernetes objects.
	// +optional
	APIServer *APIServerSource `json:"apiServer,omitempty"`

	// Webhook turns HTTP requests into events.
	// +optional
	Webhook *WebhookSource `json:"webhook,omitempty"`

	// Container runs your own source with K_SINK set.
	// +optional
	Container *ContainerSource `json:"container,omitempty"`
}

// EventSourceType names the kind of an EventSource in its status.
type EventSourceType string

// EventSource kinds.
const (
	EventSourceTypePing      EventSourceType = "ping"
	EventSourceTypeAPIServer EventSourceType = "apiServer"
	EventSourceTypeWebhook   EventSourceType = "webhook"
	EventSourceTypeContainer EventSourceType = "container"
)

// Type returns which source the spec sets.
func (s *EventSourceSpec) Type() EventSourceType {
	switch {
	case s.Ping != nil:
		return EventSourceTypePing
	case s.APIServer != nil:
		return EventSourceTypeAPIServer
	case s.Webhook != nil:
		return EventSourceTypeWebhook
	case s.Container != nil:
		return EventSourceTypeContainer
	}
	return ""
}

// EventSourceStatus is the observed state of an EventSource.
type EventSourceStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, SinkResolved, SourceConfigured, DeploymentAvailable.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Type is the kind of source: ping, apiServer, webhook or container.
	// +optional
	Type EventSourceType `json:"type,omitempty"`

	// SinkURI is the resolved address of spec.sink.
	// +optional
	SinkURI string `json:"sinkUri,omitempty"`

	// SinkAudience is the audience of the token the source presents to
	// its sink (the resolved spec.sink's audience); empty when it presents
	// none. Knative sources publish the same field.
	// +optional
	SinkAudience string `json:"sinkAudience,omitempty"`

	// Address is where a webhook source receives requests.
	// +optional
	Address *Addressable `json:"address,omitempty"`
}

// EventSource turns the outside world into CloudEvents sent to a sink: a cron
// schedule (ping), Kubernetes API changes (apiServer), HTTP requests
// (webhook), or your own container.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hsrc,categories=herald
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Sink",type=string,JSONPath=`.status.sinkUri`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 56",message="EventSource names are at most 56 characters so that the adapter's Deployment and Service name (<name>-source) fits 63"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="EventSource names start with a letter and hold only lower-case letters, digits and '-', because they name a Service"
type EventSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec declares the source and its sink.
	Spec EventSourceSpec `json:"spec"`

	// Status is the observed state.
	// +optional
	Status EventSourceStatus `json:"status,omitempty"`
}

// EventSourceList is a list of EventSources.
// +kubebuilder:object:root=true
type EventSourceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventSource `json:"items"`
}

func init() {
	SchemeBuilder.Register(&EventSource{}, &EventSourceList{})
}
