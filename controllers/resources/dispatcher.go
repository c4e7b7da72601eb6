package resources

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

var apiVersion = v1alpha1.GroupVersion.String()

// DispatcherAppName is the app.kubernetes.io/name of dispatcher objects.
const DispatcherAppName = "herald-dispatcher"

// Environment of the dispatcher container. The dispatcher reads the same
// variables as the manager's NATS flags.
const (
	EnvNATSURL     = "NATS_URL"
	EnvNATSCreds   = "NATS_CREDS"
	EnvNATSTLSCA   = "NATS_TLS_CA"
	EnvNATSTLSCert = "NATS_TLS_CERT"
	EnvNATSTLSKey  = "NATS_TLS_KEY"
	EnvNATSUser    = "NATS_USER"
	// EnvNATSPasswordFile names the file holding the NATS user's password.
	EnvNATSPasswordFile = "NATS_PASSWORD_FILE"
)

// Keys of the dispatcher NATS Secret (NATS.Secret) and where they are mounted.
const (
	NATSSecretKeyCreds   = "nats.creds"
	NATSSecretKeyTLSCA   = "ca.crt"
	NATSSecretKeyTLSCert = "tls.crt"
	NATSSecretKeyTLSKey  = "tls.key"
	// NATSSecretKeyUser and NATSSecretKeyPassword are the dispatchers' NATS
	// user and password, as in a kubernetes.io/basic-auth Secret.
	NATSSecretKeyUser     = corev1.BasicAuthUsernameKey
	NATSSecretKeyPassword = corev1.BasicAuthPasswordKey

	natsSecretVolume = "nats"
	natsSecretDir    = "/etc/herald/nats"
)

// The ingress certificate of a Topic with spec.dispatcher.tls: the keys of
// its kubernetes.io/tls Secret, where they are mounted, and the dispatcher
// flags that read them.
const (
	IngressTLSKeyCert = corev1.TLSCertKey
	IngressTLSKeyKey  = corev1.TLSPrivateKeyKey

	ingressTLSVolume = "ingress-tls"
	ingressTLSDir    = "/etc/herald/ingress-tls"

	FlagTLSCertFile = "--tls-cert-file"
	FlagTLSKeyFile  = "--tls-key-file"
)

// NATS says how dispatchers reach NATS.
//
// A Secret cannot be referenced across namespaces, so credentials and TLS
// files come from a Secret in each Topic's namespace, with the keys
// nats.creds, username, password, ca.crt, tls.crt and tls.key as the fields
// below ask: either the operator's copy of them, named
// DispatcherNATSSecretName and owned by the Topic (Copied), or a Secret named
// Secret that the cluster's secret tooling puts into every namespace with
// Topics. The Secret is mounted read-only at /etc/herald/nats; a missing
// Secret keeps the dispatcher Pod from starting, which DispatcherAvailable
// reports.
type NATS struct {
	// URL of the NATS servers, comma-separated.
	URL string
	// Secret is the name of the Secret holding the files below, in the Topic's
	// namespace. Empty when NATS needs neither credentials nor TLS files, or
	// when they are Copied.
	Secret string
	// Copied mounts the Topic's DispatcherNATSSecret, which the operator
	// writes, instead of Secret.
	Copied bool
	// Creds mounts the key nats.creds as the credentials file.
	Creds bool
	// Password logs in as the user in the key username with the password in
	// the key password, mounted as a file.
	Password bool
	// TLSCA mounts the key ca.crt as the CA bundle for the server's certificate.
	TLSCA bool
	// TLSClient mounts tls.crt and tls.key as the client certificate.
	TLSClient bool
}

// DispatcherConfig is what the dispatcher workloads need besides their Topics.
type DispatcherConfig struct {
	// Image is Herald's image.
	Image Image
	// NATS says how to reach NATS.
	NATS NATS
	// NetworkPolicy says how traffic to dispatcher Pods is restricted.
	NetworkPolicy NetworkPolicy
	// Shared sizes the shared dispatchers.
	Shared SharedDispatcherConfig
	// Env is added to the dispatcher container's environment: the
	// operator's OpenTelemetry settings (tracing.Forwarded), so that
	// dispatchers export their spans where it does.
	Env []corev1.EnvVar
}

