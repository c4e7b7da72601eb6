package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

func newTopic(ns, name string) *v1alpha1.Topic {
	return &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// readyTopic creates a Topic, plays the kubelet for its dispatcher and
// waits until it is Ready.
func readyTopic(t *testing.T, ns, name string) *v1alpha1.Topic {
	t.Helper()
	topic := newTopic(ns, name)
	create(t, topic)
	makeAvailable(t, ns, name+"-dispatcher")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	return topic
}

func TestTopicBecomesReady(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := newTopic(ns, "orders")
	topic.Spec.Dispatcher = &v1alpha1.DispatcherSpec{Replicas: ptr.To[int32](2)}
	create(t, topic)

	// Before the dispatcher is available: stream and plan exist, the
	// Topic is not Ready and kstatus says InProgress.
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionStreamReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, ""); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionPlanPublished, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, ""); err != nil {
			return err
		}
		// No Deployment controller runs in envtest: the rollout never starts.
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionDispatcherAvailable, metav1.ConditionFalse,
			v1alpha1.ReasonProgressing, "orders-dispatcher is rolling out")
	})
	if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, ""); err != nil {
		t.Error(err)
	}
	if got := kstatus(t, topic); got != status.InProgressStatus {
		t.Errorf("kstatus of a Topic without dispatcher: %s, want InProgress", got)
	}
	if !slices.Contains(topic.Finalizers, v1alpha1.Finalizer) {
		t.Errorf("finalizers %v", topic.Finalizers)
	}
	wantURL := fmt.Sprintf("http://orders-dispatcher.%s.svc.cluster.local/%s/orders", ns, ns)
	if topic.Status.Address == nil || topic.Status.Address.URL != wantURL {
		t.Errorf("address %+v, want %s", topic.Status.Address, wantURL)
	}
	if topic.Status.Stream == nil || topic.Status.Stream.Name != plan.StreamName(ns, "orders") {
		t.Errorf("status.stream %+v", topic.Status.Stream)
	}
	info, err := prov.StreamInfo(ctx, plan.StreamName(ns, "orders"))
	if err != nil || info == nil {
		t.Fatalf("stream: %v %v", info, err)
	}
	if p, err := prov.GetPlan(ctx, ns, "orders"); err != nil || p == nil || p.Stream != info.Config.Name {
		t.Fatalf("plan %+v: %v", p, err)
	}

	// The dispatcher objects.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}, &corev1.Service{}, &appsv1.Deployment{}} {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "orders-dispatcher"}, obj); err != nil {
			t.Fatalf("%T: %v", obj, err)
		}
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != topic.UID || !*refs[0].Controller {
			t.Errorf("%T owner references %+v", obj, refs)
		}
		if !slices.ContainsFunc(obj.GetManagedFields(), func(f metav1.ManagedFieldsEntry) bool {
			return f.Manager == "herald-manager" && f.Operation == metav1.ManagedFieldsOperationApply
		}) {
			t.Errorf("%T is not server-side applied by herald-manager", obj)
		}
	}
	dep := &appsv1.Deployment{}
	_ = k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "orders-dispatcher"}, dep)
	if *dep.Spec.Replicas != 2 || dep.Spec.Template.Spec.Containers[0].Image != image {
		t.Errorf("deployment replicas %d image %s", *dep.Spec.Replicas, dep.Spec.Template.Spec.Containers[0].Image)
	}
	if args := dep.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, []string{"--topics", ns + "/orders"}) {
		t.Errorf("args %v", args)
	}

	// The kubelet reports the replicas: Ready, Current.
	makeAvailable(t, ns, "orders-dispatcher")
	wantKStatus(t, topic, status.CurrentStatus)
	if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, wantURL); err != nil {
		t.Error(err)
	}
	if topic.Status.ObservedGeneration != topic.Generation {
		t.Errorf("observedGeneration %d, generation %d", topic.Status.ObservedGeneration, topic.Generation)
	}

	// The dispatcher loses its replicas, then gets them back: a Warning
	// and a recovery, after the first Ready; no Event while nothing changes.
	makeUnavailable(t, ns, "orders-dispatcher")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse,
			v1alpha1.ReasonDeploymentUnavailable, "has 0 of 2 replicas available")
	})
	makeAvailable(t, ns, "orders-dispatcher")
	wantKStatus(t, topic, status.CurrentStatus)
	eventually(t, func() error {
		reasons, err := eventReasons(ns, "Topic", "orders")
		if err != nil {
			return err
		}
		if !slices.Equal(reasons, []string{"Ready", v1alpha1.ReasonDeploymentUnavailable, "Recovered"}) {
			return fmt.Errorf("event reasons %v", reasons)
		}
		return nil
	})

	// Publishing an event shows in status.stream after a refresh.
	if _, err := js.Publish(ctx, plan.Subject(ns, "orders"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if topic.Status.Stream == nil || topic.Status.Stream.Messages != 1 || topic.Status.Stream.LastSequence != 1 {
			return fmt.Errorf("status.stream %+v", topic.Status.Stream)
		}
		return nil
	})
}

