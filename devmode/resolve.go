package devmode

import (
	"fmt"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Resolver turns Destinations into URIs the way herald dev can without a
// cluster: a uri is used as it is, a ref to a Topic becomes that Topic's
// ingress URL on the local listener, and any other ref is an error that says
// to use a uri instead.
type Resolver struct {
	// IngressURL is the base URL of the local ingress, without a trailing
	// slash, for example http://127.0.0.1:8080.
	IngressURL string
	// Topics holds the declared Topics as "namespace/name". A ref to a Topic
	// not in it is an error. Nil accepts every Topic.
	Topics map[string]bool
}

// TopicURL is where producers POST events of a Topic.
func (r *Resolver) TopicURL(namespace, name string) string {
	return r.IngressURL + "/" + namespace + "/" + name
}

// Resolve returns the URI of d, held by an object in namespace.
func (r *Resolver) Resolve(d *v1alpha1.Destination, namespace string) (string, error) {
	if d == nil {
		return "", nil
	}
	uri := ""
	if d.URI != nil {
		uri = *d.URI
	}
	if d.Ref == nil {
		if uri == "" {
			return "", fmt.Errorf("a destination needs a ref, a uri, or both")
		}
		return uri, nil
	}
	ref := d.Ref
	ns := ref.Namespace
	if ns == "" {
		ns = namespace
	}
	if ref.Kind != KindTopic || ref.APIVersion != v1alpha1.GroupVersion.String() {
		return "", fmt.Errorf("ref to %s %s/%s cannot be resolved in dev mode; use uri: http://... (herald dev resolves only refs to Topics, kind Topic, apiVersion %s)",
			ref.Kind, ns, ref.Name, v1alpha1.GroupVersion)
	}
	if r.Topics != nil && !r.Topics[ns+"/"+ref.Name] {
		return "", fmt.Errorf("ref to Topic %s/%s: no such Topic in the manifests", ns, ref.Name)
	}
	base := r.TopicURL(ns, ref.Name)
	if uri == "" {
		return base, nil
	}
	// The uri is a path (or query) appended to the Topic's address.
	if strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "?") {
		return base + uri, nil
	}
	return "", fmt.Errorf("with a ref, uri must be a path such as /orders that is appended to the referent's address")
}
