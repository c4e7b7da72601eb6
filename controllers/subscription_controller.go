package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
	"github.com/herald-dev/herald/resolve"
)

// SubscriptionReconciler reports on a Subscription: its Topic, its resolved
// Destinations, whether its consumer and plan entry exist at its current
// generation, and its consumer's lag. The Topic reconciler writes the
// consumer and the plan; the Subscription's changes reach it through its
// watch on Subscriptions. On deletion it deletes the consumer; the deletion
// makes the Topic republish its plan without the Subscription.
type SubscriptionReconciler struct {
	Client      client.Client
	Provisioner *provision.Provisioner
	Resolver    *Resolver
	Recorder    events.EventRecorder
	Config      Config
	// PlanChanged, when set, carries the Subscriptions whose entry in their
	// Topic's plan the Topic reconciler changed (TopicReconciler.PlanChanged).
	PlanChanged <-chan event.GenericEvent
	// Refresh, when set, carries the Subscriptions whose consumer lag or
	// dead-letter count changed (figuresRefresher).
	Refresh <-chan event.GenericEvent
}

// subscriptionState carries what one reconcile's steps learn for the next.
type subscriptionState struct {
	conds conditions
	topic *v1alpha1.Topic
	rs    compiler.ResolvedSubscription
	// resolved is true when every Destination resolved.
	resolved bool
}

// Reconcile implements reconcile.Reconciler.
func (r *SubscriptionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, r.Client, r.Recorder, req, &v1alpha1.Subscription{}, kind[*v1alpha1.Subscription]{
		status: func(s *v1alpha1.Subscription) (*[]metav1.Condition, *int64) {
			return &s.Status.Conditions, &s.Status.ObservedGeneration
		},
		finalize: r.finalize,
		steps: func(s *v1alpha1.Subscription, conds conditions) steps {
			st := &subscriptionState{conds: conds}
			return steps{
				run: []step{
					func(ctx context.Context) error { return r.reconcileTopic(ctx, s, st) },
					func(ctx context.Context) error { return r.reconcileDestinations(ctx, s, st) },
					func(ctx context.Context) error { return r.reconcileConsumer(ctx, s, st) },
				},
				ready: []string{v1alpha1.ConditionTopicReady, v1alpha1.ConditionSubscriberResolved, v1alpha1.ConditionConsumerReady},
				message: func() string {
					if s.Spec.Mode == v1alpha1.ModePull {
						return fmt.Sprintf("consumers pull at /%s/%s/subscriptions/%s:pull on the Topic's address", s.Namespace, s.Spec.Topic, s.Name)
					}
					return fmt.Sprintf("delivering to %s", s.Status.SubscriberURI)
				},
				// The figuresRefresher wakes it when its lag or dead
				// letters change; kinds not watched resolve again.
				refresh: func() time.Duration {
					if refersToUnwatched(st.topic, s) {
						return r.Config.RefreshInterval
					}
					return r.Config.ResyncInterval
				},
			}
		},
	})
}

// reconcileTopic finds the Subscription's Topic and says whether it is Ready.
func (r *SubscriptionReconciler) reconcileTopic(ctx context.Context, s *v1alpha1.Subscription, st *subscriptionState) error {
	name := s.Namespace + "/" + s.Spec.Topic
	t := &v1alpha1.Topic{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: s.Spec.Topic}, t)
	switch {
	case apierrors.IsNotFound(err):
		st.conds.setFalse(v1alpha1.ConditionTopicReady, v1alpha1.ReasonNotFound, "Topic %s not found", name)
		return nil
	case err != nil:
		st.conds.setFalse(v1alpha1.ConditionTopicReady, v1alpha1.ReasonProgressing, "get Topic %s: %v", name, err)
		return err
	case !t.DeletionTimestamp.IsZero():
		st.conds.setFalse(v1alpha1.ConditionTopicReady, v1alpha1.ReasonNotFound, "Topic %s is being deleted", name)
		return nil
	}
	st.topic = t
	reconcileTypesDeclared(s, t, st.conds)
	ready := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionReady)
	switch {
	case ready == nil || t.Status.ObservedGeneration != t.Generation:
		st.conds.setFalse(v1alpha1.ConditionTopicReady, v1alpha1.ReasonNotReady, "Topic %s is not reconciled yet", name)
	case ready.Status != metav1.ConditionTrue:
		st.conds.setFalse(v1alpha1.ConditionTopicReady, v1alpha1.ReasonNotReady, "Topic %s is not ready: %s", name, ready.Message)
	default:
		st.conds.setTrue(v1alpha1.ConditionTopicReady, "Topic %s is ready", name)
	}
	return nil
}

