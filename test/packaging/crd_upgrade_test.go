package packaging_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// crdBaselineDir holds the CRDs of the last release, one directory per
// release (make crd-baseline snapshots config/crd/bases under the chart's
// appVersion).
func crdBaselineDir() string {
	return filepath.Join(repoRoot, "test", "packaging", "testdata", "crd-baseline")
}

// TestCRDsUpgradeSafe compares config/crd/bases with the newest release's
// CRDs: an upgrade must keep every object the previous CRDs admitted valid
// and meaning the same. So no version disappears or stops being served, and
// within a version no field is removed or changes type, no existing field
// becomes required, no enum loses a value, no bound tightens, no pattern or
// default changes. New optional fields and looser bounds are fine.
//
// A deliberate breaking change of a pre-release API is acknowledged with
// make crd-baseline, which makes the current CRDs the baseline.
func TestCRDsUpgradeSafe(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(crdBaselineDir(), "*"))
	if len(dirs) == 0 {
		t.Fatalf("no CRD baseline in %s: run make crd-baseline", crdBaselineDir())
	}
	sort.Slice(dirs, func(i, j int) bool { return olderGo(filepath.Base(dirs[i]), filepath.Base(dirs[j])) })
	baseline := dirs[len(dirs)-1]
	t.Logf("baseline: %s", filepath.Base(baseline))

	current := map[string]*apiextensionsv1.CustomResourceDefinition{}
	for name, data := range yamlFiles(t, filepath.Join(repoRoot, "config", "crd", "bases")) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		readYAMLBytes(t, name, data, crd)
		current[crd.Name] = crd
	}
	for name, data := range yamlFiles(t, baseline) {
		old := &apiextensionsv1.CustomResourceDefinition{}
		readYAMLBytes(t, name, data, old)
		cur, ok := current[old.Name]
		if !ok {
			t.Errorf("CRD %s of %s is gone", old.Name, filepath.Base(baseline))
			continue
		}
		for _, problem := range crdBreakingChanges(old, cur) {
			t.Errorf("%s: %s (if intended, run make crd-baseline)", old.Name, problem)
		}
	}
}

// crdBreakingChanges lists what in cur would break objects stored under old.
func crdBreakingChanges(old, cur *apiextensionsv1.CustomResourceDefinition) []string {
	var problems []string
	if old.Spec.Scope != cur.Spec.Scope {
		problems = append(problems, fmt.Sprintf("scope %s became %s", old.Spec.Scope, cur.Spec.Scope))
	}
	if old.Spec.Names.Kind != cur.Spec.Names.Kind || old.Spec.Names.Plural != cur.Spec.Names.Plural {
		problems = append(problems, "kind or plural name changed")
	}
	for _, ov := range old.Spec.Versions {
		i := slices.IndexFunc(cur.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Name == ov.Name })
		if i < 0 {
			problems = append(problems, fmt.Sprintf("version %s is gone", ov.Name))
			continue
		}
		cv := cur.Spec.Versions[i]
		if ov.Served && !cv.Served {
			problems = append(problems, fmt.Sprintf("version %s is no longer served", ov.Name))
		}
		if (ov.Subresources != nil && ov.Subresources.Status != nil) && (cv.Subresources == nil || cv.Subresources.Status == nil) {
			problems = append(problems, fmt.Sprintf("version %s lost its status subresource", ov.Name))
		}
		if ov.Schema == nil || cv.Schema == nil {
			continue
		}
		problems = append(problems, schemaBreakingChanges(ov.Name, ov.Schema.OpenAPIV3Schema, cv.Schema.OpenAPIV3Schema)...)
	}
	return problems
}

