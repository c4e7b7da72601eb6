package plan

import "strings"

// PublishMode is a cluster-wide default publish policy: who may publish to
// a Topic that declares no publishers of its own.
type PublishMode string

// Publish modes, as the manager's --default-publish-policy accepts them.
const (
	// PublishAllowSameNamespace accepts producers authenticated as a
	// ServiceAccount of the Topic's namespace.
	PublishAllowSameNamespace PublishMode = "allow-same-namespace"
	// PublishAuthenticated accepts any authenticated producer.
	PublishAuthenticated PublishMode = "authenticated"
	// PublishAllowAll accepts every request; credentials are not looked at.
	PublishAllowAll PublishMode = "allow-all"
	// PublishDenyAll refuses every request.
	PublishDenyAll PublishMode = "deny-all"
)

// PublishModes lists the modes in the order documentation shows them.
var PublishModes = []PublishMode{PublishAllowSameNamespace, PublishAuthenticated, PublishAllowAll, PublishDenyAll}

// PublishPolicy is a Topic's effective publish policy as its ingress
// enforces it. The control plane compiles it from the Topic's publishers,
// or, when it declares none, from the default mode.
type PublishPolicy struct {
	// Source says where the policy comes from for people reading a plan or
	// a Topic's status: "publishers" (the Topic's spec.publishers) or a
	// PublishMode (the default mode in effect).
	Source string `json:"source"`
	// Authenticate is false only for allow-all: the ingress then accepts
	// every request without looking at credentials. When true, a request
	// without a valid bearer token for the Topic's Audience gets 401, and
	// one whose identity no rule admits gets 403.
	Authenticate bool `json:"authenticate"`
	// Rules admit authenticated producers; the first rule whose Subjects
	// match the token's subject and whose Filters all match the event
	// admits it. No rule (deny-all) admits nobody.
	Rules []PublishRule `json:"rules,omitempty"`
}

// PublishRule admits producers whose token subject matches one of Subjects
// to publish the events matching all of Filters.
type PublishRule struct {
	// Name identifies the rule in 403 answers and logs, for example
	// "publishers[1]" or "allow-same-namespace".
	Name string `json:"name"`
	// Subjects are token subjects, each exact or, ending in '*', a prefix:
	// "system:serviceaccount:shop:checkout",
	// "system:serviceaccount:shop:*" (every ServiceAccount of namespace
	// shop), or "*" (every authenticated producer).
	Subjects []string `json:"subjects"`
	// Filters must all match an event for this rule to admit it; none
	// admits every event.
	Filters []Filter `json:"filters,omitempty"`
}

// SubjectMatches reports whether subject matches pattern, exact or, when
// pattern ends in '*', by prefix.
func SubjectMatches(pattern, subject string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(subject, prefix)
	}
	return pattern == subject
}

// ServiceAccountSubject is the token subject of a Kubernetes ServiceAccount.
func ServiceAccountSubject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// NamespaceSubjects is the subject pattern of every ServiceAccount of a
// namespace.
func NamespaceSubjects(namespace string) string {
	return "system:serviceaccount:" + namespace + ":*"
}

// TopicAudience is the audience a producer's token must carry to publish to
// a Topic, published in its status.address.audience.
func TopicAudience(namespace, topic string) string {
	return "eventing.herald.dev/topic/" + namespace + "/" + topic
}
