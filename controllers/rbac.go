package controllers

// The manager's ClusterRole (config/rbac/role.yaml, generated from the
// markers below by controller-gen), least privilege without wildcards:
//
//   - Herald's kinds: read, finalizers and status.
//   - Deployments, Services and ServiceAccounts: the dispatcher and adapter
//     objects it applies; Services are also read by the resolver.
//   - Namespaces: read, to resolve Topic publishers' namespaceSelectors.
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
//   - Roles and RoleBindings: each dispatcher and `herald adapter` gets a
//     Role allowing only create on serviceaccounts/token of its own
//     ServiceAccount, bound to it, so it can present its own identity to
//     the destinations it sends to. The API server lets the manager grant
//     that Role only if the manager holds the permission itself or may
//     escalate and bind: the manager holds create on serviceaccounts/token.
//     That is the least of the two: escalate and bind would let it grant
//     any permission at all, while minting a token for a ServiceAccount
//     gives nothing beyond what creating Deployments (which it must) gives
//     already, since a Pod it creates can run as any ServiceAccount of its
//     namespace and mount that ServiceAccount's token for any audience.
//
// Leader election's Leases are granted by a namespaced Role in the manager's
// namespace only (config/rbac/leader_election_role.yaml).
//
// Producers' tokens are verified offline: the dispatcher reads the issuer's
// discovery document and keys from the API server, which the built-in
// ClusterRoleBinding system:service-account-issuer-discovery grants every
// ServiceAccount. The TokenReview fallback (no discovery, or herald
// dispatcher --auth-token-review) needs create on tokenreviews, a
// cluster-wide permission the operator does not hand out: bind the
// dispatcher's ServiceAccount to the ClusterRole system:auth-delegator
// where it is wanted; without it tokens are answered 503, never accepted.
//
// Destinations referring to a Service or a Topic work out of the box. A ref
// to any other Addressable kind is read with get on that kind, which this
// role cannot grant without a wildcard: bind the manager's ServiceAccount a
// ClusterRole granting get on the kind (for example Knative Services), or
// the Destination reports Forbidden.
//
// The dispatcher's only Kubernetes API access is minting its own tokens
// (its token Role above); the same holds for ping and webhook adapters. An
// apiServer adapter runs as the user's ServiceAccount, bound whatever the
// user grants it, plus the token Role.

// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics;subscriptions;eventsources;replays,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics/status;subscriptions/status;eventsources/status;replays/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=eventing.herald.dev,resources=topics/finalizers;subscriptions/finalizers;eventsources/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;patch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=keda.sh,resources=scaledobjects,verbs=get;create;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts/token,verbs=create
