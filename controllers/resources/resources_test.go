package resources

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/plan"
)

func topic() *v1alpha1.Topic {
	return &v1alpha1.Topic{
		ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: "shop", UID: "uid-1"},
	}
}

func envMap(c corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

func TestDispatcherDeployment(t *testing.T) {
	withSpec := topic()
	withSpec.Spec.Dispatcher = &v1alpha1.DispatcherSpec{
		Replicas: ptr.To[int32](3),
		Resources: &corev1.ResourceRequirements{
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
	}
	tests := []struct {
		name         string
		topic        *v1alpha1.Topic
		nats         NATS
		wantReplicas int32
		wantMemory   string
		wantEnv      map[string]string
		wantVolume   bool
	}{
		{
			name:         "defaults",
			topic:        topic(),
			nats:         NATS{URL: "nats://nats:4222"},
			wantReplicas: 1,
			wantEnv:      map[string]string{EnvNATSURL: "nats://nats:4222"},
		},
		{
			name:         "dispatcher spec",
			topic:        withSpec,
			nats:         NATS{URL: "nats://nats:4222"},
			wantReplicas: 3,
			wantMemory:   "256Mi",
			wantEnv:      map[string]string{EnvNATSURL: "nats://nats:4222"},
		},
		{
			name:         "secret without files mounts nothing",
			topic:        topic(),
			nats:         NATS{URL: "nats://n", Secret: "nats-auth"},
			wantReplicas: 1,
			wantEnv:      map[string]string{EnvNATSURL: "nats://n"},
		},
		{
			name:         "creds and tls from secret",
			topic:        topic(),
			nats:         NATS{URL: "tls://n", Secret: "nats-auth", Creds: true, TLSCA: true, TLSClient: true},
			wantReplicas: 1,
			wantEnv: map[string]string{
				EnvNATSURL:     "tls://n",
				EnvNATSCreds:   "/etc/herald/nats/nats.creds",
				EnvNATSTLSCA:   "/etc/herald/nats/ca.crt",
				EnvNATSTLSCert: "/etc/herald/nats/tls.crt",
				EnvNATSTLSKey:  "/etc/herald/nats/tls.key",
			},
			wantVolume: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DispatcherDeployment(tt.topic, DispatcherConfig{Image: Image{Name: "herald:dev"}, NATS: tt.nats}, nil)
			if d.Name != "orders-dispatcher" || d.Namespace != "shop" {
				t.Fatalf("name %s/%s", d.Namespace, d.Name)
			}
			if got := *d.Spec.Replicas; got != tt.wantReplicas {
				t.Errorf("replicas %d, want %d", got, tt.wantReplicas)
			}
			if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Kind != "Topic" || !*d.OwnerReferences[0].Controller || d.OwnerReferences[0].UID != "uid-1" {
				t.Errorf("owner references %+v", d.OwnerReferences)
			}
			sel := d.Spec.Selector.MatchLabels
			for k, v := range sel {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("selector label %s=%s not on the pod template", k, v)
				}
			}
			if d.Labels[LabelName] != "herald-dispatcher" || d.Labels[LabelTopic] != "orders" || d.Labels[LabelInstance] != "orders" {
				t.Errorf("labels %v", d.Labels)
			}
			pod := d.Spec.Template.Spec
			// The token calls TokenRequest for the dispatcher's own tokens.
			if pod.ServiceAccountName != "orders-dispatcher" || !*pod.AutomountServiceAccountToken {
				t.Errorf("service account %q automount %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
			}
			if !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v", pod.SecurityContext)
			}
			c := pod.Containers[0]
			if !reflect.DeepEqual(append(c.Command, c.Args...), []string{"herald-dispatcher", "--topics", "shop/orders"}) {
				t.Errorf("command %v %v", c.Command, c.Args)
			}
			sc := c.SecurityContext
			if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("container security context %+v", sc)
			}
			if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
			}
			if len(c.Ports) != 2 || c.Ports[0].ContainerPort != 8080 || c.Ports[1].ContainerPort != 9090 {
				t.Errorf("ports %+v", c.Ports)
			}
			got := map[string]string{}
			for k, e := range envMap(c) {
				if k == auth.EnvPodNamespace || k == auth.EnvServiceAccount {
					continue
				}
				got[k] = e.Value
			}
			if err := checkIdentityEnv(c); err != nil {
				t.Error(err)
			}
			if !reflect.DeepEqual(got, tt.wantEnv) {
				t.Errorf("env %v, want %v", got, tt.wantEnv)
			}
			if m := c.Resources.Limits.Memory(); tt.wantMemory != "" && m.String() != tt.wantMemory {
				t.Errorf("memory limit %s, want %s", m, tt.wantMemory)
			}
			if hasVol := len(pod.Volumes) == 1 && len(c.VolumeMounts) == 1; hasVol != tt.wantVolume {
				t.Errorf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
			}
			if tt.wantVolume && (pod.Volumes[0].Secret.SecretName != "nats-auth" || len(pod.Volumes[0].Secret.Items) != 4) {
				t.Errorf("secret volume %+v", pod.Volumes[0].Secret)
			}
		})
	}
}

