package devmode

import (
	"context"
	"fmt"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/resolve"
)

// Resolver is herald dev's resolve.Lookup: without a cluster, only a ref to
// a Topic of the manifests has an address (its ingress URL on the local
// listener); a ref to any other kind is an error that says to use a uri
// instead. Destinations are joined with their uri as the operator does.
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

// Address implements resolve.Lookup.
func (r *Resolver) Address(_ context.Context, ref v1alpha1.KReference) (resolve.Address, error) {
	if ref.Kind != KindTopic || ref.APIVersion != v1alpha1.GroupVersion.String() {
		return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf(
			"ref to %s %s/%s cannot be resolved in dev mode; use uri: http://... (herald dev resolves only refs to Topics, kind Topic, apiVersion %s)",
			ref.Kind, ref.Namespace, ref.Name, v1alpha1.GroupVersion)}
	}
	if r.Topics != nil && !r.Topics[ref.Namespace+"/"+ref.Name] {
		return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: fmt.Sprintf(
			"ref to Topic %s/%s: no such Topic in the manifests", ref.Namespace, ref.Name)}
	}
	return resolve.Address{URL: r.TopicURL(ref.Namespace, ref.Name)}, nil
}

// Resolve resolves d, held by an object in namespace.
func (r *Resolver) Resolve(d *v1alpha1.Destination, namespace string) (resolve.Target, error) {
	return resolve.Destination(context.Background(), r, namespace, d)
}

// resolveSubscription resolves a Subscription's subscriber, reply and
// effective dead-letter sink (see resolve.Subscription).
func resolveSubscription(r *Resolver, t *v1alpha1.Topic, s *v1alpha1.Subscription) (compiler.ResolvedSubscription, error) {
	return resolve.Subscription(context.Background(), r, t, s)
}
