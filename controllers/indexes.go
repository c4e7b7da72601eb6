package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// Field indexes of the manager's cache.
const (
	// indexSubscriptionTopic indexes Subscriptions by spec.topic.
	indexSubscriptionTopic = "spec.topic"
	// indexDestinations indexes Subscriptions, EventSources and Topics by the
	// Services and Topics their Destinations refer to, as refKey values.
	indexDestinations = ".destinations"
	// indexServiceAccount indexes apiServer EventSources by the name of the
	// ServiceAccount they run as (in their own namespace).
	indexServiceAccount = ".spec.apiServer.serviceAccountName"
)

// refKey is the index value of a reference to a Service or a Topic.
func refKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// watchedRefKey returns the refKey of a Destination referring to a kind the
// reconcilers watch (Service, Topic), or "" for other kinds and plain URIs.
func watchedRefKey(namespace string, d *v1alpha1.Destination) string {
	if d == nil || d.Ref == nil {
		return ""
	}
	gv, err := schema.ParseGroupVersion(d.Ref.APIVersion)
	if err != nil {
		return ""
	}
	ns := d.Ref.Namespace
	if ns == "" {
		ns = namespace
	}
	switch {
	case gv.Group == "" && d.Ref.Kind == "Service",
		gv.Group == v1alpha1.GroupVersion.Group && d.Ref.Kind == "Topic":
		return refKey(d.Ref.Kind, ns, d.Ref.Name)
	}
	return ""
}

func refKeys(namespace string, ds ...*v1alpha1.Destination) []string {
	var out []string
	for _, d := range ds {
		if k := watchedRefKey(namespace, d); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func deadLetterSink(d *v1alpha1.DeliverySpec) *v1alpha1.Destination {
	if d == nil {
		return nil
	}
	return d.DeadLetterSink
}

// setupIndexes registers the field indexes the reconcilers query.
func setupIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.Subscription{}, indexSubscriptionTopic, func(o client.Object) []string {
		return []string{o.(*v1alpha1.Subscription).Spec.Topic}
	}); err != nil {
		return fmt.Errorf("index subscriptions by topic: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.Subscription{}, indexDestinations, func(o client.Object) []string {
		s := o.(*v1alpha1.Subscription)
		return refKeys(s.Namespace, &s.Spec.Subscriber, s.Spec.Reply, deadLetterSink(s.Spec.Delivery))
	}); err != nil {
		return fmt.Errorf("index subscriptions by destination: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.Topic{}, indexDestinations, func(o client.Object) []string {
		t := o.(*v1alpha1.Topic)
		return refKeys(t.Namespace, deadLetterSink(t.Spec.Delivery))
	}); err != nil {
		return fmt.Errorf("index topics by destination: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.Topic{}, indexNamespaceSelector, func(o client.Object) []string {
		if hasNamespaceSelector(o.(*v1alpha1.Topic)) {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index topics by namespace selector: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.EventSource{}, indexDestinations, func(o client.Object) []string {
		s := o.(*v1alpha1.EventSource)
		return refKeys(s.Namespace, &s.Spec.Sink)
	}); err != nil {
		return fmt.Errorf("index eventsources by destination: %w", err)
	}
	if err := idx.IndexField(ctx, &v1alpha1.EventSource{}, indexServiceAccount, func(o client.Object) []string {
		if a := o.(*v1alpha1.EventSource).Spec.APIServer; a != nil {
			return []string{resources.APIServerServiceAccount(a)}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("index eventsources by service account: %w", err)
	}
	return nil
}

// subscriptionsOfTopic lists the requests of a Topic's Subscriptions.
func subscriptionsOfTopic(ctx context.Context, c client.Reader, namespace, topic string) ([]reconcile.Request, error) {
	var list v1alpha1.SubscriptionList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{indexSubscriptionTopic: topic}); err != nil {
		return nil, err
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	return out, nil
}
