package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

func topicSink(name string) v1alpha1.Destination {
	return v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "eventing.herald.dev/v1alpha1", Kind: "Topic", Name: name}}
}

func newEventSource(ns, name string, spec v1alpha1.EventSourceSpec) *v1alpha1.EventSource {
	return &v1alpha1.EventSource{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// adapterDeployment waits for an EventSource's Deployment.
func adapterDeployment(t *testing.T, ns, source string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	eventually(t, func() error {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: source + "-source"}, d)
	})
	return d
}

func containerEnv(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func TestEventSourcePing(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := readyTopic(t, ns, "ticks")
	src := newEventSource(ns, "tick", v1alpha1.EventSourceSpec{
		Sink:        topicSink("ticks"),
		CEOverrides: &v1alpha1.CloudEventOverrides{Extensions: map[string]string{"team": "shop"}},
		Ping:        &v1alpha1.PingSource{Schedule: "*/5 * * * *", Data: `{"hello":"world"}`},
	})
	create(t, src)
	d := adapterDeployment(t, ns, "tick")

	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %d strategy %s", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != image || !slices.Equal(append(c.Command, c.Args...), []string{"herald", "adapter"}) {
		t.Errorf("container %s %v %v", c.Image, c.Command, c.Args)
	}
	env := containerEnv(c)
	if env["K_SINK"].Value != topic.Status.Address.URL {
		t.Errorf("K_SINK %q, want %q", env["K_SINK"].Value, topic.Status.Address.URL)
	}
	if env["K_CE_OVERRIDES"].Value != `{"extensions":{"team":"shop"}}` {
		t.Errorf("K_CE_OVERRIDES %q", env["K_CE_OVERRIDES"].Value)
	}
	// The sink is a Topic: the adapter presents a token for its audience,
	// as its own ServiceAccount, which it may mint tokens for.
	if env["K_AUDIENCE"].Value != plan.TopicAudience(ns, "ticks") {
		t.Errorf("K_AUDIENCE %q, want %q", env["K_AUDIENCE"].Value, plan.TopicAudience(ns, "ticks"))
	}
	if pod := d.Spec.Template.Spec; pod.ServiceAccountName != "tick-source" || !*pod.AutomountServiceAccountToken {
		t.Errorf("service account %q automount %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	wantOwnedBy(t, src, types.NamespacedName{Namespace: ns, Name: "tick-source"}, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{})
	if env["HERALD_SOURCE_TYPE"].Value != "ping" || env["HERALD_SOURCE_NAMESPACE"].Value != ns || env["HERALD_SOURCE_NAME"].Value != "tick" {
		t.Errorf("source env %v", env)
	}
	var spec v1alpha1.PingSource
	if err := json.Unmarshal([]byte(env["HERALD_SOURCE_SPEC"].Value), &spec); err != nil || spec.Schedule != "*/5 * * * *" {
		t.Errorf("HERALD_SOURCE_SPEC %q: %v", env["HERALD_SOURCE_SPEC"].Value, err)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Kind != "EventSource" {
		t.Errorf("owner references %+v", d.OwnerReferences)
	}

	eventually(t, func() error {
		if err := get(src); err != nil {
			return err
		}
		if src.Status.SinkURI != topic.Status.Address.URL || src.Status.Type != v1alpha1.EventSourceTypePing ||
			src.Status.SinkAudience != plan.TopicAudience(ns, "ticks") {
			return fmt.Errorf("status sinkUri %q sinkAudience %q type %q", src.Status.SinkURI, src.Status.SinkAudience, src.Status.Type)
		}
		return wantCondition(src.Status.Conditions, v1alpha1.ConditionDeploymentAvailable, metav1.ConditionFalse, v1alpha1.ReasonProgressing, "")
	})
	if got := kstatus(t, src); got != status.InProgressStatus {
		t.Errorf("kstatus %s, want InProgress", got)
	}
	makeAvailable(t, ns, "tick-source")
	wantKStatus(t, src, status.CurrentStatus)
	if src.Status.Address != nil {
		t.Errorf("a ping source has an address: %+v", src.Status.Address)
	}

	// An invalid schedule stalls the source and leaves the Deployment as it was.
	update(t, src, func(s *v1alpha1.EventSource) { s.Spec.Ping.Schedule = "every minute" })
	eventually(t, func() error {
		if err := get(src); err != nil {
			return err
		}
		return wantCondition(src.Status.Conditions, v1alpha1.ConditionSourceConfigured, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "every minute")
	})
	if got := kstatus(t, src); got != status.FailedStatus {
		t.Errorf("kstatus %s, want Failed", got)
	}
}

func TestEventSourceWebhook(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	create(t, newService(ns, "sink", 8080))
	src := newEventSource(ns, "hook", v1alpha1.EventSourceSpec{
		Sink: v1alpha1.Destination{Ref: serviceRef("sink"), URI: ptr.To("/events")},
		Webhook: &v1alpha1.WebhookSource{Signature: &v1alpha1.WebhookSignature{
			Type:         v1alpha1.SignatureGitHub,
			SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gh"}, Key: "token"},
		}},
	})
	create(t, src)
	d := adapterDeployment(t, ns, "hook")
	env := containerEnv(d.Spec.Template.Spec.Containers[0])
	wantSink := fmt.Sprintf("http://sink.%s.svc.cluster.local:8080/events", ns)
	if env["K_SINK"].Value != wantSink || env["HERALD_SOURCE_TYPE"].Value != "webhook" {
		t.Errorf("env %v", env)
	}
	if ref := env["HERALD_WEBHOOK_SECRET"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != "gh" || ref.SecretKeyRef.Key != "token" {
		t.Errorf("webhook secret %+v", env["HERALD_WEBHOOK_SECRET"])
	}
	svc := &corev1.Service{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hook-source"}, svc); err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
	makeAvailable(t, ns, "hook-source")
	wantKStatus(t, src, status.CurrentStatus)
	wantAddr := fmt.Sprintf("http://hook-source.%s.svc.cluster.local", ns)
	if src.Status.Address == nil || src.Status.Address.URL != wantAddr {
		t.Errorf("address %+v, want %s", src.Status.Address, wantAddr)
	}

	// Turned into a ping source, it loses its Service and address.
	update(t, src, func(s *v1alpha1.EventSource) {
		s.Spec.Webhook = nil
		s.Spec.Ping = &v1alpha1.PingSource{Schedule: "@every 1m"}
	})
	eventually(t, func() error {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "hook-source"}, svc); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service still there: %v", err)
		}
		if err := get(src); err != nil {
			return err
		}
		if src.Status.Address != nil || src.Status.Type != v1alpha1.EventSourceTypePing {
			return fmt.Errorf("status address %+v type %s", src.Status.Address, src.Status.Type)
		}
		return nil
	})
}

// serviceAccount creates ServiceAccount ns/name (envtest runs no
// controller-manager, so not even "default" exists).
func serviceAccount(t *testing.T, ns, name string) {
	t.Helper()
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
}

// configMapReader creates Role ns/name granting verbs on ConfigMaps, bound
// to the ServiceAccounts of ns named sas.
func configMapReader(t *testing.T, ns, name string, verbs []string, sas ...string) *rbacv1.Role {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: verbs}}}
	create(t, role)
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}}
	for _, sa := range sas {
		rb.Subjects = append(rb.Subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns})
	}
	create(t, rb)
	return role
}

