package devmode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		// objects as "kind ns/name", in order
		want    []string
		skipped []string // kinds
		// errs holds substrings, one per expected error, in order
		errs []string
	}{
		{
			name: "multi-document with default namespace",
			file: "a.yaml",
			content: `# leading comment
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: orders
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: display
  namespace: shop
spec:
  topic: orders
  subscriber:
    uri: http://127.0.0.1:8081/
---
---
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: tick}
spec:
  sink: {ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: orders}}
  ping: {schedule: "@every 10s"}
`,
			want: []string{"topic default/orders", "subscription shop/display", "eventsource default/tick"},
		},
		{
			name:    "json file",
			file:    "t.json",
			content: `{"apiVersion":"eventing.herald.dev/v1alpha1","kind":"Topic","metadata":{"name":"orders","namespace":"x"},"spec":{"storage":"memory"}}`,
			want:    []string{"topic x/orders"},
		},
		{
			name: "unknown field names file, line, document and path",
			file: "bad.yaml",
			content: `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: ok}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: audit}
spec:
  topic: ok
  subscriber: {uri: "http://x/"}
  filter:
  - exact: {type: a}
`,
			want: []string{"topic default/ok"},
			errs: []string{`bad.yaml:5 (document 2): subscription default/audit: unknown field "spec.filter"`},
		},
		{
			name: "duplicate field",
			file: "dup.yaml",
			content: `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: a}
spec: {storage: file, storage: memory}
`,
			errs: []string{`dup.yaml:1 (document 1)`},
		},
		{
			name: "wrong apiVersion of the Herald group",
			file: "v.yaml",
			content: `apiVersion: eventing.herald.dev/v1
kind: Topic
metadata: {name: a}
`,
			errs: []string{`v.yaml:1 (document 1): topic default/a: apiVersion eventing.herald.dev/v1 is not served; use eventing.herald.dev/v1alpha1`},
		},
		{
			name: "a Herald kind without the group",
			file: "nogroup.yaml",
			content: `apiVersion: v1alpha1
kind: Subscription
metadata: {name: s}
`,
			errs: []string{`nogroup.yaml:1 (document 1): subscription s: apiVersion v1alpha1 has no Subscription; use eventing.herald.dev/v1alpha1`},
		},
		{
			name: "other kinds and groups are skipped",
			file: "mixed.yaml",
			content: `apiVersion: v1
kind: Service
metadata: {name: inventory}
---
apiVersion: serving.knative.dev/v1
kind: Topic
metadata: {name: foreign}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Broker
metadata: {name: b}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: mine}
`,
			want:    []string{"topic default/mine"},
			skipped: []string{"Service", "Topic", "Broker"},
		},
		{
			name: "v1 List items",
			file: "list.yaml",
			content: `apiVersion: v1
kind: List
items:
- apiVersion: eventing.herald.dev/v1alpha1
  kind: Topic
  metadata: {name: a}
- apiVersion: eventing.herald.dev/v1alpha1
  kind: Topic
  metadata: {name: b}
  spec: {bogus: 1}
`,
			want: []string{"topic default/a"},
			errs: []string{`items[1]: unknown field "spec.bogus"`},
		},
		{
			name: "v1 Secrets and ConfigMaps are read, other v1 kinds skipped",
			file: "secret.yaml",
			content: `apiVersion: v1
kind: Secret
metadata: {name: hooks, namespace: shop}
stringData: {key: value}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {schema.json: "{}"}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
---
apiVersion: v1
kind: Secret
metadata: {name: bad}
strngData: {key: value}
---
apiVersion: v1
kind: Secret
metadata: {name: bad64}
data: {key: "%%%"}
`,
			want:    []string{"secret shop/hooks", "configmap default/c"},
			skipped: []string{"Service"},
			errs: []string{`secret.yaml:15 (document 4): secret default/bad: unknown field "strngData"`,
				`secret.yaml:20 (document 5): secret default/bad64: data: a value is not valid base64 (at byte 0); put plain text in stringData instead`},
		},
		{
			name:    "yaml syntax error",
			file:    "syntax.yaml",
			content: "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {name: a\n",
			errs:    []string{"syntax.yaml:1 (document 1): yaml:"},
		},
		{
			name:    "missing kind",
			file:    "nokind.yaml",
			content: "apiVersion: eventing.herald.dev/v1alpha1\nmetadata: {name: a}\n",
			errs:    []string{"apiVersion and kind are required"},
		},
		{
			name:    "missing name",
			file:    "noname.yaml",
			content: "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata: {namespace: x}\n",
			errs:    []string{"metadata.name is required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeFile(t, dir, tt.file, tt.content)
			fr := LoadFile(p)
			var got []string
			for _, o := range fr.Objects {
				got = append(got, o.Key().String())
				if o.Origin.File != p {
					t.Errorf("origin file = %q, want %q", o.Origin.File, p)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("objects = %v, want %v", got, tt.want)
			}
			var skipped []string
			for _, s := range fr.Skipped {
				skipped = append(skipped, s.Kind)
			}
			if strings.Join(skipped, ",") != strings.Join(tt.skipped, ",") {
				t.Errorf("skipped = %v, want %v", skipped, tt.skipped)
			}
			if len(fr.Errors) != len(tt.errs) {
				t.Fatalf("errors = %v, want %d matching %q", fr.Errors, len(tt.errs), tt.errs)
			}
			for i, e := range fr.Errors {
				if !strings.Contains(e.Error(), tt.errs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tt.errs[i])
				}
				if !strings.HasPrefix(e.Error(), p) {
					t.Errorf("error %d = %q does not start with the file name", i, e)
				}
			}
		})
	}
}

func TestListFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.yaml", "a.yml", "c.json", "notes.txt", ".hidden.yaml", "x.yaml~"} {
		writeFile(t, dir, n, "")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	single := writeFile(t, t.TempDir(), "any.txt", "")
	got, err := ListFiles([]string{dir, single, filepath.Join(dir, "b.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.yml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.json"), single}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ListFiles = %v, want %v", got, want)
	}
	if _, err := ListFiles([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing path is no error")
	}
}

func TestLoadSecretMergesStringData(t *testing.T) {
	fr := LoadFile(writeFile(t, t.TempDir(), "s.yaml", `apiVersion: v1
kind: Secret
metadata: {name: s}
data: {a: YQ==, b: Yg==}
stringData: {b: from-string-data, c: c}
`))
	if len(fr.Errors) != 0 || len(fr.Objects) != 1 {
		t.Fatalf("objects %d, errors %v", len(fr.Objects), fr.Errors)
	}
	sec := fr.Objects[0].Secret
	got := map[string]string{}
	for k, v := range sec.Data {
		got[k] = string(v)
	}
	if len(got) != 3 || got["a"] != "a" || got["b"] != "from-string-data" || got["c"] != "c" || sec.StringData != nil || sec.Namespace != "default" {
		t.Errorf("data = %v, stringData %v, namespace %q", got, sec.StringData, sec.Namespace)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		content string
		errs    []string // substrings; none means valid
	}{
		{"valid subscription", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topic: t
  subscriber: {uri: "http://127.0.0.1:1/"}
  filters: [{exact: {type: a}}, {any: [{prefix: {source: /x}}, {cesql: "subject = 'y'"}]}]
  delivery: {retry: 2, backoffDelay: PT0.1S, deadLetterSink: {ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: dlq}}}
`, nil},
		{"destination needs ref or uri", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec: {topic: t, subscriber: {}}
`, []string{"spec.subscriber: Invalid value: a destination needs a ref, a uri, or both"}},
		{"relative uri without ref", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec: {topic: t, subscriber: {uri: /x}}
`, []string{"spec.subscriber: Invalid value: uri must be an absolute http:// or https:// URL"}},
		{"long names and bad filter", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: ` + strings.Repeat("s", 64) + `}
spec:
  topic: t
  subscriber: {uri: "http://x/"}
  filters: [{exact: {type: a}, prefix: {type: b}}, {cesql: "type ="}]
  delivery: {timeout: 5 minutes}
`, []string{`Subscription.eventing.herald.dev "` + strings.Repeat("s", 64) + `" is invalid`, "at most 63 characters",
			"spec.filters[0]: Invalid value: a filter sets exactly one of", "spec.delivery.timeout: Invalid value: \"5 minutes\""}},
		{"filter the API server accepts and the dispatcher cannot compile", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec:
  topic: t
  subscriber: {uri: "http://x/"}
  filters: [{exact: {type: a}}, {cesql: "type ="}]
`, []string{"spec.filters[1]"}},
		{"topic name and replicas", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: ` + "Orders_" + strings.Repeat("o", 50) + `}
spec: {replicas: 2}
`, []string{"metadata.name: Invalid value", "a lowercase RFC 1123 subdomain", "spec.replicas: Unsupported value: 2",
			"some validation rules were not checked"}},
		{"topic name length", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: ` + strings.Repeat("o", 53) + `}
`, []string{"at most 52 characters"}},
		{"topic name with a dot", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: a.b}
`, []string{"start with a letter"}},
		{"eventsource sets one source", `
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: e}
spec:
  sink: {uri: "http://x/"}
  ping: {schedule: "@every 1s"}
  webhook: {}
`, []string{"exactly one of ping, apiServer, webhook or container"}},
		{"ping schedule and timezone as the operator checks them", `
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: e}
spec:
  sink: {uri: "http://x/"}
  ping: {schedule: "61 * * * *", timezone: Mars/Olympus}
`, []string{`spec.ping: timezone "Mars/Olympus"`}},
		{"ceOverrides extension names", `
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: e}
spec:
  sink: {uri: "http://x/"}
  ping: {schedule: "@hourly"}
  ceOverrides: {extensions: {Team: x}}
`, []string{`spec.ceOverrides.extensions: Invalid value: extension names are 1 to 20 lower-case letters or digits`}},
		{"webhook signature enums", `
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: e}
spec:
  sink: {uri: "http://x/"}
  webhook:
    signature: {type: hmac, algorithm: md5, encoding: base32, secretKeyRef: {name: s}}
`, []string{`spec.webhook.signature.algorithm: Unsupported value: "md5"`,
			`spec.webhook.signature.encoding: Unsupported value: "base32"`, "spec.webhook.signature.secretKeyRef.key: Required value"}},
		{"webhook hmac signature without header", `
apiVersion: eventing.herald.dev/v1alpha1
kind: EventSource
metadata: {name: e}
spec:
  sink: {uri: "http://x/"}
  webhook:
    signature: {type: hmac, secretKeyRef: {name: s, key: k}}
`, []string{"spec.webhook.signature: Invalid value: a signature of type hmac needs header"}},
		{"valid secret", `
apiVersion: v1
kind: Secret
metadata: {name: github-webhook.v2}
stringData: {secret: x, .dot_key-1: z}
`, nil},
		{"secret name and keys", `
apiVersion: v1
kind: Secret
metadata: {name: Hooks, namespace: "a_b"}
stringData: {"bad key": x}
`, []string{"metadata.namespace", "metadata.name", `data[bad key]: Invalid value: "bad key": a valid config key`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := LoadFile(writeFile(t, t.TempDir(), "o.yaml", tt.content))
			if len(fr.Errors) > 0 || len(fr.Objects) != 1 {
				t.Fatalf("load: %v", fr.Errors)
			}
			err := Validate(fr.Objects[0])
			if len(tt.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate = nil, want errors %q", tt.errs)
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

// Herald's kinds are decoded as the API server stores them: with the CRDs'
// defaults and without status.
func TestLoadFileAppliesDefaults(t *testing.T) {
	fr := LoadFile(writeFile(t, t.TempDir(), "o.yaml", `
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: s}
spec: {topic: t, subscriber: {uri: "http://127.0.0.1:1/"}}
status: {observedGeneration: 7}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: t}
`))
	if len(fr.Errors) > 0 || len(fr.Objects) != 2 {
		t.Fatalf("objects %d, errors %v", len(fr.Objects), fr.Errors)
	}
	s := fr.Objects[0].Subscription
	if s.Spec.MaxInFlight != 64 || s.Spec.Ordering != v1alpha1.OrderingUnordered || s.Spec.StartPosition != "latest" || s.Status.ObservedGeneration != 0 {
		t.Errorf("subscription spec %+v, status %+v: want defaults and no status", s.Spec, s.Status)
	}
	tp := fr.Objects[1].Topic
	if tp.Spec.Storage != v1alpha1.StorageFile || tp.Spec.Replicas != 1 || tp.Spec.MaxEventSize != 1048576 {
		t.Errorf("topic spec %+v: want the CRD's defaults", tp.Spec)
	}
}
