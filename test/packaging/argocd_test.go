package packaging_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func argocdDir() string { return filepath.Join(repoRoot, "config", "argocd") }

// healthStatus is what an Argo CD health.lua returns.
type healthStatus struct {
	Status  string
	Message string
}

// runHealthLua runs script the way Argo CD runs a resource customization:
// a fresh interpreter with the base, table, string and math libraries, the
// object as the global obj (JSON numbers become Lua numbers), and the table
// the script returns read as {status, message}.
func runHealthLua(t *testing.T, script string, obj map[string]any) healthStatus {
	t.Helper()
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", l.Get(-1).Type())
	}
	return healthStatus{
		Status:  lua.LVAsString(ret.RawGetString("status")),
		Message: lua.LVAsString(ret.RawGetString("message")),
	}
}

// toLua converts a decoded JSON value as Argo CD does.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for i, e := range v {
			t.RawSetInt(i+1, toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	panic("unexpected JSON value")
}

// healthCases are config/argocd/testdata's objects with the health Argo CD
// must show and the kstatus (what Flux and kubectl wait use) they compute.
// The two agree on Current/Healthy and on Failed/Stalled. Where they part,
// the Lua check says more: kstatus calls an object without status Current
// (it cannot know the operator will write one), and reads Ready=False as
// InProgress whatever the reason, where Argo CD shows Degraded for a reason
// that needs someone to act.
var healthCases = []struct {
	file    string
	status  string
	message string
	kstatus status.Status
}{
	{"topic-ready.yaml", "Healthy", "Topic accepts events at http://orders-dispatcher", status.CurrentStatus},
	{"topic-new.yaml", "Progressing", "Waiting for the Herald operator", status.CurrentStatus},
	{"topic-progressing.yaml", "Progressing", "Progressing: Deployment shop/payments-dispatcher has 0 of 1", status.InProgressStatus},
	{"topic-stale-generation.yaml", "Progressing", "Waiting for the Herald operator to observe generation 2", status.InProgressStatus},
	{"topic-stalled.yaml", "Degraded", "InvalidSpec: storage cannot change from file to memory", status.FailedStatus},
	{"topic-deleting.yaml", "Progressing", "Deleting: Deleting stream shop_legacy", status.TerminatingStatus},
	{"subscription-ready.yaml", "Healthy", "Delivering to http://inventory.shop.svc.cluster.local", status.CurrentStatus},
	{"subscription-topic-not-ready.yaml", "Progressing", "NotReady: Topic shop/payments is not Ready", status.InProgressStatus},
	{"subscription-subscriber-not-found.yaml", "Degraded", "NotFound: Service shop/shipping not found", status.InProgressStatus},
	{"eventsource-ready.yaml", "Healthy", "Sending to http://orders-dispatcher", status.CurrentStatus},
	{"eventsource-forbidden.yaml", "Degraded", "Forbidden: ServiceAccount shop/watcher cannot watch pods", status.InProgressStatus},
	{"eventsource-unknown.yaml", "Progressing", "Progressing: SinkResolved not yet reconciled", status.InProgressStatus},
}

func readFixture(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(argocdDir(), "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	// As the API machinery decodes: integers are int64, not float64.
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return u
}

// TestArgoCDHealth runs config/argocd/health.lua on every fixture, and
// computes the fixture's kstatus.
func TestArgoCDHealth(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(argocdDir(), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(argocdDir(), "testdata", "*.yaml"))
	if len(files) != len(healthCases) {
		t.Errorf("%d fixtures in config/argocd/testdata, %d cases: give every fixture a case", len(files), len(healthCases))
	}
	seen := map[string]bool{}
	for _, tc := range healthCases {
		seen[tc.file] = true
		t.Run(strings.TrimSuffix(tc.file, ".yaml"), func(t *testing.T) {
			obj := readFixture(t, tc.file)
			got := runHealthLua(t, string(script), obj.Object)
			if got.Status != tc.status || !strings.HasPrefix(got.Message, tc.message) {
				t.Errorf("health %q %q, want %q with message %q…", got.Status, got.Message, tc.status, tc.message)
			}
			res, err := status.Compute(obj)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.kstatus {
				t.Errorf("kstatus %s (%s), want %s", res.Status, res.Message, tc.kstatus)
			}
		})
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("fixture %s has no case", filepath.Base(f))
		}
	}
}

// TestArgoCDHealthFixturesAreValid stores every fixture, status included,
// through the test API server, so that the objects the health check is
// tested on are ones the CRDs admit.
func TestArgoCDHealthFixturesAreValid(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "argocd-fixtures-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for _, tc := range healthCases {
		fixture := readFixture(t, tc.file)
		obj := fixture.DeepCopy()
		obj.SetNamespace(ns.Name)
		for _, f := range []string{"generation", "deletionTimestamp", "finalizers"} {
			unstructured.RemoveNestedField(obj.Object, "metadata", f)
		}
		unstructured.RemoveNestedField(obj.Object, "status")
		if err := k8s.Create(ctx, obj); err != nil {
			t.Errorf("%s: create: %v", tc.file, err)
			continue
		}
		st, ok := fixture.Object["status"]
		if !ok {
			continue
		}
		obj.Object["status"] = st
		if err := k8s.Status().Update(ctx, obj); err != nil {
			t.Errorf("%s: update status: %v", tc.file, err)
		}
	}
}

// TestArgoCDConfigMapInSync checks that config/argocd/argocd-cm.yaml holds
// health.lua for each kind: run make argocd-cm after editing health.lua.
func TestArgoCDConfigMapInSync(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(argocdDir(), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	readYAML(t, filepath.Join(argocdDir(), "argocd-cm.yaml"), &cm)
	if cm.Name != "argocd-cm" || len(cm.Data) != 3 {
		t.Errorf("ConfigMap %s with %d keys, want argocd-cm with one key per kind", cm.Name, len(cm.Data))
	}
	for _, kind := range []string{"Topic", "Subscription", "EventSource"} {
		key := "resource.customizations.health.eventing.herald.dev_" + kind
		if cm.Data[key] != string(script) {
			t.Errorf("%s is not health.lua: run make argocd-cm", key)
		}
	}
}
