package controllers

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/resolve"
	"github.com/herald-dev/herald/sources"
)

// EventSourceReconciler resolves an EventSource's sink and runs its adapter
// Deployment (and, for webhooks, its Service). The adapter objects are
// owned by the EventSource and go with it; no finalizer is needed.
type EventSourceReconciler struct {
	Client   client.Client
	Resolver *Resolver
	Recorder events.EventRecorder
	Config   Config
}

// eventSourceState carries what one reconcile's steps learn for the next.
type eventSourceState struct {
	conds    conditions
	sinkOK   bool
	configOK bool
}

// Reconcile implements reconcile.Reconciler.
func (r *EventSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, r.Client, r.Recorder, req, &v1alpha1.EventSource{}, kind[*v1alpha1.EventSource]{
		status: func(s *v1alpha1.EventSource) (*[]metav1.Condition, *int64) {
			return &s.Status.Conditions, &s.Status.ObservedGeneration
		},
		steps: func(s *v1alpha1.EventSource, conds conditions) steps {
			st := &eventSourceState{conds: conds}
			s.Status.Type = s.Spec.Type()
			return steps{
				run: []step{
					func(ctx context.Context) error { return r.reconcileSink(ctx, s, st) },
					func(ctx context.Context) error { return r.reconcileSourceConfig(ctx, s, st) },
					func(ctx context.Context) error { return r.reconcileWorkload(ctx, s, st) },
				},
				ready:   []string{v1alpha1.ConditionSinkResolved, v1alpha1.ConditionSourceConfigured, v1alpha1.ConditionDeploymentAvailable},
				message: func() string { return fmt.Sprintf("sending events to %s", s.Status.SinkURI) },
			}
		},
	})
}

func (r *EventSourceReconciler) reconcileSink(ctx context.Context, s *v1alpha1.EventSource, st *eventSourceState) error {
	sink, err := resolve.Destination(ctx, r.Resolver, s.Namespace, &s.Spec.Sink)
	var re *resolve.Error
	switch {
	case errors.As(err, &re):
		s.Status.SinkURI, s.Status.SinkAudience = "", ""
		st.conds.setFalse(v1alpha1.ConditionSinkResolved, re.Reason, "sink: %s", re.Message)
		return &Waiting{Reason: re.Reason, Err: err, RequeueAfter: r.Config.RefreshInterval}
	case err != nil:
		st.conds.setFalse(v1alpha1.ConditionSinkResolved, v1alpha1.ReasonProgressing, "sink: %v", err)
		return err
	}
	s.Status.SinkURI, s.Status.SinkAudience = sink.URI, sink.Audience
	st.sinkOK = true
	st.conds.setTrue(v1alpha1.ConditionSinkResolved, "sink resolved to %s", sink.URI)
	return nil
}

// reconcileSourceConfig checks what can be checked without the adapter: a
// ping source's schedule, timezone and data, an apiServer source's spec
// (these stall the source until the spec changes), and the ServiceAccount
// of an apiServer source and its access to the watched resources (see
// checkAPIServerAccess). The adapter Deployment is applied only once all
// pass. (Webhook Secrets are checked by a later version.)
func (r *EventSourceReconciler) reconcileSourceConfig(ctx context.Context, s *v1alpha1.EventSource, st *eventSourceState) error {
	if err := checkSource(&s.Spec); err != nil {
		st.conds.setFalse(v1alpha1.ConditionSourceConfigured, v1alpha1.ReasonInvalidSpec, "%v", err)
		return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
	}
	if s.Spec.APIServer != nil {
		if err := r.checkAPIServerAccess(ctx, s, st); err != nil {
			return err
		}
	}
	st.configOK = true
	st.conds.setTrue(v1alpha1.ConditionSourceConfigured, "%s source is configured", s.Spec.Type())
	return nil
}

// checkSource validates what the API server's schema cannot, with the
// adapter's own checks, so a spec the adapter would refuse never reaches it.
func checkSource(spec *v1alpha1.EventSourceSpec) error {
	if p := spec.Ping; p != nil {
		if err := sources.ValidatePing(p); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}
	if a := spec.APIServer; a != nil {
		// Its errors start with "apiServer: ".
		if err := sources.ValidateAPIServer(a); err != nil {
			return err
		}
	}
	return nil
}