// SharedDispatcherConfig sizes every namespace's shared dispatcher.
type SharedDispatcherConfig struct {
	// Replicas of each shared dispatcher Deployment; 0 means 1.
	Replicas int32
	// Resources of the shared dispatcher container.
	Resources corev1.ResourceRequirements
	// Autoscaling, when set, scales each shared dispatcher on the lag of
	// the Subscriptions of the Topics it serves instead of Replicas.
	Autoscaling *v1alpha1.DispatcherAutoscaling
}

// SigningSecret is the Secret holding the signing keys of one of a Topic's
// Subscriptions (spec.signing).
type SigningSecret struct {
	// Subscription is the Subscription's name.
	Subscription string
	// Secret is the name of the Secret, in the Topic's namespace.
	Secret string
}

// DispatcherTerminationGracePeriodSeconds covers the dispatcher's drain delay
// and shutdown timeout, with room to spare.
const DispatcherTerminationGracePeriodSeconds = 60

// DispatcherName is the name of a Topic's dedicated dispatcher
// ServiceAccount, Deployment and Service.
func DispatcherName(topic string) string { return topic + "-dispatcher" }

// SharedDispatcherName names the objects of a namespace's shared
// dispatcher. No dedicated dispatcher has it: their names end in
// "-dispatcher".
const SharedDispatcherName = "herald-dispatcher-shared"

// LabelSharedDispatcher marks the objects of a shared dispatcher; its Pods
// are selected by it, dedicated dispatcher Pods by LabelTopic.
const LabelSharedDispatcher = "eventing.herald.dev/shared-dispatcher"

// SharedDispatcherID is how plans and the dispatcher's --shared flag name
// the shared dispatcher of namespace: namespace/SharedDispatcherName.
func SharedDispatcherID(namespace string) string { return namespace + "/" + SharedDispatcherName }

// DispatcherLabels are the labels of every dispatcher object of a Topic.
func DispatcherLabels(topic string) map[string]string {
	return map[string]string{
		LabelName:      DispatcherAppName,
		LabelInstance:  topic,
		LabelComponent: "dispatcher",
		LabelPartOf:    PartOf,
		LabelManagedBy: ManagedBy,
		LabelTopic:     topic,
	}
}

// DispatcherSelector selects a Topic's dispatcher Pods. It is immutable on a
// Deployment, so it holds only labels that never change.
func DispatcherSelector(topic string) map[string]string {
	return map[string]string{LabelName: DispatcherAppName, LabelTopic: topic}
}

// SharedDispatcherLabels are the labels of every object of a shared dispatcher.
func SharedDispatcherLabels() map[string]string {
	return map[string]string{
		LabelName:             DispatcherAppName,
		LabelInstance:         SharedDispatcherName,
		LabelComponent:        "dispatcher",
		LabelPartOf:           PartOf,
		LabelManagedBy:        ManagedBy,
		LabelSharedDispatcher: "true",
	}
}

// SharedDispatcherSelector selects the Pods of a namespace's shared dispatcher.
func SharedDispatcherSelector() map[string]string {
	return map[string]string{LabelName: DispatcherAppName, LabelSharedDispatcher: "true"}
}

// DispatcherAddress is where producers POST events to a Topic with a
// dedicated dispatcher: the dispatcher Service, path /<namespace>/<topic>,
// over https when the Topic has spec.dispatcher.tls.
func DispatcherAddress(t *v1alpha1.Topic, clusterDomain string) string {
	return DedicatedDispatcher(t).Address(t.Namespace, t.Name, clusterDomain)
}

// SharedDispatcherAddress is where producers POST events to a Topic served
// by its namespace's shared dispatcher.
func SharedDispatcherAddress(t *v1alpha1.Topic, clusterDomain string) string {
	return SharedDispatcher(t.Namespace, SharedDispatcherConfig{}).Address(t.Namespace, t.Name, clusterDomain)
}

// signingVolume is the name of the volume holding the signing Secret of
// Subscription subscription: a volume name is at most 63 characters, a
// Subscription name may be longer.
func signingVolume(subscription string) string {
	h := fnv.New32a()
	h.Write([]byte(subscription))
	return fmt.Sprintf("signing-%08x", h.Sum32())
}