func TestDispatcherServiceAndAddress(t *testing.T) {
	s := DispatcherService(topic())
	if s.Name != "orders-dispatcher" || s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("service %+v", s)
	}
	if !reflect.DeepEqual(s.Spec.Selector, DispatcherSelector("orders")) {
		t.Errorf("selector %v", s.Spec.Selector)
	}
	sa := DispatcherServiceAccount(topic())
	// Only the dispatcher's Pods mount its token (DispatcherDeployment).
	if sa.Name != "orders-dispatcher" || *sa.AutomountServiceAccountToken {
		t.Errorf("service account %+v", sa)
	}
	if got, want := DispatcherAddress(topic(), "cluster.local"), "http://orders-dispatcher.shop.svc.cluster.local/shop/orders"; got != want {
		t.Errorf("address %s, want %s", got, want)
	}
}

func tlsTopic() *v1alpha1.Topic {
	t := topic()
	t.Spec.Dispatcher = &v1alpha1.DispatcherSpec{TLS: &v1alpha1.DispatcherTLS{SecretName: "orders-ingress"}}
	return t
}

func TestDispatcherIngressTLS(t *testing.T) {
	s := DispatcherService(tlsTopic())
	want := []corev1.ServicePort{
		{Name: "https", Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("https"), Port: 443, TargetPort: intstrName("https")},
		{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstrName("metrics")},
	}
	if !reflect.DeepEqual(s.Spec.Ports, want) {
		t.Errorf("service ports %+v, want %+v", s.Spec.Ports, want)
	}
	if got, want := DispatcherAddress(tlsTopic(), "cluster.local"), "https://orders-dispatcher.shop.svc.cluster.local/shop/orders"; got != want {
		t.Errorf("address %s, want %s", got, want)
	}

	// The NATS Secret's volume stays beside the ingress certificate's.
	d := DispatcherDeployment(tlsTopic(), DispatcherConfig{Image: Image{Name: "herald:dev"}, NATS: NATS{URL: "tls://n", Secret: "nats-auth", TLSCA: true}}, nil)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"--topics", "shop/orders",
		"--tls-cert-file", "/etc/herald/ingress-tls/tls.crt", "--tls-key-file", "/etc/herald/ingress-tls/tls.key"}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("args %q, want %q", c.Args, wantArgs)
	}
	if len(pod.Volumes) != 2 || len(c.VolumeMounts) != 2 || pod.Volumes[0].Name != "nats" || c.VolumeMounts[0].Name != "nats" {
		t.Fatalf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	wantVolume := corev1.Volume{Name: "ingress-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  "orders-ingress",
		Items:       []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}},
		DefaultMode: ptr.To[int32](0o440),
	}}}
	if !reflect.DeepEqual(pod.Volumes[1], wantVolume) {
		t.Errorf("volume %+v, want %+v", pod.Volumes[1], wantVolume)
	}
	if m := c.VolumeMounts[1]; !reflect.DeepEqual(m, corev1.VolumeMount{Name: "ingress-tls", MountPath: "/etc/herald/ingress-tls", ReadOnly: true}) {
		t.Errorf("mount %+v", m)
	}
	// A mount by subPath would not see a renewed Secret.
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" {
			t.Errorf("mount %s by subPath", m.Name)
		}
	}
	if len(c.Ports) != 2 || c.Ports[0] != (corev1.ContainerPort{Name: "https", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}) {
		t.Errorf("ports %+v", c.Ports)
	}
	for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
		if g := p.HTTPGet; g.Scheme != corev1.URISchemeHTTPS || g.Port.StrVal != "https" {
			t.Errorf("probe %+v", g)
		}
	}

	// Without tls: no certificate flags, the port named http, HTTP probes.
	c = DispatcherDeployment(topic(), DispatcherConfig{Image: Image{Name: "herald:dev"}}, nil).Spec.Template.Spec.Containers[0]
	if slices.Contains(c.Args, "--tls-cert-file") || c.Ports[0].Name != "http" || c.ReadinessProbe.HTTPGet.Scheme == corev1.URISchemeHTTPS || c.ReadinessProbe.HTTPGet.Port.StrVal != "http" {
		t.Errorf("plain container %+v", c)
	}
}

