// Package sources implements Herald's event source adapters: ping (cron),
// webhook (HTTP → CloudEvents) and the shared sender; package
// sources/apiserver adds the apiServer source and sources/adapter runs one
// source as `herald adapter`.
//
// # Adapter contract
//
// The operator runs `herald adapter` with this environment. Every variable
// has a flag of the same meaning; a flag given on the command line wins.
//
//	K_SINK                   --sink              URL every event is POSTed to (required).
//	K_AUDIENCE               --audience          audience of the bearer token presented to the sink
//	                                             (the resolved sink's audience); empty for none.
//	HERALD_POD_NAMESPACE,                        the Pod's namespace and ServiceAccount (downward
//	HERALD_SERVICE_ACCOUNT                       API), whose tokens the adapter requests for the
//	                                             sink's audience (TokenRequest).
//	K_CE_OVERRIDES           --ce-overrides      JSON {"extensions":{"name":"value"}} set on every
//	                                             event, replacing any value the source set; empty,
//	                                             unset or {} for none.
//	HERALD_SOURCE_TYPE       --source-type       ping, apiServer or webhook (required).
//	HERALD_SOURCE_NAMESPACE  --source-namespace  namespace of the EventSource (required).
//	HERALD_SOURCE_NAME       --source-name       name of the EventSource (required).
//	HERALD_SOURCE_SPEC       --source-spec       JSON of spec.ping, spec.apiServer or spec.webhook,
//	                                             as in the API (required; unknown fields are refused).
//	HERALD_WEBHOOK_SECRET    --webhook-secret    the HMAC key of a webhook with spec.signature
//	                                             (required then); the operator maps it from the
//	                                             Secret through secretKeyRef.
//	                         --listen            address of the HTTP server (default :8080): webhook
//	                                             requests, and GET /healthz and /readyz for every type.
//	                         --metrics-listen    address of /metrics, /healthz and /readyz (default :9090).
//	                         --max-attempts      send attempts per event (default 5).
//	                         --max-body-bytes    largest webhook body (default 4 MiB; larger: 413).
//	HERALD_LOG_LEVEL         --log-level         debug, info, warn or error, or a verbosity number
//	                                             n >= 0 (default info).
//
// /healthz answers 200 while the process runs. /readyz answers 200 once the
// source is running: ping once its schedule is armed, webhook once it
// listens, apiServer once every informer has listed its objects.
//
// The adapter exits non-zero on an invalid configuration, so a Pod with a
// bad spec crash-loops with the reason in its log; the controller should
// refuse such a spec earlier with ValidatePing, ValidateAPIServer and the
// CRD's rules.
//
// # Sending
//
// Events go to the sink in CloudEvents HTTP binary mode (specversion 1.0,
// ce- header values percent-encoded as HTTP binding 1.0.2 §3.1.3.2 says). A
// 429, 408, 5xx or connection error is retried with capped exponential
// backoff honouring Retry-After, up to --max-attempts; any other status is
// final. With K_AUDIENCE set, every request carries Authorization: Bearer
// with a token of the adapter's ServiceAccount for that audience, obtained
// with the TokenRequest API and cached until shortly before it expires; a
// token that cannot be obtained is retried like a connection error and the
// request is not sent without one. Metrics: herald_source_events_sent_total,
// herald_source_events_failed_total and herald_source_events_retries_total,
// labelled by type (ping, apiServer, webhook).
//
// # Event types
//
//	dev.herald.sources.ping                 ping: one per cron tick.
//	dev.herald.apiserver.resource.add       apiServer, mode Resource: data is the object.
//	dev.herald.apiserver.resource.update
//	dev.herald.apiserver.resource.delete
//	dev.herald.apiserver.ref.add            apiServer, mode Reference: data is a reference.
//	dev.herald.apiserver.ref.update
//	dev.herald.apiserver.ref.delete
//	dev.herald.webhook                      webhook, when neither the spec nor the request names a type.
//
// Ping events have source /apis/eventing.herald.dev/v1alpha1/namespaces/<ns>/eventsources/<name>,
// id <name>-<unix seconds of the scheduled tick> (so a tick sent twice is
// deduplicated by the Topic) and time the scheduled tick. Webhook and
// apiServer attributes are documented on type Webhook and in package
// sources/apiserver.
package sources
