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
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
	"github.com/herald-dev/herald/replay"
	"github.com/herald-dev/herald/resolve"
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
	// Replays are the Replays whose Subscription is in an applied plan,
	// sorted; the Runtime carries them out.
	Replays []ResolvedReplay
	// Skipped are documents of other kinds.
	Skipped []Skipped
	// Authenticate is whether producers authenticate; when false every
	// Topic accepts every request, whatever its publishers.
	Authenticate bool
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

// ResolvedReplay is a Replay with the Subscription it delivers to.
type ResolvedReplay struct {
	Replay *v1alpha1.Replay
	Origin Origin
	Target *replay.Target
}

// Key is the Replay's "namespace/name".
func (r ResolvedReplay) Key() string { return r.Replay.Namespace + "/" + r.Replay.Name }

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
	// authenticate is whether producers authenticate (Config.Verifier is
	// set); publishMode is the publish policy of Topics without publishers
	// then. Without authentication every Topic is allow-all.
	authenticate bool
	publishMode  plan.PublishMode

	lastGood  map[string][]*Object // by absolute file path
	lastValid map[Key]*Object
	state     *devState
}

// newLoader returns a loader of the manifests at paths that applies them
// with prov, resolves refs to Topics to ingressURL/<namespace>/<name>, keeps
// its state in dataDir (state is what it holds now) and serves webhook
// EventSources when webhooks is set.
func newLoader(paths []string, ingressURL string, prov *provision.Provisioner, dataDir string, state *devState, webhooks bool) *loader {
	return &loader{
		paths:     paths,
		resolver:  func(topics map[string]bool) *Resolver { return &Resolver{IngressURL: ingressURL, Topics: topics} },
		prov:      prov,
		dataDir:   dataDir,
		webhooks:  webhooks,
		lastGood:  map[string][]*Object{},
		lastValid: map[Key]*Object{},
		state:     state,
	}
}

// loadRun is one load of the manifests: what each step learns for the next.
type loadRun struct {
	st *Status
	// broken holds the absolute paths of files read with errors.
	broken map[string]bool
	// objs are the objects read, each file's at its served version.
	objs []*Object
	// declared holds the first declaration of each object; valid the
	// version of each that is served.
	declared, valid map[Key]*Object
	// topics holds the served Topics by "namespace/name", topicOrigin where
	// each was declared.
	topics      map[string]*v1alpha1.Topic
	topicOrigin map[string]Origin
	res         *Resolver
	// subsOf holds each Topic's resolved Subscriptions, keepOf the names of
	// its Subscriptions that did not resolve (their consumers stay), and
	// subOrigin where each Subscription was declared.
	subsOf    map[string][]compiler.ResolvedSubscription
	keepOf    map[string][]string
	subOrigin map[string]Origin
	// namespaces holds the labels of the v1 Namespaces the files declare,
	// by name, for publishers' namespaceSelectors.
	namespaces map[string]map[string]string
}

// fail records err against the object k declared at origin.
func (r *loadRun) fail(origin Origin, object string, err error) {
	r.st.Errors = append(r.st.Errors, &ManifestError{Origin: origin, Object: object, Err: err})
}

// load reads the manifests and makes the data plane match them, in the
// operator's order: read, pick one declaration per object, validate,
// resolve the Subscriptions, apply each Topic, delete the Topics no longer
// declared, then resolve the EventSources. An error means the manifests
// could not even be listed; everything else is in the Status.
func (l *loader) load(ctx context.Context) (*Status, error) {
	files, err := ListFiles(l.paths)
	if err != nil {
		return nil, fmt.Errorf("list manifests: %w", err)
	}
	r := &loadRun{st: &Status{Files: files, Authenticate: l.authenticate}}
	for _, step := range []func(context.Context, *loadRun){
		l.readFiles,
		l.declare,
		l.validate,
		l.resolveSubscriptions,
		l.applyTopics,
		l.deleteUndeclaredTopics,
		l.listForeignTopics,
		l.resolveSources,
		l.resolveReplays,
	} {
		step(ctx, r)
	}
	return r.st, nil
}

// readFiles decodes every file; a file with errors is served at its last
// good version.
func (l *loader) readFiles(_ context.Context, r *loadRun) {
	r.broken = map[string]bool{}
	present := map[string]bool{}
	for _, f := range r.st.Files {
		fr := LoadFile(f)
		abs := absPath(f)
		present[abs] = true
		r.st.Skipped = append(r.st.Skipped, fr.Skipped...)
		for _, sk := range fr.Skipped {
			if _, dup := r.namespaces[sk.Name]; sk.IsNamespace() && !dup {
				if r.namespaces == nil {
					r.namespaces = map[string]map[string]string{}
				}
				r.namespaces[sk.Name] = sk.Labels
			}
		}
		if len(fr.Errors) == 0 {
			l.lastGood[abs] = fr.Objects
			r.objs = append(r.objs, fr.Objects...)
			continue
		}
		r.broken[abs] = true
		r.st.Errors = append(r.st.Errors, fr.Errors...)
		if good, ok := l.lastGood[abs]; ok {
			r.st.Notes = append(r.st.Notes, fmt.Sprintf("%s has errors: serving its last good version", f))
			r.objs = append(r.objs, good...)
			continue
		}
		r.objs = append(r.objs, fr.Objects...)
	}
	for f := range l.lastGood {
		if !present[f] {
			delete(l.lastGood, f)
		}
	}
}