func source(spec v1alpha1.EventSourceSpec) *v1alpha1.EventSource {
	return &v1alpha1.EventSource{
		ObjectMeta: metav1.ObjectMeta{Name: "tick", Namespace: "shop", UID: "uid-2"},
		Spec:       spec,
	}
}

func TestAdapterDeployment(t *testing.T) {
	overrides := &v1alpha1.CloudEventOverrides{Extensions: map[string]string{"team": "shop"}}
	tests := []struct {
		name        string
		spec        v1alpha1.EventSourceSpec
		wantType    string
		wantSA      string
		wantToken   bool
		wantRecreat bool
		wantSecret  bool
	}{
		{
			name:        "ping",
			spec:        v1alpha1.EventSourceSpec{Ping: &v1alpha1.PingSource{Schedule: "@every 10s", Data: `{"a":1}`}, CEOverrides: overrides},
			wantType:    "ping",
			wantSA:      "tick-source",
			wantToken:   true,
			wantRecreat: true,
		},
		{
			name:      "apiServer default service account",
			spec:      v1alpha1.EventSourceSpec{APIServer: &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}}},
			wantType:  "apiServer",
			wantSA:    "default",
			wantToken: true,
		},
		{
			name:      "apiServer service account",
			spec:      v1alpha1.EventSourceSpec{APIServer: &v1alpha1.APIServerSource{ServiceAccountName: "watcher", Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}}},
			wantType:  "apiServer",
			wantSA:    "watcher",
			wantToken: true,
		},
		{
			name: "webhook with signature",
			spec: v1alpha1.EventSourceSpec{Webhook: &v1alpha1.WebhookSource{Signature: &v1alpha1.WebhookSignature{
				Type:         v1alpha1.SignatureGitHub,
				SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "gh"}, Key: "secret"},
			}}},
			wantType:   "webhook",
			wantSA:     "tick-source",
			wantToken:  true,
			wantSecret: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := source(tt.spec)
			s.Spec.Sink = v1alpha1.Destination{URI: ptr.To("http://sink")}
			d, err := AdapterDeployment(s, "http://sink.shop.svc/x", "", AdapterConfig{Image: Image{Name: "herald:dev"}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != "tick-source" || *d.Spec.Replicas != 1 {
				t.Errorf("name %s replicas %d", d.Name, *d.Spec.Replicas)
			}
			if (d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType) != tt.wantRecreat {
				t.Errorf("strategy %q", d.Spec.Strategy.Type)
			}
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != tt.wantSA || *pod.AutomountServiceAccountToken != tt.wantToken {
				t.Errorf("service account %q token %v", pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
			}
			c := pod.Containers[0]
			if !reflect.DeepEqual(append(c.Command, c.Args...), []string{"herald", "adapter"}) {
				t.Errorf("command %v %v", c.Command, c.Args)
			}
			env := envMap(c)
			if env[EnvSink].Value != "http://sink.shop.svc/x" || env[EnvSourceType].Value != tt.wantType ||
				env[EnvSourceNamespace].Value != "shop" || env[EnvSourceName].Value != "tick" {
				t.Errorf("env %v", env)
			}
			wantOverrides := "{}"
			if s.Spec.CEOverrides != nil {
				wantOverrides = `{"extensions":{"team":"shop"}}`
			}
			if env[EnvCEOverrides].Value != wantOverrides {
				t.Errorf("K_CE_OVERRIDES %s, want %s", env[EnvCEOverrides].Value, wantOverrides)
			}
			var spec map[string]any
			if err := json.Unmarshal([]byte(env[EnvSourceSpec].Value), &spec); err != nil || len(spec) == 0 && tt.wantType != "webhook" {
				t.Errorf("HERALD_SOURCE_SPEC %q: %v", env[EnvSourceSpec].Value, err)
			}
			if _, ok := env[EnvAudience]; ok {
				t.Errorf("K_AUDIENCE set for a sink without an audience: %v", env[EnvAudience])
			}
			if err := checkIdentityEnv(c); err != nil {
				t.Error(err)
			}
			sec, ok := env[EnvWebhookSecret]
			if ok != tt.wantSecret || ok && (sec.ValueFrom.SecretKeyRef.Name != "gh" || sec.ValueFrom.SecretKeyRef.Key != "secret") {
				t.Errorf("webhook secret %+v", sec)
			}
		})
	}
}

