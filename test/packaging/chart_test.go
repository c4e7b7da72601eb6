package packaging_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestChartLint(t *testing.T) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) { lintChart(t, v) })
	}
}

// TestChartAppliesToAPIServer renders the chart with each value set and
// applies every object, CRDs included, to the test API server with
// server-side dry-run, in a namespace that enforces the restricted Pod
// Security Standard; then the pods the workloads would create are admitted
// there, and the objects' references to each other hold.
func TestChartAppliesToAPIServer(t *testing.T) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			r := mustRender(t, v, restrictedNamespace(t, "chart-"+v.name))
			t.Logf("%d objects: %s", len(r.objs), kinds(r.objs))
			dryRunApply(t, r.objs)
			checkPodsAdmitted(t, r.objs)
			checkWiring(t, r.objs)
			checkRestrictedContainers(t, r.objs)
		})
	}
}

// TestChartObjects checks what each value set installs.
func TestChartObjects(t *testing.T) {
	count := func(objs []*unstructured.Unstructured) map[string]int {
		m := map[string]int{}
		for _, o := range objs {
			m[o.GetKind()]++
		}
		return m
	}
	tests := []struct {
		values valueSet
		want   map[string]int
	}{
		{defaultValues, map[string]int{
			"CustomResourceDefinition": 4, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
			"Role": 2, "RoleBinding": 2, "Deployment": 1, "Service": 3, "ConfigMap": 1, "StatefulSet": 1,
			"NetworkPolicy": 2, "Secret": 3,
		}},
		{haValues, map[string]int{
			"CustomResourceDefinition": 4, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
			"Role": 2, "RoleBinding": 2, "Deployment": 1, "Service": 3, "ConfigMap": 1, "StatefulSet": 1,
			"PodDisruptionBudget": 2, "NetworkPolicy": 2, "Secret": 3,
		}},
		{externalValues, map[string]int{
			"CustomResourceDefinition": 4, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
			"Role": 1, "RoleBinding": 1, "Deployment": 1, "Service": 1, "ServiceMonitor": 1, "NetworkPolicy": 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.values.name, func(t *testing.T) {
			r := mustRender(t, tt.values, "herald-system")
			if got := count(r.objs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("kinds %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("default", func(t *testing.T) {
		r := mustRender(t, defaultValues, "herald-system")
		args, env := managerArgs(t, r.objs, "herald-manager")
		for _, want := range []string{
			"--nats-url=tls://herald-nats.herald-system.svc.cluster.local:4222",
			"--nats-user=herald-manager", "--nats-password-file=/etc/herald/nats/password", "--nats-tls-ca=/etc/herald/nats/ca.crt",
			"--dispatcher-nats-source=herald-system/herald-nats-dispatcher",
			"--dispatcher-network-policy=true", "--metrics-namespace-selector=kubernetes.io/metadata.name=monitoring",
			"--plan-replicas=1", "--leader-elect=true", "--log-level=info", "--image-pull-policy=IfNotPresent",
			"--default-publish-policy=allow-same-namespace",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		}
		if got := env["HERALD_IMAGE"]; got != "ghcr.io/herald-dev/herald:"+appVersion(t) {
			t.Errorf("HERALD_IMAGE %q, want the chart's appVersion as tag", got)
		}
		sts := statefulSet(t, r.objs, "herald-nats")
		if *sts.Spec.Replicas != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 ||
			sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "10Gi" {
			t.Errorf("NATS StatefulSet: %d replicas, claims %+v", *sts.Spec.Replicas, sts.Spec.VolumeClaimTemplates)
		}
		if conf := natsConf(t, r.objs, "herald-nats-config"); strings.Contains(conf, "cluster {") {
			t.Errorf("a single NATS server has a cluster block:\n%s", conf)
		}
	})

	t.Run("ha", func(t *testing.T) {
		r := mustRender(t, haValues, "herald-system")
		args, _ := managerArgs(t, r.objs, "herald-manager")
		for _, want := range []string{"--plan-replicas=3", "--leader-elect=true",
			`--shared-dispatcher-autoscaling={"maxReplicas":10,"minReplicas":2,"targetLag":200}`} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		}
		var d appsv1.Deployment
		mustConvert(t, r.objs, "Deployment", "herald-manager", &d)
		if *d.Spec.Replicas != 2 {
			t.Errorf("manager replicas %d, want 2", *d.Spec.Replicas)
		}
		if sts := statefulSet(t, r.objs, "herald-nats"); *sts.Spec.Replicas != 3 {
			t.Errorf("NATS replicas %d, want 3", *sts.Spec.Replicas)
		}
	})

	t.Run("external", func(t *testing.T) {
		r := mustRender(t, externalValues, "herald-system")
		args, _ := managerArgs(t, r.objs, "herald-manager")
		for _, want := range []string{
			"--nats-url=tls://nats.nats.svc.cluster.local:4222",
			"--nats-creds=/etc/herald/nats-creds/nats.creds",
			"--nats-tls-ca=/etc/herald/nats-tls/ca.crt",
			"--nats-tls-cert=/etc/herald/nats-tls/tls.crt",
			"--nats-tls-key=/etc/herald/nats-tls/tls.key",
			"--dispatcher-nats-secret=herald-nats",
			"--namespaces=shop,billing",
			"--plan-replicas=1",
			"--image-pull-policy=Always",
			"--image-pull-secrets=registry,mirror",
		} {
			if !slices.Contains(args, want) {
				t.Errorf("manager args %q lack %s", args, want)
			}
		}
		var d appsv1.Deployment
		mustConvert(t, r.objs, "Deployment", "herald-manager", &d)
		mounts := map[string]string{}
		for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		secrets := map[string]string{}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil {
				secrets[v.Name] = v.Secret.SecretName
			}
		}
		if mounts["nats-creds"] != "/etc/herald/nats-creds" || mounts["nats-tls"] != "/etc/herald/nats-tls" ||
			secrets["nats-creds"] != "herald-nats" || secrets["nats-tls"] != "herald-nats" {
			t.Errorf("NATS Secret mounts %v, volumes %v", mounts, secrets)
		}
	})
}

// TestChartNotes checks that NOTES.txt walks a user from the install to a
// first event, with names that match what the chart installed.
func TestChartNotes(t *testing.T) {
	r := mustRender(t, defaultValues, "herald-system")
	for _, want := range []string{
		"rollout status deployment/herald-manager",
		"rollout status statefulset/herald-nats",
		"kind: Topic",
		"wait topic/hello --for=condition=Ready",
		"--image=ghcr.io/herald-dev/herald:" + appVersion(t),
		"send --to http://hello-dispatcher.default.svc.cluster.local/default/hello",
		"port-forward service/hello-dispatcher 8080:80",
		"ce-specversion: 1.0",
		"kind: Subscription",
	} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
		}
	}
	ext := mustRender(t, externalValues, "herald-system")
	if strings.Contains(ext.notes, "statefulset/") || !strings.Contains(ext.notes, "tls://nats.nats.svc.cluster.local:4222") {
		t.Errorf("NOTES.txt with external NATS:\n%s", ext.notes)
	}
}

