package controllers_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/plan"
)

// publishedPolicy is the publish policy of the Topic's plan in NATS.
func publishedPolicy(ns, name string) (plan.PublishPolicy, string, error) {
	p, err := prov.GetPlan(context.Background(), ns, name)
	if err != nil || p == nil {
		return plan.PublishPolicy{}, "", fmt.Errorf("plan %+v: %v", p, err)
	}
	return p.Publish, p.Audience, nil
}

// A Topic without publishers gets the manager's default mode, which the
// suite leaves at allow-same-namespace; its status shows the policy and the
// audience producers' tokens carry.
func TestTopicDefaultPublishPolicy(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := readyTopic(t, ns, "orders")
	want := plan.PublishPolicy{Source: "allow-same-namespace", Authenticate: true, Rules: []plan.PublishRule{
		{Name: "allow-same-namespace", Subjects: []string{"system:serviceaccount:" + ns + ":*"}}}}
	pol, aud, err := publishedPolicy(ns, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pol, want) {
		t.Errorf("plan policy %+v, want %+v", pol, want)
	}
	wantAud := "eventing.herald.dev/topic/" + ns + "/orders"
	if aud != wantAud {
		t.Errorf("plan audience %q, want %q", aud, wantAud)
	}
	if topic.Status.Address == nil || topic.Status.Address.Audience != wantAud {
		t.Errorf("status.address %+v, want audience %s", topic.Status.Address, wantAud)
	}
	wantSt := &v1alpha1.PublishPolicyStatus{Source: "allow-same-namespace", Authenticate: true, Rules: 1}
	if !reflect.DeepEqual(topic.Status.PublishPolicy, wantSt) {
		t.Errorf("status.publishPolicy %+v, want %+v", topic.Status.PublishPolicy, wantSt)
	}
}

// Publishers replace the default mode; a namespaceSelector follows the
// labels of Namespaces as they change.
func TestTopicPublishersFollowNamespaceLabels(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	other := namespace(t)
	label := "publishers.herald.dev/" + ns // unique to this test
	topic := newTopic(ns, "orders")
	topic.Spec.Publishers = []v1alpha1.Publisher{
		{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "checkout"}},
		{Namespace: "web", Filters: []v1alpha1.NestedFilter{{FilterAttributes: v1alpha1.FilterAttributes{Prefix: map[string]string{"type": "com.shop."}}}}},
		{NamespaceSelector: &v1alpha1.NamespaceSelector{MatchLabels: map[string]string{label: "yes"}}},
		{Sub: "system:serviceaccount:ci:*"},
	}
	create(t, topic)
	makeAvailable(t, ns, "orders-dispatcher")

	rules := func(selected ...string) []plan.PublishRule {
		subjects := []string{}
		for _, s := range selected {
			subjects = append(subjects, "system:serviceaccount:"+s+":*")
		}
		return []plan.PublishRule{
			{Name: "publishers[0]", Subjects: []string{"system:serviceaccount:" + ns + ":checkout"}},
			{Name: "publishers[1]", Subjects: []string{"system:serviceaccount:web:*"}, Filters: []plan.Filter{{Prefix: map[string]string{"type": "com.shop."}}}},
			{Name: "publishers[2]", Subjects: subjects},
			{Name: "publishers[3]", Subjects: []string{"system:serviceaccount:ci:*"}},
		}
	}
	wantPolicy := func(st string, selected ...string) func() error {
		return func() error {
			pol, _, err := publishedPolicy(ns, "orders")
			if err != nil {
				return err
			}
			want := plan.PublishPolicy{Source: "publishers", Authenticate: true, Rules: rules(selected...)}
			if !reflect.DeepEqual(pol, want) {
				return fmt.Errorf("plan policy %+v, want %+v", pol, want)
			}
			if err := get(topic); err != nil {
				return err
			}
			wantSt := &v1alpha1.PublishPolicyStatus{Source: "publishers", Authenticate: true, Rules: 4, Namespaces: []string{"publishers[2]: " + st}}
			if !reflect.DeepEqual(topic.Status.PublishPolicy, wantSt) {
				return fmt.Errorf("status.publishPolicy %+v, want %+v", topic.Status.PublishPolicy, wantSt)
			}
			return nil
		}
	}
	eventually(t, wantPolicy("(none)"))

	setLabel := func(name, value string) {
		update(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, func(n *corev1.Namespace) {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			if value == "" {
				delete(n.Labels, label)
			} else {
				n.Labels[label] = value
			}
		})
	}
	setLabel(other, "yes")
	eventually(t, wantPolicy(other, other))
	setLabel(ns, "yes")
	// Selected namespaces are listed in name order, whatever the order of
	// their labelling.
	both := []string{ns, other}
	slices.Sort(both)
	eventually(t, wantPolicy(strings.Join(both, ","), both...))
	setLabel(other, "no")
	eventually(t, wantPolicy(ns, ns))
	setLabel(ns, "")
	eventually(t, wantPolicy("(none)"))
	if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue, "", ""); err != nil {
		t.Error(err)
	}
}

