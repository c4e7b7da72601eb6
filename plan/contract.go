package plan

import "time"

// Contract modes, as in the Topic API (a plan carries no contract for off).
const (
	ContractWarn    = "warn"
	ContractEnforce = "enforce"
)

// Contract is the event types a Topic allows and what the ingress does with
// an event they do not allow (Mode: ContractWarn or ContractEnforce).
type Contract struct {
	Mode  string      `json:"mode"`
	Types []EventType `json:"types"`
}

// EventType is one declared event type.
type EventType struct {
	// Type is the CloudEvents type, matched exactly.
	Type string `json:"type"`
	// Schema, when set, is a JSON Schema as JSON text that the event's data
	// must satisfy.
	Schema string `json:"schema,omitempty"`
	// DataContentType, when set, is the media type the event's
	// datacontenttype must have.
	DataContentType string `json:"dataContentType,omitempty"`
	// RequiredExtensions must all be present on the event.
	RequiredExtensions []string `json:"requiredExtensions,omitempty"`
}

// CatalogBucket is the JetStream key-value bucket of the event types each
// Topic accepted, one key per Topic and type (CatalogKey) holding a
// CatalogEntry. Every dispatcher replica merges what it saw into the
// entries with compare-and-set updates, so the entries add up across
// replicas.
const CatalogBucket = "herald-catalog"

// CatalogFlush is how often a dispatcher merges what it saw into
// CatalogBucket.
const CatalogFlush = 5 * time.Second

// CatalogEntry is what the Topic's dispatchers saw of one event type.
type CatalogEntry struct {
	Type string `json:"type"`
	// SourcePattern is the one source seen, or the longest common prefix
	// of the sources seen followed by '*' (see MergeSourcePattern).
	SourcePattern   string    `json:"sourcePattern,omitempty"`
	FirstSeen       time.Time `json:"firstSeen"`
	LastSeen        time.Time `json:"lastSeen"`
	Count           int64     `json:"count"`
	DataContentType string    `json:"dataContentType,omitempty"`
}

// Merge adds what o saw to e: counts add up, the first and last seen
// times widen, the source patterns generalise, and a missing sample
// content type is taken from o.
func (e *CatalogEntry) Merge(o CatalogEntry) {
	if e.Count == 0 {
		*e = o
		return
	}
	e.Count += o.Count
	if o.FirstSeen.Before(e.FirstSeen) {
		e.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(e.LastSeen) {
		e.LastSeen = o.LastSeen
	}
	e.SourcePattern = MergeSourcePattern(e.SourcePattern, o.SourcePattern)
	if e.DataContentType == "" {
		e.DataContentType = o.DataContentType
	}
}

// MergeSourcePattern generalises two source patterns (a source is a
// pattern matching itself): equal patterns stay, others become their
// longest common prefix, without a trailing '*', followed by '*'.
func MergeSourcePattern(a, b string) string {
	if a == b {
		return a
	}
	a, b = trimStar(a), trimStar(b)
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:n] + "*"
}

func trimStar(p string) string {
	if len(p) > 0 && p[len(p)-1] == '*' {
		return p[:len(p)-1]
	}
	return p
}

// CatalogKey is the CatalogBucket key of event type typ of a Topic: the
// type's Token, so that any type fits a key.
func CatalogKey(namespace, topic, typ string) string {
	return namespace + "." + topic + "." + Token(typ)
}

// CatalogKeys is the CatalogBucket key filter matching every key of a Topic.
func CatalogKeys(namespace, topic string) string { return namespace + "." + topic + ".*" }
