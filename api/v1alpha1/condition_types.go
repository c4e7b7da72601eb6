package v1alpha1

// Condition types. Every kind reports Ready; the others say which part of the
// object is or is not ready. Ready and status.observedGeneration together make
// every kind kstatus-compatible, so Argo CD, Flux and kubectl wait understand
// them without a custom health check.
const (
	// ConditionReady is True when the object does what its spec asks.
	ConditionReady = "Ready"

	// ConditionStalled is True when progress needs a change to the spec, for
	// example a Topic storage change JetStream refuses. kstatus reads it.
	ConditionStalled = "Stalled"

	// ConditionStreamReady is True when the Topic's JetStream stream matches its spec.
	ConditionStreamReady = "StreamReady"

	// ConditionDispatcherAvailable is True when the Topic's dispatcher
	// Deployment has its minimum available replicas.
	ConditionDispatcherAvailable = "DispatcherAvailable"

	// ConditionPlanPublished is True when the dispatch plan for the Topic holds
	// the current Subscriptions.
	ConditionPlanPublished = "PlanPublished"

	// ConditionTopicReady is True when a Subscription's Topic exists and is Ready.
	ConditionTopicReady = "TopicReady"

	// ConditionSubscriberResolved is True when every Destination of a
	// Subscription (subscriber, reply, dead-letter sink) resolved to a URI.
	ConditionSubscriberResolved = "SubscriberResolved"

	// ConditionConsumerReady is True when a Subscription's durable JetStream
	// consumer matches its spec.
	ConditionConsumerReady = "ConsumerReady"

	// ConditionSinkResolved is True when an EventSource's sink resolved to a URI.
	ConditionSinkResolved = "SinkResolved"

	// ConditionSourceConfigured is True when an EventSource's source-specific
	// settings are valid and permitted (cron schedule parses, ServiceAccount
	// may watch the resources, webhook secret exists).
	ConditionSourceConfigured = "SourceConfigured"

	// ConditionDeploymentAvailable is True when an EventSource's adapter
	// Deployment has its minimum available replicas.
	ConditionDeploymentAvailable = "DeploymentAvailable"

	// ConditionTypesDeclared is True when every event type a Subscription
	// names (spec.types, exact and prefix filters on type) is declared by
	// its Topic's contract, or the Topic has none. It does not affect Ready.
	ConditionTypesDeclared = "TypesDeclared"

	// ConditionComplete is True when a Replay handed every selected event to
	// its Subscription.
	ConditionComplete = "Complete"
)

// Condition reasons. A reason is CamelCase and says why a condition has its status.
const (
	// ReasonSucceeded: the condition holds.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: work is under way; the condition will change without user action.
	ReasonProgressing = "Progressing"
	// ReasonNotFound: a referenced object does not exist.
	ReasonNotFound = "NotFound"
	// ReasonNotReady: a referenced object exists but is not Ready.
	ReasonNotReady = "NotReady"
	// ReasonNotAddressable: a referenced object has no address.
	ReasonNotAddressable = "NotAddressable"
	// ReasonInvalidSpec: the spec is valid to the API server but cannot be
	// carried out (an unparsable cron schedule, a refused stream change).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonForbidden: a ServiceAccount lacks a permission the spec needs.
	ReasonForbidden = "Forbidden"
	// ReasonNATSError: NATS or JetStream returned an error; Herald retries.
	ReasonNATSError = "NATSError"
	// ReasonDeploymentUnavailable: a Deployment has fewer available replicas than required.
	ReasonDeploymentUnavailable = "DeploymentUnavailable"
	// ReasonDeleting: the object is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonUndeclaredType: a Subscription names an event type its Topic's
	// contract does not declare.
	ReasonUndeclaredType = "UndeclaredType"
	// ReasonReplaying: a Replay is handing events to its Subscription.
	ReasonReplaying = "Replaying"
)

// Finalizer is the finalizer Herald puts on Topics and Subscriptions so that
// their streams, consumers and plan entries are deleted with them.
const Finalizer = "eventing.herald.dev/finalizer"
