package controllers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
	"github.com/herald-dev/herald/resolve"
)

// figuresRefresher keeps the figures NATS reports in the objects' status
// fresh without reconciling every object: every RefreshInterval it reads
// every stream (a few paged requests), every consumer of the streams of
// Topics with Subscriptions (one paged request per stream) and, when the
// counter stream changed, every dead-letter counter (one ordered
// consumer), and, when the catalog bucket changed, every Topic's event type
// catalog, compares them with the cached objects' status and wakes the
// reconciler of exactly the objects whose figures differ: a Topic's
// status.stream and status.eventTypes, a Subscription's status.consumer
// and status.deadLetters.
// It also wakes a Topic whose stream is gone or holds another number of
// consumers than the last provision.Apply left (drift repair). Objects
// being deleted, stalled or not yet reconciled at their generation are
// left to their own reconciles.
type figuresRefresher struct {
	client   client.Reader
	prov     *provision.Provisioner
	interval time.Duration
	// topics and subs receive the objects to reconcile.
	topics, subs chan<- event.GenericEvent

	// counterState is the counter stream's last sequence and message count
	// when counters was read.
	counterState [2]uint64
	counters     map[string]provision.DeadLetters
	// catalogState is the catalog bucket's stream's last sequence and
	// message count when catalogs was read.
	catalogState [2]uint64
	catalogs     map[string][]plan.CatalogEntry
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the
// leader's reconcilers act on what it sends.
func (f *figuresRefresher) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (f *figuresRefresher) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("refresh")
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		topics, subs, err := f.stale(ctx)
		if err != nil {
			logger.Error(err, "refresh NATS figures")
		}
		if !f.send(ctx, f.topics, topics, func(k types.NamespacedName) client.Object {
			return &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
		}) || !f.send(ctx, f.subs, subs, func(k types.NamespacedName) client.Object {
			return &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
		}) {
			return nil
		}
	}
}

