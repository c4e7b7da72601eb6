package v1alpha1

// FilterAttributes are the attribute dialects of the CloudEvents Subscriptions
// API. Each map goes from a context attribute name (type, source, subject, an
// extension, ...) to a value; every entry must hold for the filter to match.
type FilterAttributes struct {
	// Exact matches when each named attribute equals the value.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=16
	Exact map[string]string `json:"exact,omitempty"`

	// Prefix matches when each named attribute starts with the value.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=16
	Prefix map[string]string `json:"prefix,omitempty"`

	// Suffix matches when each named attribute ends with the value.
	// +optional
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=16
	Suffix map[string]string `json:"suffix,omitempty"`

	// CESQL matches when the CloudEvents SQL expression is true, for example
	// "type LIKE 'com.shop.%' AND subject IS NOT NULL".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	CESQL string `json:"cesql,omitempty"`
}

// SubscriptionsAPIFilter is one filter expression of the CloudEvents
// Subscriptions API dialect. Each filter sets exactly one of exact, prefix,
// suffix, cesql, all, any and not. Filters nest up to four levels deep
// (this level and three below it); use cesql for deeper logic.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.suffix), has(self.cesql), has(self.all), has(self.any), has(self.not)].filter(x, x).size() == 1",message="a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not; combine several with all or any"
type SubscriptionsAPIFilter struct {
	FilterAttributes `json:",inline"`

	// All matches when every nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	All []NestedFilter `json:"all,omitempty"`

	// Any matches when at least one nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Any []NestedFilter `json:"any,omitempty"`

	// Not matches when the nested filter does not match.
	// +optional
	Not *NestedFilter `json:"not,omitempty"`
}

// NestedFilter is a filter at the second level of nesting.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.suffix), has(self.cesql), has(self.all), has(self.any), has(self.not)].filter(x, x).size() == 1",message="a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not; combine several with all or any"
type NestedFilter struct {
	FilterAttributes `json:",inline"`

	// All matches when every nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	All []InnerFilter `json:"all,omitempty"`

	// Any matches when at least one nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Any []InnerFilter `json:"any,omitempty"`

	// Not matches when the nested filter does not match.
	// +optional
	Not *InnerFilter `json:"not,omitempty"`
}

// InnerFilter is a filter at the third level of nesting.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.suffix), has(self.cesql), has(self.all), has(self.any), has(self.not)].filter(x, x).size() == 1",message="a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not; combine several with all or any"
type InnerFilter struct {
	FilterAttributes `json:",inline"`

	// All matches when every nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	All []LeafFilter `json:"all,omitempty"`

	// Any matches when at least one nested filter matches.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Any []LeafFilter `json:"any,omitempty"`

	// Not matches when the nested filter does not match.
	// +optional
	Not *LeafFilter `json:"not,omitempty"`
}

// LeafFilter is a filter at the fourth and deepest level: attribute dialects
// and cesql only.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.suffix), has(self.cesql)].filter(x, x).size() == 1",message="a filter at the fourth level sets exactly one of exact, prefix, suffix or cesql; use cesql for deeper logic"
type LeafFilter struct {
	FilterAttributes `json:",inline"`
}
