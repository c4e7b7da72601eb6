// Package apiserver is the apiServer event source: it watches Kubernetes
// objects with informers and sends a CloudEvent for every add, update and
// delete.
//
// Event attributes:
//
//	type     dev.herald.apiserver.resource.{add,update,delete} in mode Resource,
//	         dev.herald.apiserver.ref.{add,update,delete} in mode Reference;
//	source   the EventSource's path, /apis/eventing.herald.dev/v1alpha1/namespaces/<ns>/eventsources/<name>;
//	subject  the object's path in the API, e.g. /api/v1/namespaces/default/configmaps/cm1
//	         or /apis/apps/v1/namespaces/default/deployments/web;
//	id       <uid>/<resourceVersion>/<add|update|delete>, so a re-sent change deduplicates;
//	time     when the source observed the change;
//	data     application/json: in mode Resource the whole object, in mode Reference
//	         {"apiVersion","kind","namespace","name","uid","resourceVersion"};
//	extensions apiversion, kind, name and namespace (namespace only for namespaced objects),
//	         to filter on.
//
// As Knative's ApiServerSource does, the source sends an add for every
// object that exists when it starts (the informer's initial list), so a
// restarted adapter sends adds again: consumers see the current state, then
// changes. Updates that do not change resourceVersion (informer relists)
// send nothing. The events of one watched resource and namespace go out one
// at a time, in the order the API server reported them; an event the sink
// refuses or that fails every attempt is logged, counted and dropped.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/cache"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/sources"
)

// Event types of the apiServer source.
const (
	EventTypeResourceAdd    = "dev.herald.apiserver.resource.add"
	EventTypeResourceUpdate = "dev.herald.apiserver.resource.update"
	EventTypeResourceDelete = "dev.herald.apiserver.resource.delete"
	EventTypeRefAdd         = "dev.herald.apiserver.ref.add"
	EventTypeRefUpdate      = "dev.herald.apiserver.ref.update"
	EventTypeRefDelete      = "dev.herald.apiserver.ref.delete"
)

// Operations, the last part of an event type.
const (
	opAdd    = "add"
	opUpdate = "update"
	opDelete = "delete"
)

// Reference is the data of an event in mode Reference.
type Reference struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name"`
	UID             string `json:"uid"`
	ResourceVersion string `json:"resourceVersion"`
}

// watch is one informer: a resource in one namespace ("" for all
// namespaces or a cluster-scoped resource).
type watch struct {
	mapping   *meta.RESTMapping
	namespace string
	selector  labels.Selector
}

// Source is a running apiServer source.
type Source struct {
	spec      *v1alpha1.APIServerSource
	namespace string
	source    string
	dyn       dynamic.Interface
	mapper    meta.RESTMapper
	selectors []labels.Selector
	sender    *sources.Sender
	log       *slog.Logger
	ready     atomic.Bool
	now       func() time.Time
}

var _ sources.ReadyChecker = (*Source)(nil)

