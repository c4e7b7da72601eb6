package compiler_test

import (
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

func pullSub(name string, spec v1alpha1.SubscriptionSpec) compiler.ResolvedSubscription {
	spec.Mode = v1alpha1.ModePull
	rs := resolved(name, spec)
	rs.SubscriberURI = ""
	return rs
}

func TestCompilePull(t *testing.T) {
	rs := pullSub("jobs", v1alpha1.SubscriptionSpec{
		Pull:      &v1alpha1.Pull{AckDeadline: ptr(v1alpha1.Duration("PT30S"))},
		Consumers: []v1alpha1.Publisher{{ServiceAccount: &v1alpha1.ServiceAccountReference{Name: "worker"}}, {Sub: "ci:*"}},
		Delivery:  &v1alpha1.DeliverySpec{Retry: ptr(int32(2))},
	})
	rs.DeadLetterURI = "http://dls.shop.svc/"
	sp, cc, err := compiler.CompileSubscription(topic(v1alpha1.TopicSpec{}), rs)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.IsPull() || sp.SubscriberURI != "" || sp.AckDeadline.Duration() != 30*time.Second || sp.Delivery.Retry != 2 || sp.DeadLetterURI != rs.DeadLetterURI {
		t.Errorf("plan = %+v", sp)
	}
	if cc.AckWait != 30*time.Second || cc.MaxDeliver != -1 || cc.MaxAckPending != compiler.PullMaxAckPending {
		t.Errorf("consumer AckWait %v MaxDeliver %d MaxAckPending %d, want the ack deadline, unlimited, %d", cc.AckWait, cc.MaxDeliver, cc.MaxAckPending, compiler.PullMaxAckPending)
	}
	want := plan.PublishPolicy{Source: compiler.ConsumerSource, Authenticate: true, Rules: []plan.PublishRule{
		{Name: "consumers[0]", Subjects: []string{"system:serviceaccount:shop:worker"}},
		{Name: "consumers[1]", Subjects: []string{"ci:*"}},
	}}
	if sp.Consume == nil || sp.Consume.Source != want.Source || len(sp.Consume.Rules) != 2 ||
		sp.Consume.Rules[0].Subjects[0] != want.Rules[0].Subjects[0] || sp.Consume.Rules[1].Name != want.Rules[1].Name {
		t.Errorf("consume = %+v, want %+v", sp.Consume, want)
	}
	p := plan.TopicPlan{Version: plan.Version, Namespace: "shop", Name: "orders", Stream: "s", Subject: "x", Subscriptions: []plan.SubscriptionPlan{sp}}
	if err := p.Validate(); err != nil {
		t.Errorf("plan with a pull Subscription: %v", err)
	}
}

func TestCompilePullDefaults(t *testing.T) {
	rs := pullSub("jobs", v1alpha1.SubscriptionSpec{})
	rs.ConsumeMode = plan.PublishAuthenticated
	sp, cc, err := compiler.CompileSubscription(topic(v1alpha1.TopicSpec{}), rs)
	if err != nil {
		t.Fatal(err)
	}
	if cc.AckWait != compiler.DefaultAckDeadline || sp.Consume.Source != string(plan.PublishAuthenticated) {
		t.Errorf("AckWait %v consume %+v, want %v and the default mode", cc.AckWait, sp.Consume, compiler.DefaultAckDeadline)
	}
	rs.ConsumeMode = ""
	if sp, _, _ = compiler.CompileSubscription(topic(v1alpha1.TopicSpec{}), rs); sp.Consume.Source != string(compiler.DefaultPublishMode) {
		t.Errorf("consume source %q, want %q", sp.Consume.Source, compiler.DefaultPublishMode)
	}
}

func TestCompilePullRefused(t *testing.T) {
	uri := "http://s.example/"
	for _, tc := range []struct {
		name    string
		spec    v1alpha1.SubscriptionSpec
		wantErr string
	}{
		{"subscriber", v1alpha1.SubscriptionSpec{Subscriber: v1alpha1.Destination{URI: &uri}}, "has no subscriber"},
		{"reply", v1alpha1.SubscriptionSpec{Reply: &v1alpha1.Destination{URI: &uri}}, "takes none of them"},
		{"ordered", v1alpha1.SubscriptionSpec{Ordering: v1alpha1.OrderingOrdered}, "takes none of them"},
		{"batch", v1alpha1.SubscriptionSpec{Batch: &v1alpha1.Batch{}}, "takes none of them"},
		{"short deadline", v1alpha1.SubscriptionSpec{Pull: &v1alpha1.Pull{AckDeadline: ptr(v1alpha1.Duration("500ms"))}}, "is not between"},
		{"long deadline", v1alpha1.SubscriptionSpec{Pull: &v1alpha1.Pull{AckDeadline: ptr(v1alpha1.Duration("PT11M"))}}, "is not between"},
		{"consumer filters", v1alpha1.SubscriptionSpec{Consumers: []v1alpha1.Publisher{{Namespace: "a", Filters: []v1alpha1.NestedFilter{{}}}}}, "publishers only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := compiler.CompileSubscription(topic(v1alpha1.TopicSpec{}), pullSub("p", tc.spec))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	push := resolved("push", v1alpha1.SubscriptionSpec{Consumers: []v1alpha1.Publisher{{Namespace: "a"}}})
	if _, _, err := compiler.CompileSubscription(topic(v1alpha1.TopicSpec{}), push); err == nil || !strings.Contains(err.Error(), "mode pull only") {
		t.Errorf("push with consumers: err = %v", err)
	}
}