// eventReasons lists the reasons of the Events about an object, oldest first.
func eventReasons(ns, kind, name string) ([]string, error) {
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out, nil
}

func TestTopicDriftRepair(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "drift")
	key := types.NamespacedName{Namespace: ns, Name: "drift-dispatcher"}

	// A hand edit of replicas, args and a label is undone.
	dep := &appsv1.Deployment{}
	update(t, withKey(dep, key), func(d *appsv1.Deployment) {
		d.Spec.Replicas = ptr.To[int32](7)
		d.Spec.Template.Spec.Containers[0].Args = []string{"--topics", "other/topic"}
		d.Labels["app.kubernetes.io/name"] = "edited"
	})
	eventually(t, func() error {
		if err := k8s.Get(ctx, key, dep); err != nil {
			return err
		}
		args := dep.Spec.Template.Spec.Containers[0].Args
		if *dep.Spec.Replicas != 1 || !slices.Equal(args, []string{"--topics", ns + "/drift"}) || dep.Labels["app.kubernetes.io/name"] != "herald-dispatcher" {
			return fmt.Errorf("deployment not restored: replicas %d args %v labels %v", *dep.Spec.Replicas, args, dep.Labels)
		}
		return nil
	})

	// Deleted objects come back.
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		withKey(obj, key)
		if err := k8s.Get(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		oldUID := obj.GetUID()
		if err := k8s.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		eventually(t, func() error {
			if err := k8s.Get(ctx, key, obj); err != nil {
				return err
			}
			if obj.GetUID() == oldUID {
				return fmt.Errorf("%T not recreated yet", obj)
			}
			return nil
		})
	}

	// A Service edited by hand gets its declared ports and selector back.
	// (Applying port 80 beside the edited 81, both named http, is invalid;
	// the reconciler replaces the spec of objects it controls then.)
	svc := &corev1.Service{}
	update(t, withKey(svc, key), func(s *corev1.Service) {
		s.Spec.Ports[0].Port = 81
		s.Spec.Selector = map[string]string{"app": "other"}
	})
	eventually(t, func() error {
		if err := k8s.Get(ctx, key, svc); err != nil {
			return err
		}
		if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.StrVal != "http" || svc.Spec.Ports[1].Port != 9090 {
			return fmt.Errorf("service ports %+v", svc.Spec.Ports)
		}
		if svc.Spec.Selector["eventing.herald.dev/topic"] != "drift" || svc.Spec.Selector["app"] != "" {
			return fmt.Errorf("service selector %v", svc.Spec.Selector)
		}
		return nil
	})

	// Changing spec.dispatcher rolls out through the same apply.
	topic := newTopic(ns, "drift")
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Dispatcher = &v1alpha1.DispatcherSpec{Replicas: ptr.To[int32](3)} })
	eventually(t, func() error {
		if err := k8s.Get(ctx, key, dep); err != nil {
			return err
		}
		if *dep.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d", *dep.Spec.Replicas)
		}
		return nil
	})
}