// TestChartPublishPolicy checks that publishPolicy.default reaches the
// operator and that NOTES.txt of an upgrade says producers must now
// authenticate, with the command that keeps the open behaviour, unless
// allow-all is set.
func TestChartPublishPolicy(t *testing.T) {
	const note = "NOTE: producers must now authenticate"
	const keepOpen = "helm upgrade herald charts/herald -n herald-system --reuse-values \\\n    --set publishPolicy.default=allow-all"
	tests := []struct {
		values   valueSet
		wantArg  string
		wantNote []string
	}{
		{valueSet{name: "install"}, "--default-publish-policy=allow-same-namespace", nil},
		{valueSet{name: "upgrade", upgrade: true}, "--default-publish-policy=allow-same-namespace",
			[]string{note, "publishPolicy.default=allow-same-namespace: only Pods of the Topic's own namespace", keepOpen, "kubectl get htopic -A -o wide"}},
		{valueSet{name: "upgrade authenticated", upgrade: true, set: []string{"publishPolicy.default=authenticated"}}, "--default-publish-policy=authenticated",
			[]string{note, "any Pod with a valid ServiceAccount token", keepOpen}},
		{valueSet{name: "upgrade deny-all", upgrade: true, set: []string{"publishPolicy.default=deny-all"}}, "--default-publish-policy=deny-all",
			[]string{note, "nobody may publish until a Topic lists its", keepOpen}},
		{valueSet{name: "upgrade allow-all", upgrade: true, set: []string{"publishPolicy.default=allow-all"}}, "--default-publish-policy=allow-all", nil},
	}
	for _, tt := range tests {
		t.Run(tt.values.name, func(t *testing.T) {
			r := mustRender(t, tt.values, "herald-system")
			args, _ := managerArgs(t, r.objs, "herald-manager")
			if !slices.Contains(args, tt.wantArg) {
				t.Errorf("manager args %q lack %s", args, tt.wantArg)
			}
			if tt.wantNote == nil && strings.Contains(r.notes, note) {
				t.Errorf("NOTES.txt warns about authentication:\n%s", r.notes)
			}
			for _, want := range tt.wantNote {
				if !strings.Contains(r.notes, want) {
					t.Errorf("NOTES.txt lacks %q:\n%s", want, r.notes)
				}
			}
		})
	}
}