func TestContainerSourceInjectsEverywhere(t *testing.T) {
	s := source(v1alpha1.EventSourceSpec{
		CEOverrides: &v1alpha1.CloudEventOverrides{Extensions: map[string]string{"a": "b"}},
		Container: &v1alpha1.ContainerSource{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "mine"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "one", Image: "one", Env: []corev1.EnvVar{
					{Name: "BEFORE", Value: "1"},
					{Name: EnvSink, Value: "http://stale"},
					{Name: "AFTER", Value: "$(K_SINK)/x"},
				}},
				{Name: "two", Image: "two"},
			}, InitContainers: []corev1.Container{{Name: "init", Image: "init"}}},
		}},
	})
	d, err := AdapterDeployment(s, "http://new", "", AdapterConfig{Image: Image{Name: "unused"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.Spec.Template.Labels["app"] != "mine" || d.Spec.Template.Labels[LabelEventSource] != "tick" {
		t.Errorf("labels %v", d.Spec.Template.Labels)
	}
	one := d.Spec.Template.Spec.Containers[0].Env
	wantOne := []corev1.EnvVar{
		{Name: "BEFORE", Value: "1"},
		{Name: EnvSink, Value: "http://new"},
		{Name: "AFTER", Value: "$(K_SINK)/x"},
		{Name: EnvCEOverrides, Value: `{"extensions":{"a":"b"}}`},
	}
	if !reflect.DeepEqual(one, wantOne) {
		t.Errorf("container one env %v", one)
	}
	two := d.Spec.Template.Spec.Containers[1].Env
	if len(two) != 2 || two[0].Value != "http://new" {
		t.Errorf("container two env %v", two)
	}
	if init := d.Spec.Template.Spec.InitContainers[0].Env; len(init) != 2 || init[0].Value != "http://new" {
		t.Errorf("init container env %v", init)
	}
	if s.Spec.Container.Template.Spec.Containers[0].Env[1].Value != "http://stale" {
		t.Error("the builder modified the EventSource")
	}
}

func TestAdapterService(t *testing.T) {
	s := AdapterService(source(v1alpha1.EventSourceSpec{Webhook: &v1alpha1.WebhookSource{}}))
	if s.Name != "tick-source" || s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort.StrVal != "http" {
		t.Errorf("service %+v", s)
	}
	if got := WebhookAddress("shop", "tick", "cluster.local"); got != "http://tick-source.shop.svc.cluster.local" {
		t.Errorf("address %s", got)
	}
}

// TestImagePullSettings: the operator's image pull policy and pull Secrets
// reach every container running Herald's image, and are left to Kubernetes'
// defaults when unset; the dispatcher Pod's grace period covers its drain.
func TestImagePullSettings(t *testing.T) {
	secrets := []string{"registry-a", "registry-b"}
	wantRefs := []corev1.LocalObjectReference{{Name: "registry-a"}, {Name: "registry-b"}}
	pods := map[string]func(corev1.PullPolicy, []string) corev1.PodSpec{
		"dispatcher": func(p corev1.PullPolicy, s []string) corev1.PodSpec {
			return DispatcherDeployment(topic(), DispatcherConfig{Image: Image{Name: "herald:dev", PullPolicy: p, PullSecrets: s}}, nil).Spec.Template.Spec
		},
		"ping adapter": func(p corev1.PullPolicy, s []string) corev1.PodSpec {
			src := source(v1alpha1.EventSourceSpec{Ping: &v1alpha1.PingSource{Schedule: "@every 10s"}})
			d, err := AdapterDeployment(src, "http://sink", "", AdapterConfig{Image: Image{Name: "herald:dev", PullPolicy: p, PullSecrets: s}})
			if err != nil {
				t.Fatal(err)
			}
			return d.Spec.Template.Spec
		},
	}
	for name, pod := range pods {
		t.Run(name, func(t *testing.T) {
			set := pod(corev1.PullIfNotPresent, secrets)
			if got := set.Containers[0].ImagePullPolicy; got != corev1.PullIfNotPresent {
				t.Errorf("imagePullPolicy %q", got)
			}
			if !reflect.DeepEqual(set.ImagePullSecrets, wantRefs) {
				t.Errorf("imagePullSecrets %v", set.ImagePullSecrets)
			}
			unset := pod("", nil)
			if unset.Containers[0].ImagePullPolicy != "" || unset.ImagePullSecrets != nil {
				t.Errorf("unset: policy %q secrets %v", unset.Containers[0].ImagePullPolicy, unset.ImagePullSecrets)
			}
		})
	}
	grace := DispatcherDeployment(topic(), DispatcherConfig{Image: Image{Name: "herald:dev"}}, nil).Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || *grace < 20+30 {
		t.Errorf("dispatcher terminationGracePeriodSeconds %v: below the drain delay plus the shutdown timeout", grace)
	}
}

// TestDispatcherSigningSecrets: each Subscription's signing Secret is
// mounted whole, read-only, at its plan.SigningKeyDir, on a volume whose
// name stays a valid DNS label for any Subscription name.
func TestDispatcherSigningSecrets(t *testing.T) {
	long := strings.Repeat("s", 200)
	pod := DispatcherDeployment(topic(), DispatcherConfig{Image: Image{Name: "herald:dev"}},
		[]SigningSecret{{Subscription: "audit", Secret: "audit-keys"}, {Subscription: long, Secret: "shared"}}).Spec.Template.Spec
	c := pod.Containers[0]
	if len(pod.Volumes) != 2 || len(c.VolumeMounts) != 2 {
		t.Fatalf("volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	for i, want := range []struct{ sub, secret string }{{"audit", "audit-keys"}, {long, "shared"}} {
		v, m := pod.Volumes[i], c.VolumeMounts[i]
		if errs := validation.IsDNS1123Label(v.Name); len(errs) > 0 {
			t.Errorf("volume name %q: %v", v.Name, errs)
		}
		wantSource := &corev1.SecretVolumeSource{SecretName: want.secret, Optional: ptr.To(false), DefaultMode: ptr.To[int32](0o440)}
		if !reflect.DeepEqual(v.Secret, wantSource) {
			t.Errorf("volume %d source %+v, want %+v", i, v.Secret, wantSource)
		}
		wantMount := corev1.VolumeMount{Name: v.Name, MountPath: plan.SigningKeyDir(want.sub), ReadOnly: true}
		if !reflect.DeepEqual(m, wantMount) {
			t.Errorf("mount %d %+v, want %+v", i, m, wantMount)
		}
	}
	if pod.Volumes[0].Name == pod.Volumes[1].Name {
		t.Errorf("two Subscriptions share volume %s", pod.Volumes[0].Name)
	}
	if got := plan.SigningKeyDir("audit"); got != "/etc/herald/signing/audit" {
		t.Errorf("SigningKeyDir = %s", got)
	}
}

// checkIdentityEnv says what is wrong with the downward API variables
// telling c which ServiceAccount it runs as.
func checkIdentityEnv(c corev1.Container) error {
	env := envMap(c)
	for name, path := range map[string]string{auth.EnvPodNamespace: "metadata.namespace", auth.EnvServiceAccount: "spec.serviceAccountName"} {
		e, ok := env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			return fmt.Errorf("%s: %+v, want the downward API's %s", name, e, path)
		}
	}
	return nil
}

// TestTokenRBAC: each workload's Role allows only create on
// serviceaccounts/token of its own ServiceAccount, and its RoleBinding binds
// that Role to that ServiceAccount; both are owned like the workload.
func TestTokenRBAC(t *testing.T) {
	apiServer := source(v1alpha1.EventSourceSpec{APIServer: &v1alpha1.APIServerSource{ServiceAccountName: "watcher",
		Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}}})
	ping := source(v1alpha1.EventSourceSpec{Ping: &v1alpha1.PingSource{Schedule: "@every 10s"}})
	tests := []struct {
		name      string
		role      *rbacv1.Role
		binding   *rbacv1.RoleBinding
		wantName  string
		wantSA    string
		wantOwner string
	}{
		{"dispatcher", DispatcherTokenRole(topic()), DispatcherTokenRoleBinding(topic()), "orders-dispatcher", "orders-dispatcher", "Topic"},
		{"ping adapter", AdapterTokenRole(ping), AdapterTokenRoleBinding(ping), "tick-source", "tick-source", "EventSource"},
		{"apiServer adapter", AdapterTokenRole(apiServer), AdapterTokenRoleBinding(apiServer), "tick-source", "watcher", "EventSource"},
	}
	for _, tt := range tests {
		wantRules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, ResourceNames: []string{tt.wantSA}, Verbs: []string{"create"}}}
		if tt.role.Name != tt.wantName || tt.role.Namespace != "shop" || !reflect.DeepEqual(tt.role.Rules, wantRules) {
			t.Errorf("%s: role %s/%s rules %+v, want %s with %+v", tt.name, tt.role.Namespace, tt.role.Name, tt.role.Rules, tt.wantName, wantRules)
		}
		b := tt.binding
		if b.Name != tt.wantName || b.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: tt.wantName}) ||
			!reflect.DeepEqual(b.Subjects, []rbacv1.Subject{{Kind: "ServiceAccount", Name: tt.wantSA, Namespace: "shop"}}) {
			t.Errorf("%s: binding %+v", tt.name, b)
		}
		for _, refs := range [][]metav1.OwnerReference{tt.role.OwnerReferences, b.OwnerReferences} {
			if len(refs) != 1 || refs[0].Kind != tt.wantOwner || !*refs[0].Controller {
				t.Errorf("%s: owner references %+v", tt.name, refs)
			}
		}
		if tt.role.Labels[LabelManagedBy] != ManagedBy || b.Labels[LabelManagedBy] != ManagedBy {
			t.Errorf("%s: labels %v %v", tt.name, tt.role.Labels, b.Labels)
		}
	}
	if sa := AdapterServiceAccountObject(ping); sa == nil || sa.Name != "tick-source" || sa.Namespace != "shop" {
		t.Errorf("ping adapter service account %+v", sa)
	}
	if sa := AdapterServiceAccountObject(apiServer); sa != nil {
		t.Errorf("apiServer adapter runs as the user's ServiceAccount, got %+v", sa)
	}
	container := source(v1alpha1.EventSourceSpec{Container: &v1alpha1.ContainerSource{}})
	if AdapterRunsHerald(container) || AdapterServiceAccountObject(container) != nil {
		t.Error("a container source gets Herald's adapter identity")
	}
}

