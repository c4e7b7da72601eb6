package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/plan"
)

func topicInMode(ns, name string, mode v1alpha1.DispatcherMode) *v1alpha1.Topic {
	t := newTopic(ns, name)
	t.Spec.Dispatcher = &v1alpha1.DispatcherSpec{Mode: mode}
	return t
}

// publishedPlan reads a Topic's plan from the plan bucket.
func publishedPlan(ns, name string) (*plan.TopicPlan, error) {
	kv, err := js.KeyValue(context.Background(), plan.KVBucket)
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(context.Background(), plan.Key(ns, name))
	if err != nil {
		return nil, fmt.Errorf("plan %s/%s: %w", ns, name, err)
	}
	p := new(plan.TopicPlan)
	return p, json.Unmarshal(e.Value(), p)
}

// wantServedBy checks where a Topic says it is served and that its plan
// names the shared dispatcher or not.
func wantServedBy(topic *v1alpha1.Topic, mode v1alpha1.DispatcherMode, planShared string) error {
	if err := get(topic); err != nil {
		return err
	}
	name := resources.DispatcherName(topic.Name)
	if mode == v1alpha1.DispatcherShared {
		name = resources.SharedDispatcherName
	}
	wantURL := fmt.Sprintf("http://%s.%s.svc.cluster.local/%s/%s", name, topic.Namespace, topic.Namespace, topic.Name)
	if topic.Status.Address == nil || topic.Status.Address.URL != wantURL {
		return fmt.Errorf("address %+v, want %s", topic.Status.Address, wantURL)
	}
	if d := topic.Status.Dispatcher; d == nil || d.Mode != mode || d.Name != name {
		return fmt.Errorf("status.dispatcher %+v, want %s %s", d, mode, name)
	}
	p, err := publishedPlan(topic.Namespace, topic.Name)
	if err != nil {
		return err
	}
	if p.SharedDispatcher != planShared {
		return fmt.Errorf("plan names shared dispatcher %q, want %q", p.SharedDispatcher, planShared)
	}
	return nil
}

func exists(obj client.Object) (bool, error) {
	err := get(obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// TestSharedDispatcherServesTheNamespace: the shared Topics of a namespace
// get one dispatcher Deployment between them, each Topic Ready at its own
// path of its Service; another namespace gets its own; the shared
// dispatcher goes with the namespace's last shared Topic.
func TestSharedDispatcherServesTheNamespace(t *testing.T) {
	ns, ns2 := namespace(t), namespace(t)
	var topics []*v1alpha1.Topic
	for _, name := range []string{"orders", "payments", "audit"} {
		topic := topicInMode(ns, name, v1alpha1.DispatcherShared)
		create(t, topic)
		topics = append(topics, topic)
	}
	other := topicInMode(ns2, "orders", v1alpha1.DispatcherShared)
	create(t, other)
	dedicated := topicInMode(ns, "busy", v1alpha1.DispatcherDedicated)
	create(t, dedicated)

	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}
	eventually(t, func() error {
		if err := get(sa); err != nil {
			return err
		}
		return get(dep)
	})
	args := dep.Spec.Template.Spec.Containers[0].Args
	if want := []string{"--shared", ns + "/" + resources.SharedDispatcherName}; !slices.Equal(args, want) {
		t.Errorf("shared dispatcher args %q, want %q", args, want)
	}
	if owner := metav1.GetControllerOf(dep); owner == nil || owner.Kind != "ServiceAccount" || owner.UID != sa.UID {
		t.Errorf("shared Deployment's controller %+v, want the shared ServiceAccount %s", owner, sa.UID)
	}
	if dep.Spec.Template.Spec.ServiceAccountName != resources.SharedDispatcherName {
		t.Errorf("shared dispatcher runs as %q", dep.Spec.Template.Spec.ServiceAccountName)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}
	if err := get(svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Selector[resources.LabelSharedDispatcher] != "true" {
		t.Errorf("shared Service selects %v", svc.Spec.Selector)
	}

	// Not available yet: the Topics wait for it.
	eventually(t, func() error {
		if err := get(topics[0]); err != nil {
			return err
		}
		return wantCondition(topics[0].Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionFalse, "", resources.SharedDispatcherName)
	})
	makeAvailable(t, ns, resources.SharedDispatcherName)
	for _, topic := range topics {
		eventually(t, func() error {
			if err := wantServedBy(topic, v1alpha1.DispatcherShared, ns+"/"+resources.SharedDispatcherName); err != nil {
				return err
			}
			return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
		})
		ded := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.DispatcherName(topic.Name)}}
		if ok, err := exists(ded); err != nil || ok {
			t.Errorf("shared Topic %s has a Deployment of its own (%v)", topic.Name, err)
		}
	}
	// The dedicated Topic keeps its own dispatcher, and the shared one does
	// not serve it.
	makeAvailable(t, ns, resources.DispatcherName("busy"))
	eventually(t, func() error { return wantServedBy(dedicated, v1alpha1.DispatcherDedicated, "") })

	// The other namespace has its own shared dispatcher.
	makeAvailable(t, ns2, resources.SharedDispatcherName)
	eventually(t, func() error {
		return wantServedBy(other, v1alpha1.DispatcherShared, ns2+"/"+resources.SharedDispatcherName)
	})

	// Adding a Topic changes no Pod: the Deployment stays at its generation.
	gen := dep.Generation
	late := topicInMode(ns, "late", v1alpha1.DispatcherShared)
	create(t, late)
	eventually(t, func() error {
		return wantServedBy(late, v1alpha1.DispatcherShared, ns+"/"+resources.SharedDispatcherName)
	})
	if err := get(dep); err != nil {
		t.Fatal(err)
	}
	if dep.Generation != gen {
		t.Errorf("adding a shared Topic changed the shared Deployment: generation %d, was %d", dep.Generation, gen)
	}

	// Deleting the namespace's shared Topics deletes the shared dispatcher's
	// ServiceAccount, and with it (garbage collection, which envtest does
	// not run) everything it controls.
	for _, topic := range append(topics, late) {
		if err := k8s.Delete(context.Background(), topic); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, func() error {
		if ok, err := exists(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}); err != nil || ok {
			return fmt.Errorf("shared ServiceAccount still there (%v)", err)
		}
		return nil
	})
	if ok, err := exists(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns2, Name: resources.SharedDispatcherName}}); err != nil || !ok {
		t.Errorf("the other namespace's shared dispatcher went too (%v)", err)
	}
}

