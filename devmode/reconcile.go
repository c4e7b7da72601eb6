package devmode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/dispatcher/plan"
	"github.com/herald-dev/herald/provision"
)

// Status is the outcome of one load of the manifests.
type Status struct {
	// Files are the manifest files read.
	Files []string
	// Topics are the Topics whose plan was applied, sorted.
	Topics []TopicStatus
	// Subscriptions are the Subscriptions in the applied plans, sorted.
	Subscriptions []SubscriptionStatus
	// Sources are the EventSources running: handed to the SourceRunner,
	// which started them. Sources herald dev does not run are in Notes;
	// sources that could not start are in Errors.
	Sources []ResolvedSource
	// Skipped are documents of other kinds.
	Skipped []Skipped
	// Errors are manifests that are not (or not fully) applied, and why.
	Errors []error
	// Notes say where herald dev serves something differently from the
	// manifest, for example an older version of an object with errors.
	Notes []string
	// Deleted are the Topics deleted because their manifest no longer
	// declares them, as namespace/name.
	Deleted []string
	// Foreign are Topics in the data directory that these manifests do not
	// declare and herald dev left alone, as namespace/name.
	Foreign []string
}

// TopicStatus is an applied Topic.
type TopicStatus struct {
	Namespace, Name string
	// URL is where producers POST events.
	URL    string
	Origin Origin
	// Stream is the applied stream configuration.
	Stream jetstream.StreamConfig
	Plan   plan.TopicPlan
}

// SubscriptionStatus is a Subscription in an applied plan.
type SubscriptionStatus struct {
	Namespace, Name, Topic string
	Origin                 Origin
	Plan                   plan.SubscriptionPlan
}

// loader holds what herald dev remembers between loads: the last version of
// each file and object that had no errors, served while a newer version has
// errors (as the API server keeps the old object when kubectl apply of a new
// one is refused), and the Topics it created.
type loader struct {
	paths    []string
	resolver func(topics map[string]bool) *Resolver
	prov     *provision.Provisioner
	dataDir  string
	// webhooks is whether webhook EventSources are served.
	webhooks bool

	lastGood  map[string][]*Object // by absolute file path
	lastValid map[Key]*Object
	state     *devState
}

