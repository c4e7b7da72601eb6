package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/sources/apiserver"
)

// checkAPIServerAccess checks what an apiServer source's adapter needs from
// the cluster before it runs: its ServiceAccount exists in the source's
// namespace, every resource it watches is known to the API server, and the
// ServiceAccount may get, list and watch each of them where the source
// watches them (one SubjectAccessReview per verb, resource and namespace).
// When a check fails it sets SourceConfigured False and returns a *Waiting:
//
//   - NotFound: no ServiceAccount. ServiceAccounts are watched, so creating
//     it reconciles the source at once.
//   - InvalidSpec: an unknown apiVersion or kind. Not Stalled, since
//     installing the CRD fixes it; looked at again every RefreshInterval.
//   - Forbidden: access denied, with what is missing. RBAC objects are not
//     watched (that would take list and watch on every Role and binding in
//     the cluster), so the source is looked at again every RefreshInterval
//     and turns Ready within that long after a RoleBinding grants access.
//     Access revoked later shows at the next reconcile (a spec change, or
//     the adapter's Deployment losing its ready replicas).
//
// Errors reaching the API server are returned, to be retried with backoff.
func (r *EventSourceReconciler) checkAPIServerAccess(ctx context.Context, s *v1alpha1.EventSource, st *eventSourceState) error {
	sa := resources.APIServerServiceAccount(s.Spec.APIServer)
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: sa}, &corev1.ServiceAccount{})
	switch {
	case apierrors.IsNotFound(err):
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonNotFound, "ServiceAccount %s/%s not found", s.Namespace, sa)
		return &Waiting{Reason: v1alpha1.ReasonNotFound, Err: fmt.Errorf("ServiceAccount %s/%s not found", s.Namespace, sa)}
	case err != nil:
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonProgressing, "get ServiceAccount %s/%s: %v", s.Namespace, sa, err)
		return err
	}

	attrs, err := apiserver.RequiredAccess(r.Client.RESTMapper(), s.Namespace, s.Spec.APIServer)
	switch {
	case meta.IsNoMatchError(err):
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonInvalidSpec, "%v", err)
		return &Waiting{Reason: v1alpha1.ReasonInvalidSpec, Err: err, RequeueAfter: r.Config.RefreshInterval}
	case err != nil:
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}

	var denied []authorizationv1.ResourceAttributes
	for _, ra := range attrs {
		sar := serviceAccountReview(s.Namespace, sa, ra)
		if err := r.Client.Create(ctx, sar); err != nil {
			if apierrors.IsForbidden(err) {
				// The operator's own ClusterRole is out of date.
				st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonForbidden,
					"cannot check the access of ServiceAccount %s/%s: %v; grant the operator create on subjectaccessreviews.authorization.k8s.io", s.Namespace, sa, err)
				return &Waiting{Reason: v1alpha1.ReasonForbidden, Err: err, RequeueAfter: r.Config.RefreshInterval}
			}
			st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonProgressing, "SubjectAccessReview for ServiceAccount %s/%s: %v", s.Namespace, sa, err)
			return err
		}
		if !sar.Status.Allowed {
			denied = append(denied, ra)
		}
	}
	if len(denied) > 0 {
		msg := forbiddenMessage(s.Namespace, sa, denied)
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonForbidden, "%s", msg)
		return &Waiting{Reason: v1alpha1.ReasonForbidden, Err: errors.New(msg), RequeueAfter: r.Config.RefreshInterval}
	}
	return nil
}

// serviceAccountReview asks whether ServiceAccount namespace/name may do ra,
// with the user and groups the API server authenticates its token as.
func serviceAccountReview(namespace, name string, ra authorizationv1.ResourceAttributes) *authorizationv1.SubjectAccessReview {
	return &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		ResourceAttributes: &ra,
		User:               "system:serviceaccount:" + namespace + ":" + name,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}}
}

// maxDeniedItems bounds how many resource and namespace pairs a Forbidden
// message lists; a source watching many namespaces would otherwise make a
// condition message of any length.
const maxDeniedItems = 5

// forbiddenMessage says what ServiceAccount namespace/name may not do and how
// to fix it, grouping the denied verbs by resource and namespace in the order
// they were checked, e.g. "ServiceAccount shop/watcher may not watch
// configmaps in namespace shop; bind a Role granting get, list and watch".
// A namespace "" (all namespaces, or a cluster-scoped resource) reads
// "cluster-wide" and needs a ClusterRole and ClusterRoleBinding.
func forbiddenMessage(namespace, name string, denied []authorizationv1.ResourceAttributes) string {
	type target struct{ group, resource, namespace string }
	var order []target
	verbs := map[target][]string{}
	clusterWide := false
	for _, ra := range denied {
		t := target{ra.Group, ra.Resource, ra.Namespace}
		if _, ok := verbs[t]; !ok {
			order = append(order, t)
		}
		verbs[t] = append(verbs[t], ra.Verb)
		clusterWide = clusterWide || ra.Namespace == ""
	}
	items := make([]string, 0, min(len(order), maxDeniedItems)+1)
	for i, t := range order {
		if i == maxDeniedItems {
			items = append(items, fmt.Sprintf("%d more", len(order)-maxDeniedItems))
			break
		}
		resource := t.resource
		if t.group != "" {
			resource += "." + t.group
		}
		where := "in namespace " + t.namespace
		if t.namespace == "" {
			where = "cluster-wide"
		}
		items = append(items, fmt.Sprintf("%s %s %s", joinWords(verbs[t], "or"), resource, where))
	}
	fix := "bind a Role granting get, list and watch"
	if clusterWide {
		fix = "bind a ClusterRole granting get, list and watch with a ClusterRoleBinding"
	}
	return fmt.Sprintf("ServiceAccount %s/%s may not %s; %s", namespace, name, strings.Join(items, ", nor "), fix)
}

// joinWords joins words as English does: "a", "a or b", "a, b or c".
func joinWords(words []string, conj string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
