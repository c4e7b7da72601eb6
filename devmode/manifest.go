// Package devmode runs Herald without a cluster: it reads Topic,
// Subscription and EventSource manifests from files, compiles them with the
// operator's plan compiler, applies them to an embedded NATS JetStream server
// and serves ingress and delivery with the dispatcher in the same process,
// and runs the ping and webhook EventSources in-process too. v1 Secrets in
// the same files hold the webhooks' signature keys, v1 ConfigMaps the
// Topics' contract schemas. It backs the herald dev command.
package devmode

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// DefaultNamespace is the namespace of a manifest that names none.
const DefaultNamespace = "default"

// Kinds of the eventing.herald.dev API group that herald dev reads.
const (
	KindTopic        = "Topic"
	KindSubscription = "Subscription"
	KindEventSource  = "EventSource"
	KindReplay       = "Replay"
)

// KindSecret is the kind of the core v1 Secrets herald dev reads, only to
// find the keys webhook EventSources name in signature.secretKeyRef.
const KindSecret = "Secret"

// KindConfigMap is the kind of the core v1 ConfigMaps herald dev reads, only
// to find the schemas Topics name in eventTypes[].schemaFrom.
const KindConfigMap = "ConfigMap"

// manifestExts are the file name extensions Load reads in a directory.
var manifestExts = []string{".yaml", ".yml", ".json"}

// IsManifestFile reports whether name has an extension Load reads.
func IsManifestFile(name string) bool {
	return slices.Contains(manifestExts, strings.ToLower(filepath.Ext(name)))
}

// Origin is where an object was declared.
type Origin struct {
	// File is the path as found from the paths given to Load.
	File string
	// Doc is the 1-based index of the YAML document in File.
	Doc int
	// Line is the 1-based line the document starts on.
	Line int
}

func (o Origin) String() string {
	if o.Doc == 0 {
		return o.File
	}
	return fmt.Sprintf("%s:%d (document %d)", o.File, o.Line, o.Doc)
}

// Key identifies an object: kind, namespace and name.
type Key struct {
	Kind, Namespace, Name string
}

func (k Key) String() string {
	return strings.ToLower(k.Kind) + " " + k.Namespace + "/" + k.Name
}

// Object is a decoded manifest: exactly one of Topic, Subscription,
// EventSource, Replay and Secret is set.
type Object struct {
	Origin       Origin
	Topic        *v1alpha1.Topic
	Subscription *v1alpha1.Subscription
	EventSource  *v1alpha1.EventSource
	Replay       *v1alpha1.Replay
	// Secret is a v1 Secret, its stringData merged into data as the API
	// server does. Its values are never printed.
	Secret *corev1.Secret
	// ConfigMap is a v1 ConfigMap.
	ConfigMap *corev1.ConfigMap

	// content is a Topic's, Subscription's or EventSource's manifest as the
	// API server would store it (namespace set, defaults applied), which
	// Validate checks against the CRDs' schemas.
	content map[string]any
}

// Key returns the object's kind, namespace and name.
func (o *Object) Key() Key {
	switch {
	case o.Topic != nil:
		return Key{KindTopic, o.Topic.Namespace, o.Topic.Name}
	case o.Subscription != nil:
		return Key{KindSubscription, o.Subscription.Namespace, o.Subscription.Name}
	case o.EventSource != nil:
		return Key{KindEventSource, o.EventSource.Namespace, o.EventSource.Name}
	case o.Replay != nil:
		return Key{KindReplay, o.Replay.Namespace, o.Replay.Name}
	case o.Secret != nil:
		return Key{KindSecret, o.Secret.Namespace, o.Secret.Name}
	case o.ConfigMap != nil:
		return Key{KindConfigMap, o.ConfigMap.Namespace, o.ConfigMap.Name}
	}
	return Key{}
}

// Skipped is a document of another kind than Herald's, which Load ignores.
type Skipped struct {
	Origin     Origin
	APIVersion string
	Kind       string
	Name       string
	// Labels are the document's metadata.labels: those of a v1 Namespace
	// are what a Topic publisher's namespaceSelector matches.
	Labels map[string]string
}

// IsNamespace reports whether s is a v1 Namespace.
func (s Skipped) IsNamespace() bool { return s.APIVersion == "v1" && s.Kind == "Namespace" }

// ManifestError is a document Load could not turn into an object.
type ManifestError struct {
	Origin Origin
	// Object names the object ("subscription default/audit") when known.
	Object string
	Err    error
}