// reconcileDestinations resolves the subscriber, reply and dead-letter sink.
func (r *SubscriptionReconciler) reconcileDestinations(ctx context.Context, s *v1alpha1.Subscription, st *subscriptionState) error {
	rs, err := resolve.Subscription(ctx, r.Resolver, st.topic, s)
	st.rs = rs
	s.Status.SubscriberURI = rs.SubscriberURI
	s.Status.ReplyURI = rs.ReplyURI
	s.Status.DeadLetterSinkURI = rs.DeadLetterURI
	var re *resolve.Error
	switch {
	case errors.As(err, &re):
		st.conds.setFalse(v1alpha1.ConditionSubscriberResolved, re.Reason, "%s", re.Message)
		// Services and Topics are watched; other kinds are not. The
		// consumer step still runs and reports the rest of the spec.
		return &Waiting{Reason: re.Reason, Err: err, RequeueAfter: r.Config.RefreshInterval}
	case err != nil:
		st.conds.setFalse(v1alpha1.ConditionSubscriberResolved, v1alpha1.ReasonProgressing, "%v", err)
		return err
	}
	st.resolved = true
	if s.Spec.Mode == v1alpha1.ModePull {
		st.conds.setTrue(v1alpha1.ConditionSubscriberResolved, "pull Subscription: consumers fetch over HTTP")
		return nil
	}
	st.conds.setTrue(v1alpha1.ConditionSubscriberResolved, "subscriber resolved to %s", rs.SubscriberURI)
	return nil
}

// unresolvedURI is compiled in place of a subscriber that does not resolve
// yet, so the rest of the spec (filters, durations) is still checked and its
// errors reported. It never reaches a plan: the Topic leaves unresolved
// Subscriptions out. The .invalid domain cannot resolve (RFC 2606).
const unresolvedURI = "http://unresolved.invalid"

