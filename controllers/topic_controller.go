package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/dispatcher/plan"
	"github.com/herald-dev/herald/internal/jserr"
	"github.com/herald-dev/herald/provision"
)

// TopicReconciler makes a Topic's JetStream stream, dispatcher workload and
// dispatch plan match the Topic and its Subscriptions.
//
// The Topic reconciler is the only writer of a Topic's plan key and of its
// Subscriptions' consumers: it resolves every Subscription of the Topic,
// compiles them with plan.Compile and ensures the consumers and the plan.
// A Subscription that does not resolve or compile is left out of the plan
// but keeps its consumer, so it resumes where it stopped once fixed; the
// consumers of deleted Subscriptions are pruned. The Subscription
// reconciler only reports on its Subscription.
type TopicReconciler struct {
	Client      client.Client
	Provisioner *provision.Provisioner
	Resolver    *Resolver
	Recorder    events.EventRecorder
	Config      Config
}

// topicState carries what one reconcile's steps learn for the next ones.
type topicState struct {
	conds        conditions
	streamExists bool
	stalled      []string
	requeue      requeue
}

// Reconcile implements reconcile.Reconciler.
func (r *TopicReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	t := &v1alpha1.Topic{}
	if err := r.Client.Get(ctx, req.NamespacedName, t); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !t.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, t)
	}
	if err := ensureFinalizer(ctx, r.Client, t); err != nil {
		return ctrl.Result{}, err
	}

	orig := t.DeepCopy()
	st := &topicState{conds: conditions{list: &t.Status.Conditions, generation: t.Generation}}
	defer func() {
		st.conds.stalled(len(st.stalled) > 0, strings.Join(st.stalled, "; "))
		st.conds.summarize(fmt.Sprintf("Topic accepts events at %s", addressOf(t)),
			v1alpha1.ConditionStreamReady, v1alpha1.ConditionDispatcherAvailable, v1alpha1.ConditionPlanPublished)
		t.Status.ObservedGeneration = t.Generation
		recordTransition(r.Recorder, t, orig.Status.Conditions, t.Status.Conditions)
		if err := patchStatus(ctx, r.Client, orig, t, !equality.Semantic.DeepEqual(orig.Status, t.Status)); err != nil {
			retErr = errors.Join(retErr, err)
		}
		if retErr == nil && st.requeue > 0 {
			result.RequeueAfter = time.Duration(st.requeue)
		}
	}()

	// The steps are independent enough to run even when one fails: a NATS
	// outage must not keep a deleted dispatcher Deployment from coming back.
	var errs []error
	for _, step := range []func(context.Context, *v1alpha1.Topic, *topicState) error{
		r.reconcileStream,
		r.reconcileDispatcher,
		r.reconcilePlan,
	} {
		if err := step(ctx, t, st); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && len(st.stalled) == 0 {
		// Refresh status.stream now and then.
		st.requeue.after(r.Config.RefreshInterval)
	}
	return ctrl.Result{}, errors.Join(errs...)
}

func addressOf(t *v1alpha1.Topic) string {
	if t.Status.Address == nil {
		return ""
	}
	return t.Status.Address.URL
}

// reconcileStream ensures the stream and records what JetStream reports.
// A change JetStream refuses stalls the Topic without retries: only a spec
// change (which triggers a reconcile) can fix it.
func (r *TopicReconciler) reconcileStream(ctx context.Context, t *v1alpha1.Topic, st *topicState) error {
	cfg, err := plan.StreamConfig(t)
	if err != nil {
		st.conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonInvalidSpec, "%v", err)
		st.stalled = append(st.stalled, err.Error())
		return nil
	}
	info, err := r.Provisioner.EnsureStream(ctx, cfg)
	if err != nil {
		if !refusedByJetStream(err) {
			st.conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonNATSError, "%v", err)
			return err
		}
		msg := fmt.Sprintf("JetStream refused the stream configuration: %v", err)
		st.conds.setFalse(v1alpha1.ConditionStreamReady, v1alpha1.ReasonInvalidSpec, "%s", msg)
		st.stalled = append(st.stalled, msg)
		// The old stream may still serve the Topic.
		if info, err = r.Provisioner.StreamInfo(ctx, cfg.Name); err != nil {
			return err
		}
		if info == nil {
			return nil
		}
	} else {
		st.conds.setTrue(v1alpha1.ConditionStreamReady, "stream %s is ready", cfg.Name)
	}
	st.streamExists = true
	t.Status.Stream = &v1alpha1.StreamStatus{
		Name:         info.Config.Name,
		Messages:     info.State.Msgs,
		Bytes:        info.State.Bytes,
		LastSequence: info.State.LastSeq,
	}
	return nil
}

// refusedByJetStream reports whether JetStream refused a stream
// configuration for good (rather than failing to answer).
func refusedByJetStream(err error) bool {
	return errors.Is(err, provision.ErrRefused) || jserr.Classify(err) == jserr.Refused
}