// TestTopicMovesBetweenDispatcherModes: a Topic switched from dedicated to
// shared and back keeps an available dispatcher throughout: the address
// changes only once the new dispatcher is available, and the old one goes
// only then.
func TestTopicMovesBetweenDispatcherModes(t *testing.T) {
	ns := namespace(t)
	topic := topicInMode(ns, "moving", v1alpha1.DispatcherDedicated)
	create(t, topic)
	makeAvailable(t, ns, resources.DispatcherName("moving"))
	eventually(t, func() error { return wantServedBy(topic, v1alpha1.DispatcherDedicated, "") })

	dedicated := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.DispatcherName("moving")}}
	shared := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}

	// To shared: the plan names the shared dispatcher at once, the dedicated
	// one keeps serving (and the address) until the shared one is available.
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Dispatcher.Mode = v1alpha1.DispatcherShared })
	eventually(t, func() error {
		if err := get(shared); err != nil {
			return err
		}
		if err := get(topic); err != nil {
			return err
		}
		if d := topic.Status.Dispatcher; d == nil || d.Mode != v1alpha1.DispatcherDedicated {
			return fmt.Errorf("status.dispatcher %+v before the shared dispatcher is available", d)
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", ""); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionTrue, "", "moving to the shared dispatcher"); err != nil {
			return err
		}
		p, err := publishedPlan(ns, "moving")
		if err != nil {
			return err
		}
		if p.SharedDispatcher != ns+"/"+resources.SharedDispatcherName {
			return fmt.Errorf("plan names %q", p.SharedDispatcher)
		}
		return nil
	})
	if ok, err := exists(dedicated); err != nil || !ok {
		t.Fatalf("dedicated dispatcher gone before the shared one is available (%v)", err)
	}
	makeAvailable(t, ns, resources.SharedDispatcherName)
	eventually(t, func() error {
		if err := wantServedBy(topic, v1alpha1.DispatcherShared, ns+"/"+resources.SharedDispatcherName); err != nil {
			return err
		}
		if ok, err := exists(withKey(&appsv1.Deployment{}, client.ObjectKeyFromObject(dedicated))); err != nil || ok {
			return fmt.Errorf("dedicated dispatcher still there (%v)", err)
		}
		return nil
	})

	// Back to dedicated: the shared dispatcher keeps serving it (the plan
	// names it) until the new dedicated Deployment is available.
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Dispatcher.Mode = v1alpha1.DispatcherDedicated })
	eventually(t, func() error {
		if err := get(dedicated); err != nil {
			return err
		}
		if err := wantServedBy(topic, v1alpha1.DispatcherShared, ns+"/"+resources.SharedDispatcherName); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionTrue, "", "moving to the dedicated dispatcher")
	})
	if ok, err := exists(withKey(&appsv1.Deployment{}, client.ObjectKeyFromObject(shared))); err != nil || !ok {
		t.Fatalf("shared dispatcher gone while it still serves the Topic (%v)", err)
	}
	makeAvailable(t, ns, resources.DispatcherName("moving"))
	eventually(t, func() error { return wantServedBy(topic, v1alpha1.DispatcherDedicated, "") })
	// No shared Topic is left in the namespace: the shared dispatcher goes.
	eventually(t, func() error {
		if ok, err := exists(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}); err != nil || ok {
			return fmt.Errorf("shared ServiceAccount still there (%v)", err)
		}
		return nil
	})
}

// TestSharedDispatcherMountsSigningSecrets: the signing Secrets of the
// shared Topics' Subscriptions are mounted in the shared dispatcher.
func TestSharedDispatcherMountsSigningSecrets(t *testing.T) {
	ns := namespace(t)
	create(t, topicInMode(ns, "signed", v1alpha1.DispatcherShared))
	sub := &v1alpha1.Subscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"},
		Spec: v1alpha1.SubscriptionSpec{
			Topic:      "signed",
			Subscriber: v1alpha1.Destination{URI: ptr.To("http://example.invalid/hook")},
			Signing:    &v1alpha1.Signing{SecretName: "hook-keys"},
		},
	}
	create(t, sub)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.SharedDispatcherName}}
	eventually(t, func() error {
		if err := get(dep); err != nil {
			return err
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "hook-keys" {
				return nil
			}
		}
		return fmt.Errorf("signing Secret not mounted: %+v", dep.Spec.Template.Spec.Volumes)
	})
}
