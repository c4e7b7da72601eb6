package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

func newSubscription(ns, name, topic, uri string) *v1alpha1.Subscription {
	return &v1alpha1.Subscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.SubscriptionSpec{
			Topic:      topic,
			Subscriber: v1alpha1.Destination{URI: ptr.To(uri)},
		},
	}
}

func serviceRef(name string) *v1alpha1.KReference {
	return &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: name}
}

func newService(ns, name string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
	}
}

// planEntry returns the plan entry of a Subscription, or nil.
func planEntry(ns, topic, sub string) (*plan.SubscriptionPlan, error) {
	p, err := prov.GetPlan(context.Background(), ns, topic)
	if err != nil || p == nil {
		return nil, err
	}
	for i := range p.Subscriptions {
		if p.Subscriptions[i].Name == sub {
			return &p.Subscriptions[i], nil
		}
	}
	return nil, nil
}

func TestSubscriptionBeforeTopic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	sub := newSubscription(ns, "early", "later", "http://consumer.example/in")
	create(t, sub)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound,
			fmt.Sprintf("Topic %s/later not found", ns))
	})
	if got := kstatus(t, sub); got != status.InProgressStatus {
		t.Errorf("kstatus %s, want InProgress", got)
	}

	// The Topic appears: no nudge needed.
	readyTopic(t, ns, "later")
	wantKStatus(t, sub, status.CurrentStatus)
	if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "http://consumer.example/in"); err != nil {
		t.Error(err)
	}
	if sub.Status.SubscriberURI != "http://consumer.example/in" {
		t.Errorf("subscriberUri %q", sub.Status.SubscriberURI)
	}
	info, err := prov.ConsumerInfo(ctx, plan.StreamName(ns, "later"), plan.ConsumerName("early"))
	if err != nil || info == nil {
		t.Fatalf("consumer %v: %v", info, err)
	}
	e, err := planEntry(ns, "later", "early")
	if err != nil || e == nil || e.SubscriberURI != "http://consumer.example/in" || e.Generation != sub.Generation {
		t.Fatalf("plan entry %+v: %v", e, err)
	}
	topic := newTopic(ns, "later")
	if err := get(topic); err != nil || topic.Status.Subscriptions != 1 {
		t.Errorf("topic status.subscriptions %d: %v", topic.Status.Subscriptions, err)
	}

	// Lag shows in status.consumer.
	for range 3 {
		if _, err := js.Publish(ctx, plan.Subject(ns, "later"), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if c := sub.Status.Consumer; c == nil || c.Name != plan.ConsumerName("early") || c.Pending != 3 {
			return fmt.Errorf("status.consumer %+v", sub.Status.Consumer)
		}
		return nil
	})

	// A spec change reaches the plan; Ready waits for it.
	update(t, sub, func(s *v1alpha1.Subscription) { s.Spec.Paused = true })
	eventually(t, func() error {
		e, err := planEntry(ns, "later", "early")
		if err != nil || e == nil || !e.Paused || e.Generation != sub.Generation {
			return fmt.Errorf("plan entry %+v: %v", e, err)
		}
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
}

func TestSubscriptionServiceRef(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	readyTopic(t, ns, "orders")
	sub := newSubscription(ns, "inventory", "orders", "/orders")
	sub.Spec.Subscriber.Ref = serviceRef("inventory")
	create(t, sub)

	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionSubscriberResolved, metav1.ConditionFalse, v1alpha1.ReasonNotFound,
			fmt.Sprintf("Service %s/inventory not found", ns))
	})
	if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound, "Service"); err != nil {
		t.Error(err)
	}

	// The Service appears, on port 8080.
	svc := newService(ns, "inventory", 8080)
	create(t, svc)
	want := fmt.Sprintf("http://inventory.%s.svc.cluster.local:8080/orders", ns)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if sub.Status.SubscriberURI != want {
			return fmt.Errorf("subscriberUri %q, want %q", sub.Status.SubscriberURI, want)
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	if e, err := planEntry(ns, "orders", "inventory"); err != nil || e == nil || e.SubscriberURI != want {
		t.Fatalf("plan entry %+v: %v", e, err)
	}

	// The Service moves to port 80: the URI and the plan follow.
	update(t, svc, func(s *corev1.Service) { s.Spec.Ports[0].Port = 80 })
	want = fmt.Sprintf("http://inventory.%s.svc.cluster.local/orders", ns)
	eventually(t, func() error {
		e, err := planEntry(ns, "orders", "inventory")
		if err != nil || e == nil || e.SubscriberURI != want {
			return fmt.Errorf("plan entry %+v: %v", e, err)
		}
		if err := get(sub); err != nil {
			return err
		}
		if sub.Status.SubscriberURI != want {
			return fmt.Errorf("subscriberUri %q, want %q", sub.Status.SubscriberURI, want)
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})

	// The Service goes away: the Subscription leaves the plan but keeps its
	// consumer (and position).
	if err := k8s.Delete(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if e, err := planEntry(ns, "orders", "inventory"); err != nil || e != nil {
			return fmt.Errorf("still in the plan: %+v %v", e, err)
		}
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound, "not found")
	})
	if info, err := prov.ConsumerInfo(context.Background(), plan.StreamName(ns, "orders"), plan.ConsumerName("inventory")); err != nil || info == nil {
		t.Errorf("consumer of an unresolved Subscription was deleted: %v", err)
	}
}