func (l *loader) load(ctx context.Context) (*Status, error) {
	st := &Status{}
	files, err := ListFiles(l.paths)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	st.Files = files

	// Decode every file; a file with errors is served at its last good version.
	var objs []*Object
	broken := map[string]bool{}
	present := map[string]bool{}
	for _, f := range files {
		fr := LoadFile(f)
		abs := absPath(f)
		present[abs] = true
		st.Skipped = append(st.Skipped, fr.Skipped...)
		if len(fr.Errors) == 0 {
			l.lastGood[abs] = fr.Objects
			objs = append(objs, fr.Objects...)
			continue
		}
		broken[abs] = true
		st.Errors = append(st.Errors, fr.Errors...)
		if good, ok := l.lastGood[abs]; ok {
			st.Notes = append(st.Notes, fmt.Sprintf("%s has errors: serving its last good version", f))
			objs = append(objs, good...)
			continue
		}
		objs = append(objs, fr.Objects...)
	}
	for f := range l.lastGood {
		if !present[f] {
			delete(l.lastGood, f)
		}
	}

	// One object per kind, namespace and name; the first declaration wins.
	declared := map[Key]*Object{}
	for _, o := range objs {
		k := o.Key()
		if prev, dup := declared[k]; dup {
			st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(),
				Err: fmt.Errorf("already declared in %s; this one is ignored", prev.Origin)})
			continue
		}
		declared[k] = o
	}

	// Validate; an invalid object is served at its last valid version.
	valid := map[Key]*Object{}
	for _, k := range sortedKeys(declared) {
		o := declared[k]
		if err := Validate(o); err != nil {
			st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(), Err: err})
			if prev, ok := l.lastValid[k]; ok {
				st.Notes = append(st.Notes, fmt.Sprintf("%s has errors: serving its last valid version", k))
				valid[k] = prev
			}
			continue
		}
		valid[k] = o
		l.lastValid[k] = o
	}
	for k := range l.lastValid {
		if _, ok := declared[k]; !ok {
			delete(l.lastValid, k)
		}
	}

	topics := map[string]*v1alpha1.Topic{}
	topicOrigin := map[string]Origin{}
	for k, o := range valid {
		if o.Topic != nil {
			topics[k.Namespace+"/"+k.Name] = o.Topic
			topicOrigin[k.Namespace+"/"+k.Name] = o.Origin
		}
	}
	res := l.resolver(mapKeys(topics))

	// Resolve each Subscription's destinations and group them by Topic.
	subsOf := map[string][]plan.ResolvedSubscription{}
	subOrigin := map[string]Origin{}
	for _, k := range sortedKeys(valid) {
		o := valid[k]
		if o.Subscription == nil {
			continue
		}
		s := o.Subscription
		tk := s.Namespace + "/" + s.Spec.Topic
		t, ok := topics[tk]
		if !ok {
			why := "is not declared in the manifests"
			if _, d := declared[Key{KindTopic, s.Namespace, s.Spec.Topic}]; d {
				why = "has errors"
			}
			st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(), Err: fmt.Errorf("topic %s %s", tk, why)})
			continue
		}
		rs, err := resolveSubscription(res, t, s)
		if err != nil {
			st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(), Err: err})
			continue
		}
		subsOf[tk] = append(subsOf[tk], rs)
		subOrigin[s.Namespace+"/"+s.Name] = o.Origin
	}

	// Compile and apply each Topic with the operator's compiler.
	for _, tk := range slices.Sorted(maps.Keys(topics)) {
		t := topics[tk].DeepCopy()
		origin := topicOrigin[tk]
		if t.Spec.Replicas > 1 {
			st.Notes = append(st.Notes, fmt.Sprintf("topic %s: replicas %d is served with 1 by herald dev's single NATS server", tk, t.Spec.Replicas))
			t.Spec.Replicas = 1
		}
		cr, err := plan.Compile(t, subsOf[tk])
		if err != nil {
			st.Errors = append(st.Errors, &ManifestError{Origin: origin, Object: "topic " + tk, Err: err})
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(cr.Errors)) {
			st.Errors = append(st.Errors, &ManifestError{Origin: subOrigin[t.Namespace+"/"+name],
				Object: "subscription " + t.Namespace + "/" + name, Err: cr.Errors[name]})
		}
		if err := l.prov.Apply(ctx, cr); err != nil {
			if errors.Is(err, provision.ErrRefused) {
				err = fmt.Errorf("%w (delete the Topic's stream, for example by removing the data directory, or give the Topic another name)", err)
			}
			st.Errors = append(st.Errors, &ManifestError{Origin: origin, Object: "topic " + tk, Err: err})
			continue
		}
		if _, had := l.state.Topics[tk]; !had || l.state.Topics[tk].File != absPath(origin.File) {
			l.state.Topics[tk] = topicRecord{File: absPath(origin.File)}
		}
		st.Topics = append(st.Topics, TopicStatus{Namespace: t.Namespace, Name: t.Name, URL: res.TopicURL(t.Namespace, t.Name),
			Origin: origin, Stream: cr.Stream, Plan: cr.Plan})
		for _, sp := range cr.Plan.Subscriptions {
			st.Subscriptions = append(st.Subscriptions, SubscriptionStatus{Namespace: t.Namespace, Name: sp.Name, Topic: t.Name,
				Origin: subOrigin[t.Namespace+"/"+sp.Name], Plan: sp})
		}
	}
	slices.SortFunc(st.Subscriptions, func(a, b SubscriptionStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})

	// Delete the Topics herald dev created whose manifest no longer declares
	// them. A Topic whose file has errors, or that came from a file outside
	// the paths given, is kept.
	for _, tk := range slices.Sorted(maps.Keys(l.state.Topics)) {
		ns, name, _ := strings.Cut(tk, "/")
		if _, ok := declared[Key{KindTopic, ns, name}]; ok {
			continue
		}
		rec := l.state.Topics[tk]
		if broken[rec.File] || !l.covers(rec.File) {
			continue
		}
		if err := l.prov.DeleteTopic(ctx, ns, name); err != nil {
			st.Errors = append(st.Errors, fmt.Errorf("delete topic %s: %w", tk, err))
			continue
		}
		delete(l.state.Topics, tk)
		st.Deleted = append(st.Deleted, tk)
	}
	if err := l.state.save(l.dataDir); err != nil {
		st.Errors = append(st.Errors, fmt.Errorf("save %s: %w", stateFile, err))
	}

	// Topics in the data directory that these manifests do not declare.
	keys, err := l.prov.Keys(ctx)
	if err != nil {
		st.Errors = append(st.Errors, fmt.Errorf("list plans: %w", err))
	}
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, ".")
		if _, ok := declared[Key{KindTopic, ns, name}]; !ok {
			st.Foreign = append(st.Foreign, ns+"/"+name)
		}
	}
	slices.Sort(st.Foreign)

	// EventSources: the ones herald dev runs, with their sinks and keys.
	for _, k := range sortedKeys(valid) {
		o := valid[k]
		es := o.EventSource
		if es == nil {
			continue
		}
		key := es.Namespace + "/" + es.Name
		switch typ := es.Spec.Type(); typ {
		case v1alpha1.EventSourceTypePing:
		case v1alpha1.EventSourceTypeWebhook:
			if !l.webhooks {
				st.Notes = append(st.Notes, fmt.Sprintf("eventsource %s: not served: the webhook listener is disabled (--webhook-listen is empty)", key))
				continue
			}
		default:
			st.Notes = append(st.Notes, fmt.Sprintf("eventsource %s: %s sources need a cluster; herald dev runs ping and webhook", key, typ))
			continue
		}
		sink, err := res.Resolve(&es.Spec.Sink, es.Namespace)
		if err != nil {
			st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(), Err: fmt.Errorf("sink: %w", err)})
			continue
		}
		rs := ResolvedSource{Source: es, SinkURI: sink, Origin: o.Origin}
		if w := es.Spec.Webhook; w != nil && w.Signature != nil {
			if rs.WebhookSecret, err = secretKey(valid, declared, es.Namespace, w.Signature.SecretKeyRef); err != nil {
				st.Errors = append(st.Errors, &ManifestError{Origin: o.Origin, Object: k.String(),
					Err: fmt.Errorf("spec.webhook.signature.secretKeyRef: %w", err)})
				continue
			}
		}
		st.Sources = append(st.Sources, rs)
	}
	return st, nil
}