// declare keeps one object per kind, namespace and name: the first
// declaration wins.
func (l *loader) declare(_ context.Context, r *loadRun) {
	r.declared = map[Key]*Object{}
	for _, o := range r.objs {
		k := o.Key()
		if prev, dup := r.declared[k]; dup {
			r.fail(o.Origin, k.String(), fmt.Errorf("already declared in %s; this one is ignored", prev.Origin))
			continue
		}
		r.declared[k] = o
	}
}

// validate checks each object; an invalid object is served at its last
// valid version.
func (l *loader) validate(_ context.Context, r *loadRun) {
	r.valid = map[Key]*Object{}
	for _, k := range sortedKeys(r.declared) {
		o := r.declared[k]
		if err := Validate(o); err != nil {
			r.fail(o.Origin, k.String(), err)
			if prev, ok := l.lastValid[k]; ok {
				r.st.Notes = append(r.st.Notes, fmt.Sprintf("%s has errors: serving its last valid version", k))
				r.valid[k] = prev
			}
			continue
		}
		r.valid[k] = o
		l.lastValid[k] = o
	}
	for k := range l.lastValid {
		if _, ok := r.declared[k]; !ok {
			delete(l.lastValid, k)
		}
	}
	r.topics = map[string]*v1alpha1.Topic{}
	r.topicOrigin = map[string]Origin{}
	for k, o := range r.valid {
		if o.Topic != nil {
			r.topics[k.Namespace+"/"+k.Name] = o.Topic
			r.topicOrigin[k.Namespace+"/"+k.Name] = o.Origin
		}
	}
	r.res = l.resolver(mapKeys(r.topics))
}

// resolveSubscriptions resolves each Subscription's Destinations, writes
// the signing keys of those with spec.signing to the data directory, and
// groups the Subscriptions by Topic.
func (l *loader) resolveSubscriptions(ctx context.Context, r *loadRun) {
	r.subsOf = map[string][]compiler.ResolvedSubscription{}
	r.keepOf = map[string][]string{}
	r.subOrigin = map[string]Origin{}
	for _, k := range sortedKeys(r.valid) {
		o := r.valid[k]
		s := o.Subscription
		if s == nil {
			continue
		}
		tk := s.Namespace + "/" + s.Spec.Topic
		t, ok := r.topics[tk]
		if !ok {
			why := "is not declared in the manifests"
			if _, d := r.declared[Key{KindTopic, s.Namespace, s.Spec.Topic}]; d {
				why = "has errors"
			}
			r.fail(o.Origin, k.String(), fmt.Errorf("topic %s %s", tk, why))
			continue
		}
		r.subOrigin[s.Namespace+"/"+s.Name] = o.Origin
		rs, err := resolve.Subscription(ctx, r.res, t, s)
		if err == nil && s.Spec.Signing != nil {
			if rs.SigningKeyDir, err = writeSigningKeys(r.valid, r.declared, l.dataDir, s); err != nil {
				err = fmt.Errorf("spec.signing: %w", err)
			}
		}
		if err != nil {
			r.fail(o.Origin, k.String(), err)
			r.keepOf[tk] = append(r.keepOf[tk], s.Name)
			continue
		}
		rs.ConsumeMode = l.publishMode
		r.subsOf[tk] = append(r.subsOf[tk], rs)
	}
	if err := pruneSigningKeys(l.dataDir, r.subsOf); err != nil {
		r.st.Notes = append(r.st.Notes, err.Error())
	}
}

// publishPolicy compiles t's publish policy as the operator does, with
// namespaceSelectors matched against the labels of the Namespaces the files
// declare. Without authentication the Topic is allow-all once its policy
// compiled, so a Topic the operator would refuse is refused here too.
func (l *loader) publishPolicy(t *v1alpha1.Topic, namespaces map[string]map[string]string) (plan.PublishPolicy, error) {
	selected, err := compiler.SelectedNamespaces(t, namespaces)
	if err != nil {
		return plan.PublishPolicy{}, err
	}
	pol, err := compiler.PublishPolicy(t, l.publishMode, selected)
	if err != nil || l.authenticate {
		return pol, err
	}
	return compiler.ModePolicy(t.Namespace, plan.PublishAllowAll)
}

