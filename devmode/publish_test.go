package devmode

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/herald-dev/herald/plan"
)

// publishersYAML is a Topic "orders" in namespace shop with publishers,
// Namespace manifests for its selector, and a Topic "audit" without
// publishers.
const publishersYAML = `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
  namespace: shop
spec:
  publishers:
  - serviceAccount: {name: checkout}
  - namespaceSelector: {matchLabels: {team: shop}}
    filters:
    - prefix: {type: com.shop.}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: audit
  namespace: shop
---
apiVersion: v1
kind: Namespace
metadata:
  name: web
  labels: {team: shop}
---
apiVersion: v1
kind: Namespace
metadata:
  name: ops
  labels: {team: ops}
`

func topicPlan(t *testing.T, st *Status, name string) plan.TopicPlan {
	t.Helper()
	for _, tp := range st.Topics {
		if tp.Name == name {
			return tp.Plan
		}
	}
	t.Fatalf("topic %s not applied; errors %v", name, st.Errors)
	return plan.TopicPlan{}
}

// Without a verifier herald dev is open: every Topic is allow-all, whatever
// its publishers, and the banner says how to turn authentication on.
func TestLoadWithoutAuthenticationIsOpen(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", publishersYAML)
	l, _ := testLoader(t, dir)
	l.publishMode = plan.PublishDenyAll // ignored without authentication
	st := load(t, l)
	open := plan.PublishPolicy{Source: "allow-all"}
	for _, name := range []string{"orders", "audit"} {
		p := topicPlan(t, st, name)
		if !reflect.DeepEqual(p.Publish, open) {
			t.Errorf("%s: policy %+v, want allow-all", name, p.Publish)
		}
		if p.Audience != "eventing.herald.dev/topic/shop/"+name {
			t.Errorf("%s: audience %q", name, p.Audience)
		}
	}
	var b bytes.Buffer
	WriteBanner(&b, Endpoints{}, st)
	if !strings.Contains(b.String(), "auth     off: every Topic accepts every request (herald dev --auth turns authentication on)") ||
		strings.Contains(b.String(), "audience") {
		t.Errorf("banner:\n%s", b.String())
	}
}

// With authentication on, publishers apply as the operator compiles them,
// namespaceSelectors matching the Namespace manifests of the files, and
// Topics without publishers get the default mode.
func TestLoadWithAuthenticationCompilesPolicies(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", publishersYAML)
	l, _ := testLoader(t, dir)
	l.authenticate = true
	st := load(t, l)
	if len(st.Errors) > 0 {
		t.Fatalf("errors %v", st.Errors)
	}
	wantOrders := plan.PublishPolicy{Source: "publishers", Authenticate: true, Rules: []plan.PublishRule{
		{Name: "publishers[0]", Subjects: []string{"system:serviceaccount:shop:checkout"}},
		{Name: "publishers[1]", Subjects: []string{"system:serviceaccount:web:*"}, Filters: []plan.Filter{{Prefix: map[string]string{"type": "com.shop."}}}},
	}}
	if got := topicPlan(t, st, "orders").Publish; !reflect.DeepEqual(got, wantOrders) {
		t.Errorf("orders: policy\n  %+v\nwant\n  %+v", got, wantOrders)
	}
	wantAudit := plan.PublishPolicy{Source: "allow-same-namespace", Authenticate: true, Rules: []plan.PublishRule{
		{Name: "allow-same-namespace", Subjects: []string{"system:serviceaccount:shop:*"}}}}
	if got := topicPlan(t, st, "audit").Publish; !reflect.DeepEqual(got, wantAudit) {
		t.Errorf("audit: policy %+v, want %+v", got, wantAudit)
	}
	var b bytes.Buffer
	WriteBanner(&b, Endpoints{}, st)
	for _, want := range []string{
		"auth     on:",
		"audience eventing.herald.dev/topic/shop/orders",
		`publish  publishers: publishers[0] system:serviceaccount:shop:checkout; publishers[1] system:serviceaccount:web:* if type starts with "com.shop."`,
		"audience eventing.herald.dev/topic/shop/audit",
		"publish  allow-same-namespace: system:serviceaccount:shop:*",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, b.String())
		}
	}

	// Relabelling the Namespace manifest changes the policy on reload, and
	// the change says so.
	writeFile(t, dir, "m.yaml", strings.Replace(publishersYAML, "labels: {team: shop}", "labels: {team: web}", 1))
	st2 := load(t, l)
	if got := topicPlan(t, st2, "orders").Publish.Rules[1].Subjects; len(got) != 0 {
		t.Errorf("selector matches %v after relabelling, want nothing", got)
	}
	changes := strings.Join(Changes(st, st2), "\n")
	if !strings.Contains(changes, "~ topic shop/orders: publish changed; publish now: publishers: publishers[0] system:serviceaccount:shop:checkout; publishers[1] nobody (no Namespace manifest matches)") {
		t.Errorf("changes:\n%s", changes)
	}

	// The default mode applies to Topics without publishers.
	l.publishMode = plan.PublishDenyAll
	st3 := load(t, l)
	if got := topicPlan(t, st3, "audit").Publish; !reflect.DeepEqual(got, plan.PublishPolicy{Source: "deny-all", Authenticate: true}) {
		t.Errorf("audit under deny-all: %+v", got)
	}
}

// A publisher's selector that does not parse refuses the Topic, as the
// operator stalls it, with authentication on or off.
func TestLoadRefusesAnInvalidNamespaceSelector(t *testing.T) {
	for _, authenticate := range []bool{false, true} {
		dir := t.TempDir()
		writeFile(t, dir, "m.yaml", `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
spec:
  publishers:
  - namespaceSelector:
      matchExpressions: [{key: 'not a key!', operator: Exists}]
`)
		l, _ := testLoader(t, dir)
		l.authenticate = authenticate
		st := load(t, l)
		if errs := errorsAbout(st, "topic default/orders"); len(errs) != 1 || !strings.Contains(errs[0], "publishers[0].namespaceSelector") {
			t.Errorf("authenticate %v: errors %q, want the selector refused", authenticate, errs)
		}
		if len(st.Topics) != 0 {
			t.Errorf("authenticate %v: topics %+v applied", authenticate, st.Topics)
		}
	}
}

// Labels of documents herald dev skips are read for Namespaces only.
func TestLoadFileReadsNamespaceLabelsOnly(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "m.yaml", `apiVersion: v1
kind: Namespace
metadata:
  name: web
  labels: {team: shop}
---
apiVersion: v1
kind: Service
metadata:
  name: odd
  labels: {version: 1}
`)
	res := LoadFile(f)
	if len(res.Errors) > 0 || len(res.Skipped) != 2 {
		t.Fatalf("errors %v, skipped %+v", res.Errors, res.Skipped)
	}
	if !reflect.DeepEqual(res.Skipped[0].Labels, map[string]string{"team": "shop"}) || !res.Skipped[0].IsNamespace() || res.Skipped[1].Labels != nil {
		t.Errorf("skipped %+v", res.Skipped)
	}
}
