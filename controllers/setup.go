// Package controllers holds Herald's reconcilers.
//
//   - Topic: the JetStream stream, the dispatcher ServiceAccount, token Role
//     and RoleBinding, Deployment, Service, NetworkPolicy and copy of the
//     NATS Secret, and the Topic's dispatch plan (with its publish policy,
//     from spec.publishers or Config.DefaultPublishMode) and consumers. It
//     is the only writer of the plan key and of the consumers of its
//     Subscriptions.
//   - Subscription: resolves its Destinations, checks that its spec compiles,
//     reports whether the Topic published its current generation, and its
//     consumer's lag; its finalizer deletes the consumer.
//   - EventSource: resolves its sink and runs the adapter Deployment (and a
//     webhook's Service).
//
// Each reconcile follows one shape, reconcileObject: get, deletion branch,
// finalizer, ordered steps that each own a condition, then one status patch
// with observedGeneration and Ready (kstatus-compatible). A step's error
// says what happens next: a spec that cannot be carried out (*Stalling) sets
// Stalled and is not retried until it changes; a waiting step (*Waiting)
// requeues or relies on a watch; a failure to reach NATS or the API server
// (*Generic) is returned and retried with backoff. Destinations resolve
// through package resolve, and the Topic applies its stream, consumers and
// plan with provision.Apply, as herald dev does.
//
// Watches: Topics watch their Subscriptions (creation, deletion, generation,
// resolved URIs) and the Namespaces their publishers' namespaceSelectors
// match (creation, deletion, labels); Subscriptions watch their Topic when
// what they read of it changes (Ready, generations, address), the Topics and
// Services they or their Topic's dead-letter sink refer to (field indexes),
// and the Topic reconciler's announcements that their entry in the plan
// changed (TopicReconciler.PlanChanged); EventSources watch the
// Topics and Services their sink refers to and, for apiServer sources, the
// creation and deletion of the ServiceAccount they run as (field index).
// Owned Deployments, Services, ServiceAccounts, Roles, RoleBindings and
// NetworkPolicies are watched, so drift is repaired at once, and applied
// only when the Topic's desired state changed or the cached object is not
// the one the last apply answered (appliedObjects); the copies of the dispatchers' NATS
// Secret are not (the manager may not read Secrets) and are applied again on
// every Topic reconcile. RBAC is not watched: an apiServer source whose
// ServiceAccount is denied access (SubjectAccessReview) is checked again
// every RefreshInterval.
//
// What NATS reports (stream size, consumer lag, dead-letter counts) is read
// in bulk every RefreshInterval by one figuresRefresher, which wakes only
// the Topics and Subscriptions whose figures changed or whose stream lost
// consumers behind the operator's back; an idle, Ready object is not
// reconciled again before ResyncInterval, unless it refers to a kind the
// reconcilers do not watch (resolved again every RefreshInterval).
package controllers

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/controllers/resources"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// Defaults of Config.
const (
	DefaultClusterDomain    = "cluster.local"
	DefaultRefreshInterval  = 30 * time.Second
	DefaultResyncInterval   = 10 * time.Minute
	DefaultProgressInterval = 2 * time.Second
	DefaultWorkers          = 8
)

// Config configures the reconcilers.
type Config struct {
	// ClusterDomain is the cluster's DNS domain, for Service URLs.
	ClusterDomain string
	// TracerProvider, when set, records a span per reconcile (traced).
	TracerProvider trace.TracerProvider
	// Dispatcher configures Topics' dispatcher Deployments.
	Dispatcher resources.DispatcherConfig
	// Adapter configures EventSources' adapter Deployments.
	Adapter resources.AdapterConfig
	// RefreshInterval is how often what NATS reports (a Topic's stream
	// size, a Subscription's consumer lag and dead-letter count) is read in
	// bulk, the objects whose figures changed being reconciled again; how
	// often Subscriptions referring to kinds the reconcilers do not watch
	// are resolved again; and how often an apiServer source whose
	// ServiceAccount may not watch its resources, or that names an unknown
	// kind, is checked again (RBAC objects and CRDs are not watched).
	RefreshInterval time.Duration
	// ResyncInterval is how often a Ready Topic or Subscription is
	// reconciled again although nothing it watches changed, as a safety
	// net: for example a plan key deleted behind the operator's back.
	ResyncInterval time.Duration
	// ProgressInterval is how soon a Subscription is looked at again while
	// it waits for its Topic to publish it in the plan.
	ProgressInterval time.Duration
	// Workers is the number of concurrent reconciles per kind. A reconcile
	// mostly waits for the API server and NATS, one request after another,
	// so more workers than cores keep both busy when many objects change.
	Workers int
	// DefaultPublishMode is the publish policy of Topics without
	// spec.publishers; empty means compiler.DefaultPublishMode.
	DefaultPublishMode plan.PublishMode
	// DefaultDispatcherMode is the dispatcher mode of Topics that do not
	// choose one (v1alpha1.Topic.EffectiveDispatcherMode); empty means shared.
	DefaultDispatcherMode v1alpha1.DispatcherMode
	// KEDA says how KEDA's scaler reaches NATS, for Topics with
	// spec.dispatcher.autoscaling while KEDA is installed.
	KEDA resources.KEDA
	// DispatcherNATSSource is the Secret the dispatchers' NATS files are
	// copied from into each Topic's namespace when Dispatcher.NATS.Copied.
	DispatcherNATSSource types.NamespacedName
	// DispatcherNATSCAFile is the CA bundle added to the copies as ca.crt
	// when the source has none; empty for none.
	DispatcherNATSCAFile string
}

