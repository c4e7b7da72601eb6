package resources

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// A dispatcher logging in with the user and password of the Topic's copy
// of the dispatchers' NATS Secret.
func TestDispatcherCopiedNATSSecret(t *testing.T) {
	d := DispatcherDeployment(topic(), DispatcherConfig{Image: Image{Name: "herald:dev"},
		NATS: NATS{URL: "tls://n", Copied: true, Password: true, TLSCA: true}}, nil)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	env := envMap(c)
	user := env[EnvNATSUser].ValueFrom
	if user == nil || user.SecretKeyRef == nil || user.SecretKeyRef.Name != "orders-dispatcher-nats" || user.SecretKeyRef.Key != "username" {
		t.Errorf("NATS_USER %+v, want the key username of orders-dispatcher-nats", env[EnvNATSUser])
	}
	if env[EnvNATSPasswordFile].Value != "/etc/herald/nats/password" || env[EnvNATSTLSCA].Value != "/etc/herald/nats/ca.crt" {
		t.Errorf("env %+v", env)
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "orders-dispatcher-nats" ||
		!reflect.DeepEqual(pod.Volumes[0].Secret.Items, []corev1.KeyToPath{{Key: "password", Path: "password"}, {Key: "ca.crt", Path: "ca.crt"}}) {
		t.Errorf("volumes %+v", pod.Volumes)
	}

	s := DispatcherNATSSecret(topic(), map[string][]byte{"password": []byte("p")})
	if s.Name != "orders-dispatcher-nats" || s.Namespace != "shop" || string(s.Data["password"]) != "p" ||
		len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != "uid-1" || !*s.OwnerReferences[0].Controller {
		t.Errorf("secret %+v", s)
	}
}

func TestDispatcherNetworkPolicy(t *testing.T) {
	monitoring := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}
	tlsTopic := topic()
	tlsTopic.Spec.Dispatcher = &v1alpha1.DispatcherSpec{TLS: &v1alpha1.DispatcherTLS{SecretName: "cert"}}
	tests := []struct {
		name       string
		topic      *v1alpha1.Topic
		metrics    *metav1.LabelSelector
		wantPort   string
		wantMetric bool
	}{
		{"http, metrics from monitoring", topic(), monitoring, PortNameHTTP, true},
		{"https", tlsTopic, monitoring, PortNameHTTPS, true},
		{"no metrics namespaces", topic(), nil, PortNameHTTP, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			np := DispatcherNetworkPolicy(tt.topic, NetworkPolicy{Enabled: true, MetricsNamespaces: tt.metrics})
			if np.Name != "orders-dispatcher" || !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, DispatcherSelector("orders")) {
				t.Errorf("policy %s selects %v", np.Name, np.Spec.PodSelector.MatchLabels)
			}
			rules := np.Spec.Ingress
			if len(rules) == 0 || len(rules[0].From) != 0 || rules[0].Ports[0].Port.StrVal != tt.wantPort {
				t.Fatalf("ingress rules %+v: want %s open to all first", rules, tt.wantPort)
			}
			if got := len(rules) == 2; got != tt.wantMetric {
				t.Fatalf("%d rules, metrics rule %v", len(rules), tt.wantMetric)
			}
			if tt.wantMetric {
				m := rules[1]
				if m.Ports[0].Port.StrVal != PortNameMetrics || len(m.From) != 1 || m.From[0].PodSelector != nil ||
					!reflect.DeepEqual(m.From[0].NamespaceSelector, tt.metrics) {
					t.Errorf("metrics rule %+v", m)
				}
			}
		})
	}
}