// ingressTLS is the Topic's ingress TLS, nil for plain HTTP.
func ingressTLS(t *v1alpha1.Topic) *v1alpha1.DispatcherTLS {
	if t.Spec.Dispatcher == nil {
		return nil
	}
	return t.Spec.Dispatcher.TLS
}

// Dispatcher is one dispatcher workload and what goes with it: a Topic's
// dedicated dispatcher (DedicatedDispatcher) or a namespace's shared one
// (SharedDispatcher). Its ServiceAccount, token Role and RoleBinding,
// Service, NetworkPolicy and Deployment share its name.
type Dispatcher struct {
	Namespace string
	Name      string

	labels, selector map[string]string
	// owner is the Topic of a dedicated dispatcher; a shared dispatcher has
	// none (the operator deletes it with the namespace's last shared Topic).
	owner *metav1.OwnerReference
	args  []string
	// replicas is nil when a scaler sets them (spec.dispatcher.autoscaling).
	replicas  *int32
	resources corev1.ResourceRequirements
	tls       *v1alpha1.DispatcherTLS
	// natsSecret names the operator's copy of the NATS files (NATS.Copied).
	natsSecret string
}

// DedicatedDispatcher is the dispatcher of Topic t alone, running
// `herald-dispatcher --topics <namespace>/<topic>` with spec.dispatcher's
// replicas, resources and TLS.
func DedicatedDispatcher(t *v1alpha1.Topic) Dispatcher {
	d := Dispatcher{
		Namespace:  t.Namespace,
		Name:       DispatcherName(t.Name),
		labels:     DispatcherLabels(t.Name),
		selector:   DispatcherSelector(t.Name),
		owner:      ptr.To(ownerRef(t, "Topic")),
		args:       []string{"--topics", t.Namespace + "/" + t.Name},
		replicas:   ptr.To[int32](1),
		tls:        ingressTLS(t),
		natsSecret: DispatcherNATSSecretName(t.Name),
	}
	if s := t.Spec.Dispatcher; s != nil {
		if s.Replicas != nil {
			d.replicas = ptr.To(*s.Replicas)
		}
		if s.Autoscaling != nil {
			d.replicas = nil
		}
		if s.Resources != nil {
			d.resources = *s.Resources.DeepCopy()
		}
	}
	return d
}

// SharedDispatcher is the dispatcher of namespace's shared Topics, running
// `herald-dispatcher --shared <namespace>/herald-dispatcher-shared`: it
// serves every Topic of the namespace whose plan names it.
func SharedDispatcher(namespace string, cfg SharedDispatcherConfig) Dispatcher {
	d := Dispatcher{
		Namespace:  namespace,
		Name:       SharedDispatcherName,
		labels:     SharedDispatcherLabels(),
		selector:   SharedDispatcherSelector(),
		args:       []string{"--shared", SharedDispatcherID(namespace)},
		replicas:   ptr.To(max(cfg.Replicas, 1)),
		resources:  *cfg.Resources.DeepCopy(),
		natsSecret: SharedDispatcherName + "-nats",
	}
	if cfg.Autoscaling != nil {
		d.replicas = nil
	}
	return d
}

// Address is where producers POST events to Topic namespace/topic served by d.
func (d Dispatcher) Address(namespace, topic, clusterDomain string) string {
	scheme := "http"
	if d.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s.%s.svc.%s/%s/%s", scheme, d.Name, d.Namespace, clusterDomain, namespace, topic)
}

func (d Dispatcher) meta() metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: d.Name, Namespace: d.Namespace, Labels: maps.Clone(d.labels)}
	if d.owner != nil {
		m.OwnerReferences = []metav1.OwnerReference{*d.owner}
	}
	return m
}

// ServiceAccount is the identity of the dispatcher's Pods. The Pods mount
// its token themselves (the Deployment sets automountServiceAccountToken);
// other Pods using it get none. Its only permission is minting its own
// tokens (TokenRole).
func (d Dispatcher) ServiceAccount() *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   d.meta(),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// TokenRole and TokenRoleBinding let the dispatcher's ServiceAccount mint
// its own tokens; both are named like it.
func (d Dispatcher) TokenRole() *rbacv1.Role { return TokenRole(d.meta(), d.Name) }