func TestSubscriptionBrokenReferences(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	readyTopic(t, ns, "refs")
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}})
	tests := []struct {
		name   string
		mutate func(*v1alpha1.Subscription)
		reason string
		msg    string
	}{
		{
			name: "topic-subscriber",
			mutate: func(s *v1alpha1.Subscription) {
				s.Spec.Subscriber = v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "eventing.herald.dev/v1alpha1", Kind: "Topic", Name: "missing"}}
			},
			reason: v1alpha1.ReasonNotFound,
			msg:    fmt.Sprintf("subscriber: Topic %s/missing not found", ns),
		},
		{
			name: "unknown-kind",
			mutate: func(s *v1alpha1.Subscription) {
				s.Spec.Subscriber = v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "ksvc"}}
			},
			reason: v1alpha1.ReasonNotFound,
			msg:    "does not serve this kind",
		},
		{
			name: "not-addressable",
			mutate: func(s *v1alpha1.Subscription) {
				s.Spec.Subscriber = v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "ConfigMap", Name: "plain"}}
			},
			reason: v1alpha1.ReasonNotAddressable,
			msg:    "has no status.address.url",
		},
		{
			name: "reply",
			mutate: func(s *v1alpha1.Subscription) {
				s.Spec.Reply = &v1alpha1.Destination{Ref: serviceRef("replies")}
			},
			reason: v1alpha1.ReasonNotFound,
			msg:    fmt.Sprintf("reply: Service %s/replies not found", ns),
		},
		{
			name: "dead-letter-sink",
			mutate: func(s *v1alpha1.Subscription) {
				s.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{Ref: serviceRef("dls"), URI: ptr.To("/dead")}}
			},
			reason: v1alpha1.ReasonNotFound,
			msg:    fmt.Sprintf("delivery.deadLetterSink: Service %s/dls not found", ns),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sub := newSubscription(ns, tt.name, "refs", "http://ok.example")
			tt.mutate(sub)
			create(t, sub)
			eventually(t, func() error {
				if err := get(sub); err != nil {
					return err
				}
				if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionSubscriberResolved, metav1.ConditionFalse, tt.reason, tt.msg); err != nil {
					return err
				}
				return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, tt.reason, tt.msg)
			})
		})
	}
}

func TestSubscriptionDeadLetterSinkFromTopic(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	// The Topic's default sink is another Topic.
	readyTopic(t, ns, "dead")
	topic := newTopic(ns, "live")
	topic.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{
		Ref: &v1alpha1.KReference{APIVersion: "eventing.herald.dev/v1alpha1", Kind: "Topic", Name: "dead"},
	}}
	create(t, topic)
	makeAvailable(t, ns, "live-dispatcher")
	sub := newSubscription(ns, "s", "live", "http://ok.example")
	create(t, sub)
	want := fmt.Sprintf("http://dead-dispatcher.%s.svc.cluster.local/%s/dead", ns, ns)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if sub.Status.DeadLetterSinkURI != want {
			return fmt.Errorf("deadLetterSinkUri %q, want %q", sub.Status.DeadLetterSinkURI, want)
		}
		e, err := planEntry(ns, "live", "s")
		if err != nil || e == nil || e.DeadLetterURI != want {
			return fmt.Errorf("plan entry %+v: %v", e, err)
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
}

func TestSubscriptionInvalidCESQL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "filtered")
	sub := newSubscription(ns, "bad-filter", "filtered", "http://ok.example")
	sub.Spec.Filters = []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{CESQL: "type LIKE"}}}
	create(t, sub)
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		if err := wantCondition(sub.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "filters[0]"); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "")
	})
	if got := kstatus(t, sub); got != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed", got)
	}
	if info, err := prov.ConsumerInfo(ctx, plan.StreamName(ns, "filtered"), plan.ConsumerName("bad-filter")); err != nil || info != nil {
		t.Errorf("consumer of an invalid Subscription: %v %v", info, err)
	}

	// Fixing the filter makes it Ready.
	update(t, sub, func(s *v1alpha1.Subscription) { s.Spec.Filters[0].CESQL = "type LIKE 'com.shop.%'" })
	wantKStatus(t, sub, status.CurrentStatus)
}

func TestSubscriptionDeletionLeavesNothingInNATS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "keep")
	stay := newSubscription(ns, "stay", "keep", "http://stay.example")
	leave := newSubscription(ns, "leave", "keep", "http://leave.example")
	create(t, stay)
	create(t, leave)
	stream := plan.StreamName(ns, "keep")
	for _, s := range []*v1alpha1.Subscription{stay, leave} {
		wantKStatus(t, s, status.CurrentStatus)
	}

	if err := k8s.Delete(ctx, leave); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(leave); !apierrors.IsNotFound(err) {
			return errors.New("subscription still there")
		}
		if info, err := prov.ConsumerInfo(ctx, stream, plan.ConsumerName("leave")); err != nil || info != nil {
			return fmt.Errorf("consumer left behind: %v", err)
		}
		if e, err := planEntry(ns, "keep", "leave"); err != nil || e != nil {
			return fmt.Errorf("plan entry left behind: %+v %v", e, err)
		}
		return nil
	})
	// The other Subscription is untouched.
	if info, err := prov.ConsumerInfo(ctx, stream, plan.ConsumerName("stay")); err != nil || info == nil {
		t.Errorf("consumer of the remaining Subscription: %v", err)
	}
	if e, err := planEntry(ns, "keep", "stay"); err != nil || e == nil {
		t.Errorf("plan entry of the remaining Subscription: %v", err)
	}
	topic := newTopic(ns, "keep")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if topic.Status.Subscriptions != 1 {
			return fmt.Errorf("status.subscriptions %d", topic.Status.Subscriptions)
		}
		return nil
	})
}
