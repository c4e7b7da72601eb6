package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/internal/jserr"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
	"github.com/herald-dev/herald/resolve"
)

// TopicReconciler makes a Topic's JetStream stream, dispatcher workload and
// dispatch plan match the Topic and its Subscriptions.
//
// The Topic reconciler is the only writer of a Topic's plan key and of its
// Subscriptions' consumers: it resolves every Subscription of the Topic,
// compiles them with compiler.Compile and applies the result with
// provision.Apply, as herald dev does. A Subscription that does not resolve
// or compile, or whose consumer JetStream refuses, is left out of the plan
// while the Topic's other Subscriptions are published; it keeps its
// consumer, so it resumes where it stopped once fixed. The consumers of
// deleted Subscriptions are pruned. The Subscription reconciler only
// reports on its Subscription.
type TopicReconciler struct {
	Client client.Client
	// APIReader reads what the manager does not cache: the source of the
	// dispatchers' NATS files.
	APIReader   client.Reader
	Provisioner *provision.Provisioner
	Resolver    *Resolver
	Recorder    events.EventRecorder
	Config      Config

	// PlanChanged, when set, receives the Subscriptions whose entry in
	// their Topic's published plan changed (added, removed, a new
	// generation or URIs), so that they report it at once.
	PlanChanged chan<- event.GenericEvent
	// Refresh, when set, carries the Topics whose stream's figures or
	// consumers changed (figuresRefresher).
	Refresh <-chan event.GenericEvent

	// applied spares re-applying owned objects that did not change.
	applied appliedObjects
	// published holds, by Topic, a fingerprint of each Subscription's entry
	// in the plan the reconciler last published, for PlanChanged.
	mu        sync.Mutex
	published map[types.NamespacedName]map[string]string
}

// Reconcile implements reconcile.Reconciler.
func (r *TopicReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, r.Client, r.Recorder, req, &v1alpha1.Topic{}, kind[*v1alpha1.Topic]{
		status: func(t *v1alpha1.Topic) (*[]metav1.Condition, *int64) {
			return &t.Status.Conditions, &t.Status.ObservedGeneration
		},
		finalize: r.finalize,
		steps: func(t *v1alpha1.Topic, conds conditions) steps {
			return steps{
				run: []step{
					func(ctx context.Context) error { return r.reconcileJetStream(ctx, t, conds) },
					func(ctx context.Context) error { return r.reconcileDispatcher(ctx, t, conds) },
				},
				// A NATS outage must not keep a deleted dispatcher
				// Deployment from coming back.
				independent: true,
				ready:       []string{v1alpha1.ConditionStreamReady, v1alpha1.ConditionDispatcherAvailable, v1alpha1.ConditionPlanPublished},
				message:     func() string { return fmt.Sprintf("Topic accepts events at %s", addressOf(t)) },
				// The figuresRefresher wakes it when its stream's
				// figures or consumers change.
				refresh: func() time.Duration { return r.Config.ResyncInterval },
			}
		},
	})
}

func addressOf(t *v1alpha1.Topic) string {
	if t.Status.Address == nil {
		return ""
	}
	return t.Status.Address.URL
}

