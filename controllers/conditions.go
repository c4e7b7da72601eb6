package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Reasons of the Kubernetes Events the reconcilers record. A Ready condition
// turning False records a Warning with the condition's own reason (one of
// the v1alpha1 Reason constants).
const (
	// EventReasonReady: the object became Ready for the first time.
	EventReasonReady = "Ready"
	// EventReasonRecovered: the object became Ready again after it was not.
	EventReasonRecovered = "Recovered"
)

// eventAction is the action of every Event the reconcilers record.
const eventAction = "Reconcile"

// conditions edits the conditions of one object in one reconcile.
type conditions struct {
	list       *[]metav1.Condition
	generation int64
}

func (c conditions) set(typ string, status metav1.ConditionStatus, reason, format string, args ...any) {
	meta.SetStatusCondition(c.list, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            fmt.Sprintf(format, args...),
		ObservedGeneration: c.generation,
	})
}

func (c conditions) setTrue(typ, format string, args ...any) {
	c.set(typ, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, format, args...)
}

func (c conditions) setFalse(typ, reason, format string, args ...any) {
	c.set(typ, metav1.ConditionFalse, reason, format, args...)
}

// stalled sets or clears Stalled, which kstatus reads as Failed: the spec
// must change before Herald can make progress.
func (c conditions) stalled(stalled bool, message string) {
	if !stalled {
		meta.RemoveStatusCondition(c.list, v1alpha1.ConditionStalled)
		return
	}
	c.set(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "%s", message)
}

// summarize sets Ready from the given conditions, in order: True with
// message when all are True, else False with the reason and message of the
// first that is not, or of Stalled when it is set.
func (c conditions) summarize(message string, types ...string) {
	if s := meta.FindStatusCondition(*c.list, v1alpha1.ConditionStalled); s != nil && s.Status == metav1.ConditionTrue {
		c.setFalse(v1alpha1.ConditionReady, s.Reason, "%s", s.Message)
		return
	}
	for _, t := range types {
		cond := meta.FindStatusCondition(*c.list, t)
		if cond == nil {
			c.set(v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "%s not yet reconciled", t)
			return
		}
		if cond.Status != metav1.ConditionTrue {
			c.setFalse(v1alpha1.ConditionReady, cond.Reason, "%s", cond.Message)
			return
		}
	}
	c.setTrue(v1alpha1.ConditionReady, "%s", message)
}

// recordTransition records an Event when Ready changes: a Warning with the
// condition's reason when it turns False (or stays False for a new reason),
// except for waiting reasons (quiet); a Normal Ready when it turns True, or
// Recovered when a Warning preceded it. Nothing is recorded while nothing
// changes.
func recordTransition(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	if rec == nil {
		return
	}
	old := meta.FindStatusCondition(before, v1alpha1.ConditionReady)
	cur := meta.FindStatusCondition(after, v1alpha1.ConditionReady)
	if cur == nil {
		return
	}
	wasProblem := old != nil && old.Status == metav1.ConditionFalse && !quietReasons[old.Reason]
	switch cur.Status {
	case metav1.ConditionTrue:
		if old != nil && old.Status == metav1.ConditionTrue {
			return
		}
		reason := EventReasonReady
		if wasProblem {
			reason = EventReasonRecovered
		}
		rec.Eventf(obj, nil, corev1.EventTypeNormal, reason, eventAction, "%s", cur.Message)
	case metav1.ConditionFalse:
		if quietReasons[cur.Reason] || (wasProblem && old.Reason == cur.Reason) {
			return
		}
		rec.Eventf(obj, nil, corev1.EventTypeWarning, cur.Reason, eventAction, "%s", cur.Message)
	}
}

// quietReasons are the reasons of a Ready False that record no Warning:
// work under way, or waiting for a referenced object that reports its own
// problem.
var quietReasons = map[string]bool{
	v1alpha1.ReasonProgressing: true,
	v1alpha1.ReasonNotReady:    true,
}

// deploymentAvailability says whether a Deployment has its minimum
// available replicas; when not, whether it is still rolling out
// (Progressing) or stuck or degraded (DeploymentUnavailable), and a message.
func deploymentAvailability(d *appsv1.Deployment) (ok bool, reason, message string) {
	name := d.Namespace + "/" + d.Name
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	counts := fmt.Sprintf("Deployment %s has %d of %d replicas available", name, d.Status.AvailableReplicas, want)
	if d.Status.ObservedGeneration < d.Generation {
		return false, v1alpha1.ReasonProgressing, fmt.Sprintf("Deployment %s is rolling out generation %d", name, d.Generation)
	}
	var available, progressing *appsv1.DeploymentCondition
	for i := range d.Status.Conditions {
		switch c := &d.Status.Conditions[i]; c.Type {
		case appsv1.DeploymentAvailable:
			available = c
		case appsv1.DeploymentProgressing:
			progressing = c
		}
	}
	switch {
	case progressing != nil && progressing.Status == corev1.ConditionFalse:
		return false, v1alpha1.ReasonDeploymentUnavailable, fmt.Sprintf("%s: %s", counts, progressing.Message)
	case want == 0:
		return true, v1alpha1.ReasonSucceeded, fmt.Sprintf("Deployment %s is scaled to 0 replicas", name)
	case available != nil && available.Status == corev1.ConditionTrue:
		return true, v1alpha1.ReasonSucceeded, counts
	case progressing != nil && progressing.Reason == "NewReplicaSetAvailable":
		// The rollout completed before; replicas were lost since.
		return false, v1alpha1.ReasonDeploymentUnavailable, counts
	}
	return false, v1alpha1.ReasonProgressing, counts
}
