package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/provision"
	"github.com/herald-dev/herald/replay"
	"github.com/herald-dev/herald/resolve"
)

// replayStepDelay is how soon a running Replay takes its next step.
const replayStepDelay = 50 * time.Millisecond

// ReplayReconciler carries out Replays: once its Subscription is Ready, each
// reconcile hands the next events to it (replay.Advance) and records the
// progress in the Replay's status, so a restarted manager resumes where it
// stopped; Complete and Ready turn True when every selected event was handed
// over. Deleting a Replay stops it: there is no next step.
type ReplayReconciler struct {
	Client client.Client
	// APIReader reads a Replay's progress past the cache, which may not
	// hold the previous step's status yet.
	APIReader   client.Reader
	Provisioner *provision.Provisioner
	Recorder    events.EventRecorder
	Config      Config
}

// Reconcile implements reconcile.Reconciler.
func (r *ReplayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, r.Client, r.Recorder, req, &v1alpha1.Replay{}, kind[*v1alpha1.Replay]{
		status: func(rp *v1alpha1.Replay) (*[]metav1.Condition, *int64) {
			return &rp.Status.Conditions, &rp.Status.ObservedGeneration
		},
		steps: func(rp *v1alpha1.Replay, conds conditions) steps {
			return steps{
				run:   []step{func(ctx context.Context) error { return r.reconcileReplay(ctx, rp, conds) }},
				ready: []string{v1alpha1.ConditionComplete},
				message: func() string {
					return fmt.Sprintf("replayed %d events to Subscription %s", rp.Status.Replayed, rp.Spec.Subscription)
				},
			}
		},
	})
}

// reconcileReplay takes one step of rp and owns its Complete condition.
func (r *ReplayReconciler) reconcileReplay(ctx context.Context, rp *v1alpha1.Replay, conds conditions) error {
	if rp.Status.CompletionTime != nil {
		conds.setTrue(v1alpha1.ConditionComplete, "replayed %d events in %s", rp.Status.Replayed, replay.Elapsed(rp).Round(time.Millisecond))
		return nil
	}
	name := rp.Namespace + "/" + rp.Spec.Subscription
	sub := &v1alpha1.Subscription{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: rp.Namespace, Name: rp.Spec.Subscription}, sub)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && !sub.DeletionTimestamp.IsZero()):
		conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonNotFound, "Subscription %s not found", name)
		return &Waiting{Reason: v1alpha1.ReasonNotFound, Err: fmt.Errorf("subscription %s not found", name), RequeueAfter: r.Config.ProgressInterval}
	case err != nil:
		conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonProgressing, "get Subscription %s: %v", name, err)
		return err
	}
	// Copies go to the Subscription's redelivery subject: its consumer must
	// exist and read it before the first one is published.
	if !meta.IsStatusConditionTrue(sub.Status.Conditions, v1alpha1.ConditionConsumerReady) || sub.Status.ObservedGeneration != sub.Generation {
		conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonNotReady, "waiting for Subscription %s to be ready", name)
		return &Waiting{Reason: v1alpha1.ReasonNotReady, Err: fmt.Errorf("waiting for Subscription %s", name), RequeueAfter: r.Config.ProgressInterval}
	}
	t := replay.NewTarget(rp.Namespace, sub.Spec.Topic, sub.Name)
	if rp.Spec.From.DeadLetters != nil {
		topic := &v1alpha1.Topic{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: rp.Namespace, Name: sub.Spec.Topic}, topic); err != nil {
			topic = nil
		}
		if _, err := replay.SelectionFor(rp.Spec.From.DeadLetters); err != nil {
			conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonInvalidSpec, "spec.from.%v", err)
			return &Stalling{Reason: v1alpha1.ReasonInvalidSpec, Err: fmt.Errorf("spec.from.%w", err)}
		}
		t.DeadLetterTopic = resolve.DeadLetterTopic(topic, sub)
		if t.DeadLetterTopic == "" {
			// The Subscription's spec must change, which is not watched:
			// look again now and then.
			err := fmt.Errorf("subscription %s has no dead-letter Topic: its delivery.deadLetterSink (or its Topic's) must be a ref to a Topic", name)
			conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonNotAddressable, "%v", err)
			return &Waiting{Reason: v1alpha1.ReasonNotAddressable, Err: err, RequeueAfter: r.Config.RefreshInterval}
		}
	}
	if r.APIReader != nil {
		live := &v1alpha1.Replay{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(rp), live); err != nil {
			conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonProgressing, "get Replay: %v", err)
			return client.IgnoreNotFound(err)
		}
		if live.UID == rp.UID {
			progress(&rp.Status, &live.Status)
		}
	}
	done, err := replay.Advance(ctx, r.Provisioner.JetStream(), rp, t)
	if err != nil {
		conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonNATSError, "replayed %d events, then: %v", rp.Status.Replayed, err)
		return &Generic{Reason: v1alpha1.ReasonNATSError, Err: err}
	}
	if done {
		conds.setTrue(v1alpha1.ConditionComplete, "replayed %d events in %s", rp.Status.Replayed, replay.Elapsed(rp).Round(time.Millisecond))
		return nil
	}
	conds.setFalse(v1alpha1.ConditionComplete, v1alpha1.ReasonReplaying, "replayed %d events; at sequence %d of %d",
		rp.Status.Replayed, rp.Status.Position, rp.Status.UntilSequence)
	return &Waiting{Reason: v1alpha1.ReasonReplaying, Err: errors.New("replaying"), RequeueAfter: replayStepDelay}
}

// progress copies the progress of a Replay (bounds, position, counts,
// times) from src to dst.
func progress(dst, src *v1alpha1.ReplayStatus) {
	dst.Topic, dst.FromSequence, dst.UntilSequence = src.Topic, src.FromSequence, src.UntilSequence
	dst.Position, dst.Replayed = src.Position, src.Replayed
	dst.StartTime, dst.CompletionTime = src.StartTime, src.CompletionTime
}

// SetupWithManager registers the reconciler with mgr.
func (r *ReplayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("replay").
		For(&v1alpha1.Replay{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Config.Workers}).
		Complete(traced("replay", r.Config.TracerProvider, r))
}