func withKey[T client.Object](obj T, key types.NamespacedName) T {
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	return obj
}

func TestTopicRefusedStreamChangeStalls(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := readyTopic(t, ns, "stall")

	// The embedded NATS is a single server: JetStream refuses three replicas.
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Replicas = 3 })
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "replicas"); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionStreamReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "JetStream refused"); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "replicas")
	})
	if got := kstatus(t, topic); got != status.FailedStatus {
		t.Errorf("kstatus of a stalled Topic: %s, want Failed", got)
	}
	// The old stream keeps serving: the plan is still published.
	if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionPlanPublished, metav1.ConditionTrue, "", ""); err != nil {
		t.Error(err)
	}

	// Reverting the spec recovers.
	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Replicas = 1 })
	wantKStatus(t, topic, status.CurrentStatus)
	if c := condition(topic.Status.Conditions, v1alpha1.ConditionStalled); c.Status != "absent" {
		t.Errorf("Stalled still set: %+v", c)
	}
}

func TestTopicStorageRefusedAtCreation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	// A memory stream already holds the name the Topic's file stream needs;
	// JetStream does not change storage in place.
	topic := newTopic(ns, "storage")
	cfg, err := compiler.StreamConfig(topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage = jetstream.MemoryStorage
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	create(t, topic)
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "storage")
	})
}

func TestTopicDeletionLeavesNothingInNATS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := readyTopic(t, ns, "gone")
	sub := newSubscription(ns, "audit", "gone", "http://audit.example/events")
	create(t, sub)
	stream, consumer := plan.StreamName(ns, "gone"), plan.ConsumerName("audit")
	eventually(t, func() error {
		info, err := prov.ConsumerInfo(ctx, stream, consumer)
		if err != nil || info == nil {
			return fmt.Errorf("consumer %v: %v", info, err)
		}
		return nil
	})

	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(topic); !apierrors.IsNotFound(err) {
			return fmt.Errorf("topic still there: %v", err)
		}
		return nil
	})
	if info, err := prov.StreamInfo(ctx, stream); err != nil || info != nil {
		t.Errorf("stream left behind: %v %v", info, err)
	}
	if p, err := prov.GetPlan(ctx, ns, "gone"); err != nil || p != nil {
		t.Errorf("plan left behind: %v %v", p, err)
	}
	if info, err := prov.ConsumerInfo(ctx, stream, consumer); err != nil || info != nil {
		t.Errorf("consumer left behind: %v %v", info, err)
	}
	// The Subscription notices.
	eventually(t, func() error {
		if err := get(sub); err != nil {
			return err
		}
		return wantCondition(sub.Status.Conditions, v1alpha1.ConditionTopicReady, metav1.ConditionFalse, v1alpha1.ReasonNotFound,
			fmt.Sprintf("Topic %s/gone not found", ns))
	})
	// Deleting the Subscription without its Topic completes too.
	if err := k8s.Delete(ctx, sub); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(sub); !apierrors.IsNotFound(err) {
			return errors.New("subscription still there")
		}
		return nil
	})
}

// A Topic with spec.history gets a delivery-history stream, reported in
// StreamReady and announced in its plan; deleting the Topic deletes it.
func TestTopicHistoryStream(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := newTopic(ns, "kept")
	topic.Spec.History = &v1alpha1.TopicHistory{Enabled: true}
	create(t, topic)
	makeAvailable(t, ns, "kept-dispatcher")
	history := plan.HistoryStream(ns, "kept")
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionStreamReady, metav1.ConditionTrue, "",
			fmt.Sprintf("streams %s and %s (delivery history) are ready", plan.StreamName(ns, "kept"), history))
	})
	info, err := prov.StreamInfo(ctx, history)
	if err != nil || info == nil {
		t.Fatalf("history stream: %v %v", info, err)
	}
	if info.Config.MaxAge != compiler.DefaultHistoryMaxAge {
		t.Errorf("history kept for %v, want the default %v", info.Config.MaxAge, compiler.DefaultHistoryMaxAge)
	}
	if p, err := prov.GetPlan(ctx, ns, "kept"); err != nil || p == nil || !p.History {
		t.Errorf("plan %+v (%v) does not ask for history", p, err)
	}
	if err := k8s.Delete(ctx, topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := get(topic); !apierrors.IsNotFound(err) {
			return fmt.Errorf("topic still there: %v", err)
		}
		return nil
	})
	if info, err := prov.StreamInfo(ctx, history); err != nil || info != nil {
		t.Errorf("history stream left behind: %v %v", info, err)
	}
}