// reconcileWorkload applies the adapter Deployment (and a webhook's Service)
// once the sink resolved and the source is configured.
func (r *EventSourceReconciler) reconcileWorkload(ctx context.Context, s *v1alpha1.EventSource, st *eventSourceState) error {
	switch {
	case !st.sinkOK:
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonProgressing, "waiting for the sink to resolve")
		return nil
	case !st.configOK:
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonProgressing, "waiting for the source to be configured")
		return nil
	}
	desired, err := resources.AdapterDeployment(s, s.Status.SinkURI, s.Status.SinkAudience, r.Config.Adapter)
	if err != nil {
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonInvalidSpec, "%v", err)
		return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
	}
	if err := r.reconcileIdentity(ctx, s); err != nil {
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	if s.Spec.Webhook != nil {
		if err := apply(ctx, r.Client, resources.AdapterService(s), nil); err != nil {
			st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonProgressing, "%v", err)
			return err
		}
		s.Status.Address = &v1alpha1.Addressable{URL: resources.WebhookAddress(s.Namespace, s.Name, r.Config.ClusterDomain)}
	} else {
		s.Status.Address = nil
		if err := r.deleteStaleService(ctx, s); err != nil {
			return err
		}
	}
	var dep appsv1.Deployment
	if err := apply(ctx, r.Client, desired, &dep); err != nil {
		if apierrors.IsInvalid(err) {
			// For example a container source's template the API server refuses.
			st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonInvalidSpec, "%v", err)
			return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
		}
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	if ok, reason, msg := deploymentAvailability(&dep); ok {
		st.conds.setTrue(v1alpha1.ConditionDeploymentAvailable, "%s", msg)
	} else {
		st.conds.setFalse(v1alpha1.ConditionDeploymentAvailable, reason, "%s", msg)
	}
	return nil
}

// reconcileIdentity applies what lets the adapter mint its own tokens: the
// ServiceAccount of a ping or webhook adapter, and the Role and RoleBinding
// of every `herald adapter`. A container source gets none of them, and
// those of an EventSource that changed type are deleted.
func (r *EventSourceReconciler) reconcileIdentity(ctx context.Context, s *v1alpha1.EventSource) error {
	key := client.ObjectKey{Namespace: s.Namespace, Name: resources.AdapterName(s.Name)}
	var desired, stale []client.Object
	if resources.AdapterRunsHerald(s) {
		desired = append(desired, resources.AdapterTokenRole(s), resources.AdapterTokenRoleBinding(s))
	} else {
		stale = append(stale, &rbacv1.Role{}, &rbacv1.RoleBinding{})
	}
	if sa := resources.AdapterServiceAccountObject(s); sa != nil {
		desired = append([]client.Object{sa}, desired...)
	} else {
		stale = append(stale, &corev1.ServiceAccount{})
	}
	for _, obj := range desired {
		if err := apply(ctx, r.Client, obj, nil); err != nil {
			return err
		}
	}
	for _, obj := range stale {
		if err := deleteOwned(ctx, r.Client, s, key, obj); err != nil {
			return err
		}
	}
	return nil
}

// deleteOwned deletes the object of obj's kind at key when owner controls
// it; an absent object is no error.
func deleteOwned(ctx context.Context, c client.Client, owner metav1.Object, key client.ObjectKey, obj client.Object) error {
	err := c.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %T %s: %w", obj, key, err)
	}
	if !metav1.IsControlledBy(obj, owner) {
		return nil
	}
	if err := c.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %T %s: %w", obj, key, err)
	}
	return nil
}

// deleteStaleService deletes the Service of an EventSource that is no
// longer a webhook.
func (r *EventSourceReconciler) deleteStaleService(ctx context.Context, s *v1alpha1.EventSource) error {
	var svc corev1.Service
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: resources.AdapterName(s.Name)}, &svc)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get adapter service: %w", err)
	}
	if !metav1.IsControlledBy(&svc, s) {
		return nil
	}
	if err := r.Client.Delete(ctx, &svc); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete adapter service: %w", err)
	}
	return nil
}

// SetupWithManager registers the reconciler: EventSources, their adapter
// objects, the Topics and Services their sinks refer to, and the
// ServiceAccounts apiServer sources run as.
func (r *EventSourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	mapRefs := func(kind string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list v1alpha1.EventSourceList
			key := refKey(kind, o.GetNamespace(), o.GetName())
			if err := r.Client.List(ctx, &list, client.MatchingFields{indexDestinations: key}); err != nil {
				log.FromContext(ctx).Error(err, "list EventSources referring to", "ref", key)
				return nil
			}
			reqs := make([]reconcile.Request, 0, len(list.Items))
			for _, s := range list.Items {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
			}
			return reqs
		})
	}
	// A ServiceAccount created or deleted reconciles the apiServer sources
	// running as it; its updates do not change whether it exists.
	mapServiceAccount := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var list v1alpha1.EventSourceList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexServiceAccount: o.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "list EventSources running as", "serviceAccount", o.GetNamespace()+"/"+o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, s := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
		}
		return reqs
	})
	createdOrDeleted := predicate.Funcs{
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("eventsource").
		For(&v1alpha1.EventSource{}, builder.WithPredicates(specOrLifecycleChanged())).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Watches(&v1alpha1.Topic{}, mapRefs("Topic")).
		Watches(&corev1.Service{}, mapRefs("Service")).
		Watches(&corev1.ServiceAccount{}, mapServiceAccount, builder.WithPredicates(createdOrDeleted)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers}).
		Complete(traced("eventsource", r.Config.TracerProvider, r))
}
