package resources

import (
	"fmt"
	"hash/fnv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// DispatcherConfig is what the dispatcher workload needs besides its Topic.
type DispatcherConfig struct {
	// Image is Herald's image.
	Image Image
	// NATS says how to reach NATS.
	NATS NATS
	// NetworkPolicy says how traffic to dispatcher Pods is restricted.
	NetworkPolicy NetworkPolicy
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

// DispatcherName is the name of a Topic's dispatcher ServiceAccount,
// Deployment and Service.
func DispatcherName(topic string) string { return topic + "-dispatcher" }

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

// DispatcherAddress is where producers POST events to a Topic: the
// dispatcher Service, path /<namespace>/<topic>, over https when the Topic
// has spec.dispatcher.tls.
func DispatcherAddress(t *v1alpha1.Topic, clusterDomain string) string {
	scheme := "http"
	if ingressTLS(t) != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s.%s.svc.%s/%s/%s", scheme, DispatcherName(t.Name), t.Namespace, clusterDomain, t.Namespace, t.Name)
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

func dispatcherMeta(t *v1alpha1.Topic) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            DispatcherName(t.Name),
		Namespace:       t.Namespace,
		Labels:          DispatcherLabels(t.Name),
		OwnerReferences: []metav1.OwnerReference{ownerRef(t, "Topic")},
	}
}

// DispatcherServiceAccount is the identity of a Topic's dispatcher Pods.
// The Pods mount its token themselves (the Deployment sets
// automountServiceAccountToken); other Pods using it get none. Its only
// permission is minting its own tokens (DispatcherTokenRole).
func DispatcherServiceAccount(t *v1alpha1.Topic) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:                     metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta:                   dispatcherMeta(t),
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// DispatcherService exposes a Topic's dispatcher: port 80 (http) to the
// ingress, or 443 (https, appProtocol https) with spec.dispatcher.tls, and
// 9090 to metrics.
func DispatcherService(t *v1alpha1.Topic) *corev1.Service {
	ingress := corev1.ServicePort{Name: PortNameHTTP, Protocol: corev1.ProtocolTCP, Port: ServicePort, TargetPort: intstrName(PortNameHTTP)}
	if ingressTLS(t) != nil {
		ingress = corev1.ServicePort{Name: PortNameHTTPS, Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("https"),
			Port: ServicePortHTTPS, TargetPort: intstrName(PortNameHTTPS)}
	}
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: dispatcherMeta(t),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: DispatcherSelector(t.Name),
			Ports: []corev1.ServicePort{
				ingress,
				{Name: PortNameMetrics, Protocol: corev1.ProtocolTCP, Port: MetricsPort, TargetPort: intstrName(PortNameMetrics)},
			},
		},
	}
}

// DispatcherDeployment runs `herald-dispatcher --topics <namespace>/<topic>`
// with spec.dispatcher's replicas and resources, under the restricted Pod
// Security Standard. With spec.dispatcher.tls it mounts the Secret read-only
// and serves the ingress over TLS from its files, on the container port
// named https, probed over HTTPS. Each of signing is mounted whole and
// read-only at plan.SigningKeyDir of its Subscription, where the dispatcher
// reads the keys and notices their updates; a missing Secret keeps new
// dispatcher Pods from starting, which DispatcherAvailable reports.
func DispatcherDeployment(t *v1alpha1.Topic, cfg DispatcherConfig, signing []SigningSecret) *appsv1.Deployment {
	replicas := int32(1)
	var resources corev1.ResourceRequirements
	if d := t.Spec.Dispatcher; d != nil {
		if d.Replicas != nil {
			replicas = *d.Replicas
		}
		if d.Resources != nil {
			resources = *d.Resources.DeepCopy()
		}
	}
	env, mounts, volumes := natsEnv(cfg.NATS, t.Name)
	env = append(env, podIdentityEnv()...)
	args := []string{"--topics", t.Namespace + "/" + t.Name}
	port, scheme := PortNameHTTP, corev1.URIScheme("")
	if tls := ingressTLS(t); tls != nil {
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
		Resources:       resources,
		SecurityContext: containerSecurityContext(),
		VolumeMounts:    mounts,
	}
	meta := dispatcherMeta(t)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: DispatcherSelector(t.Name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: DispatcherLabels(t.Name)},
				Spec: corev1.PodSpec{
					ServiceAccountName: DispatcherName(t.Name),
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
// dispatchers' NATS files in a Topic's namespace (NATS.Copied).
func DispatcherNATSSecretName(topic string) string { return DispatcherName(topic) + "-nats" }

// DispatcherNATSSecret is the operator's copy of the dispatchers' NATS files
// for Topic t (NATS.Copied): data under DispatcherNATSSecretName, owned by t
// so that it goes with the Topic.
func DispatcherNATSSecret(t *v1alpha1.Topic, data map[string][]byte) *corev1.Secret {
	meta := dispatcherMeta(t)
	meta.Name = DispatcherNATSSecretName(t.Name)
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// natsEnv is the environment of topic's dispatcher for NATS and the Secret
// volume carrying its credentials and TLS files.
func natsEnv(n NATS, topic string) ([]corev1.EnvVar, []corev1.VolumeMount, []corev1.Volume) {
	env := []corev1.EnvVar{{Name: EnvNATSURL, Value: n.URL}}
	secret := n.Secret
	if n.Copied {
		secret = DispatcherNATSSecretName(topic)
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
