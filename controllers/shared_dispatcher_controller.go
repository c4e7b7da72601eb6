package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// SharedDispatcherReconciler runs the shared dispatcher of each namespace
// that has shared Topics: one ServiceAccount, token Role and RoleBinding,
// Service, NetworkPolicy, copy of the NATS Secret and Deployment named
// resources.SharedDispatcherName, serving every Topic of the namespace whose
// plan names it. Its requests are keyed by namespace (the name is always
// SharedDispatcherName).
//
// The shared objects are owned by the shared ServiceAccount, so that
// deleting it, when the namespace's last shared Topic goes, takes the rest
// with it. Adding or removing a Topic changes none of them; a Subscription
// with spec.signing of a shared Topic adds its Secret to the Deployment's
// volumes, which rolls the Pods (drained, nothing lost).
type SharedDispatcherReconciler struct {
	Client client.Client
	// APIReader reads the source of the dispatchers' NATS files.
	APIReader client.Reader
	Config    Config

	applied appliedObjects
}

// usesSharedDispatcher reports whether t needs its namespace's shared
// dispatcher: it asks for one, or the shared dispatcher still serves it
// while its dedicated one starts.
func usesSharedDispatcher(t *v1alpha1.Topic, def v1alpha1.DispatcherMode) bool {
	if !t.DeletionTimestamp.IsZero() {
		return false
	}
	if t.EffectiveDispatcherMode(def) == v1alpha1.DispatcherShared {
		return true
	}
	return t.Status.Dispatcher != nil && t.Status.Dispatcher.Mode == v1alpha1.DispatcherShared
}

// Reconcile implements reconcile.Reconciler.
func (r *SharedDispatcherReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := req.Namespace
	var topics v1alpha1.TopicList
	if err := r.Client.List(ctx, &topics, client.InNamespace(ns)); err != nil {
		return ctrl.Result{}, fmt.Errorf("list topics: %w", err)
	}
	served := map[string]bool{}
	for i := range topics.Items {
		if usesSharedDispatcher(&topics.Items[i], r.Config.DefaultDispatcherMode) {
			served[topics.Items[i].Name] = true
		}
	}
	d := resources.SharedDispatcher(ns, r.Config.Dispatcher.Shared)
	if len(served) == 0 {
		return ctrl.Result{}, r.delete(ctx, d)
	}

	sa := new(corev1.ServiceAccount)
	if err := r.applied.apply(ctx, r.Client, d.ServiceAccount(), sa); err != nil {
		return ctrl.Result{}, err
	}
	owner := metav1.OwnerReference{
		APIVersion: "v1", Kind: "ServiceAccount", Name: sa.Name, UID: sa.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
	}
	owned := func(obj client.Object) client.Object {
		obj.SetOwnerReferences([]metav1.OwnerReference{owner})
		return obj
	}
	objs := []client.Object{owned(d.TokenRole()), owned(d.TokenRoleBinding()), owned(d.Service())}
	if np := r.Config.Dispatcher.NetworkPolicy; np.Enabled {
		objs = append(objs, owned(d.NetworkPolicy(np)))
	}
	for _, obj := range objs {
		if err := r.applied.apply(ctx, r.Client, obj, nil); err != nil {
			return ctrl.Result{}, err
		}
	}
	if r.Config.Dispatcher.NATS.Copied {
		data, err := dispatcherNATSFiles(ctx, r.APIReader, r.Config)
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := apply(ctx, r.Client, owned(d.NATSSecret(data)), nil); err != nil {
			return ctrl.Result{}, err
		}
	}
	subs, err := r.servedSubscriptions(ctx, ns, served)
	if err != nil {
		return ctrl.Result{}, err
	}
	autoscaling := r.Config.Dispatcher.Shared.Autoscaling
	scaler, _, err := autoscaler(r.Client, r.Config.KEDA, autoscaling)
	if err != nil {
		return ctrl.Result{}, err
	}
	prev := new(appsv1.Deployment)
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: d.Name}, prev); apierrors.IsNotFound(err) {
		prev = nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	desired := d.Deployment(r.Config.Dispatcher, signingSecrets(subs))
	if scaler != "" {
		desired.Annotations = map[string]string{resources.AnnotationAutoscaler: scaler}
	}
	if err := r.applied.apply(ctx, r.Client, owned(desired), nil); err != nil {
		return ctrl.Result{}, err
	}
	if err := reconcileScaledObject(ctx, r.Client, d, scaler, autoscaling, scaleTriggers(subs), r.Config.KEDA, prev, &owner); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// delete removes the shared dispatcher of a namespace without shared
// Topics: its ServiceAccount, and with it, by garbage collection, the rest.
func (r *SharedDispatcherReconciler) delete(ctx context.Context, d resources.Dispatcher) error {
	key := types.NamespacedName{Namespace: d.Namespace, Name: d.Name}
	var sa corev1.ServiceAccount
	if err := r.Client.Get(ctx, key, &sa); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if sa.Labels[resources.LabelSharedDispatcher] != "true" {
		return nil
	}
	if err := r.Client.Delete(ctx, &sa, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete the shared dispatcher %s: %w", key, err)
	}
	r.applied.forget(key)
	log.FromContext(ctx).Info("deleted the shared dispatcher: no shared Topic left", "namespace", d.Namespace)
	return nil
}

// servedSubscriptions lists the Subscriptions of the served Topics, in
// name order.
func (r *SharedDispatcherReconciler) servedSubscriptions(ctx context.Context, ns string, served map[string]bool) ([]v1alpha1.Subscription, error) {
	var list v1alpha1.SubscriptionList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	subs := slices.DeleteFunc(list.Items, func(s v1alpha1.Subscription) bool { return !served[s.Spec.Topic] })
	slices.SortFunc(subs, func(a, b v1alpha1.Subscription) int { return strings.Compare(a.Name, b.Name) })
	return subs, nil
}

// sharedRequest is the request of the shared dispatcher of o's namespace.
func sharedRequest(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: resources.SharedDispatcherName}}}
}

