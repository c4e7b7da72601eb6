package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/resolve"
)

func TestResolve(t *testing.T) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	objs := []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "inventory", Namespace: "shop"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "other"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}},
		&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
			Status: v1alpha1.TopicStatus{Address: &v1alpha1.Addressable{URL: "http://orders-dispatcher.shop.svc.cluster.local/shop/orders"}}},
		&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Namespace: "shop"}},
	}
	r := &Resolver{Reader: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build(), ClusterDomain: "cluster.local"}
	svcRef := func(name, ns string) *v1alpha1.KReference {
		return &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: name, Namespace: ns}
	}
	topicRef := func(name string) *v1alpha1.KReference {
		return &v1alpha1.KReference{APIVersion: "eventing.herald.dev/v1alpha1", Kind: "Topic", Name: name}
	}
	tests := []struct {
		name       string
		dest       v1alpha1.Destination
		want       string
		wantReason string
		wantMsg    string
	}{
		{name: "uri", dest: v1alpha1.Destination{URI: ptr.To("https://example.com/hook?x=1")}, want: "https://example.com/hook?x=1"},
		{name: "service with port and path", dest: v1alpha1.Destination{Ref: svcRef("inventory", ""), URI: ptr.To("/orders")},
			want: "http://inventory.shop.svc.cluster.local:8080/orders"},
		{name: "service in another namespace", dest: v1alpha1.Destination{Ref: svcRef("web", "other")}, want: "http://web.other.svc.cluster.local"},
		{name: "service query", dest: v1alpha1.Destination{Ref: svcRef("web", "other"), URI: ptr.To("?a=b")}, want: "http://web.other.svc.cluster.local?a=b"},
		{name: "missing service", dest: v1alpha1.Destination{Ref: svcRef("nope", "")}, wantReason: v1alpha1.ReasonNotFound, wantMsg: "Service shop/nope not found"},
		{name: "topic", dest: v1alpha1.Destination{Ref: topicRef("orders")}, want: "http://orders-dispatcher.shop.svc.cluster.local/shop/orders"},
		{name: "topic without address", dest: v1alpha1.Destination{Ref: topicRef("fresh")}, wantReason: v1alpha1.ReasonNotReady, wantMsg: "Topic shop/fresh has no address yet"},
		{name: "missing topic", dest: v1alpha1.Destination{Ref: topicRef("gone")}, wantReason: v1alpha1.ReasonNotFound, wantMsg: "Topic shop/gone not found"},
		{name: "bad apiVersion", dest: v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "a/b/c", Kind: "X", Name: "y"}}, wantReason: v1alpha1.ReasonNotFound, wantMsg: "invalid apiVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve.Destination(context.Background(), r, "shop", &tt.dest)
			var re *resolve.Error
			switch {
			case tt.wantReason == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantReason == "" && got.URI != tt.want:
				t.Errorf("got %s, want %s", got.URI, tt.want)
			case tt.wantReason != "" && (!errors.As(err, &re) || re.Reason != tt.wantReason || !strings.Contains(re.Message, tt.wantMsg)):
				t.Errorf("error %v, want %s %q", err, tt.wantReason, tt.wantMsg)
			}
		})
	}

	// A Subscription without its own sink takes the Topic's.
	topic := &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop"},
		Spec: v1alpha1.TopicSpec{Delivery: &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{Ref: svcRef("inventory", ""), URI: ptr.To("/dead")}}}}
	sub := &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "shop"},
		Spec: v1alpha1.SubscriptionSpec{Topic: "orders", Subscriber: v1alpha1.Destination{URI: ptr.To("http://a.example")},
			Reply: &v1alpha1.Destination{Ref: svcRef("missing", "")}}}
	rs, err := resolve.Subscription(context.Background(), r, topic, sub)
	if rs.SubscriberURI != "http://a.example" || rs.DeadLetterURI != "http://inventory.shop.svc.cluster.local:8080/dead" {
		t.Errorf("resolved %+v", rs)
	}
	if err == nil || err.Error() != "reply: Service shop/missing not found" {
		t.Errorf("error %v", err)
	}
}

