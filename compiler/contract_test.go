package compiler

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func contractTopic(mode v1alpha1.ContractMode, types ...v1alpha1.EventTypeSpec) *v1alpha1.Topic {
	return &v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"},
		Spec: v1alpha1.TopicSpec{Contract: mode, EventTypes: types}}
}

// TestContract: the plan carries the contract with YAML schemas turned to
// JSON, none when it is off, and a schema that does not compile fails the
// Topic with the library's explanation.
func TestContract(t *testing.T) {
	tests := []struct {
		name    string
		topic   *v1alpha1.Topic
		want    string // the first type's schema in the plan
		wantErr string
	}{
		{name: "off", topic: contractTopic(v1alpha1.ContractOff, v1alpha1.EventTypeSpec{Type: "a", Schema: "{"})},
		{name: "yaml schema", topic: contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a", Schema: "type: object\nrequired: [id]\n"}),
			want: `{"required":["id"],"type":"object"}`},
		{name: "json schema", topic: contractTopic(v1alpha1.ContractWarn, v1alpha1.EventTypeSpec{Type: "a", Schema: `{"type":"integer","minimum":1}`}),
			want: `{"minimum":1,"type":"integer"}`},
		{name: "bad keyword value", topic: contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a", Schema: `{"type":"integr"}`}),
			wantErr: `event type "a": schema:`},
		{name: "not a schema", topic: contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a", Schema: "type: [\n"}),
			wantErr: "eventTypes[a].schema: neither JSON nor YAML"},
		{name: "remote reference", topic: contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a", Schema: `{"$ref":"file:///etc/hostname"}`}),
			wantErr: "references reach only within the schema"},
		{name: "no types", topic: contractTopic(v1alpha1.ContractEnforce), wantErr: "needs eventTypes"},
		{name: "unresolved schemaFrom", topic: contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a",
			SchemaFrom: &v1alpha1.SchemaSource{ConfigMapKeyRef: corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}}),
			wantErr: "not resolved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Compile(tc.topic, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := res.Plan.Contract
			if tc.want == "" {
				if c != nil {
					t.Fatalf("contract %+v, want none", c)
				}
				return
			}
			if c == nil || c.Types[0].Schema != tc.want || c.Mode != string(tc.topic.Spec.Contract) {
				t.Fatalf("contract %+v, want mode %s schema %s", c, tc.topic.Spec.Contract, tc.want)
			}
		})
	}
}

// TestInlineSchemas: schemaFrom is replaced by the ConfigMap key's text in
// a copy; a missing ConfigMap is an ErrSchemaSource naming it.
func TestInlineSchemas(t *testing.T) {
	ref := corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "schemas"}, Key: "order.json"}
	tp := contractTopic(v1alpha1.ContractEnforce, v1alpha1.EventTypeSpec{Type: "a", SchemaFrom: &v1alpha1.SchemaSource{ConfigMapKeyRef: ref}})
	got, err := InlineSchemas(tp, func(ns string, r corev1.ConfigMapKeySelector) (string, error) {
		if ns != "shop" || r != ref {
			t.Errorf("lookup of %s %+v", ns, r)
		}
		return `{"type":"object"}`, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got == tp || got.Spec.EventTypes[0].Schema != `{"type":"object"}` || got.Spec.EventTypes[0].SchemaFrom != nil || tp.Spec.EventTypes[0].SchemaFrom == nil {
		t.Fatalf("inlined %+v (original %+v)", got.Spec.EventTypes[0], tp.Spec.EventTypes[0])
	}
	if _, err := Compile(got, nil); err != nil {
		t.Fatal(err)
	}
	_, err = InlineSchemas(tp, func(ns string, r corev1.ConfigMapKeySelector) (string, error) {
		return "", MissingConfigMapKey(ns, r, false)
	})
	if err == nil || !strings.Contains(err.Error(), "ConfigMap shop/schemas not found") {
		t.Fatalf("err = %v", err)
	}
}
