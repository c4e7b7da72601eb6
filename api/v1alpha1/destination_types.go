package v1alpha1

// KReference points at another Kubernetes object by apiVersion, kind and name.
type KReference struct {
	// APIVersion of the referent, for example v1 for a Service or
	// eventing.herald.dev/v1alpha1 for a Topic.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	APIVersion string `json:"apiVersion"`

	// Kind of the referent: Service, Topic, or any kind whose status carries an
	// address.url (Addressable, as in Knative).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`

	// Name of the referent.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace of the referent. Defaults to the namespace of the object that
	// holds the reference.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// Destination says where Herald sends events: a reference to an object, a
// URI, or both. With both, the URI is a path and/or a query appended to the
// referent's address (for example ref Service shop/inventory and uri /orders
// deliver to http://inventory.shop.svc.cluster.local/orders, and ref Topic
// shop/orders and uri /audit to the Topic's address followed by /audit);
// package resolve implements the rule.
// +kubebuilder:validation:XValidation:rule="has(self.ref) || has(self.uri)",message="a destination needs a ref, a uri, or both"
// +kubebuilder:validation:XValidation:rule="has(self.ref) || !has(self.uri) || self.uri.matches('^https?://[^/?#]+')",message="uri must be an absolute http:// or https:// URL (for example http://inventory.shop.svc:8080/orders) when no ref is given"
// +kubebuilder:validation:XValidation:rule="!has(self.ref) || !has(self.uri) || self.uri.startsWith('/') || self.uri.startsWith('?')",message="with a ref, uri must be a path such as /orders that is appended to the referent's address"
type Destination struct {
	// Ref points at a Service, a Topic, or any Addressable object.
	// +optional
	Ref *KReference `json:"ref,omitempty"`

	// URI is an absolute http(s) URL when no ref is given, or a path relative
	// to the referent's address when ref is given.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URI *string `json:"uri,omitempty"`

	// CACerts are the PEM-encoded certificates of the certificate
	// authorities an https destination's certificate must chain to: one or
	// more CERTIFICATE blocks, separated by nothing but whitespace. When set,
	// they are the only roots trusted for this destination (the system roots
	// are not added); when unset, the system roots are. Knative's
	// Destination has the same field, named CACerts.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	// +kubebuilder:validation:XValidation:rule="self.matches(r'^\\s*(-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE-----\\s*)+$')",message="caCerts must be one or more PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----) with nothing but whitespace between them"
	CACerts *string `json:"caCerts,omitempty"`

	// Audience is the audience of the bearer token Herald presents to this
	// destination: an OIDC token of the sending component's ServiceAccount
	// in the Authorization header, which the destination may verify. For a
	// ref to a Topic it defaults to that Topic's status.address.audience,
	// for a ref to another Addressable to the referent's
	// status.address.audience; a ref to a Service or a bare uri without an
	// audience gets no token. Knative's Destination has the same field.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Audience *string `json:"audience,omitempty"`
}

// Addressable is the address where producers send events, Knative's duck type.
type Addressable struct {
	// URL producers POST CloudEvents to.
	// +optional
	URL string `json:"url,omitempty"`

	// Audience is the audience of the bearer token a sender presents to
	// URL, as in Knative's Addressable; empty when URL does not
	// authenticate senders.
	// +optional
	Audience string `json:"audience,omitempty"`
}