func (c Config) withDefaults() Config {
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = DefaultResyncInterval
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.DefaultDispatcherMode == "" {
		c.DefaultDispatcherMode = v1alpha1.DispatcherShared
	}
	if c.DefaultPublishMode == "" {
		c.DefaultPublishMode = compiler.DefaultPublishMode
	}
	return c
}

// Setup registers the field indexes and the Topic, Subscription,
// EventSource and Replay reconcilers with mgr.
func Setup(ctx context.Context, mgr manager.Manager, prov *provision.Provisioner, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := setupIndexes(ctx, mgr); err != nil {
		return err
	}
	resolver := &Resolver{Reader: mgr.GetClient(), ClusterDomain: cfg.ClusterDomain}
	recorder := mgr.GetEventRecorder(resources.ManagedBy)
	planChanged := make(chan event.GenericEvent, 1024)
	refreshTopics, refreshSubs := make(chan event.GenericEvent, 1024), make(chan event.GenericEvent, 1024)
	if err := mgr.Add(&figuresRefresher{
		client: mgr.GetClient(), prov: prov, interval: cfg.RefreshInterval, topics: refreshTopics, subs: refreshSubs,
	}); err != nil {
		return fmt.Errorf("figures refresher: %w", err)
	}
	if err := (&TopicReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Provisioner: prov, Resolver: resolver, Recorder: recorder, Config: cfg,
		PlanChanged: planChanged, Refresh: refreshTopics,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("topic controller: %w", err)
	}
	if err := (&SharedDispatcherReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Config: cfg,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("shared dispatcher controller: %w", err)
	}
	if err := (&SubscriptionReconciler{
		Client: mgr.GetClient(), Provisioner: prov, Resolver: resolver, Recorder: recorder, Config: cfg,
		PlanChanged: planChanged, Refresh: refreshSubs,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("subscription controller: %w", err)
	}
	if err := (&EventSourceReconciler{
		Client: mgr.GetClient(), Resolver: resolver, Recorder: recorder, Config: cfg,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("eventsource controller: %w", err)
	}
	if err := (&ReplayReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Provisioner: prov, Recorder: recorder, Config: cfg,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("replay controller: %w", err)
	}
	return nil
}

// CacheByObject limits the manager's cache of Deployments and
// NetworkPolicies to those the operator manages, so a large cluster's workloads are not held in memory.
// Services are cached in full: the resolver reads any Service a Destination
// refers to. ServiceAccounts are cached in full too, without their
// managedFields: apiServer sources run as a ServiceAccount the user
// creates, whose creation the EventSource reconciler watches. They are small
// and few next to Deployments. Namespaces are cached likewise, for
// publishers' namespaceSelectors. Roles and RoleBindings are cached only
// for the operator's own (its workloads' token Roles).
func CacheByObject() map[client.Object]cache.ByObject {
	managed := labels.SelectorFromSet(labels.Set{resources.LabelManagedBy: resources.ManagedBy})
	return map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:          {Label: managed},
		&networkingv1.NetworkPolicy{}: {Label: managed},
		&rbacv1.Role{}:                {Label: managed},
		&rbacv1.RoleBinding{}:         {Label: managed},
		&corev1.ServiceAccount{}:      {Transform: cache.TransformStripManagedFields()},
		&corev1.Namespace{}:           {Transform: cache.TransformStripManagedFields()},
	}
}