func TestEventSourceAPIServer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	serviceAccount(t, ns, "default")
	serviceAccount(t, ns, "watcher")
	configMapReader(t, ns, "configmap-reader", []string{"get", "list", "watch"}, "default", "watcher")
	for _, tt := range []struct{ name, sa, want string }{
		{"default-sa", "", "default"},
		{"own-sa", "watcher", "watcher"},
	} {
		create(t, newEventSource(ns, tt.name, v1alpha1.EventSourceSpec{
			Sink: v1alpha1.Destination{URI: ptr.To("http://sink.example")},
			APIServer: &v1alpha1.APIServerSource{
				ServiceAccountName: tt.sa,
				Resources:          []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}},
			},
		}))
		d := adapterDeployment(t, ns, tt.name)
		pod := d.Spec.Template.Spec
		if pod.ServiceAccountName != tt.want || !*pod.AutomountServiceAccountToken {
			t.Errorf("%s: service account %q token %v", tt.name, pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
		}
		if env := containerEnv(pod.Containers[0]); env["HERALD_SOURCE_TYPE"].Value != "apiServer" || env["K_SINK"].Value != "http://sink.example" {
			t.Errorf("%s: env %v", tt.name, env)
		}
	}
}

// TestEventSourceAPIServerAccess follows an apiServer source from a missing
// ServiceAccount, through denied access, to Ready. Nothing but the
// ServiceAccount watch and the Forbidden requeue reconciles it on the way.
func TestEventSourceAPIServerAccess(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	src := newEventSource(ns, "cms", v1alpha1.EventSourceSpec{
		Sink: v1alpha1.Destination{URI: ptr.To("http://sink.example")},
		APIServer: &v1alpha1.APIServerSource{
			ServiceAccountName: "watcher",
			Resources:          []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}},
		},
	})
	create(t, src)
	waitSourceConfigured := func(st metav1.ConditionStatus, reason, msg string) {
		t.Helper()
		eventually(t, func() error {
			if err := get(src); err != nil {
				return err
			}
			if src.Status.ObservedGeneration != src.Generation {
				return fmt.Errorf("observedGeneration %d, generation %d", src.Status.ObservedGeneration, src.Generation)
			}
			if err := wantCondition(src.Status.Conditions, v1alpha1.ConditionSourceConfigured, st, reason, msg); err != nil {
				return err
			}
			if st != metav1.ConditionTrue {
				// Ready reports the same problem; it is not one the spec
				// must change for.
				if err := wantCondition(src.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg); err != nil {
					return err
				}
				if c := condition(src.Status.Conditions, v1alpha1.ConditionStalled); c.Status == metav1.ConditionTrue {
					return fmt.Errorf("stalled: %s", c.Message)
				}
			}
			return nil
		})
	}
	noDeployment := func() {
		t.Helper()
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "cms-source"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Fatalf("adapter Deployment before the source is configured: %v", err)
		}
	}

	waitSourceConfigured(metav1.ConditionFalse, v1alpha1.ReasonNotFound, fmt.Sprintf("ServiceAccount %s/watcher not found", ns))
	if got := kstatus(t, src); got != status.InProgressStatus {
		t.Errorf("kstatus %s, want InProgress", got)
	}
	noDeployment()

	// Created, the ServiceAccount is found at once, but may do nothing.
	serviceAccount(t, ns, "watcher")
	waitSourceConfigured(metav1.ConditionFalse, v1alpha1.ReasonForbidden,
		fmt.Sprintf("ServiceAccount %s/watcher may not get, list or watch configmaps in namespace %s; bind a Role granting get, list and watch", ns, ns))
	noDeployment()

	// A Role without watch is not enough.
	role := configMapReader(t, ns, "configmap-reader", []string{"get", "list"}, "watcher")
	waitSourceConfigured(metav1.ConditionFalse, v1alpha1.ReasonForbidden,
		fmt.Sprintf("ServiceAccount %s/watcher may not watch configmaps in namespace %s; bind a Role granting get, list and watch", ns, ns))
	noDeployment()

	update(t, role, func(r *rbacv1.Role) { r.Rules[0].Verbs = []string{"get", "list", "watch"} })
	waitSourceConfigured(metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "apiServer source is configured")
	d := adapterDeployment(t, ns, "cms")
	if sa := d.Spec.Template.Spec.ServiceAccountName; sa != "watcher" {
		t.Errorf("adapter runs as %q", sa)
	}
	makeAvailable(t, ns, "cms-source")
	wantKStatus(t, src, status.CurrentStatus)
	if err := wantCondition(src.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, ""); err != nil {
		t.Error(err)
	}

	// Deleting the ServiceAccount is noticed at once too.
	if err := k8s.Delete(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "watcher"}}); err != nil {
		t.Fatal(err)
	}
	waitSourceConfigured(metav1.ConditionFalse, v1alpha1.ReasonNotFound, fmt.Sprintf("ServiceAccount %s/watcher not found", ns))
}

