package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/plan"
)

// scaleTo plays a scaler: it sets the Deployment's replicas under a field
// manager of its own, as the HorizontalPodAutoscaler KEDA drives does.
func scaleTo(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	eventually(t, func() error {
		if err := get(dep); err != nil {
			return err
		}
		patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)))
		return k8s.Patch(context.Background(), dep, patch, client.FieldOwner("horizontal-pod-autoscaler"))
	})
}

// wantReplicasNotOwned fails the test when the operator's field manager
// owns spec.replicas of dep, which it must leave to a scaler.
func wantReplicasNotOwned(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	for _, mf := range dep.ManagedFields {
		if mf.Manager == resources.ManagedBy && mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), `"f:replicas"`) {
			t.Errorf("the operator owns spec.replicas of autoscaled dispatcher %s: %s", dep.Name, mf.FieldsV1.Raw)
		}
	}
}

func replicasOf(ns, name string) (int32, error) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := get(dep); err != nil {
		return 0, err
	}
	if dep.Spec.Replicas == nil {
		return 0, fmt.Errorf("deployment %s has no replicas", name)
	}
	return *dep.Spec.Replicas, nil
}

// TestAutoscaledDispatcherKeepsTheScalersReplicas: with
// spec.dispatcher.autoscaling the operator does not set the dispatcher's
// replicas, so that what a scaler writes stays, through later applies of
// the Deployment; without KEDA installed it says the replicas are left to a
// scaler of the user's. Without autoscaling the operator sets them again.
func TestAutoscaledDispatcherKeepsTheScalersReplicas(t *testing.T) {
	ns := namespace(t)
	topic := newTopic(ns, "elastic")
	topic.Spec.Dispatcher = &v1alpha1.DispatcherSpec{Autoscaling: &v1alpha1.DispatcherAutoscaling{MaxReplicas: 5}}
	create(t, topic)
	name := resources.DispatcherName("elastic")
	makeAvailable(t, ns, name)
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if d := topic.Status.Dispatcher; d == nil || d.Mode != v1alpha1.DispatcherDedicated {
			return fmt.Errorf("status.dispatcher %+v, want dedicated (autoscaling implies it)", d)
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionTrue, "", "KEDA is not installed")
	})
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := get(dep); err != nil {
		t.Fatal(err)
	}
	if dep.Annotations[resources.AnnotationAutoscaler] != resources.AutoscalerExternal {
		t.Errorf("annotations %v", dep.Annotations)
	}
	wantReplicasNotOwned(t, dep)

	scaleTo(t, ns, name, 3)
	// A spec change makes the operator apply the Deployment again.
	update(t, topic, func(tp *v1alpha1.Topic) {
		tp.Spec.Dispatcher.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}
	})
	eventually(t, func() error {
		if err := get(dep); err != nil {
			return err
		}
		if got := dep.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "50m" {
			return fmt.Errorf("cpu request %s: not applied yet", got)
		}
		return nil
	})
	if r, err := replicasOf(ns, name); err != nil || r != 3 {
		t.Fatalf("replicas %d (%v) after the operator applied the Deployment again, want the scaler's 3", r, err)
	}

	// Autoscaling off, replicas 2: the operator sets them again.
	update(t, topic, func(tp *v1alpha1.Topic) {
		tp.Spec.Dispatcher.Autoscaling = nil
		tp.Spec.Dispatcher.Replicas = ptr.To[int32](2)
	})
	eventually(t, func() error {
		r, err := replicasOf(ns, name)
		if err != nil {
			return err
		}
		if r != 2 {
			return fmt.Errorf("replicas %d, want 2", r)
		}
		return nil
	})
}

// installKEDA installs KEDA's ScaledObject CRD and waits until it is served.
func installKEDA(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("testdata/keda.sh_scaledobjects.yaml")
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &crd.Object); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(context.Background(), crd); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	eventually(t, func() error {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(resources.ScaledObjectGVK.GroupVersion().WithKind("ScaledObjectList"))
		return k8s.List(context.Background(), list)
	})
}