// reconcileJetStream resolves and compiles the Topic's Subscriptions and
// applies the result with provision.Apply: the stream, the consumers, the
// plan, and the pruning of deleted Subscriptions' consumers. It owns
// StreamReady and PlanPublished.
//
// A Subscription that does not resolve or compile, or whose consumer
// JetStream refuses, is left out of the plan while the others are
// published; it keeps its consumer, so it resumes where it stopped once
// fixed. A stream change JetStream refuses stalls the Topic (only a spec
// change can fix it) while the old stream keeps serving the plan.
func (r *TopicReconciler) reconcileJetStream(ctx context.Context, t *v1alpha1.Topic, conds conditions) error {
	var list v1alpha1.SubscriptionList
	if err := r.Client.List(ctx, &list, client.InNamespace(t.Namespace), client.MatchingFields{indexSubscriptionTopic: t.Name}); err != nil {
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "list subscriptions: %v", err)
		return err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.Subscription) int { return strings.Compare(a.Name, b.Name) })

	var keep []string
	left := map[string]string{}
	var resolved []compiler.ResolvedSubscription
	var errs []error
	for i := range list.Items {
		s := &list.Items[i]
		if !s.DeletionTimestamp.IsZero() {
			continue
		}
		rs, err := resolve.Subscription(ctx, r.Resolver, t, s)
		rs.ConsumeMode = r.Config.DefaultPublishMode
		if err != nil {
			keep = append(keep, s.Name)
			left[s.Name] = err.Error()
			var re *resolve.Error
			if !errors.As(err, &re) {
				errs = append(errs, err)
			}
			continue
		}
		resolved = append(resolved, rs)
	}
	ct, err := compiler.InlineSchemas(t, r.configMapKey(ctx))
	if err != nil {
		conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonNotFound, "%v", err)
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "waiting for the schemas")
		if errors.Is(err, compiler.ErrSchemaSource) {
			// The ConfigMap watch reconciles the Topic when it appears.
			return &Waiting{Reason: v1alpha1.ReasonNotFound, Err: err}
		}
		return err
	}
	res, err := compiler.Compile(ct, resolved)
	if err != nil {
		conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonInvalidSpec, "%v", err)
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "waiting for the stream")
		return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
	}
	// A policy that does not compile publishes nothing: the dispatchers keep
	// enforcing the last plan rather than a more open one.
	pol, selected, err := r.publishPolicy(ctx, t)
	if err != nil {
		reason := v1alpha1.ReasonProgressing
		if st := (*Stalling)(nil); errors.As(err, &st) {
			reason = st.Reason
		}
		conds.setFalse(v1alpha1.ConditionPlanPublished, reason, "%v", err)
		return err
	}
	res.Plan.Publish = pol
	ds, err := r.dispatchers(ctx, t)
	if err != nil {
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	res.Plan.SharedDispatcher = ds.planDispatcher(t)
	for name, err := range res.Errors {
		keep = append(keep, name)
		left[name] = err.Error()
	}
	rep, _ := r.Provisioner.Apply(ctx, res, keep...)

	streamErr := r.streamStatus(t, res, rep, conds)
	if rep.Stream == nil {
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "waiting for the stream")
		return streamErr
	}
	for _, name := range slices.Sorted(maps.Keys(rep.Subscriptions)) {
		if err := rep.Subscriptions[name]; err != nil {
			left[name] = err.Error()
			errs = append(errs, fmt.Errorf("subscription %s: %w", name, err))
		}
	}
	if !rep.Published {
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonNATSError, "%v", rep.PlanErr)
		return errors.Join(streamErr, &Generic{Reason: v1alpha1.ReasonNATSError, Err: errors.Join(append(errs, rep.PlanErr)...)})
	}
	r.notifyPlan(ctx, t, &rep.Plan)
	t.Status.Subscriptions = int32(len(rep.Plan.Subscriptions))
	t.Status.PublishPolicy = publishPolicyStatus(pol, selected)
	if cat, err := r.Provisioner.Catalog(ctx, t.Namespace, t.Name); err == nil {
		t.Status.EventTypes, t.Status.EventTypeCount = catalogStatus(cat)
	} else {
		log.FromContext(ctx).V(1).Info("event type catalog not read", "error", err)
	}
	if rep.PlanErr != nil {
		errs = append(errs, rep.PlanErr)
	}
	if len(errs) > 0 {
		err := errors.Join(errs...)
		conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonNATSError, "%v", err)
		return errors.Join(streamErr, &Generic{Reason: v1alpha1.ReasonNATSError, Err: err})
	}
	msg := fmt.Sprintf("plan holds %d Subscription(s)", len(rep.Plan.Subscriptions))
	if len(left) > 0 {
		names := slices.Sorted(maps.Keys(left))
		parts := make([]string, 0, len(names))
		for _, n := range names {
			parts = append(parts, n+": "+left[n])
		}
		msg += fmt.Sprintf("; %d left out until fixed (%s)", len(left), strings.Join(parts, "; "))
	}
	conds.setTrue(v1alpha1.ConditionPlanPublished, "%s", msg)
	return streamErr
}