func (e *ManifestError) Error() string {
	if e.Object != "" {
		return fmt.Sprintf("%s: %s: %v", e.Origin, e.Object, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Origin, e.Err)
}

func (e *ManifestError) Unwrap() error { return e.Err }

// FileResult is what one file holds.
type FileResult struct {
	// File is the path that was read.
	File    string
	Objects []*Object
	Skipped []Skipped
	// Errors are documents that could not be decoded, as *ManifestError.
	Errors []error
}

// ListFiles returns the manifest files the paths name, in a stable order: a
// file as given (whatever its extension), a directory's *.yaml, *.yml and
// *.json files (not its subdirectories), sorted by name. A path that does not
// exist is an error.
func ListFiles(paths []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(f string) {
		if !seen[f] {
			seen[f] = true
			files = append(files, f)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() || !IsManifestFile(e.Name()) || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			add(filepath.Join(p, e.Name()))
		}
	}
	return files, nil
}

// LoadFile reads every document of a manifest file. Documents of other API
// groups or kinds are skipped. Documents of eventing.herald.dev are decoded
// into the v1alpha1 types as the API server decodes them on create: a
// duplicate field, or one the CRD's schema does not know, is an error, status
// is dropped and the schema's defaults are applied. v1 Secrets and
// ConfigMaps are decoded strictly into corev1.Secret and corev1.ConfigMap. The namespace defaults to DefaultNamespace. A
// v1 List is read item by item. An error reading the file is returned as the
// only entry of Errors.
func LoadFile(file string) *FileResult {
	res := &FileResult{File: file}
	data, err := os.ReadFile(file)
	if err != nil {
		res.Errors = append(res.Errors, &ManifestError{Origin: Origin{File: file}, Err: err})
		return res
	}
	for i, d := range splitDocuments(data) {
		origin := Origin{File: file, Doc: i + 1, Line: d.line}
		res.decodeDocument(origin, d.data)
	}
	return res
}

// typeMeta is the part of a document read before its kind is known.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		// Labels are decoded for v1 Namespaces only (namespaceLabels), so
		// that no other kind's labels can make a document unreadable.
		Labels json.RawMessage `json:"labels"`
	} `json:"metadata"`
}

func (r *FileResult) decodeDocument(origin Origin, doc []byte) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: cleanYAMLError(err, origin.Line)})
		return
	}
	j = bytes.TrimSpace(j)
	if len(j) == 0 || string(j) == "null" {
		return // an empty document or one with only comments
	}
	if j[0] != '{' {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: errors.New("a document must be an object with apiVersion and kind")})
		return
	}
	var tm typeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: err})
		return
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: errors.New("apiVersion and kind are required")})
		return
	}
	if tm.APIVersion == "v1" && tm.Kind == "List" {
		r.decodeList(origin, j)
		return
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: fmt.Errorf("apiVersion %q: %w", tm.APIVersion, err)})
		return
	}
	if tm.APIVersion == "v1" && tm.Kind == KindSecret {
		r.decodeSecret(origin, j, tm)
		return
	}
	if tm.APIVersion == "v1" && tm.Kind == KindConfigMap {
		r.decodeConfigMap(origin, j, tm)
		return
	}
	herald := tm.Kind == KindTopic || tm.Kind == KindSubscription || tm.Kind == KindEventSource || tm.Kind == KindReplay
	if gv.Group == "" && herald {
		// The core group has no such kinds: the group was left out.
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: strings.ToLower(tm.Kind) + " " + tm.Metadata.Name,
			Err: fmt.Errorf("apiVersion %s has no %s; use %s", tm.APIVersion, tm.Kind, v1alpha1.GroupVersion)})
		return
	}
	if gv.Group != v1alpha1.GroupVersion.Group || !herald {
		sk := Skipped{Origin: origin, APIVersion: tm.APIVersion, Kind: tm.Kind, Name: tm.Metadata.Name}
		if sk.IsNamespace() && len(tm.Metadata.Labels) > 0 {
			if err := json.Unmarshal(tm.Metadata.Labels, &sk.Labels); err != nil {
				r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: "namespace " + sk.Name, Err: fmt.Errorf("metadata.labels: %w", err)})
				return
			}
		}
		r.Skipped = append(r.Skipped, sk)
		return
	}
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	name := Key{tm.Kind, ns, tm.Metadata.Name}.String()
	if gv != v1alpha1.GroupVersion {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: name,
			Err: fmt.Errorf("apiVersion %s is not served; use %s", tm.APIVersion, v1alpha1.GroupVersion)})
		return
	}
	if tm.Metadata.Name == "" {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: strings.ToLower(tm.Kind), Err: errors.New("metadata.name is required")})
		return
	}
	obj, err := decodeHerald(j, tm.Kind, ns)
	if err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: name, Err: err})
		return
	}
	obj.Origin = origin
	r.Objects = append(r.Objects, obj)
}