func TestDeploymentAvailability(t *testing.T) {
	dep := func(replicas int32, gen, observed int64, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "ns", Generation: gen},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(replicas)},
			Status:     appsv1.DeploymentStatus{ObservedGeneration: observed, Conditions: conds},
		}
	}
	avail := func(s corev1.ConditionStatus) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{Type: appsv1.DeploymentAvailable, Status: s}
	}
	prog := func(s corev1.ConditionStatus, reason string) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: s, Reason: reason, Message: "msg " + reason}
	}
	tests := []struct {
		name   string
		d      *appsv1.Deployment
		ok     bool
		reason string
	}{
		{"not observed", dep(1, 2, 1, avail(corev1.ConditionTrue)), false, v1alpha1.ReasonProgressing},
		{"no conditions", dep(1, 1, 1), false, v1alpha1.ReasonProgressing},
		{"rolling out", dep(1, 1, 1, avail(corev1.ConditionFalse), prog(corev1.ConditionTrue, "ReplicaSetUpdated")), false, v1alpha1.ReasonProgressing},
		{"available", dep(2, 1, 1, avail(corev1.ConditionTrue), prog(corev1.ConditionTrue, "NewReplicaSetAvailable")), true, v1alpha1.ReasonSucceeded},
		{"lost replicas", dep(1, 1, 1, avail(corev1.ConditionFalse), prog(corev1.ConditionTrue, "NewReplicaSetAvailable")), false, v1alpha1.ReasonDeploymentUnavailable},
		{"deadline exceeded", dep(1, 1, 1, avail(corev1.ConditionFalse), prog(corev1.ConditionFalse, "ProgressDeadlineExceeded")), false, v1alpha1.ReasonDeploymentUnavailable},
		{"scaled to zero", dep(0, 1, 1), true, v1alpha1.ReasonSucceeded},
	}
	for _, tt := range tests {
		ok, reason, msg := deploymentAvailability(tt.d)
		if ok != tt.ok || reason != tt.reason || msg == "" {
			t.Errorf("%s: %v %s %q, want %v %s", tt.name, ok, reason, msg, tt.ok, tt.reason)
		}
	}
}

type recordedEvent struct{ typ, reason string }

type fakeRecorder struct{ events []recordedEvent }

func (f *fakeRecorder) Eventf(_ runtime.Object, _ runtime.Object, typ, reason, _, _ string, _ ...any) {
	f.events = append(f.events, recordedEvent{typ, reason})
}