// TestEventSourceAPIServerInvalid: an apiVersion that does not parse stalls
// the source; an unknown kind is InvalidSpec too, but not Stalled, since
// installing its CRD fixes it without a spec change.
func TestEventSourceAPIServerInvalid(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	serviceAccount(t, ns, "default")
	for _, tt := range []struct {
		name, apiVersion, kind string
		want                   status.Status
		msg                    string
	}{
		{"unknown-kind", "example.com/v1", "Widget", status.InProgressStatus, "example.com/v1 Widget"},
		{"unknown-core-kind", "v1", "Nope", status.InProgressStatus, "v1 Nope"},
		{"bad-api-version", "a/b/c", "Widget", status.FailedStatus, "apiServer: resources[0].apiVersion"},
	} {
		src := newEventSource(ns, tt.name, v1alpha1.EventSourceSpec{
			Sink:      v1alpha1.Destination{URI: ptr.To("http://sink.example")},
			APIServer: &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: tt.apiVersion, Kind: tt.kind}}},
		})
		create(t, src)
		eventually(t, func() error {
			if err := get(src); err != nil {
				return err
			}
			if err := wantCondition(src.Status.Conditions, v1alpha1.ConditionSourceConfigured, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, tt.msg); err != nil {
				return err
			}
			return wantCondition(src.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, tt.msg)
		})
		if got := kstatus(t, src); got != tt.want {
			t.Errorf("%s: kstatus %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestEventSourceContainer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	src := newEventSource(ns, "custom", v1alpha1.EventSourceSpec{
		Sink: v1alpha1.Destination{URI: ptr.To("http://sink.example/in")},
		Container: &v1alpha1.ContainerSource{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "custom"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "main", Image: "example/source:1", Env: []corev1.EnvVar{{Name: "K_SINK", Value: "http://stale"}, {Name: "OTHER", Value: "x"}}},
				{Name: "sidecar", Image: "example/sidecar:1"},
			}},
		}},
	})
	create(t, src)
	d := adapterDeployment(t, ns, "custom")
	if d.Spec.Template.Labels["app"] != "custom" || d.Spec.Template.Labels["eventing.herald.dev/eventsource"] != "custom" {
		t.Errorf("labels %v", d.Spec.Template.Labels)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		env := containerEnv(c)
		if env["K_SINK"].Value != "http://sink.example/in" || env["K_CE_OVERRIDES"].Value != "{}" {
			t.Errorf("container %s env %v", c.Name, c.Env)
		}
	}
	if env := containerEnv(d.Spec.Template.Spec.Containers[0]); env["OTHER"].Value != "x" || len(d.Spec.Template.Spec.Containers[0].Env) != 3 {
		t.Errorf("main env %v", d.Spec.Template.Spec.Containers[0].Env)
	}
	makeAvailable(t, ns, "custom-source")
	wantKStatus(t, src, status.CurrentStatus)
	// The user's container obtains its own token: no ServiceAccount or
	// token Role of Herald's.
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "custom-source"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("container source has a %T: %v", obj, err)
		}
	}

	// A template the API server refuses stalls the source.
	bad := newEventSource(ns, "bad", v1alpha1.EventSourceSpec{
		Sink: v1alpha1.Destination{URI: ptr.To("http://sink.example/in")},
		Container: &v1alpha1.ContainerSource{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "no-image"}}},
		}},
	})
	create(t, bad)
	eventually(t, func() error {
		if err := get(bad); err != nil {
			return err
		}
		return wantCondition(bad.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "image")
	})
}