// isSharedDispatcherObject passes the objects of shared dispatchers.
func isSharedDispatcherObject() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[resources.LabelSharedDispatcher] == "true"
	})
}

// topicDispatcherChanged passes Topic events that may change whether the
// Topic needs its namespace's shared dispatcher: creation, deletion, a new
// generation, a change of the dispatcher serving it.
func topicDispatcherChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.Topic)
			n, ok2 := e.ObjectNew.(*v1alpha1.Topic)
			if !ok1 || !ok2 {
				return true
			}
			mode := func(t *v1alpha1.Topic) v1alpha1.DispatcherMode {
				if t.Status.Dispatcher == nil {
					return ""
				}
				return t.Status.Dispatcher.Mode
			}
			return o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) || mode(o) != mode(n)
		},
	}
}

// subscriptionServingChanged passes Subscription events that change the
// signing Secrets a dispatcher mounts or, when autoscaled, the consumers
// its ScaledObject scales on.
func subscriptionServingChanged(autoscaled bool) predicate.Predicate {
	signing := func(o client.Object) string {
		s, ok := o.(*v1alpha1.Subscription)
		switch {
		case !ok:
			return ""
		case s.Spec.Signing != nil:
			return s.Spec.Topic + "\x00" + s.Spec.Signing.SecretName
		case autoscaled:
			return s.Spec.Topic
		}
		return ""
	}
	return predicate.Funcs{
		CreateFunc: func(e event.CreateEvent) bool { return signing(e.Object) != "" },
		DeleteFunc: func(e event.DeleteEvent) bool { return signing(e.Object) != "" },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return signing(e.ObjectOld) != signing(e.ObjectNew) ||
				(signing(e.ObjectNew) != "" && !e.ObjectOld.GetDeletionTimestamp().Equal(e.ObjectNew.GetDeletionTimestamp()))
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// SetupWithManager registers the reconciler: Topics and Subscriptions map
// to their namespace's shared dispatcher, and so do the shared dispatcher's
// own objects, so that drift is repaired at once.
func (r *SharedDispatcherReconciler) SetupWithManager(mgr ctrl.Manager) error {
	own := func(b *builder.Builder, obj client.Object) *builder.Builder {
		return b.Watches(obj, handler.EnqueueRequestsFromMapFunc(sharedRequest), builder.WithPredicates(isSharedDispatcherObject()))
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named("shareddispatcher").
		Watches(&v1alpha1.Topic{}, handler.EnqueueRequestsFromMapFunc(sharedRequest), builder.WithPredicates(topicDispatcherChanged())).
		Watches(&v1alpha1.Subscription{}, handler.EnqueueRequestsFromMapFunc(sharedRequest), builder.WithPredicates(subscriptionServingChanged(r.Config.Dispatcher.Shared.Autoscaling != nil)))
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{},
		&rbacv1.Role{}, &rbacv1.RoleBinding{}, &networkingv1.NetworkPolicy{}} {
		b = own(b, obj)
	}
	return b.WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers}).Complete(traced("shareddispatcher", r.Config.TracerProvider, r))
}
