package controllers_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/controllers/resources"
)

// The operator copies the dispatchers' NATS Secret from its own namespace
// into a Topic's namespace, owned by the Topic, completed with the CA it
// trusts; a changed source or an edited copy is put right on the next
// reconcile. It waits while the source is missing, and applies the
// dispatcher's NetworkPolicy.
func TestDispatcherNATSSecretCopied(t *testing.T) {
	ctx := context.Background()
	system, shop := namespace(t), namespace(t)
	topic := newTopic(shop, "orders")
	create(t, topic)
	if err := get(topic); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, []byte("the CA"), 0o600); err != nil {
		t.Fatal(err)
	}
	source := types.NamespacedName{Namespace: system, Name: "herald-nats-dispatcher"}
	r := &controllers.TopicReconciler{Client: k8s, APIReader: k8s, Config: controllers.Config{
		DispatcherNATSSource: source,
		DispatcherNATSCAFile: caFile,
		Dispatcher: resources.DispatcherConfig{
			NATS: resources.NATS{Copied: true, Password: true, TLSCA: true},
			NetworkPolicy: resources.NetworkPolicy{Enabled: true,
				MetricsNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}},
		},
	}}

	var waiting *controllers.Waiting
	if err := r.ReconcileDispatcherAccess(ctx, topic); !errors.As(err, &waiting) {
		t.Fatalf("without the source Secret: %v, want to wait for it", err)
	}

	src := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: system, Name: source.Name},
		Data: map[string][]byte{"username": []byte("herald-dispatcher"), "password": []byte("one")}}
	create(t, src)
	copied := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: resources.DispatcherNATSSecretName("orders")}}
	check := func(password string) {
		t.Helper()
		if err := r.ReconcileDispatcherAccess(ctx, topic); err != nil {
			t.Fatal(err)
		}
		if err := get(copied); err != nil {
			t.Fatal(err)
		}
		if string(copied.Data["username"]) != "herald-dispatcher" || string(copied.Data["password"]) != password ||
			string(copied.Data["ca.crt"]) != "the CA" {
			t.Errorf("copy %v, want the source's username and password %q and the manager's CA", copied.Data, password)
		}
		if o := metav1.GetControllerOf(copied); o == nil || o.UID != topic.UID {
			t.Errorf("copy owned by %+v, want the Topic", o)
		}
	}
	check("one")

	src.Data["password"] = []byte("two")
	if err := k8s.Update(ctx, src); err != nil {
		t.Fatal(err)
	}
	check("two")

	copied.Data["password"] = []byte("edited")
	if err := k8s.Update(ctx, copied); err != nil {
		t.Fatal(err)
	}
	check("two")

	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "orders-dispatcher"}}
	if err := get(np); err != nil {
		t.Fatalf("dispatcher NetworkPolicy: %v", err)
	}
	if len(np.Spec.Ingress) != 2 || np.Spec.Ingress[1].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
		t.Errorf("NetworkPolicy ingress %+v", np.Spec.Ingress)
	}
}