func TestEventSourceSinkResolution(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	src := newEventSource(ns, "waiting", v1alpha1.EventSourceSpec{
		Sink: v1alpha1.Destination{Ref: serviceRef("later")},
		Ping: &v1alpha1.PingSource{Schedule: "@hourly"},
	})
	create(t, src)
	eventually(t, func() error {
		if err := get(src); err != nil {
			return err
		}
		return wantCondition(src.Status.Conditions, v1alpha1.ConditionSinkResolved, metav1.ConditionFalse, v1alpha1.ReasonNotFound,
			fmt.Sprintf("Service %s/later not found", ns))
	})
	// No Deployment without a sink.
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "waiting-source"}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
		t.Errorf("deployment before the sink resolved: %v", err)
	}
	create(t, newService(ns, "later", 80))
	d := adapterDeployment(t, ns, "waiting")
	if got, want := containerEnv(d.Spec.Template.Spec.Containers[0])["K_SINK"].Value, fmt.Sprintf("http://later.%s.svc.cluster.local", ns); got != want {
		t.Errorf("K_SINK %q, want %q", got, want)
	}
}

// wantOwnedBy waits for an object of each of objs' kinds at key, controlled
// by owner.
func wantOwnedBy(t *testing.T, owner client.Object, key types.NamespacedName, objs ...client.Object) {
	t.Helper()
	for _, obj := range objs {
		eventually(t, func() error {
			if err := k8s.Get(context.Background(), key, obj); err != nil {
				return fmt.Errorf("%T: %w", obj, err)
			}
			if !metav1.IsControlledBy(obj, owner) {
				return fmt.Errorf("%T owner references %+v", obj, obj.GetOwnerReferences())
			}
			return nil
		})
	}
}