// decodeHerald decodes a Topic, Subscription or EventSource as the API
// server does on create: a field the CRD's schema does not know is an error
// (kubectl's default, strict field validation), status is dropped and the
// schema's defaults are applied. A value of the wrong type is reported with
// the API server's message for it.
func decodeHerald(j []byte, kind, ns string) (*Object, error) {
	var content map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &content); err != nil {
		return nil, err
	}
	if err := unstructured.SetNestedField(content, ns, "metadata", "namespace"); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	v, err := crdValidator()
	if err != nil {
		return nil, err
	}
	content, err = v.Decode(content)
	if se, ok := runtime.AsStrictDecodingError(err); ok {
		msgs := make([]string, len(se.Errors()))
		for i, e := range se.Errors() {
			msgs[i] = e.Error()
		}
		return nil, errors.New(strings.Join(msgs, "; "))
	}
	if err != nil {
		return nil, err
	}
	obj := &Object{content: content}
	var into any
	switch kind {
	case KindTopic:
		obj.Topic = &v1alpha1.Topic{}
		into = obj.Topic
	case KindSubscription:
		obj.Subscription = &v1alpha1.Subscription{}
		into = obj.Subscription
	case KindEventSource:
		obj.EventSource = &v1alpha1.EventSource{}
		into = obj.EventSource
	case KindReplay:
		obj.Replay = &v1alpha1.Replay{}
		into = obj.Replay
	}
	stored, err := json.Marshal(content)
	if err != nil {
		return nil, err
	}
	strict, err := kjson.UnmarshalStrict(stored, into, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err == nil && len(strict) > 0 {
		err = strict[0]
	}
	if err != nil {
		// The schema knows every field, so a value of the wrong type got
		// here; the schema validator names it as the API server would.
		if verr := v.Validate(context.Background(), content); verr != nil {
			return nil, verr
		}
		return nil, err
	}
	return obj, nil
}

// unmarshalStrict decodes j into obj as the API server would: duplicate
// and unknown fields are errors, all of them named in one.
func unmarshalStrict(j []byte, obj any) error {
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err == nil && len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		err = errors.New(strings.Join(msgs, "; "))
	}
	return err
}

// decodeSecret reads a v1 Secret strictly, as the API server would. Error
// messages name fields, never values.
func (r *FileResult) decodeSecret(origin Origin, j []byte, tm typeMeta) {
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	name := Key{KindSecret, ns, tm.Metadata.Name}.String()
	sec := &corev1.Secret{}
	err := unmarshalStrict(j, sec)
	if err != nil {
		// A bad base64 value makes encoding/json quote nothing of it, but
		// keep the message generic in case a decoder ever does.
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			err = fmt.Errorf("data: a value is not valid base64 (at byte %d); put plain text in stringData instead", int64(ce))
		}
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: name, Err: err})
		return
	}
	if tm.Metadata.Name == "" {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: "secret", Err: errors.New("metadata.name is required")})
		return
	}
	sec.Namespace = ns
	if len(sec.StringData) > 0 {
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		for k, v := range sec.StringData {
			sec.Data[k] = []byte(v)
		}
		sec.StringData = nil
	}
	r.Objects = append(r.Objects, &Object{Origin: origin, Secret: sec})
}

// decodeConfigMap reads a v1 ConfigMap strictly, as the API server would.
func (r *FileResult) decodeConfigMap(origin Origin, j []byte, tm typeMeta) {
	ns := tm.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	name := Key{KindConfigMap, ns, tm.Metadata.Name}.String()
	cm := &corev1.ConfigMap{}
	err := unmarshalStrict(j, cm)
	if err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: name, Err: err})
		return
	}
	if tm.Metadata.Name == "" {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Object: "configmap", Err: errors.New("metadata.name is required")})
		return
	}
	cm.Namespace = ns
	r.Objects = append(r.Objects, &Object{Origin: origin, ConfigMap: cm})
}

// decodeList reads the items of a v1 List, as kubectl does.
func (r *FileResult) decodeList(origin Origin, j []byte) {
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &list); err != nil {
		r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: fmt.Errorf("list: %w", err)})
		return
	}
	for i, item := range list.Items {
		b, err := yaml.Marshal(item)
		if err != nil {
			r.Errors = append(r.Errors, &ManifestError{Origin: origin, Err: fmt.Errorf("items[%d]: %w", i, err)})
			continue
		}
		n := len(r.Errors)
		r.decodeDocument(origin, b)
		for k := n; k < len(r.Errors); k++ {
			if me, ok := r.Errors[k].(*ManifestError); ok {
				me.Err = fmt.Errorf("items[%d]: %w", i, me.Err)
			}
		}
	}
}

var yamlLineRE = regexp.MustCompile(`line ([0-9]+)`)

// cleanYAMLError drops the wrapping sigs.k8s.io/yaml adds and makes the
// line numbers, which count from the document's start, count from the
// file's.
func cleanYAMLError(err error, start int) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		return "line " + strconv.Itoa(n+start-1)
	})
	return errors.New(strings.Join(strings.Fields(msg), " "))
}

type document struct {
	data []byte
	line int
}

// splitDocuments splits a YAML stream at "---" lines, keeping the line each
// document starts on. Documents holding only whitespace are dropped; a JSON
// file is one document.
func splitDocuments(data []byte) []document {
	var docs []document
	var cur bytes.Buffer
	start := 1
	flush := func() {
		if len(bytes.TrimSpace(cur.Bytes())) > 0 {
			docs = append(docs, document{data: bytes.Clone(cur.Bytes()), line: start})
		}
		cur.Reset()
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		if isSeparator(l) {
			flush()
			start = i + 2
			continue
		}
		if cur.Len() == 0 && len(bytes.TrimSpace(l)) == 0 {
			start = i + 2 // leading blank lines do not start the document
			continue
		}
		cur.Write(l)
	}
	flush()
	return docs
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}
