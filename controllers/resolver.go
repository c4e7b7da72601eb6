package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/resolve"
)

// Resolver is the operator's resolve.Lookup: it finds the addresses of
// Destinations' referents through the API server.
//
// A ref to a Service (apiVersion v1) resolves to
// http(s)://<name>.<namespace>.svc.<ClusterDomain>[:port], as
// resolve.ServiceURL says. A ref to a Topic resolves to its
// status.address.url. A ref to any other kind resolves to the referent's
// status.address.url and status.address.audience, read with an uncached
// unstructured Get; the manager's
// ClusterRole covers Services and Topics only, so other kinds need a
// ClusterRole granting get on them bound to the manager's ServiceAccount (a
// Forbidden reason says so). The reconcilers watch Services and Topics and
// retry other kinds periodically, so a Destination resolves once the cause
// goes away.
type Resolver struct {
	// Reader reads Services and Topics (usually the manager's cached client)
	// and other kinds live.
	Reader client.Reader
	// ClusterDomain is the cluster's DNS domain, usually cluster.local.
	ClusterDomain string
}

// Address implements resolve.Lookup.
func (r *Resolver) Address(ctx context.Context, ref v1alpha1.KReference) (resolve.Address, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: fmt.Sprintf("invalid apiVersion %q: %v", ref.APIVersion, err)}
	}
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	name := ref.Kind + " " + ref.Namespace + "/" + ref.Name
	switch {
	case gv.Group == "" && ref.Kind == "Service":
		var svc corev1.Service
		if err := r.Reader.Get(ctx, key, &svc); err != nil {
			return resolve.Address{}, getError(name, err)
		}
		return resolve.Address{URL: resolve.ServiceURL(&svc, r.ClusterDomain)}, nil
	case gv.Group == v1alpha1.GroupVersion.Group && ref.Kind == "Topic":
		var t v1alpha1.Topic
		if err := r.Reader.Get(ctx, key, &t); err != nil {
			return resolve.Address{}, getError(name, err)
		}
		if t.Status.Address == nil || t.Status.Address.URL == "" {
			return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotReady, Message: name + " has no address yet"}
		}
		// resolve gives a Topic its audience.
		return resolve.Address{URL: t.Status.Address.URL}, nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gv.WithKind(ref.Kind))
	if err := r.Reader.Get(ctx, key, u); err != nil {
		return resolve.Address{}, getError(name, err)
	}
	addr, found, err := unstructured.NestedString(u.Object, "status", "address", "url")
	if err != nil || !found || addr == "" {
		return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotAddressable, Message: name + " has no status.address.url"}
	}
	aud, _, _ := unstructured.NestedString(u.Object, "status", "address", "audience")
	return resolve.Address{URL: addr, Audience: aud}, nil
}

func getError(name string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: name + " not found"}
	case meta.IsNoMatchError(err):
		return &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: fmt.Sprintf("%s: the API server does not serve this kind", name)}
	case apierrors.IsForbidden(err):
		return &resolve.Error{Reason: v1alpha1.ReasonForbidden, Message: fmt.Sprintf(
			"%s: the herald-manager ServiceAccount may not get this kind; bind it a ClusterRole granting get on it", name)}
	}
	return fmt.Errorf("get %s: %w", name, err)
}
