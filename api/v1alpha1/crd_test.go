package v1alpha1_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// The served CRDs carry the printer columns, short names and category users
// rely on with kubectl get.
func TestServedCRDs(t *testing.T) {
	for _, tc := range []struct {
		crd       string
		shortName string
		columns   []string
		// wide are the columns only -o wide shows; nil is not checked.
		wide []string
	}{
		{"topics.eventing.herald.dev", "htopic", []string{"Ready", "URL", "Age"}, []string{"Reason", "Messages", "Publishers", "Dispatcher", "History", "Contract", "Types"}},
		{"subscriptions.eventing.herald.dev", "hsub", []string{"Topic", "Mode", "Subscriber", "Ready", "Age"}, nil},
		{"eventsources.eventing.herald.dev", "hsrc", []string{"Type", "Sink", "Ready", "Age"}, nil},
	} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: tc.crd}, crd); err != nil {
			t.Fatalf("%s: %v", tc.crd, err)
		}
		if !slices.Contains(crd.Spec.Names.ShortNames, tc.shortName) {
			t.Errorf("%s short names %v lack %s", tc.crd, crd.Spec.Names.ShortNames, tc.shortName)
		}
		if !slices.Contains(crd.Spec.Names.Categories, "herald") {
			t.Errorf("%s is not in category herald", tc.crd)
		}
		if crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("%s scope = %s", tc.crd, crd.Spec.Scope)
		}
		v := crd.Spec.Versions[0]
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s has no status subresource", tc.crd)
		}
		var shown, wide []string
		for _, c := range v.AdditionalPrinterColumns {
			if c.Priority == 0 {
				shown = append(shown, c.Name)
			} else {
				wide = append(wide, c.Name)
			}
		}
		if !slices.Equal(shown, tc.columns) {
			t.Errorf("%s default columns = %v, want %v", tc.crd, shown, tc.columns)
		}
		if tc.wide != nil && !slices.Equal(wide, tc.wide) {
			t.Errorf("%s -o wide columns = %v, want %v", tc.crd, wide, tc.wide)
		}
	}
}

// kubectl runs the kubectl built next to kube-apiserver against the suite's
// apiserver.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(assetsDir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kubectl in KUBEBUILDER_ASSETS (%v)", err)
	}
	cmd := exec.Command(bin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// explain runs kubectl explain, retrying while the API server has not yet
// published the CRDs' OpenAPI schema (it does so shortly after they are
// established).
func explain(t *testing.T, field string) string {
	t.Helper()
	bin := filepath.Join(assetsDir, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no kubectl in KUBEBUILDER_ASSETS (%v)", err)
	}
	var out []byte
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--cache-dir", t.TempDir(), "explain", field)
		if out, err = cmd.CombinedOutput(); err == nil {
			return string(out)
		}
	}
	t.Fatalf("kubectl explain %s: %v\n%s", field, err, out)
	return ""
}

func TestKubectlExplainShowsDocs(t *testing.T) {
	out := explain(t, "topic.spec")
	for _, want := range []string{"storage", "Storage is file (default, survives restarts) or memory", "duplicateWindow", "delivery"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain topic.spec lacks %q:\n%s", want, out)
		}
	}
	out = explain(t, "subscription.spec.delivery")
	for _, want := range []string{"backoffPolicy", "retryAfterMax", "deadLetterSink", "Knative's delivery spec"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl explain subscription.spec.delivery lacks %q:\n%s", want, out)
		}
	}
}

func TestKubectlServerDryRunOfSamples(t *testing.T) {
	out := kubectl(t, "apply", "--dry-run=server", "-n", testNamespace, "-k", filepath.Join("..", "..", "config", "samples"))
	for _, want := range []string{"topic.eventing.herald.dev/orders created (server dry run)", "subscription.eventing.herald.dev/inventory created (server dry run)", "eventsource.eventing.herald.dev/github created (server dry run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply --dry-run=server output lacks %q:\n%s", want, out)
		}
	}
}
