package packaging_test

import (
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func buildDefault(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	return buildKustomize(t, filepath.Join(repoRoot, "config", "default"))
}

// TestKustomizeAppliesToAPIServer builds config/default with kubectl's
// kustomize and applies it like `kubectl apply --server-side -k`: the
// Namespace for real (it carries the restricted Pod Security label),
// everything else with server-side dry-run. The pods of its workloads must
// be admitted in that namespace.
func TestKustomizeAppliesToAPIServer(t *testing.T) {
	objs := buildDefault(t)
	t.Logf("%d objects: %s", len(objs), kinds(objs))
	namespaces := ofKind(objs, "Namespace")
	if len(namespaces) != 1 || namespaces[0].GetName() != "herald-system" {
		t.Fatalf("namespaces %s, want herald-system", kinds(namespaces))
	}
	if level := namespaces[0].GetLabels()["pod-security.kubernetes.io/enforce"]; level != "restricted" {
		t.Errorf("namespace herald-system enforces Pod Security %q, want restricted", level)
	}
	apply(t, namespaces[0])
	var rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		if o.GetNamespace() != "" && o.GetNamespace() != "herald-system" {
			t.Errorf("%s is outside herald-system", describe(o))
		}
		rest = append(rest, o)
	}
	dryRunApply(t, rest)
	checkPodsAdmitted(t, rest)
	checkWiring(t, objs)
	checkRestrictedContainers(t, objs)
}

// TestKustomizeOperatorWiring checks that config/default's operator runs
// the image it hands to dispatchers and reaches the NATS it installs.
func TestKustomizeOperatorWiring(t *testing.T) {
	objs := buildDefault(t)
	image := ""
	for _, w := range workloads(t, objs) {
		for _, c := range w.tpl.Spec.Containers {
			if c.Name == "manager" {
				image = c.Image
			}
		}
	}
	args, env := managerArgs(t, objs, "herald-manager")
	if image != "ghcr.io/herald-dev/herald:"+appVersion(t) {
		t.Errorf("manager image %q, want ghcr.io/herald-dev/herald:<the chart's appVersion>", image)
	}
	if env["HERALD_IMAGE"] != image {
		t.Errorf("HERALD_IMAGE %q differs from the manager's image %q", env["HERALD_IMAGE"], image)
	}
	natsURL := env["NATS_URL"]
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--nats-url="); ok {
			natsURL = v
		}
	}
	u, err := url.Parse(natsURL)
	if err != nil || u.Scheme != "nats" {
		t.Fatalf("NATS URL %q: %v", natsURL, err)
	}
	// Dispatchers in other namespaces resolve it: <service>.<namespace>.svc.cluster.local.
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) != 5 || strings.Join(parts[2:], ".") != "svc.cluster.local" {
		t.Fatalf("NATS host %q is not a Service's cluster-wide name", u.Hostname())
	}
	svcObj, err := find(objs, "Service", parts[0])
	if err != nil || svcObj.GetNamespace() != parts[1] {
		t.Fatalf("NATS URL %s names no Service of config/default (%v)", natsURL, err)
	}
	var svc corev1.Service
	if err := convert(svcObj, &svc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range svc.Spec.Ports {
		found = found || p.Port == 4222 && u.Port() == "4222"
	}
	if !found {
		t.Errorf("Service %s has no port %s", svc.Name, u.Port())
	}
}

// TestKustomizeMatchesChart checks that config/default installs what
// `helm install herald charts/herald -n herald-system` does with default
// values, where both install a thing: the same CRDs, the same operator
// rules, and the same NATS (equal objects but for Helm's own labels). The
// NATS of config/default is the chart's without TLS and users
// (nats.tls.enabled=false, nats.auth.enabled=false): kustomize cannot
// generate certificates and passwords.
func TestKustomizeMatchesChart(t *testing.T) {
	kust := buildDefault(t)
	chart := mustRender(t, defaultValues, "herald-system").objs
	open := mustRender(t, valueSet{name: "open", set: []string{"nats.tls.enabled=false", "nats.auth.enabled=false"}}, "herald-system").objs

	for _, crd := range ofKind(chart, "CustomResourceDefinition") {
		k, err := find(kust, "CustomResourceDefinition", crd.GetName())
		if err != nil {
			t.Errorf("config/default lacks the chart's %v", err)
		} else if !reflect.DeepEqual(k.Object, crd.Object) {
			t.Errorf("CRD %s differs between the chart and config/default", crd.GetName())
		}
	}
	if n, m := len(ofKind(kust, "CustomResourceDefinition")), len(ofKind(chart, "CustomResourceDefinition")); n != m {
		t.Errorf("config/default has %d CRDs, the chart %d", n, m)
	}

	var kRole, cRole rbacv1.ClusterRole
	mustConvert(t, kust, "ClusterRole", "herald-manager", &kRole)
	mustConvert(t, chart, "ClusterRole", "herald-manager", &cRole)
	if !reflect.DeepEqual(kRole.Rules, cRole.Rules) {
		t.Errorf("ClusterRole rules differ:\nconfig/default:\n%s\nchart:\n%s", toYAML(t, kRole.Rules), toYAML(t, cRole.Rules))
	}

	for _, want := range []struct{ kind, name string }{
		{"ConfigMap", "herald-nats-config"},
		{"Service", "herald-nats"},
		{"Service", "herald-nats-headless"},
		{"StatefulSet", "herald-nats"},
	} {
		k, err := find(kust, want.kind, want.name)
		if err != nil {
			t.Errorf("config/default: %v", err)
			continue
		}
		c, err := find(open, want.kind, want.name)
		if err != nil {
			t.Errorf("chart: %v", err)
			continue
		}
		kn, cn := withoutHelmMetadata(k), withoutHelmMetadata(c)
		if want.kind == "ConfigMap" {
			// The same configuration; comments may differ.
			for _, o := range []*unstructured.Unstructured{kn, cn} {
				conf, _, _ := unstructured.NestedString(o.Object, "data", "nats.conf")
				_ = unstructured.SetNestedField(o.Object, withoutComments(conf), "data", "nats.conf")
			}
		}
		if !reflect.DeepEqual(kn.Object, cn.Object) {
			t.Errorf("%s %s differs between config/default and the chart:\nconfig/default:\n%s\nchart:\n%s",
				want.kind, want.name, toYAML(t, kn.Object), toYAML(t, cn.Object))
		}
	}
}

// withoutHelmMetadata drops what only Helm's objects carry: the chart and
// version labels and the configuration checksum that rolls pods on change.
func withoutHelmMetadata(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	drop := func(fields ...string) {
		m, ok, _ := unstructured.NestedStringMap(o.Object, fields...)
		if !ok {
			return
		}
		for _, k := range []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version", "checksum/config"} {
			delete(m, k)
		}
		_ = unstructured.SetNestedStringMap(o.Object, m, fields...)
	}
	drop("metadata", "labels")
	drop("spec", "template", "metadata", "labels")
	drop("spec", "template", "metadata", "annotations")
	// Round-trip so that numbers compare equal whatever decoded them.
	data, _ := yaml.Marshal(o.Object)
	var m map[string]any
	_ = yaml.Unmarshal(data, &m)
	return &unstructured.Unstructured{Object: m}
}

func withoutComments(conf string) string {
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		l = strings.TrimSpace(l)
		if i := strings.Index(l, "#"); i >= 0 {
			l = strings.TrimSpace(l[:i])
		}
		if l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}