// A Subscription whose consumer JetStream refuses is left out of the plan;
// the Topic's other Subscriptions stay published. (The Topic reports the
// refusal, so its Subscriptions' TopicReady is False meanwhile.)
func TestTopicPublishesThePlanWithoutAFailingConsumer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	// The Topic's stream exists already and holds one consumer at most, so
	// the second Subscription's consumer cannot be created.
	topic := newTopic(ns, "limited")
	cfg, err := compiler.StreamConfig(topic)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConsumers = 1
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	create(t, topic)
	makeAvailable(t, ns, "limited-dispatcher")
	a := newSubscription(ns, "a", "limited", "http://a.example")
	create(t, a)
	eventually(t, func() error {
		if err := get(a); err != nil {
			return err
		}
		return wantCondition(a.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", "")
	})
	b := newSubscription(ns, "b", "limited", "http://b.example")
	create(t, b)
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionPlanPublished, metav1.ConditionFalse, v1alpha1.ReasonNATSError, "subscription b: create consumer"); err != nil {
			return err
		}
		p, err := prov.GetPlan(ctx, ns, "limited")
		if err != nil || p == nil || len(p.Subscriptions) != 1 || p.Subscriptions[0].Name != "a" {
			return fmt.Errorf("plan %+v, %v; want subscription a only", p, err)
		}
		return nil
	})
	if err := get(a); err != nil {
		t.Fatal(err)
	}
	if err := wantCondition(a.Status.Conditions, v1alpha1.ConditionConsumerReady, metav1.ConditionTrue, "", "in the plan"); err != nil {
		t.Errorf("subscription a: %v", err)
	}
	if err := get(b); err != nil {
		t.Fatal(err)
	}
	if err := wantCondition(b.Status.Conditions, v1alpha1.ConditionConsumerReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, "waiting for Topic"); err != nil {
		t.Errorf("subscription b: %v", err)
	}
}

