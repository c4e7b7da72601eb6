package packaging_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// TestOperatorWorkloadsAdmitted builds the Deployments the operator
// creates — a Topic's dispatcher (with NATS credentials and TLS mounted),
// one with the copy of the bundled NATS's dispatcher Secret and its
// NetworkPolicy, and the ping, apiServer and webhook adapters of config/samples — with
// the operator's own builders, and checks them like the chart's: applied
// with server-side dry-run and their pods admitted in a namespace that
// enforces the restricted Pod Security Standard, every container declaring
// the restricted profile. Container sources run the user's pod template
// and are the user's to secure.
func TestOperatorWorkloadsAdmitted(t *testing.T) {
	ns := restrictedNamespace(t, "operator-workloads")
	image := "ghcr.io/herald-dev/herald:" + appVersion(t)

	var objs []*unstructured.Unstructured
	add := func(o runtime.Object) {
		t.Helper()
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: m}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
		unstructured.RemoveNestedField(u.Object, "status")
		// Owner references name a Topic or EventSource that does not exist here.
		unstructured.RemoveNestedField(u.Object, "metadata", "ownerReferences")
		objs = append(objs, u)
	}

	var topic v1alpha1.Topic
	readSample(t, "eventing_v1alpha1_topic.yaml", &topic)
	topic.Namespace = ns
	add(resources.DispatcherServiceAccount(&topic))
	add(resources.DispatcherTokenRole(&topic))
	add(resources.DispatcherTokenRoleBinding(&topic))
	add(resources.DispatcherService(&topic))
	add(resources.DispatcherDeployment(&topic, resources.DispatcherConfig{
		Image: resources.Image{Name: image},
		NATS: resources.NATS{
			URL: "tls://nats.nats.svc.cluster.local:4222", Secret: "herald-nats",
			Creds: true, TLSCA: true, TLSClient: true,
		},
	}, []resources.SigningSecret{{Subscription: "audit", Secret: "audit-signing"}}))
	// A second Topic whose dispatcher logs in with the operator's copy of the
	// bundled NATS's dispatcher Secret, behind its NetworkPolicy.
	copied := topic.DeepCopy()
	copied.Name = "payments"
	add(resources.DispatcherNATSSecret(copied, map[string][]byte{"username": []byte("herald-dispatcher"), "password": []byte("p"), "ca.crt": []byte("ca")}))
	add(resources.DispatcherNetworkPolicy(copied, resources.NetworkPolicy{Enabled: true,
		MetricsNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}))
	add(resources.DispatcherDeployment(copied, resources.DispatcherConfig{
		Image: resources.Image{Name: image},
		NATS:  resources.NATS{URL: "tls://herald-nats.herald-system.svc.cluster.local:4222", Copied: true, Password: true, TLSCA: true},
	}, nil))
	// The namespace's shared dispatcher, sized by the operator's settings.
	shared := resources.SharedDispatcher(ns, resources.SharedDispatcherConfig{Replicas: 2})
	sharedCfg := resources.DispatcherConfig{
		Image: resources.Image{Name: image},
		NATS:  resources.NATS{URL: "tls://herald-nats.herald-system.svc.cluster.local:4222", Copied: true, Password: true, TLSCA: true},
	}
	add(shared.ServiceAccount())
	add(shared.TokenRole())
	add(shared.TokenRoleBinding())
	add(shared.Service())
	add(shared.NATSSecret(map[string][]byte{"username": []byte("herald-dispatcher"), "password": []byte("p"), "ca.crt": []byte("ca")}))
	add(shared.NetworkPolicy(resources.NetworkPolicy{Enabled: true}))
	add(shared.Deployment(sharedCfg, []resources.SigningSecret{{Subscription: "audit", Secret: "audit-signing"}}))

	for _, f := range []string{
		"eventing_v1alpha1_eventsource_ping.yaml",
		"eventing_v1alpha1_eventsource_apiserver.yaml",
		"eventing_v1alpha1_eventsource_webhook.yaml",
	} {
		var es v1alpha1.EventSource
		readSample(t, f, &es)
		es.Namespace = ns
		d, err := resources.AdapterDeployment(&es, "http://orders-dispatcher.shop.svc.cluster.local/shop/orders", "eventing.herald.dev/topic/shop/orders",
			resources.AdapterConfig{Image: resources.Image{Name: image}})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if sa := resources.AdapterServiceAccountObject(&es); sa != nil {
			add(sa)
		}
		add(resources.AdapterTokenRole(&es))
		add(resources.AdapterTokenRoleBinding(&es))
		add(d)
		if es.Spec.Webhook != nil {
			add(resources.AdapterService(&es))
		}
	}
	t.Logf("%d objects: %s", len(objs), kinds(objs))
	dryRunApply(t, objs)
	checkPodsAdmitted(t, objs)
	checkRestrictedContainers(t, objs)
}

// readSample reads the first object of config/samples/<name> into into.
func readSample(t *testing.T, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeObjects(bytes.NewReader(data))
	if err != nil || len(objs) == 0 {
		t.Fatalf("%s: %v", name, err)
	}
	js, err := objs[0].MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(js, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}