// New returns the apiServer source of cfg (cfg.APIServer must be set),
// talking to the API server of rc.
func New(cfg sources.Config, rc *rest.Config, opts sources.Options) (*Source, error) {
	if cfg.APIServer == nil {
		return nil, errors.New("apiServer: no apiServer spec")
	}
	selectors := make([]labels.Selector, len(cfg.APIServer.Resources))
	for i, r := range cfg.APIServer.Resources {
		sel, err := selectorOf(r.Selector)
		if err != nil {
			return nil, fmt.Errorf("apiServer: resources[%d] selector: %w", i, err)
		}
		selectors[i] = sel
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("apiServer: dynamic client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("apiServer: discovery client: %w", err)
	}
	cfg.Type = v1alpha1.EventSourceTypeAPIServer
	sender, err := sources.NewSenderFor(cfg, opts)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &Source{
		spec:      cfg.APIServer,
		namespace: cfg.Namespace,
		source:    sources.SourcePath(cfg.Namespace, cfg.Name),
		dyn:       dyn,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		selectors: selectors,
		sender:    sender,
		log:       log.With("eventsource", cfg.Namespace+"/"+cfg.Name, "type", "apiServer"),
		now:       time.Now,
	}, nil
}

func selectorOf(ls *metav1.LabelSelector) (labels.Selector, error) {
	if ls == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(ls)
}

// Ready reports whether every informer has listed its objects.
func (s *Source) Ready() bool { return s.ready.Load() }

// Run watches the resources and sends their changes until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	watches, err := s.watches()
	if err != nil {
		return err
	}
	sendCtx, cancel := sources.DrainContext(ctx, sources.ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	synced := make([]cache.InformerSynced, 0, len(watches))
	for _, w := range watches {
		inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, w.mapping.Resource, w.namespace, 0, cache.Indexers{},
			func(o *metav1.ListOptions) { o.LabelSelector = w.selector.String() }).Informer()
		if _, err := inf.AddEventHandler(s.handler(sendCtx, w)); err != nil {
			return fmt.Errorf("apiServer: add handler: %w", err)
		}
		synced = append(synced, inf.HasSynced)
		wg.Go(func() { inf.RunWithContext(ctx) })
		s.log.Info("watching", "resource", w.mapping.Resource.String(), "namespace", w.namespace, "selector", w.selector.String())
	}
	if cache.WaitForCacheSync(ctx.Done(), synced...) {
		s.ready.Store(true)
		s.log.Info("apiServer source synced")
	}
	wg.Wait()
	s.ready.Store(false)
	return nil
}

// watches maps the spec to one informer per resource and namespace.
func (s *Source) watches() ([]watch, error) {
	var out []watch
	for i, r := range s.spec.Resources {
		m, err := restMapping(s.mapper, r)
		if err != nil {
			return nil, err
		}
		for _, ns := range namespacesOf(m, s.spec.Namespaces, s.namespace) {
			out = append(out, watch{mapping: m, namespace: ns, selector: s.selectors[i]})
		}
	}
	return out, nil
}

// restMapping resolves a resource's apiVersion and kind, refreshing the
// discovery cache once when the kind is unknown.
func restMapping(mapper meta.RESTMapper, r v1alpha1.APIServerResource) (*meta.RESTMapping, error) {
	gv, err := schema.ParseGroupVersion(r.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("apiServer: apiVersion %q: %w", r.APIVersion, err)
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: r.Kind}
	m, err := mapper.RESTMapping(gk, gv.Version)
	if meta.IsNoMatchError(err) {
		if rm, ok := mapper.(meta.ResettableRESTMapper); ok {
			rm.Reset()
			m, err = mapper.RESTMapping(gk, gv.Version)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apiServer: %s %s: %w", r.APIVersion, r.Kind, err)
	}
	return m, nil
}

// namespacesOf is where a resource is watched: nowhere in particular ("")
// for a cluster-scoped resource, else the listed namespaces (without
// duplicates; "" means all), or own by default.
func namespacesOf(m *meta.RESTMapping, listed []string, own string) []string {
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return []string{""}
	}
	if len(listed) == 0 {
		return []string{own}
	}
	if slices.Contains(listed, metav1.NamespaceAll) {
		return []string{metav1.NamespaceAll}
	}
	out := slices.Clone(listed)
	slices.Sort(out)
	return slices.Compact(out)
}

// handler sends the changes one informer reports. client-go calls it from
// one goroutine per informer, in order, buffering while a send is retried.
func (s *Source) handler(ctx context.Context, w watch) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, _ bool) { s.send(ctx, w, opAdd, obj) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*unstructured.Unstructured)
			n, ok2 := newObj.(*unstructured.Unstructured)
			if ok1 && ok2 && o.GetResourceVersion() == n.GetResourceVersion() {
				return
			}
			s.send(ctx, w, opUpdate, newObj)
		},
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			s.send(ctx, w, opDelete, obj)
		},
	}
}