// TestAutoscalingWithKEDA: with KEDA installed, an autoscaled Topic gets a
// ScaledObject scaling its dispatcher on the lag of each of its
// Subscriptions' consumers; it goes when autoscaling is turned off.
func TestAutoscalingWithKEDA(t *testing.T) {
	installKEDA(t)
	ns := namespace(t)
	topic := newTopic(ns, "scaled")
	topic.Spec.Dispatcher = &v1alpha1.DispatcherSpec{Autoscaling: &v1alpha1.DispatcherAutoscaling{
		MinReplicas: ptr.To[int32](2), MaxReplicas: 7, TargetLag: ptr.To[int64](50)}}
	create(t, topic)
	for _, s := range []string{"a", "b"} {
		create(t, &v1alpha1.Subscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s},
			Spec:       v1alpha1.SubscriptionSpec{Topic: "scaled", Subscriber: v1alpha1.Destination{URI: ptr.To("http://example.invalid/" + s)}},
		})
	}
	name := resources.DispatcherName("scaled")
	makeAvailable(t, ns, name)
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(resources.ScaledObjectGVK)
	eventually(t, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, so); err != nil {
			return err
		}
		triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
		if len(triggers) != 2 {
			return fmt.Errorf("%d triggers, want one per Subscription", len(triggers))
		}
		return nil
	})
	spec := so.Object["spec"].(map[string]any)
	if spec["minReplicaCount"] != int64(2) || spec["maxReplicaCount"] != int64(7) {
		t.Errorf("replica bounds %v..%v", spec["minReplicaCount"], spec["maxReplicaCount"])
	}
	if ref, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name"); ref != name {
		t.Errorf("scaleTargetRef %q", ref)
	}
	trig := spec["triggers"].([]any)[0].(map[string]any)
	md := trig["metadata"].(map[string]any)
	if trig["type"] != "nats-jetstream" || md["stream"] != "herald_"+ns+"_scaled" || md["lagThreshold"] != "50" ||
		md["natsServerMonitoringEndpoint"] != "nats.herald-system.svc.cluster.local:8222" || md["account"] != "$G" {
		t.Errorf("trigger %v", trig)
	}
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionTrue, "", "autoscaled by KEDA between 2 and 7 replicas")
	})

	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Dispatcher.Autoscaling = nil })
	eventually(t, func() error {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, so)
		if err == nil {
			return fmt.Errorf("ScaledObject still there")
		}
		return client.IgnoreNotFound(err)
	})
}

// TestSharedDispatcherAutoscaling: with the manager's
// --shared-dispatcher-autoscaling and KEDA installed, a namespace's shared
// dispatcher gets a ScaledObject with a trigger per Subscription of every
// Topic it serves, kept current as Topics and Subscriptions come; the
// operator leaves its replicas to the scaler, also when it repairs the
// Deployment.
func TestSharedDispatcherAutoscaling(t *testing.T) {
	installKEDA(t)
	ns := namespace(t)
	for _, tp := range []string{"a", "b"} {
		create(t, topicInMode(ns, tp, v1alpha1.DispatcherShared))
		create(t, newSubscription(ns, "to-"+tp, tp, "http://example.invalid/"+tp))
	}
	name := resources.SharedDispatcherName
	so := &unstructured.Unstructured{}
	so.SetGroupVersionKind(resources.ScaledObjectGVK)
	// triggers waits for the ScaledObject to scale on want, stream → consumer.
	triggers := func(want map[string]string) {
		t.Helper()
		eventually(t, func() error {
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, so); err != nil {
				return err
			}
			ts, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
			got := map[string]string{}
			for _, tr := range ts {
				md := tr.(map[string]any)["metadata"].(map[string]any)
				got[md["stream"].(string)] = md["consumer"].(string)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("triggers on %v, want %v", got, want)
			}
			return nil
		})
	}
	triggers(map[string]string{
		plan.StreamName(ns, "a"): plan.ConsumerName("to-a"),
		plan.StreamName(ns, "b"): plan.ConsumerName("to-b"),
	})
	spec := so.Object["spec"].(map[string]any)
	if spec["minReplicaCount"] != int64(1) || spec["maxReplicaCount"] != int64(4) {
		t.Errorf("replica bounds %v..%v, want the manager's 1..4", spec["minReplicaCount"], spec["maxReplicaCount"])
	}
	if ref, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name"); ref != name {
		t.Errorf("scaleTargetRef %q", ref)
	}
	if owners := so.GetOwnerReferences(); len(owners) != 1 || owners[0].Kind != "ServiceAccount" || owners[0].Name != name {
		t.Errorf("owners %+v, want the shared dispatcher's ServiceAccount (it goes with the namespace's last shared Topic)", owners)
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := get(dep); err != nil {
		t.Fatal(err)
	}
	if dep.Annotations[resources.AnnotationAutoscaler] != resources.AutoscalerKEDA {
		t.Errorf("annotations %v", dep.Annotations)
	}
	wantReplicasNotOwned(t, dep)

	scaleTo(t, ns, name, 3)
	// A new Topic and Subscription join the ScaledObject.
	create(t, topicInMode(ns, "c", v1alpha1.DispatcherShared))
	create(t, newSubscription(ns, "to-c", "c", "http://example.invalid/c"))
	triggers(map[string]string{
		plan.StreamName(ns, "a"): plan.ConsumerName("to-a"),
		plan.StreamName(ns, "b"): plan.ConsumerName("to-b"),
		plan.StreamName(ns, "c"): plan.ConsumerName("to-c"),
	})
	// A hand edit makes the operator apply the Deployment again; the
	// scaler's replicas stay.
	update(t, dep, func(d *appsv1.Deployment) { d.Labels[resources.LabelComponent] = "edited" })
	eventually(t, func() error {
		if err := get(dep); err != nil {
			return err
		}
		if dep.Labels[resources.LabelComponent] != "dispatcher" {
			return fmt.Errorf("label %q not repaired yet", dep.Labels[resources.LabelComponent])
		}
		return nil
	})
	if r, err := replicasOf(ns, name); err != nil || r != 3 {
		t.Fatalf("replicas %d (%v) after the operator applied the Deployment again, want the scaler's 3", r, err)
	}
}