// notifyPlan sends to PlanChanged the Subscriptions whose entry in tp, as
// planHas reads it, differs from the plan published before.
func (r *TopicReconciler) notifyPlan(ctx context.Context, t *v1alpha1.Topic, tp *plan.TopicPlan) {
	if r.PlanChanged == nil {
		return
	}
	key := client.ObjectKeyFromObject(t)
	now := make(map[string]string, len(tp.Subscriptions))
	for _, sp := range tp.Subscriptions {
		now[sp.Name] = fmt.Sprintf("%d\x00%s\x00%s\x00%s", sp.Generation, sp.SubscriberURI, sp.ReplyURI, sp.DeadLetterURI)
	}
	r.mu.Lock()
	before := r.published[key]
	if r.published == nil {
		r.published = map[types.NamespacedName]map[string]string{}
	}
	r.published[key] = now
	r.mu.Unlock()
	var changed []string
	for name, fp := range now {
		if old, ok := before[name]; !ok || old != fp {
			changed = append(changed, name)
		}
	}
	for name := range before {
		if _, ok := now[name]; !ok {
			changed = append(changed, name)
		}
	}
	for _, name := range changed {
		ev := event.GenericEvent{Object: &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: name}}}
		select {
		case r.PlanChanged <- ev:
		case <-ctx.Done():
			return
		}
	}
}

// streamStatus sets StreamReady and status.stream from what Apply reports,
// and returns the stream's error: a *Stalling when JetStream refused the
// configuration, a *Generic when it failed to answer.
func (r *TopicReconciler) streamStatus(t *v1alpha1.Topic, res *compiler.Result, rep *provision.Report, conds conditions) error {
	var err error
	streamErr := rep.StreamErr
	if streamErr == nil && rep.HistoryErr != nil {
		streamErr = fmt.Errorf("delivery history: %w", rep.HistoryErr)
	}
	switch {
	case streamErr == nil && res.History != nil:
		conds.setTrue(v1alpha1.ConditionStreamReady, "streams %s and %s (delivery history) are ready", res.Stream.Name, res.History.Name)
	case streamErr == nil:
		conds.setTrue(v1alpha1.ConditionStreamReady, "stream %s is ready", res.Stream.Name)
	case refusedByJetStream(streamErr):
		msg := fmt.Sprintf("JetStream refused the stream configuration: %v", streamErr)
		conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonInvalidSpec, "%s", msg)
		err = &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: errors.New(msg)}
	default:
		conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonNATSError, "%v", streamErr)
		err = &Generic{Reason: v1alpha1.ReasonNATSError, Err: streamErr}
	}
	if info := rep.Stream; info != nil {
		t.Status.Stream = &v1alpha1.StreamStatus{
			Name:         info.Config.Name,
			Messages:     info.State.Msgs,
			Bytes:        info.State.Bytes,
			LastSequence: info.State.LastSeq,
		}
	}
	return err
}

// refusedByJetStream reports whether JetStream refused a stream
// configuration for good (rather than failing to answer).
func refusedByJetStream(err error) bool {
	return errors.Is(err, provision.ErrRefused) || jserr.Classify(err) == jserr.Refused
}

// dispatchers is what the Topic reconciler knows of the two dispatchers
// that may serve a Topic: the mode it asks for and, from the cache, its
// dedicated dispatcher's Deployment and its namespace's shared one (nil
// when absent).
type dispatchers struct {
	mode              v1alpha1.DispatcherMode
	dedicated, shared *appsv1.Deployment
}

