package controllers

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// The autoscaler watches every lane of a priority Subscription: a backlog
// of high events scales the dispatcher as one of normal ones does.
func TestScaleTriggersCoverLanes(t *testing.T) {
	subs := []v1alpha1.Subscription{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "audit"}, Spec: v1alpha1.SubscriptionSpec{Topic: "orders"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "fulfil"}, Spec: v1alpha1.SubscriptionSpec{Topic: "orders",
			Priority: &v1alpha1.Priority{Enabled: true}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "off"}, Spec: v1alpha1.SubscriptionSpec{Topic: "orders",
			Priority: &v1alpha1.Priority{Enabled: false}}},
	}
	want := []resources.ScaleTrigger{
		{Stream: "herald_shop_orders", Consumer: "sub_audit"},
		{Stream: "herald_shop_orders", Consumer: "sub_fulfil"},
		{Stream: "herald_shop_orders", Consumer: "sub_fulfil__high"},
		{Stream: "herald_shop_orders", Consumer: "sub_fulfil__low"},
		{Stream: "herald_shop_orders", Consumer: "sub_off"},
	}
	if got := scaleTriggers(subs); !slices.Equal(got, want) {
		t.Errorf("triggers %+v, want %+v", got, want)
	}
}
