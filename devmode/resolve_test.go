package devmode

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/resolvetest"
	"github.com/herald-dev/herald/resolve"
)

func TestResolve(t *testing.T) {
	r := &Resolver{IngressURL: "http://127.0.0.1:8080", Topics: map[string]bool{"default/orders": true, "shop/dlq": true}}
	topicRef := func(ns, name string) *v1alpha1.KReference {
		return &v1alpha1.KReference{APIVersion: "eventing.herald.dev/v1alpha1", Kind: "Topic", Name: name, Namespace: ns}
	}
	tests := []struct {
		name    string
		dest    v1alpha1.Destination
		want    string
		wantErr string
	}{
		{name: "uri as is", dest: v1alpha1.Destination{URI: new("http://example.com:9/x?y=1")}, want: "http://example.com:9/x?y=1"},
		{name: "topic ref in the holder's namespace", dest: v1alpha1.Destination{Ref: topicRef("", "orders")}, want: "http://127.0.0.1:8080/default/orders"},
		{name: "topic ref in another namespace", dest: v1alpha1.Destination{Ref: topicRef("shop", "dlq")}, want: "http://127.0.0.1:8080/shop/dlq"},
		{name: "topic ref with a path", dest: v1alpha1.Destination{Ref: topicRef("", "orders"), URI: new("/extra")}, want: "http://127.0.0.1:8080/default/orders/extra"},
		{name: "topic ref with a query", dest: v1alpha1.Destination{Ref: topicRef("", "orders"), URI: new("?a=b")}, want: "http://127.0.0.1:8080/default/orders?a=b"},
		{
			name:    "undeclared topic",
			dest:    v1alpha1.Destination{Ref: topicRef("", "nope")},
			wantErr: "ref to Topic default/nope: no such Topic in the manifests",
		},
		{
			name:    "service ref",
			dest:    v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "inventory", Namespace: "shop"}},
			wantErr: "ref to Service shop/inventory cannot be resolved in dev mode; use uri: http://...",
		},
		{
			name:    "topic of another group",
			dest:    v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "messaging.knative.dev/v1", Kind: "Topic", Name: "orders"}},
			wantErr: "ref to Topic default/orders cannot be resolved in dev mode",
		},
		{name: "nothing", dest: v1alpha1.Destination{}, wantErr: "needs a ref, a uri, or both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(&tt.dest, "default")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve = %q, %v; want error containing %q", got.URI, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.URI != tt.want {
				t.Fatalf("Resolve = %q, %v; want %q", got.URI, err, tt.want)
			}
		})
	}
}

func TestResolveSubscriptionNamesTheSubscription(t *testing.T) {
	fr := LoadFile(writeFile(t, t.TempDir(), "s.yaml", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: audit}
spec:
  topic: orders
  subscriber: {ref: {apiVersion: v1, kind: Service, name: inventory, namespace: shop}}
`))
	if len(fr.Objects) != 1 {
		t.Fatalf("load: %v", fr.Errors)
	}
	o := fr.Objects[0]
	r := &Resolver{IngressURL: "http://127.0.0.1:8080"}
	_, err := resolveSubscription(r, &v1alpha1.Topic{}, o.Subscription)
	me := &ManifestError{Origin: o.Origin, Object: o.Key().String(), Err: err}
	want := "subscription default/audit: subscriber: ref to Service shop/inventory cannot be resolved in dev mode; use uri: http://..."
	if !strings.Contains(me.Error(), want) {
		t.Errorf("error = %q, want it to contain %q", me, want)
	}
}

// TestResolveTable runs the Destinations the operator's TestResolveTable
// runs through herald dev: each is a Subscription's subscriber, and the
// Subscription's applied plan must carry the same URI.
func TestResolveTable(t *testing.T) {
	dir := t.TempDir()
	docs := []string{fmt.Sprintf(topicYAML, resolvetest.Topic)}
	for _, c := range resolvetest.Cases() {
		s := v1alpha1.Subscription{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: KindSubscription},
			ObjectMeta: metav1.ObjectMeta{Name: c.Name},
			Spec:       v1alpha1.SubscriptionSpec{Topic: resolvetest.Topic, Subscriber: c.Destination},
		}
		b, err := yaml.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	writeFile(t, dir, "table.yaml", strings.Join(docs, "---\n"))
	rd := startDev(t, []string{dir}, t.TempDir())
	st := rd.rt.Status()
	addr := rd.rt.Endpoints().Ingress + "/default/" + resolvetest.Topic
	for _, c := range resolvetest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			var got, audience string
			for _, s := range st.Subscriptions {
				if s.Name == c.Name {
					got, audience = s.Plan.SubscriberURI, s.Plan.SubscriberAudience
				}
			}
			var resolveErr error
			for _, err := range st.Errors {
				if me, ok := errors.AsType[*ManifestError](err); ok && me.Object == "subscription default/"+c.Name {
					resolveErr = err
				}
			}
			if c.Reason == "" {
				if resolveErr != nil || got != c.URI(addr) || audience != c.AudienceIn("default") {
					t.Fatalf("plan has %q (audience %q), error %v; want %q (audience %q)", got, audience, resolveErr, c.URI(addr), c.AudienceIn("default"))
				}
				return
			}
			re, ok := errors.AsType[*resolve.Error](resolveErr)
			if !ok || re.Reason != c.Reason || !strings.Contains(re.Message, c.MessageIn("default")) {
				t.Fatalf("plan has %q, error %v; want a %s error containing %q", got, resolveErr, c.Reason, c.MessageIn("default"))
			}
		})
	}
}
