package packaging_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/herald-dev/herald/internal/testenv"
)

// Shared by every test of the package: one envtest (kube-apiserver + etcd)
// with Herald's CRDs and reduced CRDs of the Prometheus Operator's
// ServiceMonitor, PodMonitor and PrometheusRule installed.
var (
	restConfig *rest.Config
	k8s        client.Client
	// sharedHTTP and sharedMapper are shared by every client of the tests.
	sharedHTTP   *http.Client
	sharedMapper meta.RESTMapper
	// repoRoot is the repository's top directory.
	repoRoot string
	// assetsDir holds kube-apiserver, etcd and kubectl (KUBEBUILDER_ASSETS).
	assetsDir string
	// workDir is a temporary directory for the whole run, removed after it.
	workDir string
)

// fieldOwner is the server-side apply field manager of every apply.
const fieldOwner = "herald-packaging-test"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.Start(testenv.Options{
		// The Prometheus Operator's ServiceMonitor, PodMonitor and
		// PrometheusRule, reduced to the fields the chart sets, so the
		// chart's monitoring objects are checked like every other object.
		ExtraCRDDirs: []string{filepath.Join("test", "packaging", "testdata", "crds")},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	restConfig, repoRoot, assetsDir, workDir = env.Config, env.RepoRoot, env.AssetsDir, env.Dir

	httpClient, err := rest.HTTPClientFor(restConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dm, err := apiutil.NewDynamicRESTMapper(restConfig, httpClient)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sharedHTTP, sharedMapper = httpClient, dm
	if k8s, err = client.New(restConfig, client.Options{HTTPClient: httpClient, Mapper: dm}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// warningClient is a client whose API warnings (deprecations, Pod Security
// "would violate" notices, unknown fields) are recorded.
type warningClient struct {
	client.Client
	mu       sync.Mutex
	warnings []string
}

func (w *warningClient) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// takeWarnings returns the warnings recorded since the last call.
func (w *warningClient) takeWarnings() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.warnings
	w.warnings = nil
	return out
}

func newWarningClient(t *testing.T) *warningClient {
	t.Helper()
	w := &warningClient{}
	cfg := rest.CopyConfig(restConfig)
	cfg.WarningHandler = w
	c, err := client.New(cfg, client.Options{HTTPClient: sharedHTTP, Mapper: sharedMapper})
	if err != nil {
		t.Fatal(err)
	}
	w.Client = c
	return w
}

// restrictedNamespace creates a namespace named prefix-<random> that
// enforces, and warns about, the restricted Pod Security Standard, and
// returns its name. (envtest runs no namespace controller: a deleted
// namespace would stay Terminating, so fresh names let -count=N work.)
func restrictedNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: prefix + "-",
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		},
	}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s-…: %v", prefix, err)
	}
	return ns.Name
}

// dryRunApply applies every object with server-side apply and dry-run, so
// the API server validates it against its schema (unknown fields
// included) and its admission chain without storing it. It reports each
// refused object and each warning as a test error.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	c := newWarningClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.DryRunAll, client.FieldOwner(fieldOwner), client.ForceOwnership)
		if err != nil {
			t.Errorf("server-side dry-run apply of %s: %v", describe(o), err)
		}
		for _, w := range c.takeWarnings() {
			t.Errorf("API warning for %s: %s", describe(o), w)
		}
	}
}

// apply applies obj for real (server-side apply) and leaves it.
func apply(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	if err := k8s.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
		client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		t.Fatalf("apply %s: %v", describe(o), err)
	}
}

// checkPodsAdmitted creates, with dry-run, one Pod from each workload's pod
// template, the way its controller would, in the workload's namespace. The
// namespace must enforce the restricted Pod Security Standard, so this
// proves the pods Kubernetes will create are admitted. The ServiceAccounts
// the pods run as are created for real first: the ServiceAccount admission
// plugin refuses pods whose account does not exist.
func checkPodsAdmitted(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	c := newWarningClient(t)
	n := 0
	for _, o := range objs {
		pod, err := podFor(o)
		if err != nil {
			t.Errorf("%s: %v", describe(o), err)
			continue
		}
		if pod == nil {
			continue
		}
		n++
		sa := pod.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		ensureServiceAccount(t, pod.Namespace, sa)
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Errorf("pod of %s refused: %v", describe(o), err)
		}
		for _, w := range c.takeWarnings() {
			t.Errorf("API warning for the pod of %s: %s", describe(o), w)
		}
	}
	if n == 0 {
		t.Error("no workload to check")
	}
}

func ensureServiceAccount(t *testing.T, namespace, name string) {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	err := k8s.Create(context.Background(), sa)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceAccount %s/%s: %v", namespace, name, err)
	}
}

func describe(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}

var errNotFound = errors.New("not found")

// find returns the object of kind and name in objs.
func find(objs []*unstructured.Unstructured, kind, name string) (*unstructured.Unstructured, error) {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o, nil
		}
	}
	return nil, fmt.Errorf("%s %s: %w", kind, name, errNotFound)
}

// ofKind returns the objects of kind in objs.
func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.GetKind()+"/"+o.GetName())
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}
