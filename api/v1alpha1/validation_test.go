package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

const (
	topicHead  = "apiVersion: eventing.herald.dev/v1alpha1\nkind: Topic\nmetadata:\n  name: %s\n"
	subHead    = "apiVersion: eventing.herald.dev/v1alpha1\nkind: Subscription\nmetadata:\n  name: %s\n"
	srcHead    = "apiVersion: eventing.herald.dev/v1alpha1\nkind: EventSource\nmetadata:\n  name: %s\n"
	replayHead = "apiVersion: eventing.herald.dev/v1alpha1\nkind: Replay\nmetadata:\n  name: %s\n"

	pingSink = "  sink:\n    uri: http://sink.example/\n"
)

func head(format, name string) string { return strings.Replace(format, "%s", name, 1) }

// testCA is a self-signed certificate authority's certificate (its key is
// not kept), for caCerts.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUPS3ekmGh/1E2btW7vFxiiedmXVkwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOaGVyYWxkLXRlc3QtY2EwIBcNMjYxMjA0MTgwNTQ0WhgPMjEy
NjExMTAxODA1NDRaMBkxFzAVBgNVBAMMDmhlcmFsZC10ZXN0LWNhMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEbfqfSkTRo5GnnwJRAQ6GuFVldVkYu1aoijj+v0jh
bCSKBGxtM1ELuPhDw+k1SNyymnLHjtKvOrgKeitBQmEhvKNTMFEwHQYDVR0OBBYE
FGBuXHD/fEVwKG6TP6QltLuwP1LsMB8GA1UdIwQYMBaAFGBuXHD/fEVwKG6TP6Ql
tLuwP1LsMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAOni+T2Q
IKqQ6hj0VOr4QRzREZEQGiSbHmUehgtj7gGQAiA8mv7Xblaw9L8WR/9qXyIquZpY
2DP9fQhTyVf8lc87gQ==
-----END CERTIFICATE-----
`

// caCerts is a caCerts field holding bundle, as a YAML literal block at
// indent.
func caCerts(indent, bundle string) string {
	var b strings.Builder
	b.WriteString(indent + "caCerts: |\n")
	for line := range strings.Lines(bundle) {
		b.WriteString(indent + "  " + line)
	}
	return b.String()
}

const subHTTPS = "spec:\n  topic: orders\n  subscriber:\n    uri: https://s.example/\n"

// objects is the table of create requests: each is accepted (wantErr "") or
// refused with a message containing wantErr.
var objects = []struct {
	name, yaml, wantErr string
}{
	// Topic
	{"topic minimal", head(topicHead, "minimal"), ""},
	{"topic memory R3", head(topicHead, "mem") + "spec:\n  storage: memory\n  replicas: 3\n", ""},
	{"topic storage enum", head(topicHead, "disk") + "spec:\n  storage: disk\n", `Unsupported value: "disk"`},
	{"topic replicas enum", head(topicHead, "r2") + "spec:\n  replicas: 2\n", "Unsupported value: 2"},
	{"topic name too long", head(topicHead, strings.Repeat("a", 53)), "Topic names are at most 52 characters"},
	{"topic name with dot", head(topicHead, "a.b"), "Topic names start with a letter"},
	{"topic name starts with digit", head(topicHead, "1abc"), "Topic names start with a letter"},
	{"topic duplicate window words", head(topicHead, "dw") + "spec:\n  duplicateWindow: 2 minutes\n", "must be an ISO-8601 duration"},
	{"topic duplicate window bare P", head(topicHead, "dwp") + "spec:\n  duplicateWindow: P\n", "must be an ISO-8601 duration"},
	{"topic max age months", head(topicHead, "age") + "spec:\n  retention:\n    maxAge: P1M\n", "must be an ISO-8601 duration"},
	{"topic max age days and go duration", head(topicHead, "age2") + "spec:\n  duplicateWindow: 90s\n  retention:\n    maxAge: P7DT12H\n", ""},
	{"topic max event size too small", head(topicHead, "small") + "spec:\n  maxEventSize: 100\n", "should be greater than or equal to 1024"},
	{"topic max event size too large", head(topicHead, "large") + "spec:\n  maxEventSize: 9000000\n", "should be less than or equal to 8388608"},
	{"topic history", head(topicHead, "hist") + "spec:\n  history:\n    enabled: true\n    maxAge: PT6H\n    maxBytes: 1048576\n", ""},
	{"topic history without enabled", head(topicHead, "hist2") + "spec:\n  history:\n    maxAge: PT6H\n", "spec.history.enabled: Required value"},
	{"topic history tiny", head(topicHead, "hist3") + "spec:\n  history:\n    enabled: true\n    maxBytes: 10\n", "spec.history.maxBytes: Invalid value: 10: spec.history.maxBytes in body should be greater than or equal to 1024"},
	{"topic scheduling", head(topicHead, "sched") + "spec:\n  scheduling:\n    maxDelay: P30D\n", ""},
	{"topic scheduling off", head(topicHead, "sched0") + "spec:\n  scheduling:\n    maxDelay: PT0S\n", ""},
	{"topic scheduling bad delay", head(topicHead, "sched1") + "spec:\n  scheduling:\n    maxDelay: 1 week\n", "must be an ISO-8601 duration"},
	{"topic scheduling with discard new", head(topicHead, "sched2") + "spec:\n  retention:\n    maxMessages: 10\n    discard: new\n  scheduling:\n    maxDelay: PT1H\n", "scheduling needs retention.discard old"},
	{"topic scheduling with discard old", head(topicHead, "sched3") + "spec:\n  retention:\n    maxMessages: 10\n    discard: old\n  scheduling:\n    maxDelay: PT1H\n", ""},
	{"topic discard enum", head(topicHead, "discard") + "spec:\n  retention:\n    discard: middle\n", `Unsupported value: "middle"`},
	{"topic negative retry", head(topicHead, "retry") + "spec:\n  delivery:\n    retry: -1\n", "should be greater than or equal to 0"},
	{"topic backoff policy enum", head(topicHead, "fib") + "spec:\n  delivery:\n    backoffPolicy: fibonacci\n", `Unsupported value: "fibonacci"`},
	{"topic empty dead-letter sink", head(topicHead, "dls") + "spec:\n  delivery:\n    deadLetterSink: {}\n", "a destination needs a ref, a uri, or both"},
	{"topic dead-letter sink caCerts", head(topicHead, "dlsca") + "spec:\n  delivery:\n    deadLetterSink:\n      uri: https://d.example/\n" + caCerts("      ", testCA), ""},
	{"topic dispatcher replicas", head(topicHead, "disp") + "spec:\n  dispatcher:\n    replicas: 100\n", "should be less than or equal to 50"},
	{"topic shared dispatcher", head(topicHead, "shared") + "spec:\n  dispatcher:\n    mode: shared\n", ""},
	{"topic dedicated dispatcher sized", head(topicHead, "dedicated") + "spec:\n  dispatcher:\n    mode: dedicated\n    replicas: 3\n", ""},
	{"topic dispatcher mode enum", head(topicHead, "mode") + "spec:\n  dispatcher:\n    mode: pooled\n", "Unsupported value: \"pooled\""},
	{"topic shared dispatcher with replicas", head(topicHead, "sharedr") + "spec:\n  dispatcher:\n    mode: shared\n    replicas: 2\n", "replicas, resources, tls and autoscaling size a dedicated dispatcher"},
	{"topic autoscaled dispatcher", head(topicHead, "auto") + "spec:\n  dispatcher:\n    autoscaling: {minReplicas: 2, maxReplicas: 5, targetLag: 50}\n", ""},
	{"topic autoscaling min above max", head(topicHead, "automax") + "spec:\n  dispatcher:\n    autoscaling: {minReplicas: 6, maxReplicas: 5}\n", "minReplicas must not exceed maxReplicas"},
	{"topic autoscaling to zero", head(topicHead, "autozero") + "spec:\n  dispatcher:\n    autoscaling: {minReplicas: 0, maxReplicas: 5}\n", "should be greater than or equal to 1"},
	{"topic autoscaling and replicas", head(topicHead, "autorep") + "spec:\n  dispatcher:\n    replicas: 2\n    autoscaling: {maxReplicas: 5}\n", "replicas and autoscaling exclude each other"},
	{"topic shared dispatcher autoscaled", head(topicHead, "autoshared") + "spec:\n  dispatcher:\n    mode: shared\n    autoscaling: {maxReplicas: 5}\n", "replicas, resources, tls and autoscaling size a dedicated dispatcher"},
	{"topic shared dispatcher with tls", head(topicHead, "sharedt") + "spec:\n  dispatcher:\n    mode: shared\n    tls:\n      secretName: cert\n", "replicas, resources, tls and autoscaling size a dedicated dispatcher"},
	{"topic dispatcher tls", head(topicHead, "tls") + "spec:\n  dispatcher:\n    tls:\n      secretName: orders-ingress.tls\n", ""},
	{"topic dispatcher tls without secret", head(topicHead, "tlsnone") + "spec:\n  dispatcher:\n    tls: {}\n", "spec.dispatcher.tls.secretName: Required value"},
	{"topic dispatcher tls bad secret name", head(topicHead, "tlsbad") + "spec:\n  dispatcher:\n    tls:\n      secretName: Orders_TLS\n", "secretName must be a Secret's name"},
	{"topic publishers of every kind", head(topicHead, "pubs") + "spec:\n  publishers:\n  - serviceAccount: {name: checkout}\n  - serviceAccount: {name: billing.v2, namespace: finance}\n  - namespace: shop\n" +
		"  - namespaceSelector: {matchLabels: {team: shop}}\n  - namespaceSelector:\n      matchExpressions: [{key: tier, operator: In, values: [web]}]\n  - sub: 'https://ci.example/*'\n  - sub: '*'\n" +
		"  - namespace: web\n    filters:\n    - prefix: {type: com.shop.}\n    - not: {exact: {source: /admin}}\n", ""},
	{"topic publisher without identity", head(topicHead, "pubnone") + "spec:\n  publishers:\n  - filters: [{exact: {type: a}}]\n", "a publisher sets exactly one of serviceAccount, namespace, namespaceSelector or sub"},
	{"topic publisher with two identities", head(topicHead, "pubtwo") + "spec:\n  publishers:\n  - namespace: shop\n    sub: 'system:serviceaccount:shop:*'\n", "a publisher sets exactly one of serviceAccount, namespace, namespaceSelector or sub"},
	{"topic publisher sub star in the middle", head(topicHead, "pubstar") + "spec:\n  publishers:\n  - sub: 'system:serviceaccount:*:checkout'\n", "sub may hold '*' only as its last character"},
	{"topic publisher sub two stars", head(topicHead, "pubstars") + "spec:\n  publishers:\n  - sub: 'system:**'\n", "sub may hold '*' only as its last character"},
	{"topic publisher empty sub", head(topicHead, "pubemptysub") + "spec:\n  publishers:\n  - sub: ''\n", "spec.publishers[0].sub: Invalid value: \"\": spec.publishers[0].sub in body should be at least 1 chars long"},
	{"topic publisher bad namespace", head(topicHead, "pubns") + "spec:\n  publishers:\n  - namespace: Shop_1\n", "namespace must be a namespace's name"},
	{"topic publisher namespace too long", head(topicHead, "pubnslong") + "spec:\n  publishers:\n  - namespace: " + strings.Repeat("n", 64) + "\n", "spec.publishers[0].namespace: Too long"},
	{"topic publisher service account without name", head(topicHead, "pubsanoname") + "spec:\n  publishers:\n  - serviceAccount: {namespace: shop}\n", "spec.publishers[0].serviceAccount.name: Required value"},
	{"topic publisher bad service account name", head(topicHead, "pubsaname") + "spec:\n  publishers:\n  - serviceAccount: {name: Checkout}\n", "serviceAccount.name must be a ServiceAccount's name"},
	{"topic publisher bad service account namespace", head(topicHead, "pubsans") + "spec:\n  publishers:\n  - serviceAccount: {name: checkout, namespace: shop.eu}\n", "serviceAccount.namespace must be a namespace's name"},
	{"topic publisher empty namespace selector", head(topicHead, "pubsel") + "spec:\n  publishers:\n  - namespaceSelector: {}\n", "namespaceSelector needs matchLabels or matchExpressions"},
	{"topic publisher empty matchLabels", head(topicHead, "pubsellabels") + "spec:\n  publishers:\n  - namespaceSelector: {matchLabels: {}}\n", "spec.publishers[0].namespaceSelector.matchLabels: Invalid value: 0: spec.publishers[0].namespaceSelector.matchLabels in body should have at least 1 properties"},
	{"topic publisher selector operator", head(topicHead, "pubselop") + "spec:\n  publishers:\n  - namespaceSelector:\n      matchExpressions: [{key: team, operator: Near, values: [x]}]\n", `Unsupported value: "Near"`},
	{"topic publisher selector In without values", head(topicHead, "pubselin") + "spec:\n  publishers:\n  - namespaceSelector:\n      matchExpressions: [{key: team, operator: In}]\n", "matchExpressions: In and NotIn need values, Exists and DoesNotExist take none"},
	{"topic publisher selector Exists with values", head(topicHead, "pubselex") + "spec:\n  publishers:\n  - namespaceSelector:\n      matchExpressions: [{key: team, operator: Exists, values: [x]}]\n", "matchExpressions: In and NotIn need values, Exists and DoesNotExist take none"},
	{"topic publisher selector without key", head(topicHead, "pubselkey") + "spec:\n  publishers:\n  - namespaceSelector:\n      matchExpressions: [{operator: Exists}]\n", "spec.publishers[0].namespaceSelector.matchExpressions[0].key: Required value"},
	{"topic publisher bad filter", head(topicHead, "pubfilter") + "spec:\n  publishers:\n  - namespace: shop\n    filters:\n    - exact: {type: a}\n      prefix: {source: /b}\n", "a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not"},
	{"topic publisher fourth filter level", head(topicHead, "pubdeep") + "spec:\n  publishers:\n  - namespace: shop\n    filters:\n    - all:\n      - not:\n          not:\n            exact: {type: a}\n", `unknown field "spec.publishers[0].filters[0].all[0].not.not"`},
	{"topic publishers empty", head(topicHead, "pubsempty") + "spec:\n  publishers: []\n", "spec.publishers: Invalid value: 0: spec.publishers in body should have at least 1 items"},
	{"topic too many publishers", head(topicHead, "pubsmany") + "spec:\n  publishers:\n" + strings.Repeat("  - namespace: shop\n", 33), "spec.publishers: Too many: 33: must have at most 32 items"},

	// Subscription
	{"subscription minimal", head(subHead, "minimal") + "spec:\n  topic: orders\n  subscriber:\n    uri: http://sink.example/\n", ""},
	{"subscription without subscriber", head(subHead, "nosub") + "spec:\n  topic: orders\n", "subscriber is required unless mode is pull"},
	{"topic contract", head(topicHead, "contract") + "spec:\n  contract: enforce\n  eventTypes:\n  - type: order.created\n    description: An order was placed.\n    dataContentType: application/json\n    requiredExtensions: [partitionkey]\n    schema: |\n      type: object\n      required: [order]\n  - type: order.shipped\n    schemaFrom: {configMapKeyRef: {name: schemas, key: shipped.json}}\n", ""},
	{"topic contract without event types", head(topicHead, "contractnotypes") + "spec:\n  contract: warn\n", "contract warn or enforce needs eventTypes"},
	{"topic contract mode enum", head(topicHead, "contractmode") + "spec:\n  contract: strict\n  eventTypes:\n  - type: a\n", `Unsupported value: "strict"`},
	{"topic event type with schema and schemaFrom", head(topicHead, "contractboth") + "spec:\n  eventTypes:\n  - type: a\n    schema: '{}'\n    schemaFrom: {configMapKeyRef: {name: s, key: k}}\n", "schema and schemaFrom exclude each other"},
	{"topic event type declared twice", head(topicHead, "contractdup") + "spec:\n  eventTypes:\n  - type: a\n  - type: a\n", "Duplicate value"},
	{"topic event type bad extension name", head(topicHead, "contractext") + "spec:\n  eventTypes:\n  - type: a\n    requiredExtensions: [Partition-Key]\n", "should match"},
	{"subscription types", head(subHead, "types") + "spec:\n  topic: orders\n  types: [order.created, order.shipped]\n  subscriber:\n    uri: http://s.example/\n", ""},
	{"subscription pull", head(subHead, "pull") + "spec:\n  topic: orders\n  mode: pull\n  pull: {ackDeadline: PT30S}\n  consumers:\n  - serviceAccount: {name: worker}\n  - namespace: jobs\n  - sub: 'system:serviceaccount:ci:*'\n  delivery: {retry: 2, deadLetterSink: {uri: 'http://dls.example/'}}\n  filters:\n  - prefix: {type: com.shop.}\n", ""},
	{"subscription pull minimal", head(subHead, "pullmin") + "spec:\n  topic: orders\n  mode: pull\n", ""},
	{"subscription mode enum", head(subHead, "modeenum") + "spec:\n  topic: orders\n  mode: poll\n", `Unsupported value: "poll"`},
	{"subscription pull with subscriber", head(subHead, "pullsub") + "spec:\n  topic: orders\n  mode: pull\n  subscriber: {uri: 'http://s.example/'}\n", "a pull Subscription has no subscriber"},
	{"subscription pull with reply", head(subHead, "pullreply") + "spec:\n  topic: orders\n  mode: pull\n  reply: {uri: 'http://r.example/'}\n", "a pull Subscription takes none of them"},
	{"subscription pull with batch", head(subHead, "pullbatch") + "spec:\n  topic: orders\n  mode: pull\n  batch: {maxEvents: 10}\n", "a pull Subscription takes none of them"},
	{"subscription pull ordered", head(subHead, "pullord") + "spec:\n  topic: orders\n  mode: pull\n  ordering: ordered\n", "a pull Subscription takes none of them"},
	{"subscription pull with rate limit", head(subHead, "pullrate") + "spec:\n  topic: orders\n  mode: pull\n  rateLimit: {eventsPerSecond: 10}\n", "a pull Subscription takes none of them"},
	{"subscription pull with signing", head(subHead, "pullsign") + "spec:\n  topic: orders\n  mode: pull\n  signing: {secretName: keys}\n", "a pull Subscription takes none of them"},
	{"subscription push with pull settings", head(subHead, "pushpull") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  pull: {ackDeadline: PT30S}\n", "pull and consumers apply to mode pull only"},
	{"subscription push with consumers", head(subHead, "pushcons") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  consumers:\n  - namespace: jobs\n", "pull and consumers apply to mode pull only"},
	{"subscription pull bad ack deadline", head(subHead, "pullack") + "spec:\n  topic: orders\n  mode: pull\n  pull: {ackDeadline: soon}\n", "must be an ISO-8601 duration"},
	{"subscription pull consumer with filters", head(subHead, "pullconsf") + "spec:\n  topic: orders\n  mode: pull\n  consumers:\n  - namespace: jobs\n    filters: [{exact: {type: a}}]\n", "filters and namespaceSelector apply to a Topic's publishers only"},
	{"subscription pull consumer with selector", head(subHead, "pullconssel") + "spec:\n  topic: orders\n  mode: pull\n  consumers:\n  - namespaceSelector: {matchLabels: {team: a}}\n", "filters and namespaceSelector apply to a Topic's publishers only"},
	{"subscription pull consumer with two identities", head(subHead, "pullconstwo") + "spec:\n  topic: orders\n  mode: pull\n  consumers:\n  - namespace: jobs\n    sub: x\n", "a publisher sets exactly one of serviceAccount, namespace, namespaceSelector or sub"},
	{"subscription without topic", head(subHead, "notopic") + "spec:\n  subscriber:\n    uri: http://sink.example/\n", "spec.topic: Required value"},
	{"subscription empty subscriber", head(subHead, "empty") + "spec:\n  topic: orders\n  subscriber: {}\n", "a destination needs a ref, a uri, or both"},
	{"subscription relative uri", head(subHead, "rel") + "spec:\n  topic: orders\n  subscriber:\n    uri: /events\n", "uri must be an absolute http:// or https:// URL"},
	{"subscription ftp uri", head(subHead, "ftp") + "spec:\n  topic: orders\n  subscriber:\n    uri: ftp://files.example/\n", "uri must be an absolute http:// or https:// URL"},
	{"subscription ref with absolute uri", head(subHead, "refabs") + "spec:\n  topic: orders\n  subscriber:\n    ref: {apiVersion: v1, kind: Service, name: inventory}\n    uri: http://x.example/y\n", "with a ref, uri must be a path"},
	{"subscription ref with path", head(subHead, "refpath") + "spec:\n  topic: orders\n  subscriber:\n    ref: {apiVersion: v1, kind: Service, name: inventory}\n    uri: /events\n", ""},
	{"subscription ref without name", head(subHead, "refnoname") + "spec:\n  topic: orders\n  subscriber:\n    ref: {apiVersion: v1, kind: Service}\n", "spec.subscriber.ref.name: Required value"},
	{"subscription filter with two dialects", head(subHead, "twodialects") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  filters:\n  - exact: {type: a}\n    prefix: {source: /b}\n", "a filter sets exactly one of exact, prefix, suffix, cesql, all, any or not"},
	{"subscription empty filter", head(subHead, "emptyfilter") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  filters:\n  - {}\n", "a filter sets exactly one of"},
	{"subscription empty exact", head(subHead, "emptyexact") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  filters:\n  - exact: {}\n", "should have at least 1 properties"},
	{"subscription four filter levels", head(subHead, "deep") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  filters:\n  - any:\n    - all:\n      - not:\n          exact: {type: a}\n      - suffix: {subject: .json}\n    - cesql: \"type = 'b'\"\n", ""},
	{"subscription fifth filter level", head(subHead, "deeper") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  filters:\n  - any:\n    - all:\n      - not:\n          not:\n            exact: {type: a}\n", `unknown field "spec.filters[0].any[0].all[0].not.not"`},
	{"subscription ordering enum", head(subHead, "ord") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  ordering: random\n", `Unsupported value: "random"`},
	{"subscription max in flight zero", head(subHead, "mif") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  maxInFlight: 0\n", "should be greater than or equal to 1"},
	{"subscription start position word", head(subHead, "sp") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  startPosition: yesterday\n", "startPosition is latest, earliest, or an RFC 3339 time"},
	{"subscription start position time", head(subHead, "sptime") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  startPosition: \"2026-01-02T15:04:05Z\"\n", ""},
	{"subscription priority", head(subHead, "prio") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  priority: {enabled: true, weights: {high: 10, normal: 3, low: 1}}\n", ""},
	{"subscription priority defaults", head(subHead, "priodef") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  priority: {enabled: true}\n", ""},
	{"subscription priority ordered", head(subHead, "prioord") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  ordering: ordered\n  priority: {enabled: true}\n", "priority needs ordering unordered"},
	{"subscription priority perKey", head(subHead, "priokey") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  ordering: perKey\n  priority: {enabled: true}\n", "priority needs ordering unordered"},
	{"subscription priority off ordered", head(subHead, "priooff") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  ordering: ordered\n  priority: {enabled: false}\n", ""},
	{"subscription priority pull", head(subHead, "priopull") + "spec:\n  topic: orders\n  mode: pull\n  priority: {enabled: true}\n", "priority applies to mode push only"},
	{"subscription priority weight zero", head(subHead, "prioz") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  priority: {enabled: true, weights: {low: 0}}\n", "should be greater than or equal to 1"},
	{"subscription priority weight too high", head(subHead, "priobig") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  priority: {enabled: true, weights: {high: 101}}\n", "should be less than or equal to 100"},
	{"subscription priority without enabled", head(subHead, "prionoen") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  priority: {weights: {high: 9}}\n", "spec.priority.enabled: Required value"},
	{"subscription batch", head(subHead, "batch") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  batch: {maxEvents: 50, maxWait: PT0.1S}\n", ""},
	{"subscription batch defaults", head(subHead, "batchdef") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  batch: {}\n", ""},
	{"subscription batch too large", head(subHead, "batchbig") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  batch: {maxEvents: 1001}\n", "should be less than or equal to 1000"},
	{"subscription batch ordered", head(subHead, "batchord") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  ordering: perKey\n  batch: {maxEvents: 10}\n", "batch needs ordering unordered"},
	{"subscription batch with reply", head(subHead, "batchreply") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  reply: {uri: 'http://r.example/'}\n  batch: {maxEvents: 10}\n", "batch cannot be combined with reply"},
	{"subscription batch bad wait", head(subHead, "batchwait") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  batch: {maxWait: soon}\n", "must be an ISO-8601 duration"},
	{"subscription rate limit zero", head(subHead, "rl") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  rateLimit: {eventsPerSecond: 0}\n", "should be greater than or equal to 1"},
	{"subscription timeout without unit", head(subHead, "to") + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n  delivery: {timeout: '30'}\n", "must be an ISO-8601 duration"},
	{"subscription signing", head(subHead, "signed") + subHTTPS + "  signing:\n    secretName: orders-signing\n", ""},
	{"subscription signing bad secret name", head(subHead, "signedbad") + subHTTPS + "  signing:\n    secretName: Orders_Signing\n", "secretName must be a Secret name"},
	{"subscription caCerts", head(subHead, "ca") + subHTTPS + caCerts("    ", testCA+"\n"+testCA), ""},
	{"subscription caCerts on a ref, reply and dead-letter sink", head(subHead, "caref") + "spec:\n  topic: orders\n  subscriber:\n    ref: {apiVersion: v1, kind: Service, name: inventory}\n" + caCerts("    ", testCA) +
		"  reply:\n    uri: https://r.example/\n" + caCerts("    ", testCA) + "  delivery:\n    deadLetterSink:\n      uri: https://d.example/\n" + caCerts("      ", testCA), ""},
	{"subscription caCerts not PEM", head(subHead, "canotpem") + subHTTPS + "    caCerts: my-ca\n", "caCerts must be one or more PEM certificates"},
	{"subscription caCerts with a key", head(subHead, "cakey") + subHTTPS + caCerts("    ", testCA+"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "caCerts must be one or more PEM certificates"},
	{"subscription caCerts with text", head(subHead, "catext") + subHTTPS + caCerts("    ", "subject=CN = herald-test-ca\n"+testCA), "caCerts must be one or more PEM certificates"},
	{"subscription caCerts too long", head(subHead, "calong") + subHTTPS + caCerts("    ", strings.Repeat(testCA, 60)), "spec.subscriber.caCerts: Too long"},
	{"subscription name too long", head(subHead, strings.Repeat("s", 64)) + "spec:\n  topic: orders\n  subscriber: {uri: 'http://s.example/'}\n", "Subscription names are at most 63 characters"},

	// Replay
	{"replay from time", head(replayHead, "time") + "spec:\n  subscription: audit\n  from: {time: '2026-12-01T10:00:00Z'}\n  until: {time: '2026-12-01T11:00:00Z'}\n  rateLimit: {eventsPerSecond: 100}\n", ""},
	{"replay from sequence", head(replayHead, "seq") + "spec:\n  subscription: audit\n  from: {sequence: 50}\n  until: {sequence: 50}\n", ""},
	{"replay dead letters", head(replayHead, "dl") + "spec:\n  subscription: audit\n  from:\n    deadLetters:\n      ids: [a, b]\n      since: '2026-12-01T10:00:00Z'\n      filter: \"knativeerrorcode = '503'\"\n", ""},
	{"replay without from", head(replayHead, "nofrom") + "spec:\n  subscription: audit\n  from: {}\n", "from needs exactly one of time, sequence or deadLetters"},
	{"replay two froms", head(replayHead, "two") + "spec:\n  subscription: audit\n  from: {sequence: 1, time: '2026-12-01T10:00:00Z'}\n", "from needs exactly one of time, sequence or deadLetters"},
	{"replay until before from", head(replayHead, "back") + "spec:\n  subscription: audit\n  from: {time: '2026-12-01T11:00:00Z'}\n  until: {time: '2026-12-01T10:00:00Z'}\n", "until.time must be after from.time"},
	{"replay until sequence before from", head(replayHead, "backseq") + "spec:\n  subscription: audit\n  from: {sequence: 10}\n  until: {sequence: 9}\n", "until.sequence must not be before from.sequence"},
	{"replay until with dead letters", head(replayHead, "dluntil") + "spec:\n  subscription: audit\n  from: {deadLetters: {}}\n  until: {sequence: 9}\n", "until applies to a Replay from time or sequence"},
	{"replay until empty", head(replayHead, "untilempty") + "spec:\n  subscription: audit\n  from: {sequence: 1}\n  until: {}\n", "until needs exactly one of time or sequence"},
	{"replay dead letters until before since", head(replayHead, "dlback") + "spec:\n  subscription: audit\n  from:\n    deadLetters: {since: '2026-12-01T11:00:00Z', until: '2026-12-01T10:00:00Z'}\n", "deadLetters.until must not be before deadLetters.since"},
	{"replay sequence zero", head(replayHead, "zero") + "spec:\n  subscription: audit\n  from: {sequence: 0}\n", "should be greater than or equal to 1"},
	{"replay without subscription", head(replayHead, "nosub") + "spec:\n  from: {sequence: 1}\n", "spec.subscription: Required value"},

	// EventSource
	{"eventsource two kinds", head(srcHead, "two") + "spec:\n" + pingSink + "  ping: {schedule: '* * * * *'}\n  webhook: {}\n", "an EventSource sets exactly one of ping, apiServer, webhook or container"},
	{"eventsource no kind", head(srcHead, "none") + "spec:\n" + pingSink, "an EventSource sets exactly one of ping, apiServer, webhook or container"},
	{"eventsource ping without schedule", head(srcHead, "nosched") + "spec:\n" + pingSink + "  ping: {data: x}\n", "spec.ping.schedule: Required value"},
	{"eventsource ping data twice", head(srcHead, "data2") + "spec:\n" + pingSink + "  ping: {schedule: '@hourly', data: x, dataBase64: eA==}\n", "set data or dataBase64, not both"},
	{"eventsource apiserver no resources", head(srcHead, "nores") + "spec:\n" + pingSink + "  apiServer: {resources: []}\n", "should have at least 1 items"},
	{"eventsource apiserver mode enum", head(srcHead, "mode") + "spec:\n" + pingSink + "  apiServer: {mode: Full, resources: [{apiVersion: v1, kind: Pod}]}\n", `Unsupported value: "Full"`},
	{"eventsource hmac without header", head(srcHead, "hmac") + "spec:\n" + pingSink + "  webhook:\n    signature: {type: hmac, secretKeyRef: {name: s, key: k}}\n", "a signature of type hmac needs header"},
	{"eventsource signature type enum", head(srcHead, "gitlab") + "spec:\n" + pingSink + "  webhook:\n    signature: {type: gitlab, secretKeyRef: {name: s, key: k}}\n", `Unsupported value: "gitlab"`},
	{"eventsource bad extension name", head(srcHead, "ext") + "spec:\n" + pingSink + "  ping: {schedule: '@hourly'}\n  ceOverrides: {extensions: {Bad-Name: x}}\n", "extension names are 1 to 20 lower-case letters or digits"},
	{"eventsource without sink", head(srcHead, "nosink") + "spec:\n  ping: {schedule: '@hourly'}\n", "spec.sink: Required value"},
	{"eventsource relative sink", head(srcHead, "relsink") + "spec:\n  sink: {uri: /x}\n  ping: {schedule: '@hourly'}\n", "uri must be an absolute http:// or https:// URL"},
	{"eventsource sink caCerts", head(srcHead, "sinkca") + "spec:\n  sink:\n    uri: https://sink.example/\n" + caCerts("    ", testCA) + "  ping: {schedule: '@hourly'}\n", "sink.caCerts is not supported for EventSources yet"},
	{"eventsource name too long", head(srcHead, strings.Repeat("e", 57)) + "spec:\n" + pingSink + "  ping: {schedule: '@hourly'}\n", "EventSource names are at most 56 characters"},
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	u.SetNamespace(testNamespace)
	return u
}

// strictDryRun creates like `kubectl apply --dry-run=server` does: unknown
// fields are errors and nothing is stored.
var strictDryRun = []client.CreateOption{client.DryRunAll, client.FieldValidation("Strict")}

func TestCreateValidation(t *testing.T) {
	for _, tc := range objects {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := k8s.Create(context.Background(), decode(t, tc.yaml), strictDryRun...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused, want accepted: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("accepted, want refused with %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("refused with\n  %v\nwant a message containing\n  %q", err, tc.wantErr)
			}
		})
	}
}

// TestSamplesAccepted applies every document in config/samples.
func TestSamplesAccepted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	top, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	files = append(files, top...)
	n := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufioReader(data))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			u := decode(t, string(doc))
			if u.GetAPIVersion() != "eventing.herald.dev/v1alpha1" {
				continue
			}
			n++
			if err := k8s.Create(context.Background(), u, strictDryRun...); err != nil {
				t.Errorf("%s: %s %s refused: %v", f, u.GetKind(), u.GetName(), err)
			}
		}
	}
	if n < 6 {
		t.Fatalf("found %d sample objects, want at least 6 (one per kind and source)", n)
	}
}
