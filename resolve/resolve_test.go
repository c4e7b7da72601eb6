package resolve_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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

func TestServiceURL(t *testing.T) {
	tests := []struct {
		name  string
		ports []corev1.ServicePort
		want  string
	}{
		{"no ports", nil, "http://inventory.shop.svc.cluster.local"},
		{"80", []corev1.ServicePort{{Port: 80}}, "http://inventory.shop.svc.cluster.local"},
		{"first port wins", []corev1.ServicePort{{Port: 8080}, {Port: 80}}, "http://inventory.shop.svc.cluster.local:8080"},
		{"named https", []corev1.ServicePort{{Name: "https", Port: 443}}, "https://inventory.shop.svc.cluster.local"},
		{"named https, other port", []corev1.ServicePort{{Name: "https", Port: 8443}}, "https://inventory.shop.svc.cluster.local:8443"},
		{"appProtocol https", []corev1.ServicePort{{Name: "web", Port: 8443, AppProtocol: new("https")}}, "https://inventory.shop.svc.cluster.local:8443"},
		{"https on 80 keeps its port", []corev1.ServicePort{{Name: "https", Port: 80}}, "https://inventory.shop.svc.cluster.local:80"},
		{"http on 443 keeps its port", []corev1.ServicePort{{Name: "http", Port: 443}}, "http://inventory.shop.svc.cluster.local:443"},
		{"appProtocol http", []corev1.ServicePort{{Port: 8443, AppProtocol: new("http")}}, "http://inventory.shop.svc.cluster.local:8443"},
		{"only a later port is https", []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "https", Port: 443}}, "http://inventory.shop.svc.cluster.local"},
	}
	for _, tt := range tests {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "inventory", Namespace: "shop"}, Spec: corev1.ServiceSpec{Ports: tt.ports}}
		if got := resolve.ServiceURL(svc, "cluster.local"); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// lookup gives every referent the address http://<kind>.<namespace>/<name>
// and a Broker the audience broker/<namespace>/<name>, and has no referent
// named missing.
type lookup struct{}

func (lookup) Address(_ context.Context, ref v1alpha1.KReference) (resolve.Address, error) {
	if ref.Name == "missing" {
		return resolve.Address{}, &resolve.Error{Reason: v1alpha1.ReasonNotFound, Message: ref.Kind + " " + ref.Namespace + "/missing not found"}
	}
	a := resolve.Address{URL: "http://" + strings.ToLower(ref.Kind) + "." + ref.Namespace + "/" + ref.Name}
	if ref.Kind == "Broker" {
		a.Audience = "broker/" + ref.Namespace + "/" + ref.Name
	}
	return a, nil
}

