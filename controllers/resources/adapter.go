package resources

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/sources"
)

// AdapterAppName is the app.kubernetes.io/name of adapter objects.
const AdapterAppName = "herald-adapter"

// The adapter's environment, the contract between the operator and
// `herald adapter` (ping, apiServer and webhook sources), defined and
// documented by package sources:
//
//	K_SINK                   URL every event is POSTed to (the resolved spec.sink).
//	K_AUDIENCE               audience of the token presented to K_SINK (status.sinkAudience);
//	                         set only when the sink has one.
//	HERALD_POD_NAMESPACE,    the Pod's namespace and ServiceAccount (downward API),
//	HERALD_SERVICE_ACCOUNT   whose tokens the adapter requests (AdapterTokenRole).
//	K_CE_OVERRIDES           JSON {"extensions":{"name":"value"}} set on every event; {} for none.
//	HERALD_SOURCE_TYPE       ping, apiServer or webhook.
//	HERALD_SOURCE_NAMESPACE  namespace of the EventSource.
//	HERALD_SOURCE_NAME       name of the EventSource.
//	HERALD_SOURCE_SPEC       JSON of spec.ping, spec.apiServer or spec.webhook, as in the API.
//	HERALD_WEBHOOK_SECRET    webhook with a signature: the HMAC key, from the Secret key
//	                         spec.webhook.signature.secretKeyRef names.
//
// The adapter serves /healthz and /readyz (and, for webhooks, the incoming
// requests) on HTTPPort and metrics on MetricsPort.
//
// A container source gets only K_SINK, K_AUDIENCE and K_CE_OVERRIDES, in
// every container and init container of its template, replacing any value
// the template sets (sources.InjectSinkEnv); the container obtains its
// token itself, for example from a projected serviceAccountToken volume
// with audience K_AUDIENCE.
const (
	EnvSink            = sources.EnvSink
	EnvAudience        = sources.EnvAudience
	EnvCEOverrides     = sources.EnvCEOverrides
	EnvSourceType      = sources.EnvSourceType
	EnvSourceNamespace = sources.EnvSourceNamespace
	EnvSourceName      = sources.EnvSourceName
	EnvSourceSpec      = sources.EnvSourceSpec
	EnvWebhookSecret   = sources.EnvWebhookSecret
)

// AdapterConfig is what adapter workloads need besides their EventSource.
type AdapterConfig struct {
	// Image is Herald's image.
	Image Image
}

// AdapterName is the name of an EventSource's adapter Deployment and, for
// webhooks, Service.
func AdapterName(source string) string { return source + "-source" }

// AdapterLabels are the labels of every adapter object of an EventSource.
func AdapterLabels(source string) map[string]string {
	return map[string]string{
		LabelName:        AdapterAppName,
		LabelInstance:    source,
		LabelComponent:   "adapter",
		LabelPartOf:      PartOf,
		LabelManagedBy:   ManagedBy,
		LabelEventSource: source,
	}
}

// AdapterSelector selects an EventSource's adapter Pods.
func AdapterSelector(source string) map[string]string {
	return map[string]string{LabelName: AdapterAppName, LabelEventSource: source}
}

// APIServerServiceAccount is the ServiceAccount an apiServer source's
// adapter runs as: spec.serviceAccountName, default "default".
func APIServerServiceAccount(spec *v1alpha1.APIServerSource) string {
	if spec == nil || spec.ServiceAccountName == "" {
		return "default"
	}
	return spec.ServiceAccountName
}

// WebhookAddress is where a webhook source receives requests.
func WebhookAddress(namespace, source, clusterDomain string) string {
	return fmt.Sprintf("http://%s.%s.svc.%s", AdapterName(source), namespace, clusterDomain)
}

func adapterMeta(s *v1alpha1.EventSource) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            AdapterName(s.Name),
		Namespace:       s.Namespace,
		Labels:          AdapterLabels(s.Name),
		OwnerReferences: []metav1.OwnerReference{ownerRef(s, "EventSource")},
	}
}

// CEOverridesJSON is the value of K_CE_OVERRIDES for o.
func CEOverridesJSON(o *v1alpha1.CloudEventOverrides) (string, error) {
	if o == nil {
		o = &v1alpha1.CloudEventOverrides{}
	}
	b, err := json.Marshal(o)
	if err != nil {
		return "", fmt.Errorf("encode ceOverrides: %w", err)
	}
	return string(b), nil
}

