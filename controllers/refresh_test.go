package controllers_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/plan"
)

// inNamespace returns the keys of keys in namespace ns.
func inNamespace(keys []types.NamespacedName, ns string) []types.NamespacedName {
	var out []types.NamespacedName
	for _, k := range keys {
		if k.Namespace == ns {
			out = append(out, k)
		}
	}
	return out
}

// TestRefreshLeavesSettledObjectsAlone: once a Topic and its Subscription
// report what NATS holds, a refresh round wakes neither of them, also with
// dead letters counted and events waiting; the figures refresher is then
// the only periodic reader of their NATS figures.
func TestRefreshLeavesSettledObjectsAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "calm")
	s := newSubscription(ns, "quiet", "calm", "http://quiet.example/")
	create(t, s)
	// The consumer starts at the latest event: publish once it exists.
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		return wantCondition(s.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	m := nats.NewMsg(plan.DeadLetterCounter(ns, "calm", "quiet"))
	m.Header.Set("Nats-Incr", "2")
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, plan.Subject(ns, "calm"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(s); err != nil {
			return err
		}
		if c, dl := s.Status.Consumer, s.Status.DeadLetters; c == nil || c.Pending != 1 || dl == nil || dl.Count != 2 {
			return fmt.Errorf("status.consumer %+v, status.deadLetters %+v", c, dl)
		}
		return nil
	})
	eventually(t, func() error {
		topics, subs, err := controllers.StaleFigures(ctx, mgrClient, prov)
		if err != nil {
			return err
		}
		if tk, sk := inNamespace(topics, ns), inNamespace(subs, ns); len(tk)+len(sk) > 0 {
			return fmt.Errorf("a refresh would wake Topics %v and Subscriptions %v", tk, sk)
		}
		return nil
	})
}

// TestRefreshRepairsNATSDrift: a consumer or a stream deleted behind the
// operator's back comes back, found by the figures refresher.
func TestRefreshRepairsNATSDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "drift")
	s := newSubscription(ns, "victim", "drift", "http://victim.example/")
	create(t, s)
	stream, consumer := plan.StreamName(ns, "drift"), plan.ConsumerName("victim")
	eventually(t, func() error {
		info, err := prov.ConsumerInfo(ctx, stream, consumer)
		if err != nil || info == nil {
			return fmt.Errorf("consumer %s: %v", consumer, err)
		}
		return nil
	})
	if err := js.DeleteConsumer(ctx, stream, consumer); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		info, err := prov.ConsumerInfo(ctx, stream, consumer)
		if err != nil || info == nil {
			return fmt.Errorf("consumer %s not back: %v", consumer, err)
		}
		return nil
	})
	if err := js.DeleteStream(ctx, stream); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		info, err := prov.ConsumerInfo(ctx, stream, consumer)
		if err != nil || info == nil {
			return fmt.Errorf("stream %s and consumer %s not back: %v", stream, consumer, err)
		}
		return nil
	})
}

// TestRefersToUnwatched: only Destinations of kinds the reconcilers do not
// watch are resolved again every RefreshInterval.
func TestRefersToUnwatched(t *testing.T) {
	svc := &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "s"}
	topic := &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: "t"}
	ksvc := &v1alpha1.KReference{APIVersion: "serving.knative.dev/v1", Kind: "Service", Name: "k"}
	withDLS := func(ref *v1alpha1.KReference) *v1alpha1.DeliverySpec {
		return &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{Ref: ref}}
	}
	for _, c := range []struct {
		name  string
		topic v1alpha1.TopicSpec
		sub   v1alpha1.SubscriptionSpec
		want  bool
	}{
		{"uri", v1alpha1.TopicSpec{}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{URI: ptr.To("http://x/")}}, false},
		{"service and topic", v1alpha1.TopicSpec{}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{Ref: svc}, Reply: &v1alpha1.Destination{Ref: topic}}, false},
		{"knative service subscriber", v1alpha1.TopicSpec{}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{Ref: ksvc}}, true},
		{"knative service reply", v1alpha1.TopicSpec{}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{Ref: svc}, Reply: &v1alpha1.Destination{Ref: ksvc}}, true},
		{"topic's dead-letter sink", v1alpha1.TopicSpec{Delivery: withDLS(ksvc)}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{Ref: svc}}, true},
		{"own dead-letter sink overrides the topic's", v1alpha1.TopicSpec{Delivery: withDLS(ksvc)}, v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{Ref: svc}, Delivery: withDLS(topic)}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := controllers.RefersToUnwatched(&v1alpha1.Topic{Spec: c.topic}, &v1alpha1.Subscription{Spec: c.sub}); got != c.want {
				t.Errorf("refersToUnwatched = %v, want %v", got, c.want)
			}
		})
	}
}