// TestSinkAudienceReachesAdapters: the sink's audience is K_AUDIENCE of a
// Herald adapter and of every container of a container source.
func TestSinkAudienceReachesAdapters(t *testing.T) {
	ping := source(v1alpha1.EventSourceSpec{Ping: &v1alpha1.PingSource{Schedule: "@every 10s"}})
	container := source(v1alpha1.EventSourceSpec{Container: &v1alpha1.ContainerSource{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "one", Image: "one"}, {Name: "two", Image: "two"}}}}}})
	const aud = "eventing.herald.dev/topic/shop/orders"
	for _, s := range []*v1alpha1.EventSource{ping, container} {
		d, err := AdapterDeployment(s, "http://sink", aud, AdapterConfig{Image: Image{Name: "herald:dev"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if got := envMap(c)[EnvAudience].Value; got != aud {
				t.Errorf("%s container %s: K_AUDIENCE %q, want %q", s.Spec.Type(), c.Name, got, aud)
			}
		}
	}
}

// TestDispatcherEnvPassedOn: the operator's OpenTelemetry settings reach
// the dispatcher container of dedicated and shared dispatchers.
func TestDispatcherEnvPassedOn(t *testing.T) {
	cfg := DispatcherConfig{Image: Image{Name: "herald:dev"}, Env: []corev1.EnvVar{
		{Name: "OTEL_TRACES_EXPORTER", Value: "otlp"}, {Name: "OTEL_EXPORTER_OTLP_ENDPOINT", Value: "http://collector:4318"},
	}}
	for name, dep := range map[string]*appsv1.Deployment{
		"dedicated": DispatcherDeployment(topic(), cfg, nil),
		"shared":    SharedDispatcher("shop", SharedDispatcherConfig{}).Deployment(cfg, nil),
	} {
		got := map[string]string{}
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			got[e.Name] = e.Value
		}
		if got["OTEL_TRACES_EXPORTER"] != "otlp" || got["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://collector:4318" {
			t.Errorf("%s dispatcher env %v", name, got)
		}
	}
}
