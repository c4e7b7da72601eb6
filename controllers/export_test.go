package controllers

import (
	"context"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// ReconcileDispatcherAccess runs the dispatcher access step of r on t, for
// the envtest suite.
func (r *TopicReconciler) ReconcileDispatcherAccess(ctx context.Context, t *v1alpha1.Topic) error {
	return r.reconcileDispatcherAccess(ctx, t)
}