// TokenRoleBinding: see TokenRole.
func (d Dispatcher) TokenRoleBinding() *rbacv1.RoleBinding { return TokenRoleBinding(d.meta(), d.Name) }

// Service exposes the dispatcher: port 80 (http) to the ingress, or 443
// (https, appProtocol https) with TLS, and 9090 to metrics.
func (d Dispatcher) Service() *corev1.Service {
	ingress := corev1.ServicePort{Name: PortNameHTTP, Protocol: corev1.ProtocolTCP, Port: ServicePort, TargetPort: intstrName(PortNameHTTP)}
	if d.tls != nil {
		ingress = corev1.ServicePort{Name: PortNameHTTPS, Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("https"),
			Port: ServicePortHTTPS, TargetPort: intstrName(PortNameHTTPS)}
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: d.meta(),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: maps.Clone(d.selector),
			Ports: []corev1.ServicePort{
				ingress,
				{Name: PortNameMetrics, Protocol: corev1.ProtocolTCP, Port: MetricsPort, TargetPort: intstrName(PortNameMetrics)},
			},
		},
	}
}

// DispatcherServiceAccount is the identity of a Topic's dedicated dispatcher.
func DispatcherServiceAccount(t *v1alpha1.Topic) *corev1.ServiceAccount {
	return DedicatedDispatcher(t).ServiceAccount()
}

// DispatcherService exposes a Topic's dedicated dispatcher.
func DispatcherService(t *v1alpha1.Topic) *corev1.Service { return DedicatedDispatcher(t).Service() }

// DispatcherDeployment is a Topic's dedicated dispatcher Deployment.
func DispatcherDeployment(t *v1alpha1.Topic, cfg DispatcherConfig, signing []SigningSecret) *appsv1.Deployment {
	return DedicatedDispatcher(t).Deployment(cfg, signing)
}

// Deployment runs herald-dispatcher with d's arguments, replicas and
// resources, under the restricted Pod Security Standard. With TLS it mounts
// the Secret read-only and serves the ingress over TLS from its files, on
// the container port named https, probed over HTTPS. Each of signing is
// mounted whole and read-only at plan.SigningKeyDir of its Subscription,
// where the dispatcher reads the keys and notices their updates; a missing
// Secret keeps new dispatcher Pods from starting, which DispatcherAvailable
// reports.
func (d Dispatcher) Deployment(cfg DispatcherConfig, signing []SigningSecret) *appsv1.Deployment {
	env, mounts, volumes := natsEnv(cfg.NATS, d.natsSecret)
	env = append(env, podIdentityEnv()...)
	env = append(env, cfg.Env...)
	args := slices.Clone(d.args)
	port, scheme := PortNameHTTP, corev1.URIScheme("")
	if tls := d.tls; tls != nil {
		port, scheme = PortNameHTTPS, corev1.URISchemeHTTPS
		args = append(args, FlagTLSCertFile, ingressTLSDir+"/"+IngressTLSKeyCert, FlagTLSKeyFile, ingressTLSDir+"/"+IngressTLSKeyKey)
		mounts = append(mounts, corev1.VolumeMount{Name: ingressTLSVolume, MountPath: ingressTLSDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{
			Name: ingressTLSVolume,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName: tls.SecretName,
				Items: []corev1.KeyToPath{
					{Key: IngressTLSKeyCert, Path: IngressTLSKeyCert},
					{Key: IngressTLSKeyKey, Path: IngressTLSKeyKey},
				},
				DefaultMode: ptr.To[int32](0o440),
			}},
		})
	}
	for _, sg := range signing {
		name := signingVolume(sg.Subscription)
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: plan.SigningKeyDir(sg.Subscription), ReadOnly: true})
		volumes = append(volumes, corev1.Volume{
			Name: name,
			VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
				SecretName:  sg.Secret,
				Optional:    ptr.To(false),
				DefaultMode: ptr.To[int32](0o440),
			}},
		})
	}
	container := corev1.Container{
		Name:            "dispatcher",
		Image:           cfg.Image.Name,
		ImagePullPolicy: cfg.Image.PullPolicy,
		Command:         []string{DispatcherBinary},
		Args:            args,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: port, ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
			{Name: PortNameMetrics, ContainerPort: MetricsPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe:  probe(port, scheme, ReadinessPath, 5),
		LivenessProbe:   probe(port, scheme, LivenessPath, 10),
		Resources:       *d.resources.DeepCopy(),
		SecurityContext: containerSecurityContext(),
		VolumeMounts:    mounts,
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: d.meta(),
		Spec: appsv1.DeploymentSpec{
			Replicas: d.replicas,
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(d.selector)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(d.labels)},
				Spec: corev1.PodSpec{
					ServiceAccountName: d.Name,
					// The token calls TokenRequest for the tokens
					// presented to subscribers (DispatcherTokenRole).
					AutomountServiceAccountToken: ptr.To(true),
					SecurityContext:              podSecurityContext(),
					ImagePullSecrets:             cfg.Image.pullSecrets(),
					// The dispatcher drains for 5 to 20 s after SIGTERM
					// (--drain-delay, --drain-max), then has up to 30 s
					// (--shutdown-timeout) to finish in-flight deliveries.
					TerminationGracePeriodSeconds: ptr.To[int64](DispatcherTerminationGracePeriodSeconds),
					Containers:                    []corev1.Container{container},
					Volumes:                       volumes,
				},
			},
		},
	}
}

