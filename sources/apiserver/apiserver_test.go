package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/testenv"
	"github.com/herald-dev/herald/sources"
)

// One real kube-apiserver and etcd for the package.
var (
	restConfig *rest.Config
	kube       *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, err := testenv.Start(testenv.Options{NoCRDs: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	restConfig = env.Config
	kube, err = kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

// recorder is a real HTTP sink keeping the events it got, in order.
type recorder struct {
	mu  sync.Mutex
	got []http.Header
	raw [][]byte
}

func newRecorder(t *testing.T) (*recorder, string) {
	t.Helper()
	r := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.Header.Clone())
		r.raw = append(r.raw, body)
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// received is one event the sink got.
type received struct {
	Type, Subject, ID, Name string
	Header                  http.Header
	Data                    []byte
}

// events returns the events about objects named one of names.
func (r *recorder) events(names ...string) []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []received
	for i, h := range r.got {
		if len(names) > 0 && !slices.Contains(names, h.Get("Ce-Name")) {
			continue
		}
		out = append(out, received{Type: h.Get("Ce-Type"), Subject: h.Get("Ce-Subject"), ID: h.Get("Ce-Id"), Name: h.Get("Ce-Name"), Header: h, Data: r.raw[i]})
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newNamespace creates a namespace named prefix plus a random suffix.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	ns, err := kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// start runs an apiServer source in namespace ns until the test ends.
func start(t *testing.T, ns string, spec v1alpha1.APIServerSource) *recorder {
	t.Helper()
	rec, url := newRecorder(t)
	cfg := sources.Config{Sink: url, Type: v1alpha1.EventSourceTypeAPIServer, Namespace: ns, Name: "watcher", APIServer: &spec,
		Extensions: map[string]string{"team": "a"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	src, err := New(cfg, restConfig, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	eventually(t, "source ready", src.Ready)
	return rec
}

func configMap(ns, name string, labels map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Data:       map[string]string{"k": "v1"},
	}
}

// lifecycle creates, updates and deletes ConfigMap ns/name, returning the
// object after create and after update.
func lifecycle(t *testing.T, ns, name string, labels map[string]string) (created, updated *corev1.ConfigMap) {
	t.Helper()
	ctx := context.Background()
	cms := kube.CoreV1().ConfigMaps(ns)
	created, err := cms.Create(ctx, configMap(ns, name, labels), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm := created.DeepCopy()
	cm.Data["k"] = "v2"
	updated, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	return created, updated
}

func TestConfigMapReferenceEvents(t *testing.T) {
	ns := newNamespace(t, "ref")
	rec := start(t, ns, v1alpha1.APIServerSource{
		Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}},
		Mode:      v1alpha1.APIServerModeReference,
	})
	created, updated := lifecycle(t, ns, "cm1", nil)
	eventually(t, "three events", func() bool { return len(rec.events("cm1")) >= 3 })
	got := rec.events("cm1")
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3: %+v", len(got), got)
	}
	wantTypes := []string{EventTypeRefAdd, EventTypeRefUpdate, EventTypeRefDelete}
	for i, e := range got {
		if e.Type != wantTypes[i] {
			t.Errorf("event %d: type %q, want %q", i, e.Type, wantTypes[i])
		}
		h := e.Header
		if e.Subject != "/api/v1/namespaces/"+ns+"/configmaps/cm1" ||
			h.Get("Ce-Source") != "/apis/eventing.herald.dev/v1alpha1/namespaces/"+ns+"/eventsources/watcher" ||
			h.Get("Ce-Specversion") != "1.0" || h.Get("Ce-Time") == "" || h.Get("Content-Type") != "application/json" ||
			h.Get("Ce-Kind") != "ConfigMap" || h.Get("Ce-Apiversion") != "v1" || h.Get("Ce-Namespace") != ns || h.Get("Ce-Team") != "a" {
			t.Errorf("event %d: headers %v", i, h)
		}
		var ref Reference
		if err := json.Unmarshal(e.Data, &ref); err != nil {
			t.Fatalf("event %d: data %s: %v", i, e.Data, err)
		}
		if ref.APIVersion != "v1" || ref.Kind != "ConfigMap" || ref.Namespace != ns || ref.Name != "cm1" || ref.UID != string(created.UID) {
			t.Errorf("event %d: reference %+v", i, ref)
		}
		if e.ID != string(created.UID)+"/"+ref.ResourceVersion+"/"+[]string{"add", "update", "delete"}[i] {
			t.Errorf("event %d: id %q", i, e.ID)
		}
	}
	var add, upd Reference
	_ = json.Unmarshal(got[0].Data, &add)
	_ = json.Unmarshal(got[1].Data, &upd)
	if add.ResourceVersion != created.ResourceVersion || upd.ResourceVersion != updated.ResourceVersion {
		t.Errorf("resource versions %s, %s; want %s, %s", add.ResourceVersion, upd.ResourceVersion, created.ResourceVersion, updated.ResourceVersion)
	}
}

func TestResourceModeSelectorAndInitialList(t *testing.T) {
	ns := newNamespace(t, "res")
	ctx := context.Background()
	watched := map[string]string{"app": "watched"}
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, configMap(ns, "existing", watched), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ConfigMaps(ns).Create(ctx, configMap(ns, "existing-ignored", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rec := start(t, ns, v1alpha1.APIServerSource{
		Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap",
			Selector: &metav1.LabelSelector{MatchLabels: watched}}},
		Mode: v1alpha1.APIServerModeResource,
	})
	// The initial list sends an add for the object that already exists.
	eventually(t, "initial add", func() bool { return len(rec.events("existing")) == 1 })
	if e := rec.events("existing")[0]; e.Type != EventTypeResourceAdd {
		t.Errorf("initial event type %q", e.Type)
	}
	lifecycle(t, ns, "ignored", map[string]string{"app": "other"})
	lifecycle(t, ns, "cm2", watched)
	eventually(t, "three events", func() bool { return len(rec.events("cm2")) >= 3 })
	got := rec.events("cm2")
	wantTypes := []string{EventTypeResourceAdd, EventTypeResourceUpdate, EventTypeResourceDelete}
	for i, e := range got {
		if e.Type != wantTypes[i] {
			t.Errorf("event %d: type %q, want %q", i, e.Type, wantTypes[i])
		}
		var cm corev1.ConfigMap
		if err := json.Unmarshal(e.Data, &cm); err != nil {
			t.Fatal(err)
		}
		want := []string{"v1", "v2", "v2"}[i]
		if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Name != "cm2" || cm.Data["k"] != want || cm.Labels["app"] != "watched" {
			t.Errorf("event %d: object %+v", i, cm)
		}
	}
	// The selector kept everything else out; cm2's delete came after the
	// ignored object's changes, so they would have arrived by now.
	if n := len(rec.events("ignored", "existing-ignored")); n != 0 {
		t.Errorf("%d events for objects the selector does not match", n)
	}
	if n := len(rec.events()); n != 4 {
		t.Errorf("%d events in all, want 4", n)
	}
}

func TestNamespaces(t *testing.T) {
	a, b, c := newNamespace(t, "ns-a"), newNamespace(t, "ns-b"), newNamespace(t, "ns-c")
	rec := start(t, a, v1alpha1.APIServerSource{
		Resources:  []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}},
		Namespaces: []string{b, a, b},
	})
	lifecycle(t, c, "in-c", nil)
	lifecycle(t, a, "in-a", nil)
	lifecycle(t, b, "in-b", nil)
	eventually(t, "events from a and b", func() bool { return len(rec.events("in-a")) == 3 && len(rec.events("in-b")) == 3 })
	// No informer watches c; its object changed before those of a and b.
	if n := len(rec.events("in-c")); n != 0 {
		t.Errorf("%d events from an unwatched namespace", n)
	}
}

func TestUnknownKind(t *testing.T) {
	cfg := sources.Config{Sink: "http://127.0.0.1:1", Type: v1alpha1.EventSourceTypeAPIServer, Namespace: "default", Name: "x",
		APIServer: &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "example.com/v1", Kind: "Widget"}}}}
	src, err := New(cfg, restConfig, sources.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Run(context.Background()); err == nil {
		t.Fatal("Run with an unknown kind succeeded")
	}
}