// openPulls lets anyone pull from p's pull Subscriptions unless herald dev
// authenticates, as publishPolicy lets anyone publish; their consumers
// compiled, so a Subscription the operator would refuse is refused here
// too.
func (l *loader) openPulls(p *plan.TopicPlan) {
	if l.authenticate {
		return
	}
	for i := range p.Subscriptions {
		if sp := &p.Subscriptions[i]; sp.IsPull() {
			open, _ := compiler.ModePolicy(p.Namespace, plan.PublishAllowAll)
			sp.Consume = &open
		}
	}
}

// applyTopics compiles each Topic with the operator's compiler and applies
// it with the operator's applier. A Subscription that does not compile or
// whose consumer JetStream refuses is reported and left out of the plan;
// the Topic's other Subscriptions are served.
func (l *loader) applyTopics(ctx context.Context, r *loadRun) {
	for _, tk := range slices.Sorted(maps.Keys(r.topics)) {
		t := r.topics[tk].DeepCopy()
		origin := r.topicOrigin[tk]
		if t.Spec.Replicas > 1 {
			r.st.Notes = append(r.st.Notes, fmt.Sprintf("topic %s: replicas %d is served with 1 by herald dev's single NATS server", tk, t.Spec.Replicas))
			t.Spec.Replicas = 1
		}
		ct, err := compiler.InlineSchemas(t, func(ns string, ref corev1.ConfigMapKeySelector) (string, error) {
			return configMapKey(r.valid, r.declared, ns, ref)
		})
		if err != nil {
			r.fail(origin, "topic "+tk, err)
			continue
		}
		cr, err := compiler.Compile(ct, r.subsOf[tk])
		if err != nil {
			r.fail(origin, "topic "+tk, err)
			continue
		}
		if cr.Plan.Publish, err = l.publishPolicy(t, r.namespaces); err != nil {
			r.fail(origin, "topic "+tk, err)
			continue
		}
		l.openPulls(&cr.Plan)
		keep := r.keepOf[tk]
		for _, name := range slices.Sorted(maps.Keys(cr.Errors)) {
			keep = append(keep, name)
			r.fail(r.subOrigin[t.Namespace+"/"+name], "subscription "+t.Namespace+"/"+name, cr.Errors[name])
		}
		rep, err := l.prov.Apply(ctx, cr, keep...)
		if errors.Is(err, provision.ErrRefused) {
			err = fmt.Errorf("%w (delete the Topic's stream, for example by removing the data directory, or give the Topic another name)", err)
		}
		if err != nil {
			r.fail(origin, "topic "+tk, err)
		}
		for _, name := range slices.Sorted(maps.Keys(rep.Subscriptions)) {
			if err := rep.Subscriptions[name]; err != nil {
				r.fail(r.subOrigin[t.Namespace+"/"+name], "subscription "+t.Namespace+"/"+name, err)
			}
		}
		if !rep.Published {
			continue
		}
		if rec, had := l.state.Topics[tk]; !had || rec.File != absPath(origin.File) {
			l.state.Topics[tk] = topicRecord{File: absPath(origin.File)}
		}
		stream := cr.Stream
		if rep.StreamErr != nil && rep.Stream != nil {
			// The old stream serves until the refused change is resolved.
			stream = rep.Stream.Config
		}
		r.st.Topics = append(r.st.Topics, TopicStatus{Namespace: t.Namespace, Name: t.Name, URL: r.res.TopicURL(t.Namespace, t.Name),
			Origin: origin, Stream: stream, Plan: rep.Plan})
		for _, sp := range rep.Plan.Subscriptions {
			r.st.Subscriptions = append(r.st.Subscriptions, SubscriptionStatus{Namespace: t.Namespace, Name: sp.Name, Topic: t.Name,
				Origin: r.subOrigin[t.Namespace+"/"+sp.Name], Plan: sp})
		}
	}
	slices.SortFunc(r.st.Subscriptions, func(a, b SubscriptionStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}

// deleteUndeclaredTopics deletes the Topics herald dev created whose
// manifest no longer declares them, and records the Topics it serves. A
// Topic whose file has errors, or that came from a file outside the paths
// given, is kept.
func (l *loader) deleteUndeclaredTopics(ctx context.Context, r *loadRun) {
	for _, tk := range slices.Sorted(maps.Keys(l.state.Topics)) {
		ns, name, _ := strings.Cut(tk, "/")
		if _, ok := r.declared[Key{KindTopic, ns, name}]; ok {
			continue
		}
		rec := l.state.Topics[tk]
		if r.broken[rec.File] || !l.covers(rec.File) {
			continue
		}
		if err := l.prov.DeleteTopic(ctx, ns, name); err != nil {
			r.st.Errors = append(r.st.Errors, fmt.Errorf("delete topic %s: %w", tk, err))
			continue
		}
		delete(l.state.Topics, tk)
		r.st.Deleted = append(r.st.Deleted, tk)
	}
	if err := l.state.save(l.dataDir); err != nil {
		r.st.Errors = append(r.st.Errors, fmt.Errorf("save %s: %w", stateFile, err))
	}
}

// listForeignTopics lists the Topics in the data directory that these
// manifests do not declare.
func (l *loader) listForeignTopics(ctx context.Context, r *loadRun) {
	keys, err := l.prov.Keys(ctx)
	if err != nil {
		r.st.Errors = append(r.st.Errors, fmt.Errorf("list plans: %w", err))
	}
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, ".")
		if _, ok := r.declared[Key{KindTopic, ns, name}]; !ok {
			r.st.Foreign = append(r.st.Foreign, ns+"/"+name)
		}
	}
	slices.Sort(r.st.Foreign)
}