func (r *TopicReconciler) dispatchers(ctx context.Context, t *v1alpha1.Topic) (dispatchers, error) {
	ds := dispatchers{mode: t.EffectiveDispatcherMode(r.Config.DefaultDispatcherMode)}
	get := func(name string) (*appsv1.Deployment, error) {
		var dep appsv1.Deployment
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: name}, &dep)
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get Deployment %s/%s: %w", t.Namespace, name, err)
		}
		return &dep, nil
	}
	var err error
	if ds.dedicated, err = get(resources.DispatcherName(t.Name)); err != nil {
		return ds, err
	}
	if ds.dedicated != nil && !metav1.IsControlledBy(ds.dedicated, t) {
		ds.dedicated = nil
	}
	ds.shared, err = get(resources.SharedDispatcherName)
	return ds, err
}

func available(dep *appsv1.Deployment) bool {
	if dep == nil {
		return false
	}
	ok, _, _ := deploymentAvailability(dep)
	return ok
}

// serving is the dispatcher that serves t: the one its mode asks for, or,
// while t moves between modes, the one that served it until the new one is
// available.
func (ds dispatchers) serving(t *v1alpha1.Topic) v1alpha1.DispatcherMode {
	switch ds.mode {
	case v1alpha1.DispatcherShared:
		if !available(ds.shared) && available(ds.dedicated) {
			return v1alpha1.DispatcherDedicated
		}
	case v1alpha1.DispatcherDedicated:
		wasShared := t.Status.Dispatcher != nil && t.Status.Dispatcher.Mode == v1alpha1.DispatcherShared
		if wasShared && !available(ds.dedicated) && available(ds.shared) {
			return v1alpha1.DispatcherShared
		}
	}
	return ds.mode
}

// planDispatcher is the plan's SharedDispatcher: the shared dispatcher
// serves a Topic that asks for it or that it still serves while a dedicated
// dispatcher starts. A dedicated dispatcher serves its Topic whatever the
// plan says, so that during a move both serve it and nothing waits.
func (ds dispatchers) planDispatcher(t *v1alpha1.Topic) string {
	if ds.mode == v1alpha1.DispatcherShared || ds.serving(t) == v1alpha1.DispatcherShared {
		return resources.SharedDispatcherID(t.Namespace)
	}
	return ""
}

// reconcileDispatcher makes the Topic's dispatcher serve it and reports
// where (status.address, status.dispatcher) and whether it is available.
//
// A dedicated Topic gets its dispatcher ServiceAccount, the Role and
// RoleBinding letting it mint its own tokens, Service, NATS Secret,
// NetworkPolicy and Deployment, with the signing Secrets of its
// Subscriptions mounted. A shared Topic is served by its namespace's shared
// dispatcher, which SharedDispatcherReconciler runs; once that is available
// the Topic's dedicated objects, if any, are deleted.
//
// Moving between modes loses nothing: the plan names the shared dispatcher
// while either mode's dispatcher may serve the Topic, the address changes
// only once the new dispatcher is available, and the old one is removed
// only then (draining its producers for 5 to 20 s).
func (r *TopicReconciler) reconcileDispatcher(ctx context.Context, t *v1alpha1.Topic, conds conditions) error {
	ds, err := r.dispatchers(ctx, t)
	if err != nil {
		conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	var scaling string
	if ds.mode == v1alpha1.DispatcherDedicated {
		if ds.dedicated, scaling, err = r.applyDedicated(ctx, t, ds.dedicated, conds); err != nil {
			return err
		}
	}
	serving := ds.serving(t)
	dep := ds.dedicated
	d := resources.DedicatedDispatcher(t)
	if serving == v1alpha1.DispatcherShared {
		dep, d = ds.shared, resources.SharedDispatcher(t.Namespace, r.Config.Dispatcher.Shared)
	}
	t.Status.Address = &v1alpha1.Addressable{
		URL:      d.Address(t.Namespace, t.Name, r.Config.ClusterDomain),
		Audience: plan.TopicAudience(t.Namespace, t.Name),
	}
	t.Status.Dispatcher = &v1alpha1.DispatcherStatus{Mode: serving, Name: d.Name}
	if ds.mode == v1alpha1.DispatcherShared && serving == v1alpha1.DispatcherShared && ds.dedicated != nil {
		if err := r.deleteDedicated(ctx, t); err != nil {
			conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing, "%v", err)
			return err
		}
	}
	moving := scaling
	if serving != ds.mode {
		moving = fmt.Sprintf("; moving to the %s dispatcher once it is available", ds.mode)
	}
	if dep == nil {
		conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing,
			"waiting for the shared dispatcher Deployment %s/%s", t.Namespace, d.Name)
		return nil
	}
	if ok, reason, msg := deploymentAvailability(dep); ok {
		conds.setTrue(v1alpha1.ConditionDispatcherAvailable, "%s%s", msg, moving)
	} else {
		conds.setFalse(v1alpha1.ConditionDispatcherAvailable, reason, "%s%s", msg, moving)
	}
	return nil
}