func testMapper(t *testing.T) *restmapper.DeferredDiscoveryRESTMapper {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
}

func TestRequiredAccess(t *testing.T) {
	got, err := RequiredAccess(testMapper(t), "own", &v1alpha1.APIServerSource{
		Resources: []v1alpha1.APIServerResource{
			{APIVersion: "v1", Kind: "ConfigMap"},
			{APIVersion: "apps/v1", Kind: "Deployment"},
			{APIVersion: "v1", Kind: "Namespace"},
		},
		Namespaces: []string{"b", "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []authorizationv1.ResourceAttributes
	add := func(group, resource string, nss ...string) {
		for _, ns := range nss {
			for _, verb := range []string{"get", "list", "watch"} {
				want = append(want, authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Version: "v1", Resource: resource})
			}
		}
	}
	add("", "configmaps", "a", "b")
	add("apps", "deployments", "a", "b")
	add("", "namespaces", "")
	if !slices.Equal(got, want) {
		t.Errorf("RequiredAccess =\n%+v\nwant\n%+v", got, want)
	}
	own, err := RequiredAccess(testMapper(t), "own", &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}})
	if err != nil || len(own) != 3 || own[0].Namespace != "own" {
		t.Errorf("default namespace: %+v, %v", own, err)
	}
	if _, err := RequiredAccess(testMapper(t), "own", &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "Nope"}}}); err == nil {
		t.Error("unknown kind accepted")
	}
}

// TestRequiredAccessReview is the controller's check: a SubjectAccessReview
// per attribute for the ServiceAccount, before and after a Role allows it.
func TestRequiredAccessReview(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "sar")
	attrs, err := RequiredAccess(testMapper(t), ns, &v1alpha1.APIServerSource{Resources: []v1alpha1.APIServerResource{{APIVersion: "v1", Kind: "ConfigMap"}}})
	if err != nil {
		t.Fatal(err)
	}
	allowed := func() bool {
		for _, ra := range attrs {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				ResourceAttributes: &ra,
				User:               "system:serviceaccount:" + ns + ":watcher",
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			}}
			res, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Status.Allowed {
				return false
			}
		}
		return true
	}
	if allowed() {
		t.Fatal("allowed before any Role")
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "watch", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "watch", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "watch"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "watcher", Namespace: ns}}}
	if _, err := kube.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "access through the RoleBinding", allowed)
}
