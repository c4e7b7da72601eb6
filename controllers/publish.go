package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// indexNamespaceSelector indexes Topics with a publisher's
// namespaceSelector under "true", so a Namespace change finds the Topics
// whose policy it may change.
const indexNamespaceSelector = ".spec.publishers.namespaceSelector"

func hasNamespaceSelector(t *v1alpha1.Topic) bool {
	return slices.ContainsFunc(t.Spec.Publishers, func(p v1alpha1.Publisher) bool { return p.NamespaceSelector != nil })
}

// publishPolicy compiles t's publish policy with the reconciler's default
// mode, resolving namespaceSelectors against the cached Namespaces. The
// error is a *Stalling when the spec cannot be compiled.
func (r *TopicReconciler) publishPolicy(ctx context.Context, t *v1alpha1.Topic) (plan.PublishPolicy, map[int][]string, error) {
	var selected map[int][]string
	if hasNamespaceSelector(t) {
		var list corev1.NamespaceList
		if err := r.Client.List(ctx, &list); err != nil {
			return plan.PublishPolicy{}, nil, fmt.Errorf("list namespaces: %w", err)
		}
		nsLabels := make(map[string]map[string]string, len(list.Items))
		for _, ns := range list.Items {
			nsLabels[ns.Name] = ns.Labels
		}
		var err error
		if selected, err = compiler.SelectedNamespaces(t, nsLabels); err != nil {
			return plan.PublishPolicy{}, nil, &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
		}
	}
	pol, err := compiler.PublishPolicy(t, r.Config.DefaultPublishMode, selected)
	if err != nil {
		return plan.PublishPolicy{}, nil, &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
	}
	return pol, selected, nil
}

// publishPolicyStatus is status.publishPolicy of a Topic whose ingress
// enforces pol, with selected the namespaces its selectors matched.
func publishPolicyStatus(pol plan.PublishPolicy, selected map[int][]string) *v1alpha1.PublishPolicyStatus {
	st := &v1alpha1.PublishPolicyStatus{Source: pol.Source, Authenticate: pol.Authenticate, Rules: int32(len(pol.Rules))}
	for _, i := range slices.Sorted(maps.Keys(selected)) {
		names := strings.Join(selected[i], ",")
		if names == "" {
			names = "(none)"
		}
		st.Namespaces = append(st.Namespaces, compiler.PublisherRuleName(i)+": "+names)
	}
	return st
}

// topicsSelectingNamespace maps a Namespace to the Topics with a
// namespaceSelector matching its labels. The handler calls it with both
// the old and the new Namespace of an update, so a Topic whose selector
// stops matching is requeued too.
func (r *TopicReconciler) topicsSelectingNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.TopicList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexNamespaceSelector: "true"}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		t := &list.Items[i]
		for _, p := range t.Spec.Publishers {
			if p.NamespaceSelector == nil {
				continue
			}
			sel, err := compiler.NamespaceSelector(p.NamespaceSelector)
			if err == nil && sel.Matches(labels.Set(o.GetLabels())) {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: t.Namespace, Name: t.Name}})
				break
			}
		}
	}
	return out
}

// namespaceLabelsChanged passes Namespace creations, deletions and label
// changes.
func namespaceLabelsChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// namespaceHandler enqueues the Topics whose selectors match a Namespace.
func (r *TopicReconciler) namespaceHandler() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(r.topicsSelectingNamespace)
}
