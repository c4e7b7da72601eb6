package controllers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/provision"
)

// Shared by every test of the package: one envtest (kube-apiserver + etcd),
// one embedded NATS, one manager running the reconcilers. Tests run in
// parallel, each in namespaces of its own.
var (
	k8s    client.Client
	js     jetstream.JetStream
	prov   *provision.Provisioner
	scheme *runtime.Scheme
	// restConfig reaches the API server as an administrator.
	restConfig *rest.Config
	// mgrClient is the manager's client, reading from its cache.
	mgrClient client.Client
	// controllersConfig is the reconcilers' configuration.
	controllersConfig controllers.Config
)

const (
	// timeout bounds every wait for the reconcilers.
	timeout = 20 * time.Second
	// refreshInterval is the reconcilers' refresh period in tests, short so
	// that lag and unwatched references update quickly.
	refreshInterval = 2 * time.Second
	image           = "registry.example/herald:test"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.Start(testenv.Options{NATS: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	k8s, js, scheme, restConfig = env.Client, env.JetStream, env.Scheme, env.Config

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if prov, err = provision.New(ctx, js, 1); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: controllers.CacheByObject()},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	controllersConfig = controllers.Config{
		ClusterDomain: "cluster.local",
		Dispatcher: resources.DispatcherConfig{Image: resources.Image{Name: image}, NATS: resources.NATS{URL: env.NATS.ClientURL()},
			// Shared dispatchers are autoscaled (--shared-dispatcher-autoscaling):
			// TestSharedDispatcherAutoscaling.
			Shared: resources.SharedDispatcherConfig{Autoscaling: &v1alpha1.DispatcherAutoscaling{MaxReplicas: 4}}},
		Adapter:          resources.AdapterConfig{Image: resources.Image{Name: image}},
		RefreshInterval:  refreshInterval,
		ProgressInterval: 200 * time.Millisecond,
		// Most tests look at a Topic's own dispatcher objects; those of
		// shared dispatchers ask for mode shared (shared_dispatcher_test.go).
		DefaultDispatcherMode: v1alpha1.DispatcherDedicated,
		KEDA:                  resources.KEDA{MonitoringEndpoint: "nats.herald-system.svc.cluster.local:8222"},
	}
	mgrClient = mgr.GetClient()
	if err := controllers.Setup(ctx, mgr, prov, controllersConfig); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()

	return m.Run()
}

// eventually calls f until it returns nil, failing the test with f's last
// error after timeout.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namespace creates a namespace of the test's own.
func namespace(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(b)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// update gets obj fresh, applies mutate and updates it, retrying conflicts.
func update[T client.Object](t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	eventually(t, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8s.Update(context.Background(), obj)
	})
}

func get(obj client.Object) error {
	return k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
}

// condition returns the condition of type typ in conds, or a zero one.
func condition(conds []metav1.Condition, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: "absent"}
}

// wantCondition checks the status, reason and message fragment of a condition.
func wantCondition(conds []metav1.Condition, typ string, st metav1.ConditionStatus, reason, msg string) error {
	c := condition(conds, typ)
	if c.Status != st || (reason != "" && c.Reason != reason) || !strings.Contains(c.Message, msg) {
		return fmt.Errorf("condition %s is %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, st, reason, msg)
	}
	return nil
}

// makeAvailable plays the Deployment controller and kubelet, which envtest
// lacks: it marks the Deployment's replicas available.
func makeAvailable(t *testing.T, namespace, name string) {
	t.Helper()
	setDeploymentStatus(t, namespace, name, true)
}

// makeUnavailable marks a Deployment that had rolled out as having lost its replicas.
func makeUnavailable(t *testing.T, namespace, name string) {
	t.Helper()
	setDeploymentStatus(t, namespace, name, false)
}

func setDeploymentStatus(t *testing.T, namespace, name string, available bool) {
	t.Helper()
	eventually(t, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return err
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		ready, avail := replicas, corev1.ConditionTrue
		if !available {
			ready, avail = 0, corev1.ConditionFalse
		}
		now := metav1.Now()
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           replicas,
			ReadyReplicas:      ready,
			AvailableReplicas:  ready,
			UpdatedReplicas:    replicas,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: avail, Reason: "MinimumReplicas", LastUpdateTime: now, LastTransitionTime: now},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
			},
		}
		return k8s.Status().Update(context.Background(), d)
	})
}

// kstatus computes obj's kstatus as Argo CD and Flux would.
func kstatus(t *testing.T, obj client.Object) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	gvk, err := apiutil.GVKForObject(obj, scheme)
	if err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(gvk)
	res, err := status.Compute(u)
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// wantKStatus waits until obj computes as want.
func wantKStatus(t *testing.T, obj client.Object, want status.Status) {
	t.Helper()
	eventually(t, func() error {
		if err := get(obj); err != nil {
			return err
		}
		if got := kstatus(t, obj); got != want {
			return fmt.Errorf("kstatus %s, want %s", got, want)
		}
		return nil
	})
}