// reconcileConsumer checks that the spec compiles, then that the Topic has
// created the consumer and published the current generation in its plan,
// and records the consumer's lag.
func (r *SubscriptionReconciler) reconcileConsumer(ctx context.Context, s *v1alpha1.Subscription, st *subscriptionState) error {
	// The same pure compiler as the Topic's: an error here is the error
	// that keeps the Subscription out of the plan.
	topic := st.topic
	if topic == nil {
		topic = &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Spec.Topic}}
	}
	rs := st.rs
	rs.ConsumeMode = r.Config.DefaultPublishMode
	if rs.SubscriberURI == "" && s.Spec.Mode != v1alpha1.ModePull {
		rs.SubscriberURI = unresolvedURI
	}
	if _, _, err := compiler.CompileSubscription(topic, rs); err != nil {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonInvalidSpec, "%v", err)
		return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: err}
	}
	if st.topic == nil {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonProgressing, "waiting for Topic %s/%s", s.Namespace, s.Spec.Topic)
		s.Status.Consumer = nil
		return &Waiting{Reason: v1alpha1.ReasonProgressing, Err: fmt.Errorf("waiting for Topic %s/%s", s.Namespace, s.Spec.Topic)}
	}
	stream := plan.StreamName(s.Namespace, s.Spec.Topic)
	var infos []*jetstream.ConsumerInfo
	for _, consumer := range subscriptionConsumers(s) {
		info, err := r.Provisioner.ConsumerInfo(ctx, stream, consumer)
		if err != nil {
			st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonNATSError, "consumer %s: %v", consumer, err)
			return err
		}
		infos = append(infos, info)
	}
	info, consumer := infos[0], plan.ConsumerName(s.Name)
	s.Status.Consumer = consumerStatus(infos...)
	count, last, err := r.Provisioner.DeadLetterCount(ctx, s.Namespace, s.Spec.Topic, s.Name)
	if err != nil {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonNATSError, "dead-letter count: %v", err)
		return err
	}
	s.Status.DeadLetters = &v1alpha1.DeadLetterStatus{Count: count}
	if !last.IsZero() {
		s.Status.DeadLetters.LastTime = &metav1.Time{Time: last}
	}
	if !st.resolved {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonProgressing, "left out of the plan until every destination resolves")
		return &Waiting{Reason: v1alpha1.ReasonProgressing, Err: errors.New("left out of the plan until every destination resolves")}
	}
	// Only a Ready Topic is polled: a Topic turning Ready triggers this
	// reconcile through the watch on Topics, a Topic that is not Ready
	// would be polled in vain.
	poll := meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionTopicReady)
	if info == nil {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonProgressing, "waiting for Topic %s/%s to create consumer %s", s.Namespace, s.Spec.Topic, consumer)
		return r.waitForTopic(poll, "waiting for Topic %s/%s to create consumer %s", s.Namespace, s.Spec.Topic, consumer)
	}
	tp, err := r.Provisioner.GetPlan(ctx, s.Namespace, s.Spec.Topic)
	if err != nil {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonNATSError, "%v", err)
		return err
	}
	if !planHas(tp, s) {
		st.conds.setFalse(v1alpha1.ConditionConsumerReady, v1alpha1.ReasonProgressing,
			"waiting for Topic %s/%s to publish generation %d in its plan", s.Namespace, s.Spec.Topic, s.Generation)
		return r.waitForTopic(poll, "waiting for Topic %s/%s to publish generation %d in its plan", s.Namespace, s.Spec.Topic, s.Generation)
	}
	st.conds.setTrue(v1alpha1.ConditionConsumerReady, "consumer %s is in the plan", consumer)
	return nil
}

// waitForTopic is a *Waiting for the Topic reconciler's work, polled every
// ProgressInterval when poll is set.
func (r *SubscriptionReconciler) waitForTopic(poll bool, format string, args ...any) error {
	w := &Waiting{Reason: v1alpha1.ReasonProgressing, Err: fmt.Errorf(format, args...)}
	if poll {
		w.RequeueAfter = r.Config.ProgressInterval
	}
	return w
}

// planHas reports whether tp delivers s at its current generation and URIs.
func planHas(tp *plan.TopicPlan, s *v1alpha1.Subscription) bool {
	if tp == nil {
		return false
	}
	for _, sp := range tp.Subscriptions {
		if sp.Name == s.Name {
			return sp.Generation == s.Generation &&
				sp.SubscriberURI == s.Status.SubscriberURI &&
				sp.ReplyURI == s.Status.ReplyURI &&
				sp.DeadLetterURI == s.Status.DeadLetterSinkURI
		}
	}
	return false
}

// finalize deletes the Subscription's consumers (its priority lanes'
// too). The Topic reconciler sees
// the deletion through its watch and publishes the plan without it.
func (r *SubscriptionReconciler) finalize(ctx context.Context, s *v1alpha1.Subscription) error {
	if !controllerutil.ContainsFinalizer(s, v1alpha1.Finalizer) {
		return nil
	}
	for _, l := range plan.Lanes {
		if err := r.Provisioner.DeleteConsumer(ctx, plan.StreamName(s.Namespace, s.Spec.Topic), plan.LaneConsumer(plan.ConsumerName(s.Name), l)); err != nil {
			return err
		}
	}
	if err := r.Provisioner.ResetDeadLetterCount(ctx, s.Namespace, s.Spec.Topic, s.Name); err != nil {
		return err
	}
	log.FromContext(ctx).V(1).Info("deleted consumer", "consumer", plan.ConsumerName(s.Name))
	return removeFinalizer(ctx, r.Client, s)
}