// applyDedicated applies the Topic's dedicated dispatcher objects and
// returns its Deployment as the API server answered, and what the
// DispatcherAvailable message says of its autoscaling. prev is the
// Deployment before, nil when there was none.
func (r *TopicReconciler) applyDedicated(ctx context.Context, t *v1alpha1.Topic, prev *appsv1.Deployment, conds conditions) (*appsv1.Deployment, string, error) {
	fail := func(err error) (*appsv1.Deployment, string, error) {
		conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing, "%v", err)
		return nil, "", err
	}
	subs, err := r.topicSubscriptions(ctx, t)
	if err != nil {
		return fail(err)
	}
	d := resources.DedicatedDispatcher(t)
	for _, obj := range []client.Object{d.ServiceAccount(), d.TokenRole(), d.TokenRoleBinding(), d.Service()} {
		if err := r.applied.apply(ctx, r.Client, obj, nil); err != nil {
			return fail(err)
		}
	}
	if err := r.reconcileDispatcherAccess(ctx, t); err != nil {
		return fail(err)
	}
	var autoscaling *v1alpha1.DispatcherAutoscaling
	if t.Spec.Dispatcher != nil {
		autoscaling = t.Spec.Dispatcher.Autoscaling
	}
	scaler, scaling, err := autoscaler(r.Client, r.Config.KEDA, autoscaling)
	if err != nil {
		return fail(err)
	}
	desired := d.Deployment(r.Config.Dispatcher, signingSecrets(subs))
	if scaler != "" {
		desired.Annotations = map[string]string{resources.AnnotationAutoscaler: scaler}
	}
	dep := new(appsv1.Deployment)
	if err := r.applied.apply(ctx, r.Client, desired, dep); err != nil {
		if apierrors.IsInvalid(err) {
			conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonInvalidSpec, "%v", err)
			return nil, "", &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
		}
		return fail(err)
	}
	if err := reconcileScaledObject(ctx, r.Client, d, scaler, autoscaling, scaleTriggers(subs), r.Config.KEDA, prev, nil); err != nil {
		return fail(err)
	}
	return dep, scaling, nil
}

// autoscaler says who sets the replicas of a dispatcher autoscaled by a
// (nil: not autoscaled): "" (the operator), AutoscalerKEDA (a ScaledObject
// the operator creates) or AutoscalerExternal (KEDA is not installed or not
// configured: a HorizontalPodAutoscaler of the user's), and what a
// condition message says of it.
func autoscaler(c client.Client, k resources.KEDA, a *v1alpha1.DispatcherAutoscaling) (string, string, error) {
	if a == nil {
		return "", "", nil
	}
	minReplicas := int32(1)
	if a.MinReplicas != nil {
		minReplicas = *a.MinReplicas
	}
	_, err := c.RESTMapper().RESTMapping(resources.ScaledObjectGVK.GroupKind(), resources.ScaledObjectGVK.Version)
	switch {
	case meta.IsNoMatchError(err):
		return resources.AutoscalerExternal, "; replicas left to a scaler of yours: KEDA is not installed", nil
	case err != nil:
		return "", "", fmt.Errorf("look up KEDA's ScaledObject: %w", err)
	case k.MonitoringEndpoint == "":
		return resources.AutoscalerExternal, "; replicas left to a scaler of yours: the operator has no --keda-nats-monitoring-endpoint for KEDA", nil
	}
	return resources.AutoscalerKEDA, fmt.Sprintf("; autoscaled by KEDA between %d and %d replicas", minReplicas, a.MaxReplicas), nil
}

