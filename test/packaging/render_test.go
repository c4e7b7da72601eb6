package packaging_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// kubeVersion is the Kubernetes version the chart is rendered for: that of
// the test API server (hack/tools/kube).
var kubeVersion = &chartutil.KubeVersion{Version: "v1.37.1", Major: "1", Minor: "37"}

func chartDir() string { return filepath.Join(repoRoot, "charts", "herald") }

// valueSet is a named set of chart values: value files from charts/herald
// plus --set style assignments.
type valueSet struct {
	name  string
	files []string
	set   []string
	// upgrade renders as `helm upgrade` does (.Release.IsUpgrade).
	upgrade bool
	// apiVersions are API versions the cluster serves besides the built-in
	// ones, as `helm template --api-versions` takes them (group/version or
	// group/version/Kind).
	apiVersions []string
}

// The value sets every chart test renders.
var (
	defaultValues  = valueSet{name: "default"}
	haValues       = valueSet{name: "ha", files: []string{"ci/ha-values.yaml"}}
	externalValues = valueSet{name: "external", files: []string{"ci/external-nats-values.yaml"}, apiVersions: prometheusOperatorAPIs}
	// monitoringValues turns on every monitoring object, on a cluster with
	// the Prometheus Operator's CRDs.
	monitoringValues = valueSet{name: "monitoring", files: []string{"ci/monitoring-values.yaml"}, apiVersions: prometheusOperatorAPIs}
	valueSets        = []valueSet{defaultValues, haValues, externalValues, monitoringValues}
)

// prometheusOperatorAPIs are the kinds of the Prometheus Operator the chart
// creates objects of when the cluster serves them.
var prometheusOperatorAPIs = []string{
	"monitoring.coreos.com/v1/ServiceMonitor",
	"monitoring.coreos.com/v1/PodMonitor",
	"monitoring.coreos.com/v1/PrometheusRule",
}

func (v valueSet) values(t *testing.T) map[string]any {
	t.Helper()
	opts := values.Options{Values: v.set}
	for _, f := range v.files {
		opts.ValueFiles = append(opts.ValueFiles, filepath.Join(chartDir(), f))
	}
	vals, err := opts.MergeValues(nil)
	if err != nil {
		t.Fatalf("values %s: %v", v.name, err)
	}
	return vals
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir())
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// rendered is a chart rendered as `helm template --include-crds` would.
type rendered struct {
	objs  []*unstructured.Unstructured
	notes string
}

// renderChart renders the chart for release "herald" in namespace, the way
// `helm template herald charts/herald -n <namespace> --include-crds` does,
// values.schema.json validation included.
func renderChart(t *testing.T, v valueSet, namespace string) (*rendered, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.DryRunOption = "client"
	install.ClientOnly = true
	install.Replace = true
	install.IncludeCRDs = true
	install.ReleaseName = "herald"
	install.Namespace = namespace
	install.KubeVersion = kubeVersion
	install.IsUpgrade = v.upgrade
	install.APIVersions = v.apiVersions
	rel, err := install.Run(loadChart(t), v.values(t))
	if err != nil {
		return nil, err
	}
	objs, err := decodeObjects(strings.NewReader(rel.Manifest))
	if err != nil {
		return nil, fmt.Errorf("decode the rendered manifest: %w", err)
	}
	return &rendered{objs: objs, notes: rel.Info.Notes}, nil
}

func mustRender(t *testing.T, v valueSet, namespace string) *rendered {
	t.Helper()
	r, err := renderChart(t, v, namespace)
	if err != nil {
		t.Fatalf("render %s values: %v", v.name, err)
	}
	return r
}

// lintChart runs `helm lint --strict` with v's values: any warning fails.
func lintChart(t *testing.T, v valueSet) {
	t.Helper()
	lint := action.NewLint()
	lint.Strict = true
	lint.Namespace = "herald-system"
	lint.KubeVersion = kubeVersion
	res := lint.Run([]string{chartDir()}, v.values(t))
	for _, m := range res.Messages {
		if m.Severity > support.InfoSev {
			t.Errorf("helm lint (%s values): %s", v.name, m)
		}
	}
	for _, err := range res.Errors {
		t.Errorf("helm lint (%s values): %v", v.name, err)
	}
	if res.TotalChartsLinted != 1 {
		t.Errorf("helm lint linted %d charts, want 1", res.TotalChartsLinted)
	}
}

// decodeObjects reads a multi-document YAML stream into objects, skipping
// empty documents.
func decodeObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// kubectl runs the kubectl of the envtest assets (v1.37.1, with kustomize
// built in) and returns its standard output.
func kubectl(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := filepath.Join(assetsDir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kubectl is not in KUBEBUILDER_ASSETS (%s): run hack/envtest-assets.sh", assetsDir)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// buildKustomize returns the objects of `kubectl kustomize dir`.
func buildKustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeObjects(bytes.NewReader(kubectl(t, "kustomize", dir)))
	if err != nil {
		t.Fatalf("decode kustomize output of %s: %v", dir, err)
	}
	return objs
}