// secretKey returns the value of ref's key in a Secret of the manifests in
// namespace. Errors name the Secret and key, never a value.
func secretKey(valid, declared map[Key]*Object, namespace string, ref corev1.SecretKeySelector) ([]byte, error) {
	k := Key{KindSecret, namespace, ref.Name}
	o, ok := valid[k]
	if !ok {
		if _, d := declared[k]; d {
			return nil, fmt.Errorf("secret %s/%s has errors", namespace, ref.Name)
		}
		return nil, fmt.Errorf("secret %s/%s is not declared in the manifests (herald dev reads v1 Secrets from the same files; give it key %q in data or stringData)",
			namespace, ref.Name, ref.Key)
	}
	v, ok := o.Secret.Data[ref.Key]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s has no key %q", namespace, ref.Name, ref.Key)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("key %q of secret %s/%s is empty", ref.Key, namespace, ref.Name)
	}
	return v, nil
}

// covers reports whether file is among the manifests the paths name.
func (l *loader) covers(file string) bool {
	for _, p := range l.paths {
		ap := absPath(p)
		if ap == file || ap == filepath.Dir(file) {
			return true
		}
	}
	return false
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func sortedKeys(m map[Key]*Object) []Key {
	keys := make([]Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b Key) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return keys
}

func mapKeys[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}