// reconcileScaledObject applies the ScaledObject of dispatcher d when KEDA
// scales it (scaler) and it has triggers, and otherwise deletes the one the
// operator created before, which prev, d's Deployment before this
// reconcile (nil: none), says by its AnnotationAutoscaler. owner, when not
// nil, owns the ScaledObject instead of d's owner (a shared dispatcher's
// objects are owned by its ServiceAccount).
func reconcileScaledObject(ctx context.Context, c client.Client, d resources.Dispatcher, scaler string, a *v1alpha1.DispatcherAutoscaling,
	triggers []resources.ScaleTrigger, k resources.KEDA, prev *appsv1.Deployment, owner *metav1.OwnerReference) error {
	if scaler == resources.AutoscalerKEDA && len(triggers) > 0 {
		so := d.ScaledObject(*a, triggers, k)
		if owner != nil {
			so.SetOwnerReferences([]metav1.OwnerReference{*owner})
		}
		return apply(ctx, c, so, nil)
	}
	if prev == nil || prev.Annotations[resources.AnnotationAutoscaler] != resources.AutoscalerKEDA {
		return nil
	}
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(resources.ScaledObjectGVK)
	so.SetNamespace(d.Namespace)
	so.SetName(d.Name)
	if err := c.Delete(ctx, so); err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
		return fmt.Errorf("delete ScaledObject %s/%s: %w", d.Namespace, d.Name, err)
	}
	return nil
}

// deleteDedicated deletes the objects of the Topic's dedicated dispatcher
// once the shared dispatcher serves it. The copy of the NATS Secret stays
// with the Topic (the manager may not delete Secrets); it goes with the
// Topic.
func (r *TopicReconciler) deleteDedicated(ctx context.Context, t *v1alpha1.Topic) error {
	d := resources.DedicatedDispatcher(t)
	objs := []client.Object{d.Deployment(r.Config.Dispatcher, nil), d.Service(), d.NetworkPolicy(r.Config.Dispatcher.NetworkPolicy),
		d.TokenRoleBinding(), d.TokenRole(), d.ServiceAccount()}
	for _, obj := range objs {
		err := r.Client.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the dedicated dispatcher's %T %s/%s: %w", obj, obj.GetNamespace(), obj.GetName(), err)
		}
	}
	r.applied.forget(types.NamespacedName{Namespace: t.Namespace, Name: d.Name})
	log.FromContext(ctx).Info("deleted the dedicated dispatcher, the shared one serves the Topic", "dispatcher", d.Name)
	return nil
}

// topicSubscriptions lists t's Subscriptions that are not being deleted,
// in name order.
func (r *TopicReconciler) topicSubscriptions(ctx context.Context, t *v1alpha1.Topic) ([]v1alpha1.Subscription, error) {
	var list v1alpha1.SubscriptionList
	if err := r.Client.List(ctx, &list, client.InNamespace(t.Namespace), client.MatchingFields{indexSubscriptionTopic: t.Name}); err != nil {
		return nil, fmt.Errorf("list subscriptions: %w", err)
	}
	subs := slices.DeleteFunc(list.Items, func(s v1alpha1.Subscription) bool { return !s.DeletionTimestamp.IsZero() })
	slices.SortFunc(subs, func(a, b v1alpha1.Subscription) int { return strings.Compare(a.Name, b.Name) })
	return subs, nil
}

// signingSecrets lists the signing Secrets of subs with spec.signing, in
// their order.
func signingSecrets(subs []v1alpha1.Subscription) []resources.SigningSecret {
	var out []resources.SigningSecret
	for i := range subs {
		if s := &subs[i]; s.Spec.Signing != nil && s.DeletionTimestamp.IsZero() {
			out = append(out, resources.SigningSecret{Subscription: s.Name, Secret: s.Spec.Signing.SecretName})
		}
	}
	return out
}

