package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
)

// applyCounter is the manager's client, recording the kinds of the objects
// it applies.
type applyCounter struct {
	client.Client
	mu      sync.Mutex
	applied []string
}

func (c *applyCounter) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	var meta struct{ Kind string }
	if b, err := json.Marshal(obj); err == nil {
		_ = json.Unmarshal(b, &meta)
	}
	kind := meta.Kind
	c.mu.Lock()
	c.applied = append(c.applied, kind)
	c.mu.Unlock()
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *applyCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.applied
	c.applied = nil
	return out
}

// TestTopicReconcileIsIncremental runs a second Topic reconciler beside the
// manager's on a Ready Topic: a reconcile that finds nothing changed
// applies no owned object, a hand-edited Deployment is the only object
// applied again, and PlanChanged carries only the Subscriptions whose plan
// entry changed.
func TestTopicReconcileIsIncremental(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "inc")
	for _, name := range []string{"a", "b"} {
		s := newSubscription(ns, name, "inc", "http://"+name+".example")
		create(t, s)
		eventually(t, func() error {
			if err := get(s); err != nil {
				return err
			}
			return wantCondition(s.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
		})
	}

	c := &applyCounter{Client: mgrClient}
	changes := make(chan event.GenericEvent, 16)
	cfg := controllersConfig.WithDefaults()
	r := &controllers.TopicReconciler{
		Client: c, APIReader: k8s, Provisioner: prov,
		Resolver: &controllers.Resolver{Reader: mgrClient, ClusterDomain: cfg.ClusterDomain},
		Config:   cfg, PlanChanged: changes,
	}
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "inc"}}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	received := func() map[string]bool {
		out := map[string]bool{}
		for {
			select {
			case ev := <-changes:
				out[ev.Object.GetName()] = true
			default:
				return out
			}
		}
	}

	reconcile()
	if got := c.take(); len(got) != 5 {
		t.Errorf("first reconcile applied %v, want the 5 dispatcher objects", got)
	}
	if got := received(); !got["a"] || !got["b"] || len(got) != 2 {
		t.Errorf("first reconcile announced %v, want a and b", got)
	}
	reconcile()
	if got := c.take(); len(got) != 0 {
		t.Errorf("unchanged reconcile applied %v, want nothing", got)
	}
	if got := received(); len(got) != 0 {
		t.Errorf("unchanged reconcile announced %v, want nothing", got)
	}

	// A hand edit of the Deployment: only the Deployment is applied again
	// (once the cache has the edit).
	dep := withKey(&appsv1.Deployment{}, types.NamespacedName{Namespace: ns, Name: "inc-dispatcher"})
	update(t, dep, func(d *appsv1.Deployment) { d.Spec.Replicas = ptr.To[int32](4) })
	eventually(t, func() error {
		reconcile()
		got := c.take()
		for _, k := range got {
			if k != "Deployment" {
				t.Fatalf("after a Deployment edit the reconcile applied %v, want the Deployment only", got)
			}
		}
		if len(got) == 0 {
			return fmt.Errorf("deployment not applied again yet")
		}
		return nil
	})

	// A new generation of b: only b is announced.
	b := newSubscription(ns, "b", "inc", "")
	update(t, b, func(s *v1alpha1.Subscription) { s.Spec.Subscriber.URI = ptr.To("http://b2.example") })
	eventually(t, func() error {
		reconcile()
		got := received()
		if got["a"] || len(got) > 1 {
			t.Fatalf("announced %v after b changed, want b only", got)
		}
		if !got["b"] {
			return fmt.Errorf("b not announced yet")
		}
		return nil
	})
}

func TestTopicChangedForSubscriptions(t *testing.T) {
	ready := func(status metav1.ConditionStatus, msg string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: "R", Message: msg}}
	}
	base := func() *v1alpha1.Topic {
		return &v1alpha1.Topic{
			ObjectMeta: metav1.ObjectMeta{Name: "t", Generation: 1},
			Status: v1alpha1.TopicStatus{
				ObservedGeneration: 1, Conditions: ready(metav1.ConditionTrue, "ok"),
				Address: &v1alpha1.Addressable{URL: "http://t"}, Subscriptions: 3,
			},
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*v1alpha1.Topic)
		want   bool
	}{
		{"subscription count", func(t *v1alpha1.Topic) { t.Status.Subscriptions = 4 }, false},
		{"stream size", func(t *v1alpha1.Topic) { t.Status.Stream = &v1alpha1.StreamStatus{Messages: 9} }, false},
		{"other condition", func(t *v1alpha1.Topic) {
			t.Status.Conditions = append(t.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionPlanPublished, Status: metav1.ConditionTrue, Message: "plan holds 4"})
		}, false},
		{"generation", func(t *v1alpha1.Topic) { t.Generation = 2 }, true},
		{"observed generation", func(t *v1alpha1.Topic) { t.Status.ObservedGeneration = 0 }, true},
		{"ready status", func(t *v1alpha1.Topic) { t.Status.Conditions = ready(metav1.ConditionFalse, "ok") }, true},
		{"ready message", func(t *v1alpha1.Topic) { t.Status.Conditions = ready(metav1.ConditionTrue, "other") }, true},
		{"ready removed", func(t *v1alpha1.Topic) { t.Status.Conditions = nil }, true},
		{"address", func(t *v1alpha1.Topic) { t.Status.Address = &v1alpha1.Addressable{URL: "https://t"} }, true},
		{"deletion", func(t *v1alpha1.Topic) { now := metav1.Now(); t.DeletionTimestamp = &now }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, n := base(), base()
			tc.change(n)
			got := controllers.TopicChangedForSubscriptions().Update(event.UpdateEvent{ObjectOld: o, ObjectNew: n})
			if got != tc.want {
				t.Errorf("passes = %v, want %v", got, tc.want)
			}
		})
	}
}