// TestChartSchemaRefusesBadValues checks that values.schema.json (and the
// templates' own checks) refuse values that would install something broken,
// with a message naming the value.
func TestChartSchemaRefusesBadValues(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		want string
	}{
		{"two NATS servers cannot form a quorum", []string{"nats.replicas=2"}, "/nats/replicas"},
		{"no operator", []string{"manager.replicas=0"}, "/manager/replicas"},
		{"unknown log level", []string{"manager.logLevel=trace"}, "/manager/logLevel"},
		{"plan replicas of an even count", []string{"manager.planReplicas=2"}, "/manager/planReplicas"},
		{"misspelt value", []string{"nats.replica=3"}, "replica"},
		{"unknown pull policy", []string{"image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		{"NATS size without a number", []string{"nats.maxPayload=lots"}, "/nats/maxPayload"},
		{"volume size that is no quantity", []string{"nats.persistence.size=ten"}, "/nats/persistence/size"},
		{"port out of range", []string{"manager.ports.metrics=70000"}, "/manager/ports/metrics"},
		{"external NATS without a URL", []string{"nats.enabled=false"}, "url"},
		{"external NATS URL without a scheme", []string{"nats.enabled=false", "nats.external.url=nats.example.com:4222"}, "/nats/external/url"},
		{"NATS lame duck within its grace period", []string{"nats.lameDuckDuration=10s"}, "/nats/lameDuckDuration"},
		{"digest that is no digest", []string{"image.digest=latest"}, "/image/digest"},
		{"two Secrets for the dispatchers", []string{
			"nats.enabled=false", "nats.external.url=nats://nats:4222",
			"nats.external.credentialsSecret=a", "nats.external.tls.secret=b",
		}, "nats.external.dispatcherSecret is required"},
		{"no ServiceAccount name", []string{"manager.serviceAccount.create=false"}, "manager.serviceAccount.name is required"},
		{"unknown publish policy", []string{"publishPolicy.default=open"}, "/publishPolicy/default"},
		{"shared dispatchers scaled to zero", []string{"dispatcher.shared.autoscaling.minReplicas=0", "dispatcher.shared.autoscaling.maxReplicas=3"},
			"/dispatcher/shared/autoscaling/minReplicas"},
		{"shared autoscaling without a maximum", []string{"dispatcher.shared.autoscaling.minReplicas=2"}, "maxReplicas"},
		{"runbooks without a URL", []string{"metrics.prometheusRule.runbookURL=docs/alerts.md"}, "/metrics/prometheusRule/runbookURL"},
		{"disabling an alert that does not exist", []string{"metrics.prometheusRule.enabled=true",
			"metrics.prometheusRule.disabled.HeraldLagGrowing=true"}, "there is no alert HeraldLagGrowing"},
		{"dashboard in an invalid namespace", []string{"metrics.dashboard.namespace=Monitoring"}, "/metrics/dashboard/namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := renderChart(t, valueSet{name: tt.name, set: tt.set}, "herald-system")
			if err == nil {
				t.Fatalf("values %v rendered without an error", tt.set)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestChartCRDsInSync fails when charts/herald/crds differs from the
// generated config/crd/bases: run `make helm-crds`.
func TestChartCRDsInSync(t *testing.T) {
	want := yamlFiles(t, filepath.Join(repoRoot, "config", "crd", "bases"))
	got := yamlFiles(t, filepath.Join(chartDir(), "crds"))
	for name, data := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("charts/herald/crds/%s is missing: run make helm-crds", name)
		} else if !bytes.Equal(g, data) {
			t.Errorf("charts/herald/crds/%s differs from config/crd/bases/%s: run make helm-crds", name, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/herald/crds/%s is not in config/crd/bases: run make helm-crds", name)
		}
	}
}

// TestChartClusterRoleMatchesGenerated checks that the chart grants the
// operator exactly the rules controller-gen generates from the
// +kubebuilder:rbac markers (config/rbac/role.yaml), and at least the
// leader-election rules of config/rbac.
func TestChartClusterRoleMatchesGenerated(t *testing.T) {
	generated := filepath.Join(repoRoot, "config", "rbac", "role.yaml")
	var want rbacv1.ClusterRole
	readYAML(t, generated, &want)
	if len(want.Rules) == 0 {
		t.Fatalf("%s has no rules", generated)
	}
	copyData, err := os.ReadFile(filepath.Join(chartDir(), "files", "manager-role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	genData, _ := os.ReadFile(generated)
	if !bytes.Equal(copyData, genData) {
		t.Errorf("charts/herald/files/manager-role.yaml differs from config/rbac/role.yaml: run make helm-rbac")
	}
	for _, v := range valueSets {
		r := mustRender(t, v, "herald-system")
		var got rbacv1.ClusterRole
		mustConvert(t, r.objs, "ClusterRole", "herald-manager", &got)
		if !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("%s values: the chart's ClusterRole rules\n%s\ndiffer from config/rbac/role.yaml's\n%s\nrun make helm-rbac",
				v.name, toYAML(t, got.Rules), toYAML(t, want.Rules))
		}
	}

	// Leader election: the chart may grant more (Events for the election
	// record), never less.
	var le rbacv1.Role
	readYAML(t, filepath.Join(repoRoot, "config", "rbac", "leader_election_role.yaml"), &le)
	r := mustRender(t, defaultValues, "herald-system")
	var chartLE rbacv1.Role
	mustConvert(t, r.objs, "Role", "herald-leader-election", &chartLE)
	for _, rule := range le.Rules {
		if !covers(chartLE.Rules, rule) {
			t.Errorf("the chart's leader-election Role lacks %+v of config/rbac/leader_election_role.yaml", rule)
		}
	}
}

// covers says whether rules grant every verb of want on every resource.
func covers(rules []rbacv1.PolicyRule, want rbacv1.PolicyRule) bool {
	for _, g := range want.APIGroups {
		for _, res := range want.Resources {
			for _, verb := range want.Verbs {
				ok := false
				for _, r := range rules {
					ok = ok || (slices.Contains(r.APIGroups, g) && slices.Contains(r.Resources, res) && slices.Contains(r.Verbs, verb))
				}
				if !ok {
					return false
				}
			}
		}
	}
	return true
}

func appVersion(t *testing.T) string {
	t.Helper()
	return loadChart(t).Metadata.AppVersion
}

// managerArgs returns the manager container's arguments and environment.
func managerArgs(t *testing.T, objs []*unstructured.Unstructured, name string) ([]string, map[string]string) {
	t.Helper()
	var d appsv1.Deployment
	mustConvert(t, objs, "Deployment", name, &d)
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			return c.Args, env
		}
	}
	t.Fatalf("Deployment %s has no manager container", name)
	return nil, nil
}

func statefulSet(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.StatefulSet {
	t.Helper()
	var s appsv1.StatefulSet
	mustConvert(t, objs, "StatefulSet", name, &s)
	return &s
}

// natsConf returns nats.conf from the ConfigMap name.
func natsConf(t *testing.T, objs []*unstructured.Unstructured, name string) string {
	t.Helper()
	cm, err := find(objs, "ConfigMap", name)
	if err != nil {
		t.Fatal(err)
	}
	conf, ok, _ := unstructured.NestedString(cm.Object, "data", "nats.conf")
	if !ok {
		t.Fatalf("ConfigMap %s has no nats.conf", name)
	}
	return conf
}

func mustConvert(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	o, err := find(objs, kind, name)
	if err != nil {
		t.Fatalf("%v; have %s", err, kinds(objs))
	}
	if err := convert(o, into); err != nil {
		t.Fatalf("%s: %v", describe(o), err)
	}
}

func yamlFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no YAML files in %s (%v)", dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = data
	}
	return out
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	data, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestChartTracing: tracing values become the manager's OTEL_* environment
// (which it passes on to dispatchers) and --trace-reconciles; without them
// the manager has neither.
func TestChartTracing(t *testing.T) {
	env := func(v valueSet) (map[string]string, []string) {
		var d appsv1.Deployment
		mustConvert(t, mustRender(t, v, "herald-system").objs, "Deployment", "herald-manager", &d)
		c := d.Spec.Template.Spec.Containers[0]
		out := map[string]string{}
		for _, e := range c.Env {
			out[e.Name] = e.Value
		}
		return out, c.Args
	}
	on, args := env(monitoringValues)
	want := map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":     "0.1",
	}
	for k, v := range want {
		if on[k] != v {
			t.Errorf("with tracing: %s=%q, want %q", k, on[k], v)
		}
	}
	if !slices.Contains(args, "--trace-reconciles=true") {
		t.Errorf("with tracing: args %v lack --trace-reconciles=true", args)
	}
	off, args := env(defaultValues)
	for k := range want {
		if _, ok := off[k]; ok {
			t.Errorf("without tracing: %s is set", k)
		}
	}
	for _, a := range args {
		if strings.HasPrefix(a, "--trace-reconciles") {
			t.Errorf("without tracing: %s", a)
		}
	}
}
