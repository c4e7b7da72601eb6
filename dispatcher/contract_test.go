package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

const orderSchema = `
type: object
required: [order]
properties:
  order:
    type: object
    required: [qty]
    properties:
      qty: {type: integer, minimum: 1}
`

func contractTopic(name string, mode v1alpha1.ContractMode) *v1alpha1.Topic {
	return newTopic(name, func(tp *v1alpha1.Topic) {
		tp.Spec.Contract = mode
		tp.Spec.EventTypes = []v1alpha1.EventTypeSpec{
			{Type: "order.created", Schema: orderSchema},
			{Type: "order.shipped", RequiredExtensions: []string{"partitionkey"}, DataContentType: "application/json"},
		}
	})
}

// TestContractEnforce: with contract enforce, conforming events are
// stored, others refused with 400 naming the JSON pointer, attribute and
// rule, and nothing of a refused request is stored.
func TestContractEnforce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(contractTopic("strict", v1alpha1.ContractEnforce), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/strict"
	typ := func(id, typ string, extra ...string) map[string]string {
		return binary(id, append([]string{"Ce-Type", typ}, extra...)...)
	}
	batch := map[string]string{"Content-Type": ce.MediaBatchJSON}
	tests := []struct {
		name            string
		header          map[string]string
		body            string
		status          int
		attribute, rule string
		message         string
		stored          int
	}{
		{name: "valid", header: typ("v1", "order.created"), body: `{"order":{"qty":2}}`, status: 202, stored: 1},
		{name: "below minimum", header: typ("i1", "order.created"), body: `{"order":{"qty":0}}`, status: 400,
			attribute: "data", rule: "minimum", message: "/order/qty: must be >= 1"},
		{name: "missing property", header: typ("i2", "order.created"), body: `{"order":{}}`, status: 400,
			attribute: "data", rule: "required", message: `/order: missing property "qty"`},
		{name: "wrong type", header: typ("i3", "order.created"), body: `{"order":{"qty":"two"}}`, status: 400,
			attribute: "data", rule: "type", message: "/order/qty: must be integer, not string"},
		{name: "not JSON", header: typ("i4", "order.created"), body: `{"order":`, status: 400, attribute: "data", rule: "invalid_json"},
		{name: "non-JSON content type", header: typ("i5", "order.created", "Content-Type", "text/plain"), body: `x`, status: 400,
			attribute: "datacontenttype", rule: "datacontenttype"},
		{name: "undeclared type", header: typ("u1", "order.cancelled"), body: `{}`, status: 400, attribute: "type", rule: "undeclared_type",
			message: `type "order.cancelled" is not declared`},
		{name: "missing extension", header: typ("x1", "order.shipped"), body: `{}`, status: 400, attribute: "partitionkey", rule: "missing_extension"},
		{name: "extension present", header: typ("x2", "order.shipped", "Ce-Partitionkey", "k"), body: `{}`, status: 202, stored: 1},
		{name: "batch with a violating event", header: batch, status: 400, attribute: "data", rule: "minimum",
			body: `[{"specversion":"1.0","id":"b1","source":"/s","type":"order.created","datacontenttype":"application/json","data":{"order":{"qty":1}}},` +
				`{"specversion":"1.0","id":"b2","source":"/s","type":"order.created","datacontenttype":"application/json","data":{"order":{"qty":-1}}}]`},
		{name: "valid batch", header: batch, status: 202, stored: 2,
			body: `[{"specversion":"1.0","id":"b3","source":"/s","type":"order.created","data":{"order":{"qty":1}}},` +
				`{"specversion":"1.0","id":"b4","source":"/s","type":"order.shipped","partitionkey":"p","datacontenttype":"application/json"}]`},
	}
	stored := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, url, tc.header, []byte(tc.body))
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.status, b)
			}
			if tc.status == 202 {
				return
			}
			var eb struct {
				Error, Attribute, Rule string
				Index                  *int
			}
			if err := json.Unmarshal(b, &eb); err != nil {
				t.Fatalf("body %s: %v", b, err)
			}
			if eb.Attribute != tc.attribute || eb.Rule != tc.rule || !strings.Contains(eb.Error, tc.message) {
				t.Errorf("got attribute %q rule %q error %q, want %q %q containing %q", eb.Attribute, eb.Rule, eb.Error, tc.attribute, tc.rule, tc.message)
			}
			if strings.HasPrefix(tc.name, "batch") && (eb.Index == nil || *eb.Index != 1) {
				t.Errorf("index = %v, want 1", eb.Index)
			}
		})
		stored += tc.stored
	}
	if got := e.streamMsgs(res.Plan.Stream); got != uint64(stored) {
		t.Errorf("stream holds %d messages, want %d (refused events must not be stored)", got, stored)
	}
	m := r.d.metrics
	if got := testutil.ToFloat64(m.violations.WithLabelValues("default", "strict", "order.created", "minimum")); got != 2 {
		t.Errorf("minimum violations = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.violations.WithLabelValues("default", "strict", undeclaredTypeLabel, "undeclared_type")); got != 1 {
		t.Errorf("undeclared_type violations = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("default", "strict", reasonContract)); got != 8 {
		t.Errorf("rejected for the contract = %v, want 8", got)
	}
}

// TestContractWarn: with contract warn, violating events are stored and
// counted by type and rule.
func TestContractWarn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(contractTopic("lenient", v1alpha1.ContractWarn), nil, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/lenient"
	for i, body := range []string{`{"order":{"qty":0}}`, `{"order":{"qty":-3}}`, `{"order":{"qty":5}}`} {
		resp, b := post(t, url, binary(string(rune('a'+i)), "Ce-Type", "order.created"), []byte(body))
		if resp.StatusCode != 202 {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
		}
	}
	sendOK(t, url, "undeclared")
	if got := e.streamMsgs(res.Plan.Stream); got != 4 {
		t.Errorf("stream holds %d messages, want 4", got)
	}
	m := r.d.metrics
	if got := testutil.ToFloat64(m.violations.WithLabelValues("default", "lenient", "order.created", "minimum")); got != 2 {
		t.Errorf("minimum violations = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.violations.WithLabelValues("default", "lenient", undeclaredTypeLabel, "undeclared_type")); got != 1 {
		t.Errorf("undeclared_type violations = %v, want 1", got)
	}
}

// TestCatalogFlush: the event types a dispatcher accepts reach the catalog
// bucket with their counts, source patterns and a sample content type,
// within plan.CatalogFlush; refused events are not recorded.
func TestCatalogFlush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.provision(contractTopic("seen", v1alpha1.ContractEnforce), nil, nil)
	kv, err := e.js.CreateOrUpdateKeyValue(context.Background(), provision.CatalogBucketConfig(1))
	if err != nil {
		t.Fatal(err)
	}
	r := e.start(nil, Options{})
	r.waitDelivering(t, &res.Plan)
	url := r.url + "/default/seen"
	for i, ev := range [][3]string{
		{"order.created", "/shop/eu", `{"order":{"qty":1}}`},
		{"order.created", "/shop/us", `{"order":{"qty":2}}`},
		{"order.created", "/shop/us", `{"order":{"qty":0}}`}, // refused
		{"order.shipped", "/warehouse", `{}`},
	} {
		post(t, url, binary(fmt.Sprint(i), "Ce-Type", ev[0], "Ce-Source", ev[1], "Ce-Partitionkey", "k"), []byte(ev[2]))
	}
	var got []plan.CatalogEntry
	eventually(t, 3*plan.CatalogFlush, func() bool {
		got, err = provision.ReadCatalog(context.Background(), kv, "default", "seen")
		return err == nil && len(got) == 2
	}, "two catalog entries")
	byType := map[string]plan.CatalogEntry{}
	for _, en := range got {
		byType[en.Type] = en
	}
	if c := byType["order.created"]; c.Count != 2 || c.SourcePattern != "/shop/*" || c.DataContentType != "application/json" || c.FirstSeen.After(c.LastSeen) {
		t.Errorf("order.created: %+v", c)
	}
	if s := byType["order.shipped"]; s.Count != 1 || s.SourcePattern != "/warehouse" {
		t.Errorf("order.shipped: %+v", s)
	}
}
