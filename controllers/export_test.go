package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// TopicPublishPolicy is what a Topic reconciler configured with mode
// publishes for t, reading Namespaces through c: the plan's policy and
// status.publishPolicy.
func TopicPublishPolicy(ctx context.Context, c client.Client, mode plan.PublishMode, t *v1alpha1.Topic) (plan.PublishPolicy, *v1alpha1.PublishPolicyStatus, error) {
	r := &TopicReconciler{Client: c, Config: Config{DefaultPublishMode: mode}.withDefaults()}
	pol, selected, err := r.publishPolicy(ctx, t)
	if err != nil {
		return plan.PublishPolicy{}, nil, err
	}
	return pol, publishPolicyStatus(pol, selected), nil
}

// ReconcileDispatcherAccess runs the dispatcher access step of r on t, for
// the envtest suite.
func (r *TopicReconciler) ReconcileDispatcherAccess(ctx context.Context, t *v1alpha1.Topic) error {
	return r.reconcileDispatcherAccess(ctx, t)
}

// WithDefaults is c with the defaults Setup fills in.
func (c Config) WithDefaults() Config { return c.withDefaults() }

// TopicChangedForSubscriptions is the predicate of the Subscription
// reconciler's watch on Topics.
var TopicChangedForSubscriptions = topicChangedForSubscriptions

// StaleFigures is what one round of a figures refresher reading through c
// and prov finds stale: the Topics and Subscriptions it would wake.
func StaleFigures(ctx context.Context, c client.Reader, prov *provision.Provisioner) (topics, subs []types.NamespacedName, err error) {
	f := &figuresRefresher{client: c, prov: prov}
	return f.stale(ctx)
}

// RefersToUnwatched reports whether s (of Topic t) is resolved again every
// RefreshInterval.
var RefersToUnwatched = refersToUnwatched