// TestTopicIngressTLS turns spec.dispatcher.tls on and off on a Ready
// Topic: the address, the Service's ingress port and the Deployment's
// Secret volume and flags follow.
func TestTopicIngressTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	topic := readyTopic(t, ns, "secure")
	key := types.NamespacedName{Namespace: ns, Name: "secure-dispatcher"}
	url := func(scheme string) string {
		return fmt.Sprintf("%s://secure-dispatcher.%s.svc.cluster.local/%s/secure", scheme, ns, ns)
	}
	if topic.Status.Address == nil || topic.Status.Address.URL != url("http") {
		t.Fatalf("address %+v, want %s", topic.Status.Address, url("http"))
	}

	// ingress is what the dispatcher objects say about the ingress: the
	// Service's port, the Deployment's Secret volume and flags.
	type ingress struct {
		port        int32
		portName    string
		appProtocol string
		secret      string
		args        []string
	}
	observe := func() (ingress, error) {
		var in ingress
		svc, dep := &corev1.Service{}, &appsv1.Deployment{}
		if err := k8s.Get(ctx, key, svc); err != nil {
			return in, err
		}
		if err := k8s.Get(ctx, key, dep); err != nil {
			return in, err
		}
		if len(svc.Spec.Ports) != 2 || svc.Spec.Ports[1].Name != "metrics" {
			return in, fmt.Errorf("service ports %+v", svc.Spec.Ports)
		}
		p := svc.Spec.Ports[0]
		in.port, in.portName, in.appProtocol = p.Port, p.Name, ptr.Deref(p.AppProtocol, "")
		pod := dep.Spec.Template.Spec
		for _, v := range pod.Volumes {
			if v.Secret != nil {
				in.secret = v.Secret.SecretName
			}
		}
		in.args = pod.Containers[0].Args
		return in, nil
	}
	wantIngress := func(scheme string, want ingress) {
		t.Helper()
		eventually(t, func() error {
			if err := get(topic); err != nil {
				return err
			}
			if topic.Status.Address == nil || topic.Status.Address.URL != url(scheme) {
				return fmt.Errorf("address %+v, want %s", topic.Status.Address, url(scheme))
			}
			got, err := observe()
			if err != nil {
				return err
			}
			if got.port != want.port || got.portName != want.portName || got.appProtocol != want.appProtocol ||
				got.secret != want.secret || !slices.Equal(got.args, want.args) {
				return fmt.Errorf("ingress %+v, want %+v", got, want)
			}
			return nil
		})
	}

	update(t, topic, func(tp *v1alpha1.Topic) {
		tp.Spec.Dispatcher = &v1alpha1.DispatcherSpec{TLS: &v1alpha1.DispatcherTLS{SecretName: "secure-ingress"}}
	})
	wantIngress("https", ingress{port: 443, portName: "https", appProtocol: "https", secret: "secure-ingress",
		args: []string{"--topics", ns + "/secure",
			"--tls-cert-file", "/etc/herald/ingress-tls/tls.crt", "--tls-key-file", "/etc/herald/ingress-tls/tls.key"}})

	update(t, topic, func(tp *v1alpha1.Topic) { tp.Spec.Dispatcher.TLS = nil })
	wantIngress("http", ingress{port: 80, portName: "http", args: []string{"--topics", ns + "/secure"}})
}

// TestTopicSigningSecrets: a Subscription with spec.signing gets its Secret
// mounted in its Topic's dispatcher Deployment and its plan entry points
// there; without spec.signing the volume goes.
func TestTopicSigningSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "signed")
	key := types.NamespacedName{Namespace: ns, Name: "signed-dispatcher"}
	sub := newSubscription(ns, "audit", "signed", "https://audit.example")
	sub.Spec.Signing = &v1alpha1.Signing{SecretName: "audit-keys"}
	create(t, sub)
	// mounted is the Secret mounted at the Subscription's key directory, ""
	// for none.
	mounted := func() (string, error) {
		dep := &appsv1.Deployment{}
		if err := k8s.Get(ctx, key, dep); err != nil {
			return "", err
		}
		pod := dep.Spec.Template.Spec
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.MountPath != plan.SigningKeyDir("audit") {
				continue
			}
			for _, v := range pod.Volumes {
				if v.Name == m.Name && v.Secret != nil && m.ReadOnly {
					return v.Secret.SecretName, nil
				}
			}
			return "", fmt.Errorf("mount %+v has no read-only Secret volume", m)
		}
		return "", nil
	}
	eventually(t, func() error {
		if got, err := mounted(); err != nil || got != "audit-keys" {
			return fmt.Errorf("mounted Secret %q, %v; want audit-keys", got, err)
		}
		p, err := prov.GetPlan(ctx, ns, "signed")
		if err != nil || p == nil || len(p.Subscriptions) != 1 || p.Subscriptions[0].SigningKeyDir != plan.SigningKeyDir("audit") {
			return fmt.Errorf("plan %+v, %v; want audit signed from %s", p, err, plan.SigningKeyDir("audit"))
		}
		return nil
	})
	update(t, sub, func(s *v1alpha1.Subscription) { s.Spec.Signing = nil })
	eventually(t, func() error {
		if got, err := mounted(); err != nil || got != "" {
			return fmt.Errorf("mounted Secret %q, %v; want none", got, err)
		}
		return nil
	})
}