// reconcileDispatcher applies the dispatcher ServiceAccount, Service and
// Deployment and reports the Deployment's availability.
func (r *TopicReconciler) reconcileDispatcher(ctx context.Context, t *v1alpha1.Topic, st *topicState) error {
	for _, obj := range []client.Object{resources.DispatcherServiceAccount(t), resources.DispatcherService(t)} {
		if err := apply(ctx, r.Client, obj, nil); err != nil {
			st.conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing, "%v", err)
			return err
		}
	}
	t.Status.Address = &v1alpha1.Addressable{URL: resources.DispatcherAddress(t.Namespace, t.Name, r.Config.ClusterDomain)}
	var dep appsv1.Deployment
	if err := apply(ctx, r.Client, resources.DispatcherDeployment(t, r.Config.Dispatcher), &dep); err != nil {
		if apierrors.IsInvalid(err) {
			st.conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonInvalidSpec, "%v", err)
			st.stalled = append(st.stalled, err.Error())
			return nil
		}
		st.conds.setFalse(v1alpha1.ConditionDispatcherAvailable, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	if ok, reason, msg := deploymentAvailability(&dep); ok {
		st.conds.setTrue(v1alpha1.ConditionDispatcherAvailable, "%s", msg)
	} else {
		st.conds.setFalse(v1alpha1.ConditionDispatcherAvailable, reason, "%s", msg)
	}
	return nil
}

// reconcilePlan compiles the Topic's Subscriptions, ensures their consumers,
// publishes the plan and prunes the consumers of deleted Subscriptions.
func (r *TopicReconciler) reconcilePlan(ctx context.Context, t *v1alpha1.Topic, st *topicState) error {
	if !st.streamExists {
		st.conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "waiting for the stream")
		return nil
	}
	var list v1alpha1.SubscriptionList
	if err := r.Client.List(ctx, &list, client.InNamespace(t.Namespace), client.MatchingFields{indexSubscriptionTopic: t.Name}); err != nil {
		st.conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonProgressing, "list subscriptions: %v", err)
		return err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.Subscription) int { return strings.Compare(a.Name, b.Name) })

	keep := map[string]bool{}
	left := map[string]string{}
	var resolved []plan.ResolvedSubscription
	var errs []error
	for i := range list.Items {
		s := &list.Items[i]
		if !s.DeletionTimestamp.IsZero() {
			continue
		}
		// Keep the consumer of a live Subscription even when it is left
		// out of the plan, so it keeps its position.
		keep[plan.ConsumerName(s.Name)] = true
		rs, err := r.Resolver.ResolveSubscription(ctx, t, s)
		if err != nil {
			left[s.Name] = err.Error()
			var re *ResolveError
			if !errors.As(err, &re) {
				errs = append(errs, err)
			}
			continue
		}
		resolved = append(resolved, rs)
	}
	res, err := plan.Compile(t, resolved)
	if err != nil {
		st.conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonInvalidSpec, "%v", err)
		return nil
	}
	for name, err := range res.Errors {
		left[name] = err.Error()
	}
	failed := map[string]bool{}
	for name, cc := range res.Consumers {
		if _, err := r.Provisioner.EnsureConsumer(ctx, res.Stream.Name, cc); err != nil {
			failed[name] = true
			left[name] = err.Error()
			errs = append(errs, fmt.Errorf("subscription %s: %w", name, err))
		}
	}
	if len(failed) > 0 {
		res.Plan.Subscriptions = slices.DeleteFunc(res.Plan.Subscriptions, func(sp plan.SubscriptionPlan) bool { return failed[sp.Name] })
	}
	if err := r.Provisioner.PutPlan(ctx, &res.Plan); err != nil {
		st.conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonNATSError, "%v", err)
		return errors.Join(append(errs, err)...)
	}
	if err := r.Provisioner.PruneConsumers(ctx, res.Stream.Name, keep); err != nil {
		errs = append(errs, err)
	}
	t.Status.Subscriptions = int32(len(res.Plan.Subscriptions))
	if len(errs) > 0 {
		st.conds.setFalse(v1alpha1.ConditionPlanPublished, v1alpha1.ReasonNATSError, "%v", errors.Join(errs...))
		return errors.Join(errs...)
	}
	msg := fmt.Sprintf("plan holds %d Subscription(s)", len(res.Plan.Subscriptions))
	if len(left) > 0 {
		names := slices.Sorted(maps.Keys(left))
		parts := make([]string, 0, len(names))
		for _, n := range names {
			parts = append(parts, n+": "+left[n])
		}
		msg += fmt.Sprintf("; %d left out until fixed (%s)", len(left), strings.Join(parts, "; "))
	}
	st.conds.setTrue(v1alpha1.ConditionPlanPublished, "%s", msg)
	return nil
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
	return removeFinalizer(ctx, r.Client, t)
}

// SetupWithManager registers the reconciler: Topics, their owned dispatcher
// objects, and their Subscriptions (whose changes change the plan).
func (r *TopicReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("topic").
		For(&v1alpha1.Topic{}, builder.WithPredicates(specOrLifecycleChanged())).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Watches(&v1alpha1.Subscription{},
			handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
				s := o.(*v1alpha1.Subscription)
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Topic}}}
			}),
			builder.WithPredicates(subscriptionPlanChanged())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers}).
		Complete(r)
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