func (f *figuresRefresher) send(ctx context.Context, ch chan<- event.GenericEvent, keys []types.NamespacedName, obj func(types.NamespacedName) client.Object) bool {
	for _, k := range keys {
		select {
		case ch <- event.GenericEvent{Object: obj(k)}:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// stale returns the Topics and Subscriptions whose status figures differ
// from what NATS reports now. On an error it returns what it found before.
func (f *figuresRefresher) stale(ctx context.Context) (topics, subs []types.NamespacedName, err error) {
	streams, err := f.prov.Streams(ctx)
	if err != nil {
		return nil, nil, err
	}
	if cs := streams[plan.CounterStream]; cs != nil {
		state := [2]uint64{cs.State.LastSeq, cs.State.Msgs}
		if f.counters == nil || state != f.counterState {
			counters := map[string]provision.DeadLetters{}
			if cs.State.Msgs > 0 {
				if counters, err = f.prov.DeadLetterCounts(ctx); err != nil {
					return nil, nil, err
				}
			}
			f.counters, f.counterState = counters, state
		}
	}

	if cs := streams["KV_"+plan.CatalogBucket]; cs != nil {
		state := [2]uint64{cs.State.LastSeq, cs.State.Msgs}
		if f.catalogs == nil || state != f.catalogState {
			catalogs := map[string][]plan.CatalogEntry{}
			if cs.State.Msgs > 0 {
				if catalogs, err = f.prov.Catalogs(ctx); err != nil {
					return nil, nil, err
				}
			}
			f.catalogs, f.catalogState = catalogs, state
		}
	}

	var tl v1alpha1.TopicList
	if err := f.client.List(ctx, &tl, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	var sl v1alpha1.SubscriptionList
	if err := f.client.List(ctx, &sl, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, err
	}
	byTopic := map[types.NamespacedName][]*v1alpha1.Subscription{}
	for i := range sl.Items {
		s := &sl.Items[i]
		if settled(s, s.Status.Conditions, s.Status.ObservedGeneration) && s.Status.DeadLetters != nil {
			k := types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Topic}
			byTopic[k] = append(byTopic[k], s)
		}
	}
	for i := range tl.Items {
		t := &tl.Items[i]
		if !settled(t, t.Status.Conditions, t.Status.ObservedGeneration) {
			continue
		}
		key := client.ObjectKeyFromObject(t)
		info := streams[plan.StreamName(t.Namespace, t.Name)]
		if info == nil {
			if t.Status.Stream != nil {
				topics = append(topics, key)
			}
			continue
		}
		if inSync, known := f.prov.InSync(info); (known && !inSync) || !streamFiguresEqual(t.Status.Stream, info) ||
			(f.catalogs != nil && !catalogEqual(t, f.catalogs[t.Namespace+"/"+t.Name])) {
			topics = append(topics, key)
		}
		mine := byTopic[key]
		if len(mine) == 0 {
			continue
		}
		consumers, err := f.prov.Consumers(ctx, info.Config.Name)
		if err != nil {
			return topics, subs, err
		}
		for _, s := range mine {
			var infos []*jetstream.ConsumerInfo
			for _, c := range subscriptionConsumers(s) {
				infos = append(infos, consumers[c])
			}
			if !subscriptionFiguresEqual(s, infos, f.counters[plan.DeadLetterCounter(s.Namespace, s.Spec.Topic, s.Name)]) {
				subs = append(subs, client.ObjectKeyFromObject(s))
			}
		}
	}
	return topics, subs, nil
}

// settled reports whether obj is reconciled at its generation, not being
// deleted and not stalled: its figures are the refresher's to watch.
func settled(obj client.Object, conds []metav1.Condition, observed int64) bool {
	return obj.GetDeletionTimestamp().IsZero() && observed == obj.GetGeneration() &&
		!meta.IsStatusConditionTrue(conds, v1alpha1.ConditionStalled)
}

// streamFiguresEqual reports whether st is what TopicReconciler.streamStatus
// records for info.
func streamFiguresEqual(st *v1alpha1.StreamStatus, info *jetstream.StreamInfo) bool {
	return st != nil && st.Name == info.Config.Name && st.Messages == info.State.Msgs &&
		st.Bytes == info.State.Bytes && st.LastSequence == info.State.LastSeq
}

// subscriptionFiguresEqual reports whether s's status.consumer and
// status.deadLetters are what SubscriptionReconciler.reconcileConsumer
// records for infos (subscriptionConsumers'; the first nil: no consumer)
// and dl. Times compare at the
// second, the precision the status keeps.
func subscriptionFiguresEqual(s *v1alpha1.Subscription, infos []*jetstream.ConsumerInfo, dl provision.DeadLetters) bool {
	want := consumerStatus(infos...)
	have := s.Status.Consumer
	if (want == nil) != (have == nil) || (want != nil && *want != *have) {
		return false
	}
	d := s.Status.DeadLetters
	if d == nil || d.Count != dl.Count || (d.LastTime == nil) != dl.Last.IsZero() {
		return false
	}
	return d.LastTime == nil || d.LastTime.Unix() == dl.Last.Unix()
}

// refersToUnwatched reports whether a Destination of s, or its Topic's
// dead-letter sink it inherits, refers to a kind other than a Service or a
// Topic: the reconcilers do not watch those, so the Subscription is
// resolved again every RefreshInterval.
func refersToUnwatched(t *v1alpha1.Topic, s *v1alpha1.Subscription) bool {
	_, dls := resolve.DeadLetterSink(t, s)
	for _, d := range []*v1alpha1.Destination{&s.Spec.Subscriber, s.Spec.Reply, dls} {
		if d == nil || d.Ref == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(d.Ref.APIVersion)
		switch {
		case err != nil: // never resolves: only a spec change helps
		case gv.Group == "" && d.Ref.Kind == "Service":
		case gv.Group == v1alpha1.GroupVersion.Group && d.Ref.Kind == "Topic":
		default:
			return true
		}
	}
	return false
}