// SetupWithManager registers the reconciler: Subscriptions, the Topics
// and Services their Destinations (or their Topic's dead-letter sink) refer
// to, their own Topic when what they read of it changed, and the changes of
// their entries in the published plans (PlanChanged).
func (r *SubscriptionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	c := mgr.GetClient()
	b := ctrl.NewControllerManagedBy(mgr).
		Named("subscription").
		For(&v1alpha1.Subscription{}, builder.WithPredicates(specOrLifecycleChanged())).
		Watches(&v1alpha1.Topic{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			reqs, err := subscriptionsOfTopic(ctx, c, o.GetNamespace(), o.GetName())
			if err != nil {
				log.FromContext(ctx).Error(err, "map Topic to Subscriptions")
			}
			return append(reqs, r.referring(ctx, refKey("Topic", o.GetNamespace(), o.GetName()))...)
		}), builder.WithPredicates(topicChangedForSubscriptions())).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.referring(ctx, refKey("Service", o.GetNamespace(), o.GetName()))
		})).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers})
	if r.PlanChanged != nil {
		b = b.WatchesRawSource(source.Channel(r.PlanChanged, &handler.EnqueueRequestForObject{}))
	}
	if r.Refresh != nil {
		b = b.WatchesRawSource(source.Channel(r.Refresh, &handler.EnqueueRequestForObject{}))
	}
	return b.Complete(traced("subscription", r.Config.TracerProvider, r))
}

// topicChangedForSubscriptions passes the Topic events that change what
// Subscriptions read of a Topic: creation, deletion, a new generation (the
// delivery defaults, the dead-letter sink), the start of deletion, a new
// observedGeneration, Ready's status, reason or message, and the address
// (of a Topic that is a Destination). The Topic's other status updates,
// such as its stream's size or its plan's Subscription count, do not: a
// Topic of k Subscriptions would wake all k each time one of them is added.
func topicChangedForSubscriptions() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.Topic)
			n, ok2 := e.ObjectNew.(*v1alpha1.Topic)
			if !ok1 || !ok2 {
				return true
			}
			or := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
			nr := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady)
			readyChanged := (or == nil) != (nr == nil) ||
				(or != nil && (or.Status != nr.Status || or.Reason != nr.Reason || or.Message != nr.Message))
			return o.Generation != n.Generation ||
				!o.DeletionTimestamp.Equal(n.DeletionTimestamp) ||
				o.Status.ObservedGeneration != n.Status.ObservedGeneration ||
				readyChanged ||
				!equality.Semantic.DeepEqual(o.Status.Address, n.Status.Address)
		},
	}
}

// referring lists the Subscriptions whose Destinations refer to key, and
// those of Topics whose dead-letter sink refers to it.
func (r *SubscriptionReconciler) referring(ctx context.Context, key string) []reconcile.Request {
	logger := log.FromContext(ctx)
	var subs v1alpha1.SubscriptionList
	if err := r.Client.List(ctx, &subs, client.MatchingFields{indexDestinations: key}); err != nil {
		logger.Error(err, "list Subscriptions referring to", "ref", key)
		return nil
	}
	var reqs []reconcile.Request
	for _, s := range subs.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}})
	}
	var topics v1alpha1.TopicList
	if err := r.Client.List(ctx, &topics, client.MatchingFields{indexDestinations: key}); err != nil {
		logger.Error(err, "list Topics referring to", "ref", key)
		return reqs
	}
	for _, t := range topics.Items {
		more, err := subscriptionsOfTopic(ctx, r.Client, t.Namespace, t.Name)
		if err != nil {
			logger.Error(err, "map Topic to Subscriptions", "topic", t.Name)
		}
		reqs = append(reqs, more...)
	}
	return reqs
}