func TestRecordTransition(t *testing.T) {
	ready := func(s metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: s, Reason: reason}}
	}
	tests := []struct {
		name          string
		before, after []metav1.Condition
		want          []recordedEvent
	}{
		{"first reconcile, progressing", nil, ready(metav1.ConditionFalse, v1alpha1.ReasonProgressing), nil},
		{"waits for a referent", ready(metav1.ConditionFalse, v1alpha1.ReasonProgressing), ready(metav1.ConditionFalse, v1alpha1.ReasonNotReady), nil},
		{"ready after waiting", ready(metav1.ConditionFalse, v1alpha1.ReasonNotReady), ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded),
			[]recordedEvent{{corev1.EventTypeNormal, EventReasonReady}}},
		{"first ready", ready(metav1.ConditionFalse, v1alpha1.ReasonProgressing), ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded),
			[]recordedEvent{{corev1.EventTypeNormal, EventReasonReady}}},
		{"stays ready", ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded), ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded), nil},
		{"breaks", ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded), ready(metav1.ConditionFalse, v1alpha1.ReasonNotFound),
			[]recordedEvent{{corev1.EventTypeWarning, v1alpha1.ReasonNotFound}}},
		{"stays broken", ready(metav1.ConditionFalse, v1alpha1.ReasonNotFound), ready(metav1.ConditionFalse, v1alpha1.ReasonNotFound), nil},
		{"breaks differently", ready(metav1.ConditionFalse, v1alpha1.ReasonNotFound), ready(metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec),
			[]recordedEvent{{corev1.EventTypeWarning, v1alpha1.ReasonInvalidSpec}}},
		{"recovers", ready(metav1.ConditionFalse, v1alpha1.ReasonNATSError), ready(metav1.ConditionTrue, v1alpha1.ReasonSucceeded),
			[]recordedEvent{{corev1.EventTypeNormal, EventReasonRecovered}}},
	}
	for _, tt := range tests {
		rec := &fakeRecorder{}
		recordTransition(rec, &v1alpha1.Topic{}, tt.before, tt.after)
		if fmt.Sprint(rec.events) != fmt.Sprint(tt.want) {
			t.Errorf("%s: events %v, want %v", tt.name, rec.events, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	var list []metav1.Condition
	c := conditions{list: &list, generation: 3}
	c.setTrue("A", "a ok")
	c.setFalse("B", v1alpha1.ReasonNotFound, "b missing")
	c.summarize("all good", "A", "B")
	if r := list[len(list)-1]; r.Type != v1alpha1.ConditionReady || r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonNotFound || r.Message != "b missing" || r.ObservedGeneration != 3 {
		t.Errorf("ready %+v", r)
	}
	c.stalled(true, "bad spec")
	c.summarize("all good", "A", "B")
	if r := findReady(list); r.Reason != v1alpha1.ReasonInvalidSpec || r.Message != "bad spec" {
		t.Errorf("stalled ready %+v", r)
	}
	c.stalled(false, "")
	c.setTrue("B", "b ok")
	c.summarize("all good", "A", "B")
	if r := findReady(list); r.Status != metav1.ConditionTrue || r.Message != "all good" {
		t.Errorf("ready %+v", r)
	}
	for _, cond := range list {
		if cond.Type == v1alpha1.ConditionStalled {
			t.Errorf("Stalled left behind")
		}
	}
}

func findReady(list []metav1.Condition) metav1.Condition {
	for _, c := range list {
		if c.Type == v1alpha1.ConditionReady {
			return c
		}
	}
	return metav1.Condition{}
}

func TestForbiddenMessage(t *testing.T) {
	ra := func(ns, group, resource string, verbs ...string) []authorizationv1.ResourceAttributes {
		var out []authorizationv1.ResourceAttributes
		for _, v := range verbs {
			out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: v, Group: group, Version: "v1", Resource: resource})
		}
		return out
	}
	tests := []struct {
		denied []authorizationv1.ResourceAttributes
		want   string
	}{
		{ra("shop", "", "configmaps", "watch"),
			"ServiceAccount shop/watcher may not watch configmaps in namespace shop; bind a Role granting get, list and watch"},
		{ra("shop", "", "configmaps", "get", "list", "watch"),
			"ServiceAccount shop/watcher may not get, list or watch configmaps in namespace shop; bind a Role granting get, list and watch"},
		{append(ra("a", "apps", "deployments", "list", "watch"), ra("", "", "namespaces", "get")...),
			"ServiceAccount shop/watcher may not list or watch deployments.apps in namespace a, nor get namespaces cluster-wide; " +
				"bind a ClusterRole granting get, list and watch with a ClusterRoleBinding"},
	}
	for _, tt := range tests {
		if got := forbiddenMessage("shop", "watcher", tt.denied); got != tt.want {
			t.Errorf("forbiddenMessage =\n%s\nwant\n%s", got, tt.want)
		}
	}
	var many []authorizationv1.ResourceAttributes
	for i := range 7 {
		many = append(many, ra(fmt.Sprintf("ns%d", i), "", "configmaps", "watch")...)
	}
	if got := forbiddenMessage("shop", "watcher", many); !strings.Contains(got, "watch configmaps in namespace ns4, nor 2 more;") || strings.Contains(got, "ns5") {
		t.Errorf("many: %s", got)
	}
}
