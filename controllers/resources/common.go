// Package resources builds the Kubernetes objects the Herald operator owns:
// each Topic's dispatcher ServiceAccount, token Role and RoleBinding,
// Deployment, Service, NetworkPolicy and copy of the dispatchers' NATS
// Secret, and each EventSource's adapter Deployment (with, for Herald's
// adapters, a token Role and RoleBinding, and for ping and webhook sources
// a ServiceAccount; for webhooks a Service). The builders
// are pure: desired state in, complete object out, so they are tested
// without a cluster and applied with server-side apply.
package resources

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Well-known labels on every object the operator creates.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelManagedBy = "app.kubernetes.io/managed-by"

	// LabelTopic names the Topic a dispatcher object belongs to.
	LabelTopic = "eventing.herald.dev/topic"
	// LabelEventSource names the EventSource an adapter object belongs to.
	LabelEventSource = "eventing.herald.dev/eventsource"

	// ManagedBy is the value of LabelManagedBy, and the operator's
	// server-side apply field owner.
	ManagedBy = "herald-manager"
	// PartOf is the value of LabelPartOf.
	PartOf = "herald"
)

// Ports of Herald's workload containers.
const (
	// HTTPPort serves a dispatcher's ingress or a webhook adapter's requests,
	// and /healthz and /readyz.
	HTTPPort = 8080
	// MetricsPort serves Prometheus metrics at /metrics.
	MetricsPort = 9090
	// ServicePort is the port of the dispatcher and webhook Services.
	ServicePort = 80
	// ServicePortHTTPS is the port of a dispatcher Service whose Topic
	// serves its ingress over TLS; ServicePort is then absent.
	ServicePortHTTPS = 443
)

// Names of the ports on containers and Services.
const (
	PortNameHTTP    = "http"
	PortNameHTTPS   = "https"
	PortNameMetrics = "metrics"
)

// Health endpoints of every Herald workload, on HTTPPort.
const (
	LivenessPath  = "/healthz"
	ReadinessPath = "/readyz"
)

// NonRootUID is the user Herald containers run as (distroless "nonroot").
const NonRootUID = 65532

// Binary is the command of Herald's image; the subcommand is the first argument.
const Binary = "herald"

// DispatcherBinary is the command of the image's dispatcher, the data path
// alone: herald dispatcher without the rest of herald, so that it takes
// less memory. It takes herald dispatcher's flags; herald dispatcher stays,
// for the Deployments of earlier operators.
const DispatcherBinary = "herald-dispatcher"

// podSecurityContext is the restricted Pod Security Standard profile.
func podSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		RunAsUser:      ptr.To[int64](NonRootUID),
		RunAsGroup:     ptr.To[int64](NonRootUID),
		FSGroup:        ptr.To[int64](NonRootUID),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// containerSecurityContext is the restricted profile for one container.
func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// Image is Herald's image as the dispatcher and adapter Pods run it.
type Image struct {
	// Name is the image reference.
	Name string
	// PullPolicy of the container; empty leaves Kubernetes' default.
	PullPolicy corev1.PullPolicy
	// PullSecrets name Secrets for pulling the image; each must exist in
	// the Pod's namespace.
	PullSecrets []string
}

// pullSecrets references the image's pull Secrets.
func (i Image) pullSecrets() []corev1.LocalObjectReference {
	var refs []corev1.LocalObjectReference
	for _, n := range i.PullSecrets {
		refs = append(refs, corev1.LocalObjectReference{Name: n})
	}
	return refs
}

func httpProbe(path string, period int32) *corev1.Probe {
	return probe(PortNameHTTP, "", path, period)
}

// probe gets path on the named port with scheme, HTTP when empty. The
// kubelet does not verify the certificate of an HTTPS probe.
func probe(port string, scheme corev1.URIScheme, path string, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path:   path,
			Port:   intstrName(port),
			Scheme: scheme,
		}},
		PeriodSeconds:    period,
		FailureThreshold: 3,
	}
}

func ownerRef(owner metav1.Object, kind string) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         apiVersion,
		Kind:               kind,
		Name:               owner.GetName(),
		UID:                owner.GetUID(),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func merge(dst map[string]string, src ...map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	for _, m := range src {
		for k, v := range m {
			dst[k] = v
		}
	}
	return dst
}
