package controllers

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// step is one sub-reconciler: it sets its own condition and returns nil, a
// *Stalling, a *Waiting or a *Generic error (any other error counts as a
// *Generic).
type step func(ctx context.Context) error

// steps is one reconcile of an object: its sub-reconcilers and how their
// conditions summarise.
type steps struct {
	// run holds the sub-reconcilers, in order.
	run []step
	// independent runs every step even after one failed transiently, for
	// steps that do not need each other's work.
	independent bool
	// ready are the conditions Ready summarises, in order; message returns
	// Ready's message when all of them hold.
	ready   []string
	message func() string
	// refresh, when set, returns how long after a reconcile in which every
	// step succeeded the object is requeued; zero does not requeue. It is
	// called after the steps ran.
	refresh func() time.Duration
}

// kind is what reconcileObject needs to know of a reconciled kind.
type kind[T client.Object] struct {
	// status returns obj's conditions and observedGeneration.
	status func(obj T) (*[]metav1.Condition, *int64)
	// finalize runs when obj is being deleted; when set, every other
	// reconcile ensures v1alpha1.Finalizer first. Nil: the kind has no
	// finalizer and deletion needs nothing.
	finalize func(ctx context.Context, obj T) error
	// steps returns the steps of one reconcile of obj, which set its
	// conditions through conds.
	steps func(obj T, conds conditions) steps
}

// reconcileObject is the reconcile every kind shares: Get (a missing object
// is done), the deletion branch, the finalizer, then the ordered steps. A
// deferred summary turns the steps' errors into the Stalled condition
// (*Stalling), sets Ready from the steps' conditions and observedGeneration,
// records an Event when Ready changes, patches the status once when it
// changed, and decides the result: *Generic errors are returned (retried
// with backoff), otherwise the object is requeued, with up to 10% jitter,
// after the shortest *Waiting delay, or after the refresh interval when
// every step succeeded. A *Stalling step is not requeued.
func reconcileObject[T client.Object](ctx context.Context, c client.Client, rec events.EventRecorder, req ctrl.Request, obj T, k kind[T]) (result ctrl.Result, retErr error) {
	if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		if k.finalize == nil {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, k.finalize(ctx, obj)
	}
	if k.finalize != nil {
		if err := ensureFinalizer(ctx, c, obj); err != nil {
			return ctrl.Result{}, err
		}
	}

	orig := obj.DeepCopyObject().(T)
	list, observed := k.status(obj)
	conds := conditions{list: list, generation: obj.GetGeneration()}
	s := k.steps(obj, conds)
	var errs []error
	defer func() {
		out := summarize(errs)
		if len(out.stalled) == 0 {
			conds.stalled(false, "")
		} else {
			reason := cmp.Or(out.stalled[0].Reason, v1alpha1.ReasonInvalidSpec)
			conds.set(v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, "%s", out.stalledMessage())
		}
		conds.summarize(s.message(), s.ready...)
		*observed = obj.GetGeneration()
		before, _ := k.status(orig)
		recordTransition(rec, obj, *before, *list)
		if err := patchStatus(ctx, c, orig, obj, !equality.Semantic.DeepEqual(orig, obj)); err != nil {
			out.retry = append(out.retry, err)
		}
		retErr = errors.Join(out.retry...)
		requeue := out.requeue
		if len(errs) == 0 && s.refresh != nil {
			requeue.after(s.refresh())
		}
		if retErr == nil && requeue > 0 {
			result.RequeueAfter = jitter(time.Duration(requeue))
		}
	}()

	for _, run := range s.run {
		err := run(ctx)
		if err == nil {
			continue
		}
		errs = append(errs, err)
		if !s.independent && isTransient(err) {
			break
		}
	}
	return ctrl.Result{}, nil
}

// outcome is what a reconcile's step errors add up to.
type outcome struct {
	stalled []*Stalling
	retry   []error
	requeue requeue
}

func summarize(errs []error) outcome {
	var out outcome
	for _, err := range leaves(errs) {
		var st *Stalling
		var w *Waiting
		switch {
		case errors.As(err, &st):
			out.stalled = append(out.stalled, st)
		case errors.As(err, &w):
			out.requeue.after(w.RequeueAfter)
		default:
			out.retry = append(out.retry, err)
		}
	}
	return out
}

func (o outcome) stalledMessage() string {
	msgs := make([]string, 0, len(o.stalled))
	for _, s := range o.stalled {
		msgs = append(msgs, s.Error())
	}
	return strings.Join(msgs, "; ")
}

// isTransient reports whether err is, or joins, an error that is neither a
// *Stalling nor a *Waiting.
func isTransient(err error) bool {
	for _, e := range leaves([]error{err}) {
		var st *Stalling
		var w *Waiting
		if !errors.As(e, &st) && !errors.As(e, &w) {
			return true
		}
	}
	return false
}

// leaves returns errs with every errors.Join unfolded.
func leaves(errs []error) []error {
	var out []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			out = append(out, leaves(j.Unwrap())...)
			continue
		}
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// jitter returns d plus up to 10% of it, so that objects requeued together
// spread out.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + rand.N(d/10+1)
}

// requeue holds the shortest positive delay asked for by a reconcile's steps.
type requeue time.Duration

func (r *requeue) after(d time.Duration) {
	if d > 0 && (*r == 0 || time.Duration(*r) > d) {
		*r = requeue(d)
	}
}
