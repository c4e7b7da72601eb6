package resolve_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/resolve"
)

func TestJoin(t *testing.T) {
	tests := []struct {
		base, uri, want, wantErr string
	}{
		{base: "http://h", uri: "/orders", want: "http://h/orders"},
		{base: "http://h:8080", uri: "?a=b", want: "http://h:8080?a=b"},
		{base: "http://h/shop/orders", uri: "/audit", want: "http://h/shop/orders/audit"},
		{base: "http://h/shop/orders/", uri: "/audit", want: "http://h/shop/orders/audit"},
		{base: "http://h/shop/orders", uri: "?a=b", want: "http://h/shop/orders?a=b"},
		{base: "http://h/p?x=1", uri: "/q?a=b", want: "http://h/p/q?x=1&a=b"},
		{base: "http://h/p#frag", uri: "/q", want: "http://h/p/q"},
		{base: "http://h/a%2Fb", uri: "/c%20d", want: "http://h/a%2Fb/c%20d"},
		{base: "http://h", uri: "http://other/x", wantErr: "with a ref, uri must be a path"},
		{base: "http://h", uri: "orders", wantErr: "with a ref, uri must be a path"},
		{base: "http://h", uri: "//other/x", wantErr: "invalid uri"},
	}
	for _, tt := range tests {
		got, err := resolve.Join(tt.base, tt.uri)
		if tt.wantErr != "" {
			var re *resolve.Error
			if !errors.As(err, &re) || re.Reason != v1alpha1.ReasonNotAddressable || !strings.Contains(re.Message, tt.wantErr) {
				t.Errorf("Join(%q, %q) = %q, %v; want a NotAddressable error containing %q", tt.base, tt.uri, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q", tt.base, tt.uri, got, err, tt.want)
		}
	}
}

// lookup gives every referent the address http://<kind>.<namespace>/<name>,
// and has no Service named missing.
type lookup struct{}

func (lookup) Address(_ context.Context, ref v1alpha1.KReference) (string, error) {
	if ref.Name == "missing" {
		return "", &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: ref.Kind + " " + ref.Namespace + "/missing not found"}
	}
	return "http://" + strings.ToLower(ref.Kind) + "." + ref.Namespace + "/" + ref.Name, nil
}

func TestSubscriptionDeadLetterSinkPrecedence(t *testing.T) {
	ref := func(name string) *v1alpha1.Destination {
		return &v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: name}}
	}
	topic := func(dls *v1alpha1.Destination) *v1alpha1.Topic {
		return &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
			Spec: v1alpha1.TopicSpec{Delivery: &v1alpha1.DeliverySpec{DeadLetterSink: dls}}}
	}
	sub := func(dls *v1alpha1.Destination) *v1alpha1.Subscription {
		s := &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s"},
			Spec: v1alpha1.SubscriptionSpec{Topic: "orders", Subscriber: *ref("sub")}}
		if dls != nil {
			s.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: dls}
		}
		return s
	}
	tests := []struct {
		name    string
		topic   *v1alpha1.Topic
		sub     *v1alpha1.Subscription
		want    string
		wantErr string
	}{
		{name: "the subscription's", topic: topic(ref("topic-dls")), sub: sub(ref("sub-dls")), want: "http://service.shop/sub-dls"},
		{name: "else the topic's", topic: topic(ref("topic-dls")), sub: sub(nil), want: "http://service.shop/topic-dls"},
		{name: "no topic", sub: sub(nil)},
		{name: "none", topic: topic(nil), sub: sub(nil)},
		{name: "the topic's does not resolve", topic: topic(ref("missing")), sub: sub(nil),
			wantErr: "Topic delivery.deadLetterSink: Service shop/missing not found"},
		{name: "the subscription's does not resolve", topic: topic(ref("topic-dls")), sub: sub(ref("missing")),
			wantErr: "delivery.deadLetterSink: Service shop/missing not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := resolve.Subscription(context.Background(), lookup{}, tt.topic, tt.sub)
			if tt.wantErr != "" {
				var re *resolve.Error
				if !errors.As(err, &re) || re.Message != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || rs.DeadLetterURI != tt.want || rs.SubscriberURI != "http://service.shop/sub" {
				t.Fatalf("resolved %+v, %v; want dead letters to %q", rs, err, tt.want)
			}
		})
	}
}

// TestSubscriptionNamesItsDeadLetterTopic: a dead-letter sink that is a ref
// to a Topic is named in the resolved Subscription, so redrive finds the
// dead letters; any other sink is not.
func TestSubscriptionNamesItsDeadLetterTopic(t *testing.T) {
	sub := func(dls v1alpha1.Destination) *v1alpha1.Subscription {
		return &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s"},
			Spec: v1alpha1.SubscriptionSpec{Topic: "orders", Subscriber: v1alpha1.Destination{URI: new("http://sub/")},
				Delivery: &v1alpha1.DeliverySpec{DeadLetterSink: &dls}}}
	}
	topicRef := func(ns string) v1alpha1.Destination {
		return v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: "dlq", Namespace: ns}}
	}
	for _, tt := range []struct {
		name string
		dls  v1alpha1.Destination
		want string
	}{
		{"topic in the namespace", topicRef(""), "shop/dlq"},
		{"topic elsewhere", topicRef("ops"), "ops/dlq"},
		{"service", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "dlq"}}, ""},
		{"uri", v1alpha1.Destination{URI: new("http://dlq/")}, ""},
	} {
		rs, err := resolve.Subscription(context.Background(), lookup{}, nil, sub(tt.dls))
		if err != nil || rs.DeadLetterTopic != tt.want {
			t.Errorf("%s: DeadLetterTopic = %q (%v), want %q", tt.name, rs.DeadLetterTopic, err, tt.want)
		}
	}
}
