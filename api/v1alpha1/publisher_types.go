package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Publisher admits producers to a Topic, as an entry of Knative's
// EventPolicy spec.from does: it names exactly one identity (a
// ServiceAccount, every ServiceAccount of a namespace, of the namespaces a
// label selector picks, or an OIDC token subject) and, optionally, filters
// the events that identity may publish. A producer authenticates with a
// bearer token whose audience is the Topic's status.address.audience.
// +kubebuilder:validation:XValidation:rule="[has(self.serviceAccount), has(self.__namespace__), has(self.namespaceSelector), has(self.sub)].filter(x, x).size() == 1",message="a publisher sets exactly one of serviceAccount, namespace, namespaceSelector or sub; list several publishers for several identities"
type Publisher struct {
	// ServiceAccount admits producers running as this ServiceAccount.
	// +optional
	ServiceAccount *ServiceAccountReference `json:"serviceAccount,omitempty"`

	// Namespace admits producers running as any ServiceAccount of this
	// namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="namespace must be a namespace's name: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	Namespace string `json:"namespace,omitempty"`

	// NamespaceSelector admits producers running as any ServiceAccount of
	// the namespaces whose labels it matches, as they are labelled now: a
	// namespace labelled or unlabelled later is admitted or refused within
	// seconds. It is a Kubernetes label selector; it needs matchLabels or
	// matchExpressions, as an empty selector is refused rather than read as
	// every namespace.
	// +optional
	// +kubebuilder:validation:XValidation:rule="has(self.matchLabels) || has(self.matchExpressions)",message="namespaceSelector needs matchLabels or matchExpressions; to admit every authenticated producer use sub: \"*\""
	NamespaceSelector *NamespaceSelector `json:"namespaceSelector,omitempty"`

	// Sub admits producers whose token subject (the JWT sub claim) equals
	// it or, when it ends in '*', starts with what precedes the '*'. A
	// Kubernetes ServiceAccount's subject is
	// system:serviceaccount:<namespace>:<name>; "*" alone admits every
	// authenticated producer.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^*]*[*]?$')",message="sub may hold '*' only as its last character, for a prefix match such as system:serviceaccount:shop:*"
	Sub string `json:"sub,omitempty"`

	// Filters limit the events this publisher may send: every filter must
	// match an event, or the producer gets 403. Same dialect as a
	// Subscription's filters, nesting up to three levels deep (this level
	// and two below it; use cesql for deeper logic), which keeps the
	// Topic's validation within the API server's cost budget. None admits
	// every event.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Filters []NestedFilter `json:"filters,omitempty"`
}

// NamespaceSelector is a label selector over namespaces, shaped as
// metav1.LabelSelector with bounds the API server can validate: every
// entry must hold.
type NamespaceSelector struct {
	// MatchLabels selects namespaces carrying each label with the value.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=16
	MatchLabels map[string]string `json:"matchLabels,omitempty"`

	// MatchExpressions select namespaces by label expressions.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	MatchExpressions []NamespaceSelectorRequirement `json:"matchExpressions,omitempty"`
}

// NamespaceSelectorRequirement is a label expression of a
// NamespaceSelector, as metav1.LabelSelectorRequirement.
// +kubebuilder:validation:XValidation:rule="self.operator in ['In', 'NotIn'] ? has(self.values) : !has(self.values)",message="matchExpressions: In and NotIn need values, Exists and DoesNotExist take none"
type NamespaceSelectorRequirement struct {
	// Key is the label's key.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	Key string `json:"key"`

	// Operator is In, NotIn, Exists or DoesNotExist.
	// +required
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator metav1.LabelSelectorOperator `json:"operator"`

	// Values of the label for In and NotIn.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	Values []string `json:"values,omitempty"`
}

// LabelSelector is s as a metav1.LabelSelector.
func (s *NamespaceSelector) LabelSelector() *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	out := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, e := range s.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{Key: e.Key, Operator: e.Operator, Values: e.Values})
	}
	return out
}

// ServiceAccountReference names a Kubernetes ServiceAccount.
type ServiceAccountReference struct {
	// Name of the ServiceAccount.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="serviceAccount.name must be a ServiceAccount's name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
	Name string `json:"name"`

	// Namespace of the ServiceAccount. Defaults to the Topic's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="serviceAccount.namespace must be a namespace's name: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
	Namespace string `json:"namespace,omitempty"`
}

// Publish policy sources, as status.publishPolicy.source reports them
// besides the default modes (plan.PublishMode).
const (
	// PublishSourcePublishers: the Topic's spec.publishers decide.
	PublishSourcePublishers = "publishers"
)

// PublishPolicyStatus is the publish policy a Topic's ingress enforces.
type PublishPolicyStatus struct {
	// Source is where the policy comes from: publishers (the Topic's
	// spec.publishers), or the operator's default mode when the Topic
	// declares none: allow-same-namespace, authenticated, allow-all or
	// deny-all.
	// +optional
	Source string `json:"source,omitempty"`

	// Authenticate is false only under allow-all: the ingress then accepts
	// requests without credentials.
	// +optional
	Authenticate bool `json:"authenticate,omitempty"`

	// Rules is the number of rules admitting producers: one per publisher,
	// one for allow-same-namespace and authenticated, none for allow-all
	// and deny-all.
	// +optional
	Rules int32 `json:"rules,omitempty"`

	// Namespaces lists, for each publisher with a namespaceSelector, the
	// namespaces it matched when the policy was last compiled, as
	// "publishers[<i>]: <namespace>,...".
	// +optional
	// +kubebuilder:validation:MaxItems=32
	Namespaces []string `json:"namespaces,omitempty"`
}
