package resources

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// NetworkPolicy says whether and how the operator restricts the traffic
// to dispatcher Pods.
type NetworkPolicy struct {
	// Enabled makes the operator apply DispatcherNetworkPolicy for every
	// Topic.
	Enabled bool
	// MetricsNamespaces selects the namespaces whose Pods may scrape the
	// dispatchers' metrics port; nil admits none.
	MetricsNamespaces *metav1.LabelSelector
}

// DispatcherNetworkPolicy admits traffic to a Topic's dispatcher Pods on
// the ingress port (http, or https with spec.dispatcher.tls) from anywhere:
// the Topic's publish policy decides who may publish. The metrics port is
// open only to Pods in the namespaces np.MetricsNamespaces selects. Every
// other port is closed; egress is not restricted.
func DispatcherNetworkPolicy(t *v1alpha1.Topic, np NetworkPolicy) *networkingv1.NetworkPolicy {
	return DedicatedDispatcher(t).NetworkPolicy(np)
}

// NetworkPolicy admits traffic to d's Pods as DispatcherNetworkPolicy says.
func (d Dispatcher) NetworkPolicy(np NetworkPolicy) *networkingv1.NetworkPolicy {
	ingress := PortNameHTTP
	if d.tls != nil {
		ingress = PortNameHTTPS
	}
	port := func(name string) []networkingv1.NetworkPolicyPort {
		p := intstrName(name)
		return []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: &p}}
	}
	rules := []networkingv1.NetworkPolicyIngressRule{{Ports: port(ingress)}}
	if np.MetricsNamespaces != nil {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{
			Ports: port(PortNameMetrics),
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: np.MetricsNamespaces.DeepCopy()}},
		})
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: d.meta(),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: maps.Clone(d.selector)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}
