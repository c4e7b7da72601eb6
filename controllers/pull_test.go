package controllers_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// TestPullSubscription: the operator compiles a pull Subscription into a
// plan entry in pull mode with its ack deadline and consumers, and a
// consumer whose AckWait is the ack deadline; the Subscription turns Ready
// without a subscriber.
func TestPullSubscription(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "jobs")
	sub := &v1alpha1.Subscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workers"},
		Spec: v1alpha1.SubscriptionSpec{
			Topic:     "jobs",
			Mode:      v1alpha1.ModePull,
			Pull:      &v1alpha1.Pull{AckDeadline: ptr.To(v1alpha1.Duration("PT45S"))},
			Consumers: []v1alpha1.Publisher{{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "worker"}}},
		},
	}
	create(t, sub)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "subscriptions/workers:pull")
	})
	wantKStatus(t, sub, status.CurrentStatus)
	if sub.Status.SubscriberURI != "" {
		t.Errorf("subscriberUri %q, want none", sub.Status.SubscriberURI)
	}
	sp, err := planEntry(ns, "jobs", "workers")
	if err != nil || sp == nil {
		t.Fatalf("plan entry %v, %v", sp, err)
	}
	if !sp.IsPull() || sp.AckDeadline.Duration() != 45*time.Second || sp.Consume == nil ||
		sp.Consume.Source != compiler.ConsumerSource || sp.Consume.Rules[0].Subjects[0] != plan.ServiceAccountSubject(ns, "worker") {
		t.Errorf("plan entry %+v, consume %+v", sp, sp.Consume)
	}
	info, err := prov.ConsumerInfo(ctx, plan.StreamName(ns, "jobs"), plan.ConsumerName("workers"))
	if err != nil || info == nil {
		t.Fatalf("consumer %v, %v", info, err)
	}
	if info.Config.AckWait != 45*time.Second || info.Config.MaxAckPending != compiler.PullMaxAckPending {
		t.Errorf("consumer AckWait %v MaxAckPending %d, want 45s and %d", info.Config.AckWait, info.Config.MaxAckPending, compiler.PullMaxAckPending)
	}
}
