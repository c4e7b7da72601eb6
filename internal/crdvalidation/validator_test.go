package crdvalidation_test

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/config/crd"
	"github.com/herald-dev/herald/internal/crdvalidation"
)

// The API server's verdicts on these are compared in api/v1alpha1; here is
// what the package promises of its results.

func newValidator(t *testing.T) *crdvalidation.Validator {
	t.Helper()
	crds, err := crd.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 4 {
		t.Fatalf("%d CRDs embedded, want 4", len(crds))
	}
	v, err := crdvalidation.New(crds)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func object(t *testing.T, doc string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeDefaultsAndDropsStatus(t *testing.T) {
	v := newValidator(t)
	in := object(t, "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: t, namespace: ns}\nstatus: {observedGeneration: 2}\n")
	out, err := v.Decode(in)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := out["spec"].(map[string]any)
	if spec["storage"] != "file" || spec["replicas"] != int64(1) || out["status"] != nil {
		t.Errorf("decoded %v, want the schema's defaults and no status", out)
	}
	if _, ok := in["spec"]; ok || in["status"] == nil {
		t.Errorf("Decode modified its argument: %v", in)
	}
}

func TestDecodeRefusesUnknownFields(t *testing.T) {
	v := newValidator(t)
	_, err := v.Decode(object(t, "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: t, namespace: ns, labelz: {}}\nspec: {storag: file}\n"))
	se, ok := runtime.AsStrictDecodingError(err)
	if !ok {
		t.Fatalf("Decode = %v, want a strict decoding error", err)
	}
	var got []string
	for _, e := range se.Errors() {
		got = append(got, e.Error())
	}
	if want := `unknown field "metadata.labelz",unknown field "spec.storag"`; strings.Join(got, ",") != want {
		t.Errorf("unknown fields = %q, want %q", got, want)
	}
}

func TestValidate(t *testing.T) {
	v := newValidator(t)
	ok, err := v.Decode(object(t, "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: t, namespace: ns}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(context.Background(), ok); err != nil {
		t.Errorf("Validate(valid) = %v", err)
	}

	bad, err := v.Decode(object(t, "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: a.b, namespace: ns}\nspec: {maxEventSize: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = v.Validate(context.Background(), bad)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("Validate = %v, want an Invalid status error", err)
	}
	for _, want := range []string{`Topic.eventing.herald.dev "a.b" is invalid: `, "spec.maxEventSize: Invalid value: 10: spec.maxEventSize in body should be greater than or equal to 1024", "Topic names start with a letter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %q, want it to contain %q", err, want)
		}
	}

	other := object(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
	if err := v.Validate(context.Background(), other); err == nil || !strings.Contains(err.Error(), `no kind "ConfigMap"`) {
		t.Errorf("Validate(ConfigMap) = %v, want an unserved kind", err)
	}
}