func schemaBreakingChanges(path string, old, cur *apiextensionsv1.JSONSchemaProps) []string {
	if old == nil {
		return nil
	}
	if cur == nil {
		return []string{path + " is gone"}
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) }
	if old.Type != cur.Type {
		add("type %q became %q", old.Type, cur.Type)
	}
	if old.XPreserveUnknownFields != nil && *old.XPreserveUnknownFields && (cur.XPreserveUnknownFields == nil || !*cur.XPreserveUnknownFields) {
		add("no longer preserves unknown fields")
	}
	for _, r := range cur.Required {
		if !slices.Contains(old.Required, r) {
			if _, existed := old.Properties[r]; existed {
				add("existing field %s became required", r)
			} else {
				add("new field %s is required", r)
			}
		}
	}
	if len(cur.Enum) > 0 {
		for _, e := range old.Enum {
			if !slices.ContainsFunc(cur.Enum, func(c apiextensionsv1.JSON) bool { return string(c.Raw) == string(e.Raw) }) {
				add("enum lost %s", e.Raw)
			}
		}
		if len(old.Enum) == 0 {
			add("now restricted to an enum")
		}
	}
	lower := func(name string, o, c *float64) {
		if c != nil && (o == nil || *c > *o) {
			add("%s tightened from %v to %v", name, deref(o), *c)
		}
	}
	upper := func(name string, o, c *float64) {
		if c != nil && (o == nil || *c < *o) {
			add("%s tightened from %v to %v", name, deref(o), *c)
		}
	}
	lower("minimum", old.Minimum, cur.Minimum)
	upper("maximum", old.Maximum, cur.Maximum)
	lower("minLength", toF(old.MinLength), toF(cur.MinLength))
	upper("maxLength", toF(old.MaxLength), toF(cur.MaxLength))
	lower("minItems", toF(old.MinItems), toF(cur.MinItems))
	upper("maxItems", toF(old.MaxItems), toF(cur.MaxItems))
	lower("minProperties", toF(old.MinProperties), toF(cur.MinProperties))
	upper("maxProperties", toF(old.MaxProperties), toF(cur.MaxProperties))
	if old.Pattern != cur.Pattern && cur.Pattern != "" {
		add("pattern %q became %q", old.Pattern, cur.Pattern)
	}
	if old.Format != cur.Format && cur.Format != "" {
		add("format %q became %q", old.Format, cur.Format)
	}
	if old.Default != nil && (cur.Default == nil || string(old.Default.Raw) != string(cur.Default.Raw)) {
		add("default %s changed", old.Default.Raw)
	}
	if !reflect.DeepEqual(old.XListType, cur.XListType) || !reflect.DeepEqual(old.XListMapKeys, cur.XListMapKeys) {
		add("list type or map keys changed")
	}
	for name, op := range old.Properties {
		cp, ok := cur.Properties[name]
		if !ok {
			p = append(p, path+"."+name+" is gone")
			continue
		}
		p = append(p, schemaBreakingChanges(path+"."+name, &op, &cp)...)
	}
	if old.Items != nil && old.Items.Schema != nil {
		var ci *apiextensionsv1.JSONSchemaProps
		if cur.Items != nil {
			ci = cur.Items.Schema
		}
		p = append(p, schemaBreakingChanges(path+"[]", old.Items.Schema, ci)...)
	}
	if old.AdditionalProperties != nil && old.AdditionalProperties.Schema != nil {
		var ca *apiextensionsv1.JSONSchemaProps
		if cur.AdditionalProperties != nil {
			ca = cur.AdditionalProperties.Schema
		}
		p = append(p, schemaBreakingChanges(path+"{}", old.AdditionalProperties.Schema, ca)...)
	}
	return p
}

func toF(i *int64) *float64 {
	if i == nil {
		return nil
	}
	f := float64(*i)
	return &f
}

func deref(f *float64) any {
	if f == nil {
		return "none"
	}
	return *f
}

func readYAMLBytes(t *testing.T, name string, data []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestCRDBreakingChangesDetector checks the comparison itself on the Topic
// CRD and edited copies of it.
func TestCRDBreakingChangesDetector(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "crd", "bases", "eventing.herald.dev_topics.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := &apiextensionsv1.CustomResourceDefinition{}
	readYAMLBytes(t, "topics", data, base)
	spec := func(c *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.JSONSchemaProps {
		s := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
		return &s
	}
	setSpec := func(c *apiextensionsv1.CustomResourceDefinition, s *apiextensionsv1.JSONSchemaProps) {
		c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = *s
	}
	tests := []struct {
		name   string
		edit   func(c *apiextensionsv1.CustomResourceDefinition)
		breaks bool
	}{
		{"unchanged", func(*apiextensionsv1.CustomResourceDefinition) {}, false},
		{"new optional field", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			s.Properties["newField"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
			setSpec(c, s)
		}, false},
		{"looser maximum", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			f := s.Properties["maxEventSize"]
			m := *f.Maximum * 2
			f.Maximum = &m
			s.Properties["maxEventSize"] = f
			setSpec(c, s)
		}, false},
		{"field removed", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			delete(s.Properties, "storage")
			setSpec(c, s)
		}, true},
		{"enum value removed", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			f := s.Properties["storage"]
			f.Enum = f.Enum[:1]
			s.Properties["storage"] = f
			setSpec(c, s)
		}, true},
		{"existing field required", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			s.Required = append(s.Required, "storage")
			setSpec(c, s)
		}, true},
		{"tighter maximum", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			f := s.Properties["maxEventSize"]
			m := *f.Maximum / 2
			f.Maximum = &m
			s.Properties["maxEventSize"] = f
			setSpec(c, s)
		}, true},
		{"default changed", func(c *apiextensionsv1.CustomResourceDefinition) {
			s := spec(c)
			f := s.Properties["maxEventSize"]
			f.Default = &apiextensionsv1.JSON{Raw: []byte("2048")}
			s.Properties["maxEventSize"] = f
			setSpec(c, s)
		}, true},
		{"version no longer served", func(c *apiextensionsv1.CustomResourceDefinition) {
			c.Spec.Versions[0].Served = false
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := base.DeepCopy()
			tt.edit(cur)
			problems := crdBreakingChanges(base, cur)
			if (len(problems) > 0) != tt.breaks {
				t.Errorf("problems %q, want breaking=%v", problems, tt.breaks)
			}
		})
	}
}
