package compiler_test

import (
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

func TestPublishPolicyModes(t *testing.T) {
	tests := []struct {
		mode plan.PublishMode
		want plan.PublishPolicy
	}{
		{"", plan.PublishPolicy{Source: "allow-same-namespace", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "allow-same-namespace", Subjects: []string{"system:serviceaccount:shop:*"}}}}},
		{plan.PublishAllowSameNamespace, plan.PublishPolicy{Source: "allow-same-namespace", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "allow-same-namespace", Subjects: []string{"system:serviceaccount:shop:*"}}}}},
		{plan.PublishAuthenticated, plan.PublishPolicy{Source: "authenticated", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "authenticated", Subjects: []string{"*"}}}}},
		{plan.PublishAllowAll, plan.PublishPolicy{Source: "allow-all"}},
		{plan.PublishDenyAll, plan.PublishPolicy{Source: "deny-all", Authenticate: true}},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			got, err := compiler.PublishPolicy(topic(v1alpha1.TopicSpec{}), tt.mode, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policy\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
	if _, err := compiler.PublishPolicy(topic(v1alpha1.TopicSpec{}), "open", nil); err == nil || !strings.Contains(err.Error(), "want one of allow-same-namespace, authenticated, allow-all, deny-all") {
		t.Errorf("unknown mode: %v", err)
	}
}

func TestPublishPolicyPublishers(t *testing.T) {
	tp := topic(v1alpha1.TopicSpec{Publishers: []v1alpha1.Publisher{
		{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "checkout"}},
		{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "billing", Namespace: "finance"}},
		{Namespace: "web", Filters: []v1alpha1.NestedFilter{
			{FilterAttributes: v1alpha1.FilterAttributes{Prefix: map[string]string{"type": "com.shop."}}},
			{Not: &v1alpha1.InnerFilter{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"source": "/admin"}}}},
		}},
		{NamespaceSelector: &v1alpha1.NamespaceSelector{MatchLabels: map[string]string{"team": "shop"}}},
		{NamespaceSelector: &v1alpha1.NamespaceSelector{MatchLabels: map[string]string{"team": "none"}}},
		{Sub: "https://ci.example/*"},
	}})
	sel, err := compiler.SelectedNamespaces(tp, map[string]map[string]string{
		"b-team": {"team": "shop"}, "a-team": {"team": "shop", "tier": "web"}, "other": {"team": "ops"}, "bare": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int][]string{3: {"a-team", "b-team"}, 4: {}}; !reflect.DeepEqual(sel, want) {
		t.Errorf("selected %v, want %v", sel, want)
	}
	// Whatever the default mode, publishers decide.
	for _, mode := range plan.PublishModes {
		got, err := compiler.PublishPolicy(tp, mode, sel)
		if err != nil {
			t.Fatal(err)
		}
		want := plan.PublishPolicy{Source: "publishers", Authenticate: true, Rules: []plan.PublishRule{
			{Name: "publishers[0]", Subjects: []string{"system:serviceaccount:shop:checkout"}},
			{Name: "publishers[1]", Subjects: []string{"system:serviceaccount:finance:billing"}},
			{Name: "publishers[2]", Subjects: []string{"system:serviceaccount:web:*"}, Filters: []plan.Filter{
				{Prefix: map[string]string{"type": "com.shop."}},
				{Not: &plan.Filter{Exact: map[string]string{"source": "/admin"}}},
			}},
			{Name: "publishers[3]", Subjects: []string{"system:serviceaccount:a-team:*", "system:serviceaccount:b-team:*"}},
			{Name: "publishers[4]", Subjects: []string{}},
			{Name: "publishers[5]", Subjects: []string{"https://ci.example/*"}},
		}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("mode %s: policy\n  %+v\nwant\n  %+v", mode, got, want)
		}
	}
	// A selector without resolved namespaces admits nobody.
	got, err := compiler.PublishPolicy(tp, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Rules[3].Subjects; len(s) != 0 {
		t.Errorf("unresolved selector admits %v", s)
	}
}

func TestPublishPolicyErrors(t *testing.T) {
	tests := []struct {
		name    string
		pub     v1alpha1.Publisher
		wantErr string
	}{
		{"bad selector operator", v1alpha1.Publisher{NamespaceSelector: &v1alpha1.NamespaceSelector{
			MatchExpressions: []v1alpha1.NamespaceSelectorRequirement{{Key: "team", Operator: "Near", Values: []string{"x"}}}}},
			"publishers[0].namespaceSelector: "},
		{"In without values", v1alpha1.Publisher{NamespaceSelector: &v1alpha1.NamespaceSelector{
			MatchExpressions: []v1alpha1.NamespaceSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn}}}},
			"publishers[0].namespaceSelector: "},
		{"bad cesql", v1alpha1.Publisher{Namespace: "web", Filters: []v1alpha1.NestedFilter{{FilterAttributes: v1alpha1.FilterAttributes{CESQL: "type = "}}}},
			"publishers[0].filters[0]: cesql"},
		{"no identity", v1alpha1.Publisher{}, "publishers[0]: sets none of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := topic(v1alpha1.TopicSpec{Publishers: []v1alpha1.Publisher{tt.pub}})
			_, err := compiler.PublishPolicy(tp, plan.PublishAllowAll, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
	tp := topic(v1alpha1.TopicSpec{Publishers: []v1alpha1.Publisher{{NamespaceSelector: &v1alpha1.NamespaceSelector{
		MatchExpressions: []v1alpha1.NamespaceSelectorRequirement{{Key: "team", Operator: "Near"}}}}}})
	if _, err := compiler.SelectedNamespaces(tp, nil); err == nil || !strings.Contains(err.Error(), "publishers[0].namespaceSelector: ") {
		t.Errorf("SelectedNamespaces: %v", err)
	}
}

func TestParsePublishMode(t *testing.T) {
	for in, want := range map[string]plan.PublishMode{"": plan.PublishAllowSameNamespace, "deny-all": plan.PublishDenyAll, "allow-all": plan.PublishAllowAll} {
		if got, err := compiler.ParsePublishMode(in); err != nil || got != want {
			t.Errorf("ParsePublishMode(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := compiler.ParsePublishMode("Allow-All"); err == nil {
		t.Error("ParsePublishMode accepted Allow-All")
	}
}

func TestCompileSetsAudience(t *testing.T) {
	res, err := compiler.Compile(topic(v1alpha1.TopicSpec{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Audience != "eventing.herald.dev/topic/shop/orders" {
		t.Errorf("audience %q", res.Plan.Audience)
	}
}
