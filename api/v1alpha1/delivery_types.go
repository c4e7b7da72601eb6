package v1alpha1

// BackoffPolicyType says how the wait between retries grows.
// +kubebuilder:validation:Enum=linear;exponential
type BackoffPolicyType string

const (
	// BackoffPolicyLinear waits backoffDelay × attempt between retries.
	BackoffPolicyLinear BackoffPolicyType = "linear"
	// BackoffPolicyExponential waits backoffDelay × 2^(attempt-1) between retries.
	BackoffPolicyExponential BackoffPolicyType = "exponential"
)

// DeliverySpec says how Herald retries a delivery and where events go when
// every attempt failed. The field names follow Knative's delivery spec. A
// Subscription's fields override the Topic's default delivery field by field.
//
// Herald retries on 404, 408, 409, 429, any 5xx, timeouts and connection
// errors; other 4xx responses send the event to the dead-letter sink at once.
type DeliverySpec struct {
	// DeadLetterSink receives an event after its last failed attempt, with the
	// extensions knativeerrordest (the failed destination), knativeerrorcode
	// (the last HTTP status), knativeerrordata (the start of the error body),
	// heraldattempts (the number of attempts), heraldsubscription and
	// heraldtopic (namespace/name of the Subscription that failed it and of its
	// Topic) and heralddeadletteredat (RFC 3339). A Topic is a valid sink: it
	// stores one dead letter per event and Subscription. Without a sink, an event whose
	// retries are exhausted is dropped and counted in the dead-lettered metric
	// with sink="none".
	// +optional
	DeadLetterSink *Destination `json:"deadLetterSink,omitempty"`

	// Retry is the number of retries after the first attempt. Default 3.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Retry *int32 `json:"retry,omitempty"`

	// BackoffPolicy is linear or exponential. Default exponential.
	// +optional
	BackoffPolicy *BackoffPolicyType `json:"backoffPolicy,omitempty"`

	// BackoffDelay is the base wait between retries. Default PT0.2S.
	// +optional
	BackoffDelay *Duration `json:"backoffDelay,omitempty"`

	// BackoffMax caps the wait between two retries. Default PT5M.
	// +optional
	BackoffMax *Duration `json:"backoffMax,omitempty"`

	// Timeout bounds one delivery attempt. Default PT30S.
	// +optional
	Timeout *Duration `json:"timeout,omitempty"`

	// RetryAfterMax caps how long Herald honours a subscriber's Retry-After
	// header on 429 and 503 responses. Unset means Retry-After is honoured up
	// to backoffMax; PT0S ignores Retry-After.
	// +optional
	RetryAfterMax *Duration `json:"retryAfterMax,omitempty"`
}