func (s *Source) send(ctx context.Context, w watch, op string, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		s.log.Error("unexpected object from informer", "go_type", fmt.Sprintf("%T", obj))
		return
	}
	e, err := s.Event(w.mapping, op, u)
	if err != nil {
		s.log.Error("cannot build event", "object", u.GetNamespace()+"/"+u.GetName(), "error", err)
		return
	}
	if err := s.sender.Send(ctx, e); err != nil {
		s.log.Error("event dropped", "id", e.ID(), "subject", e.Subject(), "error", err)
	}
}

// Event is the event of operation op (add, update or delete) on u.
func (s *Source) Event(m *meta.RESTMapping, op string, u *unstructured.Unstructured) (event.Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(string(u.GetUID()) + "/" + u.GetResourceVersion() + "/" + op)
	e.SetSource(s.source)
	e.SetSubject(SelfLink(m, u.GetNamespace(), u.GetName()))
	e.SetTime(s.now().UTC())
	apiVersion := u.GetAPIVersion()
	if apiVersion == "" {
		apiVersion = m.GroupVersionKind.GroupVersion().String()
	}
	kind := u.GetKind()
	if kind == "" {
		kind = m.GroupVersionKind.Kind
	}
	e.SetExtension("apiversion", apiVersion)
	e.SetExtension("kind", kind)
	e.SetExtension("name", u.GetName())
	if ns := u.GetNamespace(); ns != "" {
		e.SetExtension("namespace", ns)
	}
	var data []byte
	var err error
	if s.spec.Mode == v1alpha1.APIServerModeResource {
		e.SetType("dev.herald.apiserver.resource." + op)
		data, err = u.MarshalJSON()
	} else {
		e.SetType("dev.herald.apiserver.ref." + op)
		data, err = json.Marshal(Reference{
			APIVersion:      apiVersion,
			Kind:            kind,
			Namespace:       u.GetNamespace(),
			Name:            u.GetName(),
			UID:             string(u.GetUID()),
			ResourceVersion: u.GetResourceVersion(),
		})
	}
	if err != nil {
		return event.Event{}, err
	}
	if err := e.SetData("application/json", data); err != nil {
		return event.Event{}, err
	}
	return e, nil
}

// SelfLink is the path of an object in the API: /api/v1/... for the core
// group, /apis/<group>/<version>/... otherwise.
func SelfLink(m *meta.RESTMapping, namespace, name string) string {
	gvr := m.Resource
	p := "/apis/" + gvr.Group + "/" + gvr.Version
	if gvr.Group == "" {
		p = "/api/" + gvr.Version
	}
	if namespace != "" && m.Scope.Name() == meta.RESTScopeNameNamespace {
		p += "/namespaces/" + namespace
	}
	return p + "/" + gvr.Resource + "/" + name
}

// RequiredAccess is what the ServiceAccount of an apiServer source in
// namespace needs: get, list and watch on every resource of spec in every
// namespace it watches (cluster-wide for cluster-scoped resources or the
// namespace ""), as SubjectAccessReview attributes. mapper resolves kinds
// to resources; an unknown kind is an error.
func RequiredAccess(mapper meta.RESTMapper, namespace string, spec *v1alpha1.APIServerSource) ([]authorizationv1.ResourceAttributes, error) {
	var out []authorizationv1.ResourceAttributes
	seen := map[authorizationv1.ResourceAttributes]bool{}
	for _, r := range spec.Resources {
		m, err := restMapping(mapper, r)
		if err != nil {
			return nil, err
		}
		for _, ns := range namespacesOf(m, spec.Namespaces, namespace) {
			for _, verb := range []string{"get", "list", "watch"} {
				ra := authorizationv1.ResourceAttributes{
					Namespace: ns,
					Verb:      verb,
					Group:     m.Resource.Group,
					Version:   m.Resource.Version,
					Resource:  m.Resource.Resource,
				}
				if !seen[ra] {
					seen[ra] = true
					out = append(out, ra)
				}
			}
		}
	}
	return out, nil
}
