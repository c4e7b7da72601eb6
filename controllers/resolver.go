package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/dispatcher/plan"
)

// ResolveError says why a Destination has no URI yet. Reason is a condition
// reason (NotFound, NotReady, NotAddressable, Forbidden); Message says what
// is missing, for example "Service shop/inventory not found". The
// reconcilers watch Services and Topics and retry other kinds periodically,
// so the Destination resolves once the cause goes away.
type ResolveError struct {
	Reason  string
	Message string
}

func (e *ResolveError) Error() string { return e.Message }

// Resolver turns Destinations into URIs.
//
// A ref to a Service (apiVersion v1) resolves to
// http://<name>.<namespace>.svc.<ClusterDomain>, with the port of the
// Service's first port unless it is 80. A ref to a Topic resolves to its
// status.address.url. A ref to any other kind resolves to the referent's
// status.address.url, read with an uncached unstructured Get; the manager's
// ClusterRole covers Services and Topics only, so other kinds need a
// ClusterRole granting get on them bound to the manager's ServiceAccount (a
// Forbidden reason says so). With both ref and uri, the uri is resolved
// against the referent's URI as a relative reference (Knative's rule): /orders
// replaces the path. A uri alone is used as is.
type Resolver struct {
	// Reader reads Services and Topics (usually the manager's cached client)
	// and other kinds live.
	Reader client.Reader
	// ClusterDomain is the cluster's DNS domain, usually cluster.local.
	ClusterDomain string
}

// Resolve returns the URI of d, a Destination of an object in namespace. A
// *ResolveError means the referent is missing or not ready; other errors
// are failures to read it.
func (r *Resolver) Resolve(ctx context.Context, namespace string, d *v1alpha1.Destination) (string, error) {
	if d == nil {
		return "", nil
	}
	if d.Ref == nil {
		if d.URI == nil || *d.URI == "" {
			return "", &ResolveError{Reason: v1alpha1.ReasonNotAddressable, Message: "destination has neither ref nor uri"}
		}
		return *d.URI, nil
	}
	ref := *d.Ref
	if ref.Namespace == "" {
		ref.Namespace = namespace
	}
	base, err := r.resolveRef(ctx, ref)
	if err != nil {
		return "", err
	}
	if d.URI == nil || *d.URI == "" {
		return base, nil
	}
	return joinURI(base, *d.URI)
}

func (r *Resolver) resolveRef(ctx context.Context, ref v1alpha1.KReference) (string, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", &ResolveError{Reason: v1alpha1.ReasonNotFound, Message: fmt.Sprintf("invalid apiVersion %q: %v", ref.APIVersion, err)}
	}
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	name := ref.Kind + " " + ref.Namespace + "/" + ref.Name
	switch {
	case gv.Group == "" && ref.Kind == "Service":
		var svc corev1.Service
		if err := r.Reader.Get(ctx, key, &svc); err != nil {
			return "", getError(name, err)
		}
		return ServiceURL(&svc, r.ClusterDomain), nil
	case gv.Group == v1alpha1.GroupVersion.Group && ref.Kind == "Topic":
		var t v1alpha1.Topic
		if err := r.Reader.Get(ctx, key, &t); err != nil {
			return "", getError(name, err)
		}
		if t.Status.Address == nil || t.Status.Address.URL == "" {
			return "", &ResolveError{Reason: v1alpha1.ReasonNotReady, Message: name + " has no address yet"}
		}
		return t.Status.Address.URL, nil
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gv.WithKind(ref.Kind))
	if err := r.Reader.Get(ctx, key, u); err != nil {
		return "", getError(name, err)
	}
	addr, found, err := unstructured.NestedString(u.Object, "status", "address", "url")
	if err != nil || !found || addr == "" {
		return "", &ResolveError{Reason: v1alpha1.ReasonNotAddressable, Message: name + " has no status.address.url"}
	}
	return addr, nil
}

func getError(name string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return &ResolveError{Reason: v1alpha1.ReasonNotFound, Message: name + " not found"}
	case meta.IsNoMatchError(err):
		return &ResolveError{Reason: v1alpha1.ReasonNotFound, Message: fmt.Sprintf("%s: the API server does not serve this kind", name)}
	case apierrors.IsForbidden(err):
		return &ResolveError{Reason: v1alpha1.ReasonForbidden, Message: fmt.Sprintf(
			"%s: the herald-manager ServiceAccount may not get this kind; bind it a ClusterRole granting get on it", name)}
	}
	return fmt.Errorf("get %s: %w", name, err)
}

// ServiceURL is the in-cluster URL of a Service.
func ServiceURL(svc *corev1.Service, clusterDomain string) string {
	host := svc.Name + "." + svc.Namespace + ".svc." + clusterDomain
	if len(svc.Spec.Ports) > 0 && svc.Spec.Ports[0].Port != 80 {
		host += ":" + strconv.Itoa(int(svc.Spec.Ports[0].Port))
	}
	return "http://" + host
}

// joinURI resolves ref (a path, or a query starting with ?) against base.
func joinURI(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", &ResolveError{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf("invalid address %q: %v", base, err)}
	}
	r, err := url.Parse(ref)
	if err != nil {
		return "", &ResolveError{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf("invalid uri %q: %v", ref, err)}
	}
	return b.ResolveReference(r).String(), nil
}

// ResolveSubscription resolves a Subscription's subscriber, reply and
// effective dead-letter sink (its own, else its Topic's; topic may be nil).
// It resolves what it can; the error is about the first Destination that
// did not resolve, its message prefixed with the field.
func (r *Resolver) ResolveSubscription(ctx context.Context, topic *v1alpha1.Topic, s *v1alpha1.Subscription) (plan.ResolvedSubscription, error) {
	rs := plan.ResolvedSubscription{Subscription: s}
	var errs []error
	add := func(field string, err error) {
		var re *ResolveError
		if errors.As(err, &re) {
			errs = append(errs, &ResolveError{Reason: re.Reason, Message: field + ": " + re.Message})
			return
		}
		errs = append(errs, fmt.Errorf("%s: %w", field, err))
	}
	var err error
	if rs.SubscriberURI, err = r.Resolve(ctx, s.Namespace, &s.Spec.Subscriber); err != nil {
		add("subscriber", err)
	}
	if s.Spec.Reply != nil {
		if rs.ReplyURI, err = r.Resolve(ctx, s.Namespace, s.Spec.Reply); err != nil {
			add("reply", err)
		}
	}
	field, dls := "delivery.deadLetterSink", (*v1alpha1.Destination)(nil)
	if s.Spec.Delivery != nil && s.Spec.Delivery.DeadLetterSink != nil {
		dls = s.Spec.Delivery.DeadLetterSink
	} else if topic != nil && topic.Spec.Delivery != nil && topic.Spec.Delivery.DeadLetterSink != nil {
		field, dls = "Topic delivery.deadLetterSink", topic.Spec.Delivery.DeadLetterSink
	}
	if dls != nil {
		// A Subscription and its Topic share a namespace.
		if rs.DeadLetterURI, err = r.Resolve(ctx, s.Namespace, dls); err != nil {
			add(field, err)
		}
	}
	if len(errs) == 0 {
		return rs, nil
	}
	return rs, errs[0]
}