// AdapterDeployment is the Deployment that runs an EventSource:
// `herald adapter` for ping, apiServer and webhook sources, the user's
// template for container sources. sinkURI and sinkAudience are the resolved
// sink (status.sinkUri, status.sinkAudience).
//
// Every kind runs one replica. Ping and apiServer sources must: each replica
// would send every event again (one event per cron tick, one per object
// change); ping also uses the Recreate strategy so that a rollout never runs
// two schedulers at once.
func AdapterDeployment(s *v1alpha1.EventSource, sinkURI, sinkAudience string, cfg AdapterConfig) (*appsv1.Deployment, error) {
	overrides, err := CEOverridesJSON(s.Spec.CEOverrides)
	if err != nil {
		return nil, err
	}
	typ := s.Spec.Type()
	if typ == "" {
		return nil, fmt.Errorf("eventsource %s/%s sets no source", s.Namespace, s.Name)
	}
	var pod corev1.PodTemplateSpec
	if typ == v1alpha1.EventSourceTypeContainer {
		pod = containerPod(s, sinkURI, sinkAudience, overrides)
	} else {
		pod, err = adapterPod(s, typ, sinkURI, sinkAudience, overrides, cfg)
		if err != nil {
			return nil, err
		}
	}
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: adapterMeta(s),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: AdapterSelector(s.Name)},
			Template: pod,
		},
	}
	if typ == v1alpha1.EventSourceTypePing {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	return d, nil
}

func adapterPod(s *v1alpha1.EventSource, typ v1alpha1.EventSourceType, sinkURI, sinkAudience, overrides string, cfg AdapterConfig) (corev1.PodTemplateSpec, error) {
	var spec any
	switch typ {
	case v1alpha1.EventSourceTypePing:
		spec = s.Spec.Ping
	case v1alpha1.EventSourceTypeAPIServer:
		spec = s.Spec.APIServer
	case v1alpha1.EventSourceTypeWebhook:
		spec = s.Spec.Webhook
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return corev1.PodTemplateSpec{}, fmt.Errorf("encode %s spec: %w", typ, err)
	}
	env := []corev1.EnvVar{
		{Name: EnvSink, Value: sinkURI},
		{Name: EnvCEOverrides, Value: overrides},
		{Name: EnvSourceType, Value: string(typ)},
		{Name: EnvSourceNamespace, Value: s.Namespace},
		{Name: EnvSourceName, Value: s.Name},
		{Name: EnvSourceSpec, Value: string(specJSON)},
	}
	if sinkAudience != "" {
		env = append(env, corev1.EnvVar{Name: EnvAudience, Value: sinkAudience})
	}
	env = append(env, podIdentityEnv()...)
	ports := []corev1.ContainerPort{
		{Name: PortNameHTTP, ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
		{Name: PortNameMetrics, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
	}
	podSpec := corev1.PodSpec{
		// apiServer sources run as the user's ServiceAccount, the others
		// as their own (AdapterServiceAccountObject). The token calls
		// TokenRequest for the tokens presented to the sink
		// (AdapterTokenRole), and an apiServer source's watches.
		ServiceAccountName:           sources.AdapterServiceAccount(s),
		AutomountServiceAccountToken: ptr.To(true),
		SecurityContext:              podSecurityContext(),
		ImagePullSecrets:             cfg.Image.pullSecrets(),
	}
	switch typ {
	case v1alpha1.EventSourceTypeWebhook:
		if sig := s.Spec.Webhook.Signature; sig != nil {
			ref := sig.SecretKeyRef.DeepCopy()
			env = append(env, corev1.EnvVar{Name: EnvWebhookSecret, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}})
		}
	}
	podSpec.Containers = []corev1.Container{{
		Name:            "adapter",
		Image:           cfg.Image.Name,
		ImagePullPolicy: cfg.Image.PullPolicy,
		Command:         []string{Binary},
		Args:            []string{"adapter"},
		Env:             env,
		Ports:           ports,
		ReadinessProbe:  httpProbe(ReadinessPath, 5),
		LivenessProbe:   httpProbe(LivenessPath, 10),
		SecurityContext: containerSecurityContext(),
	}}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: AdapterLabels(s.Name)},
		Spec:       podSpec,
	}, nil
}

// containerPod is the user's template with Herald's labels added and K_SINK,
// K_AUDIENCE and K_CE_OVERRIDES set in every container.
func containerPod(s *v1alpha1.EventSource, sinkURI, sinkAudience, overrides string) corev1.PodTemplateSpec {
	pod := *s.Spec.Container.Template.DeepCopy()
	pod.Labels = merge(pod.Labels, AdapterLabels(s.Name))
	sources.InjectSinkEnv(&pod.Spec, sinkURI, sinkAudience, overrides)
	return pod
}

// AdapterService exposes a webhook source: port 80 to the adapter's HTTPPort.
func AdapterService(s *v1alpha1.EventSource) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: adapterMeta(s),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: AdapterSelector(s.Name),
			Ports: []corev1.ServicePort{
				{Name: PortNameHTTP, Protocol: corev1.ProtocolTCP, Port: ServicePort, TargetPort: intstrName(PortNameHTTP)},
			},
		},
	}
}