// finalize deletes the Topic's stream (with its consumers) and plan, then
// lets the Topic go. The dispatcher objects go with their owner.
func (r *TopicReconciler) finalize(ctx context.Context, t *v1alpha1.Topic) error {
	if !controllerutil.ContainsFinalizer(t, v1alpha1.Finalizer) {
		return nil
	}
	if err := r.Provisioner.DeleteTopic(ctx, t.Namespace, t.Name); err != nil {
		return err
	}
	r.applied.forget(types.NamespacedName{Namespace: t.Namespace, Name: resources.DispatcherName(t.Name)})
	r.mu.Lock()
	delete(r.published, client.ObjectKeyFromObject(t))
	r.mu.Unlock()
	return removeFinalizer(ctx, r.Client, t)
}

// SetupWithManager registers the reconciler: Topics, their owned dispatcher
// objects, their Subscriptions (whose changes change the plan),
// Namespaces whose labels a publisher's namespaceSelector matches, and the
// metadata of ConfigMaps (those schemaFrom names are read when a Topic is
// reconciled).
func (r *TopicReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("topic").
		For(&v1alpha1.Topic{}, builder.WithPredicates(specOrLifecycleChanged())).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Watches(&v1alpha1.Subscription{},
			handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
				s := o.(*v1alpha1.Subscription)
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Topic}}}
			}),
			builder.WithPredicates(subscriptionPlanChanged())).
		Watches(&corev1.Namespace{}, r.namespaceHandler(), builder.WithPredicates(namespaceLabelsChanged())).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.configMapTopics), builder.OnlyMetadata).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.sharedDispatcherTopics),
			builder.WithPredicates(isSharedDispatcherObject())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers})
	if r.Refresh != nil {
		b = b.WatchesRawSource(source.Channel(r.Refresh, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(traced("topic", r.Config.TracerProvider, r))
}

// sharedDispatcherTopics maps a shared dispatcher's Deployment to the
// Topics it serves or is to serve whose status does not show its
// availability yet: with a thousand Topics in a namespace, a rollout must
// not reconcile them all at every step.
func (r *TopicReconciler) sharedDispatcherTopics(ctx context.Context, o client.Object) []reconcile.Request {
	dep, ok := o.(*appsv1.Deployment)
	if !ok {
		return nil
	}
	var topics v1alpha1.TopicList
	if err := r.Client.List(ctx, &topics, client.InNamespace(dep.Namespace)); err != nil {
		log.FromContext(ctx).Error(err, "list topics of a shared dispatcher", "namespace", dep.Namespace)
		return nil
	}
	ok, reason, _ := deploymentAvailability(dep)
	want := metav1.ConditionFalse
	if ok {
		want, reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
	}
	var reqs []reconcile.Request
	for i := range topics.Items {
		t := &topics.Items[i]
		if !usesSharedDispatcher(t, r.Config.DefaultDispatcherMode) {
			continue
		}
		c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionDispatcherAvailable)
		mode := t.EffectiveDispatcherMode(r.Config.DefaultDispatcherMode)
		if c == nil || c.Status != want || c.Reason != reason || t.Status.Dispatcher == nil || t.Status.Dispatcher.Mode != mode {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(t)})
		}
	}
	return reqs
}

// subscriptionPlanChanged passes Subscription events that change its
// Topic's plan: creation, deletion, a new generation, a new resolved URI.
// Status updates such as consumer lag do not.
func subscriptionPlanChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.Subscription)
			n, ok2 := e.ObjectNew.(*v1alpha1.Subscription)
			if !ok1 || !ok2 {
				return true
			}
			return o.Generation != n.Generation ||
				!o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
				o.Status.SubscriberURI != n.Status.SubscriberURI ||
				o.Status.ReplyURI != n.Status.ReplyURI ||
				o.Status.DeadLetterSinkURI != n.Status.DeadLetterSinkURI
		},
	}
}