// TestEventSourceIdentityFollowsType: an apiServer source's token Role
// names the user's ServiceAccount and it gets no ServiceAccount of
// Herald's; a source that becomes a container source loses its token Role.
func TestEventSourceIdentityFollowsType(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := namespace(t)
	readyTopic(t, ns, "changes")
	src := newEventSource(ns, "beat", v1alpha1.EventSourceSpec{
		Sink: topicSink("changes"),
		Ping: &v1alpha1.PingSource{Schedule: "*/5 * * * *"},
	})
	create(t, src)
	key := types.NamespacedName{Namespace: ns, Name: "beat-source"}
	wantOwnedBy(t, src, key, &corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{})
	role := &rbacv1.Role{}
	if err := k8s.Get(ctx, key, role); err != nil || len(role.Rules) != 1 || !slices.Equal(role.Rules[0].ResourceNames, []string{"beat-source"}) {
		t.Fatalf("token role %+v: %v", role.Rules, err)
	}

	update(t, src, func(s *v1alpha1.EventSource) {
		s.Spec.Ping = nil
		s.Spec.Container = &v1alpha1.ContainerSource{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "example/source:1"}}}}}
	})
	for _, obj := range []client.Object{&corev1.ServiceAccount{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}} {
		eventually(t, func() error {
			if err := k8s.Get(ctx, key, obj); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T still there: %v", obj, err)
			}
			return nil
		})
	}
	d := adapterDeployment(t, ns, "beat")
	eventually(t, func() error {
		if err := k8s.Get(ctx, key, d); err != nil {
			return err
		}
		if env := containerEnv(d.Spec.Template.Spec.Containers[0]); env["K_AUDIENCE"].Value != plan.TopicAudience(ns, "changes") {
			return fmt.Errorf("container K_AUDIENCE %q", env["K_AUDIENCE"].Value)
		}
		return nil
	})
}
