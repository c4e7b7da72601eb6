package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ContractMode says what a Topic's ingress does with an event its
// spec.eventTypes do not allow.
// +kubebuilder:validation:Enum=off;warn;enforce
type ContractMode string

const (
	// ContractOff checks nothing: spec.eventTypes only document the Topic.
	ContractOff ContractMode = "off"
	// ContractWarn accepts every event and counts those the contract does
	// not allow in herald_contract_violations_total, logging a sample.
	ContractWarn ContractMode = "warn"
	// ContractEnforce refuses an event the contract does not allow with
	// 400 naming what is wrong; nothing of it is stored.
	ContractEnforce ContractMode = "enforce"
)

// EventTypeSpec declares one event type a Topic carries.
// +kubebuilder:validation:XValidation:rule="!(has(self.schema) && has(self.schemaFrom))",message="schema and schemaFrom exclude each other: give the schema inline or name a ConfigMap key holding it"
type EventTypeSpec struct {
	// Type is the CloudEvents type attribute, matched exactly.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Type string `json:"type"`

	// Description says what the event means, for people reading the Topic.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// Schema is a JSON Schema (draft 2020-12 unless it names another in
	// $schema), in JSON or YAML, that the data of events of this type must
	// satisfy; such events must carry JSON data (datacontenttype
	// application/json, a +json type, or none). References ($ref) resolve
	// within the document only.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	Schema string `json:"schema,omitempty"`

	// SchemaFrom reads Schema from a key of a ConfigMap in the Topic's
	// namespace; the Topic follows changes of the ConfigMap.
	// +optional
	SchemaFrom *SchemaSource `json:"schemaFrom,omitempty"`

	// DataContentType, when set, is the datacontenttype events of this type
	// must carry (parameters such as charset are ignored).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	DataContentType string `json:"dataContentType,omitempty"`

	// RequiredExtensions are extension attributes events of this type must
	// carry, such as partitionkey.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]{1,20}$`
	RequiredExtensions []string `json:"requiredExtensions,omitempty"`
}

// SchemaSource names where a schema is kept.
type SchemaSource struct {
	// ConfigMapKeyRef is a key of a ConfigMap in the Topic's namespace.
	// +required
	ConfigMapKeyRef corev1.ConfigMapKeySelector `json:"configMapKeyRef"`
}

// ObservedEventType is one event type a Topic accepted, from the catalog
// its dispatchers keep.
type ObservedEventType struct {
	// Type is the CloudEvents type attribute.
	Type string `json:"type"`
	// SourcePattern generalises the sources seen: the one source when all
	// events of the type came from it, else the sources' longest common
	// prefix followed by '*'.
	// +optional
	SourcePattern string `json:"sourcePattern,omitempty"`
	// FirstSeen and LastSeen are when the first and the latest event of the
	// type were accepted.
	FirstSeen metav1.Time `json:"firstSeen"`
	LastSeen  metav1.Time `json:"lastSeen"`
	// Count is the number of events of the type accepted.
	Count int64 `json:"count"`
	// DataContentType is the datacontenttype of a sample event; empty when
	// it carried none.
	// +optional
	DataContentType string `json:"dataContentType,omitempty"`
}

// MaxObservedEventTypes bounds status.eventTypes: the types seen last are
// listed, status.eventTypeCount counts them all.
const MaxObservedEventTypes = 50
