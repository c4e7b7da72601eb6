package controllers

// The manager's ClusterRole (config/rbac/role.yaml, generated from the
// markers below by controller-gen), least privilege without wildcards:
//
//   - Herald's kinds: read, finalizers and status.
//   - Deployments, Services and ServiceAccounts: the dispatcher and adapter
//     objects it applies; Services are also read by the resolver.
//   - NetworkPolicies: each dispatcher's (--dispatcher-network-policy).
//   - Secrets: create and patch only, to write each Topic's copy of the
//     dispatchers' NATS files (--dispatcher-nats-source) by server-side
//     apply. Without get, list or watch the manager cannot read any Secret
//     through this role; the one it copies from is granted by a Role in its
//     own namespace with get on that name alone (the chart's
//     <release>-nats-source Role). The copies are not watched: a Topic
//     applies its copy on every reconcile, RefreshInterval included, so a
//     deleted or edited copy, or a changed source, is repaired within it.
//   - Events (events.k8s.io): recorded on transitions.
//   - SubjectAccessReviews: whether an apiServer source's ServiceAccount may
//     get, list and watch the resources it watches. Creating one grants
//     nothing; it only asks the API server's authorizer.
//
// Leader election's Leases are granted by a namespaced Role in the manager's
// namespace only (config/rbac/leader_election_role.yaml).
//
// Destinations referring to a Service or a Topic work out of the box. A ref
// to any other Addressable kind is read with get on that kind, which this
// role cannot grant without a wildcard: bind the manager's ServiceAccount a
// ClusterRole granting get on the kind (for example Knative Services), or
// the Destination reports Forbidden.
//
// The dispatcher needs no Kubernetes API access: its ServiceAccount has no
// bindings and mounts no token.

// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics;subscriptions;eventsources;replays,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics/status;subscriptions/status;eventsources/status;replays/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics/finalizers;subscriptions/finalizers;eventsources/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