// resolveSources lists the EventSources herald dev runs, with their sinks
// and webhook keys.
func (l *loader) resolveSources(ctx context.Context, r *loadRun) {
	for _, k := range sortedKeys(r.valid) {
		o := r.valid[k]
		es := o.EventSource
		if es == nil {
			continue
		}
		key := es.Namespace + "/" + es.Name
		switch typ := es.Spec.Type(); typ {
		case v1alpha1.EventSourceTypePing:
		case v1alpha1.EventSourceTypeWebhook:
			if !l.webhooks {
				r.st.Notes = append(r.st.Notes, fmt.Sprintf("eventsource %s: not served: the webhook listener is disabled (--webhook-listen is empty)", key))
				continue
			}
		default:
			r.st.Notes = append(r.st.Notes, fmt.Sprintf("eventsource %s: %s sources need a cluster; herald dev runs ping and webhook", key, typ))
			continue
		}
		sink, err := resolve.Destination(ctx, r.res, es.Namespace, &es.Spec.Sink)
		if err != nil {
			r.fail(o.Origin, k.String(), fmt.Errorf("sink: %w", err))
			continue
		}
		rs := ResolvedSource{Source: es, SinkURI: sink.URI, SinkAudience: sink.Audience, Origin: o.Origin}
		if w := es.Spec.Webhook; w != nil && w.Signature != nil {
			if rs.WebhookSecret, err = secretKey(r.valid, r.declared, es.Namespace, w.Signature.SecretKeyRef); err != nil {
				r.fail(o.Origin, k.String(), fmt.Errorf("spec.webhook.signature.secretKeyRef: %w", err))
				continue
			}
		}
		r.st.Sources = append(r.st.Sources, rs)
	}
}

// resolveReplays finds the Subscription of each Replay among those in the
// applied plans; a Replay of any other Subscription is an error until its
// Subscription is served.
func (l *loader) resolveReplays(_ context.Context, r *loadRun) {
	applied := map[string]SubscriptionStatus{}
	for _, s := range r.st.Subscriptions {
		applied[s.Namespace+"/"+s.Name] = s
	}
	for _, k := range sortedKeys(r.valid) {
		o := r.valid[k]
		if o.Replay == nil {
			continue
		}
		name := k.Namespace + "/" + o.Replay.Spec.Subscription
		s, ok := applied[name]
		if !ok {
			r.fail(o.Origin, k.String(), fmt.Errorf("subscription %s is not served: the Replay waits for it", name))
			continue
		}
		t := replay.NewTarget(s.Namespace, s.Topic, s.Name)
		t.DeadLetterTopic = s.Plan.DeadLetterTopic
		if o.Replay.Spec.From.DeadLetters != nil && t.DeadLetterTopic == "" {
			r.fail(o.Origin, k.String(), fmt.Errorf("subscription %s has no dead-letter Topic: its delivery.deadLetterSink (or its Topic's) must be a ref to a Topic", name))
			continue
		}
		r.st.Replays = append(r.st.Replays, ResolvedReplay{Replay: o.Replay, Origin: o.Origin, Target: t})
	}
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

// configMapKey returns the value of ref's key in a ConfigMap of the
// manifests in namespace.
func configMapKey(valid, declared map[Key]*Object, namespace string, ref corev1.ConfigMapKeySelector) (string, error) {
	k := Key{KindConfigMap, namespace, ref.Name}
	o, ok := valid[k]
	if !ok {
		if _, d := declared[k]; d {
			return "", fmt.Errorf("configmap %s/%s has errors", namespace, ref.Name)
		}
		return "", fmt.Errorf("%w (herald dev reads v1 ConfigMaps from the same files)", compiler.MissingConfigMapKey(namespace, ref, false))
	}
	v, ok := o.ConfigMap.Data[ref.Key]
	if !ok {
		return "", compiler.MissingConfigMapKey(namespace, ref, true)
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