// DispatcherNATSSecretName is the name of the operator's copy of the
// dispatchers' NATS files for a Topic's dedicated dispatcher (NATS.Copied).
func DispatcherNATSSecretName(topic string) string { return DispatcherName(topic) + "-nats" }

// DispatcherNATSSecret is the operator's copy of the dispatchers' NATS files
// for Topic t's dedicated dispatcher (NATS.Copied), owned by t so that it
// goes with the Topic.
func DispatcherNATSSecret(t *v1alpha1.Topic, data map[string][]byte) *corev1.Secret {
	return DedicatedDispatcher(t).NATSSecret(data)
}

// NATSSecret is the operator's copy of the dispatchers' NATS files that d
// mounts (NATS.Copied).
func (d Dispatcher) NATSSecret(data map[string][]byte) *corev1.Secret {
	meta := d.meta()
	meta.Name = d.natsSecret
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// natsEnv is the environment of a dispatcher for NATS and the Secret
// volume carrying its credentials and TLS files; copied names the
// operator's copy of them (NATS.Copied).
func natsEnv(n NATS, copied string) ([]corev1.EnvVar, []corev1.VolumeMount, []corev1.Volume) {
	env := []corev1.EnvVar{{Name: EnvNATSURL, Value: n.URL}}
	secret := n.Secret
	if n.Copied {
		secret = copied
	}
	if secret == "" || !(n.Creds || n.Password || n.TLSCA || n.TLSClient) {
		return env, nil, nil
	}
	var items []corev1.KeyToPath
	file := func(envName, key string) {
		env = append(env, corev1.EnvVar{Name: envName, Value: natsSecretDir + "/" + key})
		items = append(items, corev1.KeyToPath{Key: key, Path: key})
	}
	if n.Creds {
		file(EnvNATSCreds, NATSSecretKeyCreds)
	}
	if n.Password {
		env = append(env, corev1.EnvVar{Name: EnvNATSUser, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: NATSSecretKeyUser},
		}})
		file(EnvNATSPasswordFile, NATSSecretKeyPassword)
	}
	if n.TLSCA {
		file(EnvNATSTLSCA, NATSSecretKeyTLSCA)
	}
	if n.TLSClient {
		file(EnvNATSTLSCert, NATSSecretKeyTLSCert)
		file(EnvNATSTLSKey, NATSSecretKeyTLSKey)
	}
	mounts := []corev1.VolumeMount{{Name: natsSecretVolume, MountPath: natsSecretDir, ReadOnly: true}}
	volumes := []corev1.Volume{{
		Name: natsSecretVolume,
		VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  secret,
			Items:       items,
			DefaultMode: ptr.To[int32](0o440),
		}},
	}}
	return env, mounts, volumes
}

func intstrName(name string) intstr.IntOrString { return intstr.FromString(name) }