func TestDestinationAudience(t *testing.T) {
	topic := func(ns string) *v1alpha1.KReference {
		return &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: "orders", Namespace: ns}
	}
	tests := []struct {
		name string
		dest v1alpha1.Destination
		want resolve.Target
	}{
		{"uri has none", v1alpha1.Destination{URI: new("http://a.example/x")}, resolve.Target{URI: "http://a.example/x"}},
		{"uri with an audience", v1alpha1.Destination{URI: new("http://a.example/x"), Audience: new("a")},
			resolve.Target{URI: "http://a.example/x", Audience: "a"}},
		{"topic in the holder's namespace", v1alpha1.Destination{Ref: topic("")},
			resolve.Target{URI: "http://topic.shop/orders", Audience: "eventing.herald.dev/topic/shop/orders"}},
		{"topic elsewhere, with a path", v1alpha1.Destination{Ref: topic("ops"), URI: new("/x")},
			resolve.Target{URI: "http://topic.ops/orders/x", Audience: "eventing.herald.dev/topic/ops/orders"}},
		{"explicit audience wins over the topic's", v1alpha1.Destination{Ref: topic(""), Audience: new("mine")},
			resolve.Target{URI: "http://topic.shop/orders", Audience: "mine"}},
		{"topic of another group is an addressable", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "example.dev/v1", Kind: "Topic", Name: "orders"}},
			resolve.Target{URI: "http://topic.shop/orders"}},
		{"addressable's status audience", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "b"}},
			resolve.Target{URI: "http://broker.shop/b", Audience: "broker/shop/b"}},
		{"explicit audience wins over the addressable's", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "b"}, Audience: new("mine")},
			resolve.Target{URI: "http://broker.shop/b", Audience: "mine"}},
		{"service has none", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "inventory"}},
			resolve.Target{URI: "http://service.shop/inventory"}},
		{"service with an audience", v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "inventory"}, Audience: new("inventory")},
			resolve.Target{URI: "http://service.shop/inventory", Audience: "inventory"}},
	}
	for _, tt := range tests {
		got, err := resolve.Destination(context.Background(), lookup{}, "shop", &tt.dest)
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

// TestSubscriptionCarriesAudiences: each resolved Destination carries its
// own audience, the dead-letter sink's from the effective sink (the
// Topic's when the Subscription has none).
func TestSubscriptionCarriesAudiences(t *testing.T) {
	topicRef := &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: "dlq"}
	topic := &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.TopicSpec{Delivery: &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{Ref: topicRef}}}}
	sub := &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s"},
		Spec: v1alpha1.SubscriptionSpec{Topic: "orders",
			Subscriber: v1alpha1.Destination{URI: new("https://sub/"), Audience: new("sub")},
			Reply:      &v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: "replies", Namespace: "ops"}}}}
	rs, err := resolve.Subscription(context.Background(), lookup{}, topic, sub)
	if err != nil || rs.SubscriberAudience != "sub" || rs.ReplyAudience != "eventing.herald.dev/topic/ops/replies" ||
		rs.DeadLetterAudience != "eventing.herald.dev/topic/shop/dlq" {
		t.Fatalf("with the Topic's sink: %+v, %v", rs, err)
	}
	sub.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: &v1alpha1.Destination{URI: new("http://sub-dls/")}}
	sub.Spec.Reply = nil
	rs, err = resolve.Subscription(context.Background(), lookup{}, topic, sub)
	if err != nil || rs.DeadLetterAudience != "" || rs.ReplyAudience != "" || rs.SubscriberAudience != "sub" {
		t.Fatalf("with the Subscription's sink: %+v, %v", rs, err)
	}
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

// TestSubscriptionCarriesCACerts: each resolved Destination carries its own
// caCerts, the dead-letter sink's from the effective sink.
func TestSubscriptionCarriesCACerts(t *testing.T) {
	dest := func(uri, ca string) *v1alpha1.Destination {
		d := &v1alpha1.Destination{URI: new(uri)}
		if ca != "" {
			d.CACerts = new(ca)
		}
		return d
	}
	topic := &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.TopicSpec{Delivery: &v1alpha1.DeliverySpec{DeadLetterSink: dest("https://topic-dls/", "topic-ca")}}}
	sub := &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "s"},
		Spec: v1alpha1.SubscriptionSpec{Topic: "orders", Subscriber: *dest("https://sub/", "sub-ca"), Reply: dest("https://reply/", "reply-ca")}}

	rs, err := resolve.Subscription(context.Background(), lookup{}, topic, sub)
	if err != nil || rs.SubscriberCACerts != "sub-ca" || rs.ReplyCACerts != "reply-ca" ||
		rs.DeadLetterCACerts != "topic-ca" || rs.DeadLetterField != "Topic delivery.deadLetterSink" {
		t.Fatalf("with the Topic's sink: %+v, %v", rs, err)
	}

	// The Subscription's own sink wins, and its caCerts with it, even when
	// it has none.
	sub.Spec.Delivery = &v1alpha1.DeliverySpec{DeadLetterSink: dest("http://sub-dls/", "")}
	sub.Spec.Reply = nil
	rs, err = resolve.Subscription(context.Background(), lookup{}, topic, sub)
	if err != nil || rs.DeadLetterURI != "http://sub-dls/" || rs.DeadLetterCACerts != "" || rs.ReplyCACerts != "" ||
		rs.DeadLetterField != "delivery.deadLetterSink" {
		t.Fatalf("with the Subscription's sink: %+v, %v", rs, err)
	}
}