// A namespaceSelector the API server accepts but that does not parse (a
// label key the schema does not check) stalls the Topic and leaves the last published plan in place.
func TestTopicInvalidNamespaceSelectorStalls(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := readyTopic(t, ns, "orders")
	update(t, topic, func(tp *v1alpha1.Topic) {
		tp.Spec.Publishers = []v1alpha1.Publisher{{NamespaceSelector: &v1alpha1.NamespaceSelector{
			MatchExpressions: []v1alpha1.NamespaceSelectorRequirement{{Key: "not a key!", Operator: metav1.LabelSelectorOpExists}}}}}
	})
	eventually(t, func() error {
		if err := get(topic); err != nil {
			return err
		}
		if err := wantCondition(topic.Status.Conditions, v1alpha1.ConditionPlanPublished, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, "publishers[0].namespaceSelector"); err != nil {
			return err
		}
		return wantCondition(topic.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, "")
	})
	pol, _, err := publishedPolicy(ns, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if pol.Source != "allow-same-namespace" {
		t.Errorf("plan policy %+v, want the last valid one (allow-same-namespace)", pol)
	}
}

// Each default mode, as a Topic reconciler configured with it compiles a
// Topic without publishers; the suite's manager runs with the default mode
// only.
func TestTopicPublishPolicyOfEachMode(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	topic := newTopic(ns, "orders")
	tests := []struct {
		mode plan.PublishMode
		want plan.PublishPolicy
		st   v1alpha1.PublishPolicyStatus
	}{
		{"", plan.PublishPolicy{Source: "allow-same-namespace", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "allow-same-namespace", Subjects: []string{"system:serviceaccount:" + ns + ":*"}}}},
			v1alpha1.PublishPolicyStatus{Source: "allow-same-namespace", Authenticate: true, Rules: 1}},
		{plan.PublishAuthenticated, plan.PublishPolicy{Source: "authenticated", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "authenticated", Subjects: []string{"*"}}}},
			v1alpha1.PublishPolicyStatus{Source: "authenticated", Authenticate: true, Rules: 1}},
		{plan.PublishAllowAll, plan.PublishPolicy{Source: "allow-all"}, v1alpha1.PublishPolicyStatus{Source: "allow-all"}},
		{plan.PublishDenyAll, plan.PublishPolicy{Source: "deny-all", Authenticate: true}, v1alpha1.PublishPolicyStatus{Source: "deny-all", Authenticate: true}},
	}
	for _, tt := range tests {
		pol, st, err := controllers.TopicPublishPolicy(context.Background(), k8s, tt.mode, topic)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(pol, tt.want) || !reflect.DeepEqual(*st, tt.st) {
			t.Errorf("mode %q: policy %+v, status %+v; want %+v, %+v", tt.mode, pol, *st, tt.want, tt.st)
		}
	}
	// Publishers win over every mode.
	topic.Spec.Publishers = []v1alpha1.Publisher{{Namespace: "web"}}
	for _, mode := range plan.PublishModes {
		pol, _, err := controllers.TopicPublishPolicy(context.Background(), k8s, mode, topic)
		if err != nil || pol.Source != "publishers" || !pol.Authenticate || len(pol.Rules) != 1 {
			t.Errorf("mode %s with publishers: %+v, %v", mode, pol, err)
		}
	}
}
