// Package resolvetest holds the table of Destinations that the operator's
// and herald dev's tests both resolve, so that the two cannot disagree.
package resolvetest

import (
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// Topic is the Topic every Case's refs name; it exists and has an address.
// Missing is a Topic that does not exist.
const (
	Topic   = "orders"
	Missing = "missing"
)

// Case is one Destination, held by an object in the namespace of Topic, and
// what it resolves to.
type Case struct {
	Name        string
	Destination v1alpha1.Destination
	// Want is the URI, with {topic} standing for Topic's address.
	Want string
	// Audience is the token audience wanted, with {ns} standing for the
	// namespace.
	Audience string
	// Reason, when set, is the reason of the resolve.Error wanted instead,
	// and Message a part of its message with {ns} standing for the namespace.
	Reason, Message string
}

// URI returns c.Want with {topic} replaced by topicAddress.
func (c Case) URI(topicAddress string) string {
	return strings.ReplaceAll(c.Want, "{topic}", topicAddress)
}

// AudienceIn returns c.Audience with {ns} replaced by namespace.
func (c Case) AudienceIn(namespace string) string {
	return strings.ReplaceAll(c.Audience, "{ns}", namespace)
}

// MessageIn returns c.Message with {ns} replaced by namespace.
func (c Case) MessageIn(namespace string) string {
	return strings.ReplaceAll(c.Message, "{ns}", namespace)
}

// TopicRef is a ref to the Topic name in the holder's namespace.
func TopicRef(name string) *v1alpha1.KReference {
	return &v1alpha1.KReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Topic", Name: name}
}

// Cases are the Destinations both resolvers must agree on: the Knative
// Destination forms the CRD admits, with refs to Topics, which herald dev
// resolves too.
func Cases() []Case {
	uri := func(s string) *string { return &s }
	const topicAudience = "eventing.herald.dev/topic/{ns}/" + Topic
	return []Case{
		{Name: "uri", Destination: v1alpha1.Destination{URI: uri("http://consumer.example:9/in?x=1")}, Want: "http://consumer.example:9/in?x=1"},
		{Name: "uri-audience", Destination: v1alpha1.Destination{URI: uri("http://consumer.example:9/in"), Audience: uri("consumer")},
			Want: "http://consumer.example:9/in", Audience: "consumer"},
		{Name: "ref", Destination: v1alpha1.Destination{Ref: TopicRef(Topic)}, Want: "{topic}", Audience: topicAudience},
		{Name: "ref-audience", Destination: v1alpha1.Destination{Ref: TopicRef(Topic), Audience: uri("other")}, Want: "{topic}", Audience: "other"},
		{Name: "ref-path", Destination: v1alpha1.Destination{Ref: TopicRef(Topic), URI: uri("/audit")}, Want: "{topic}/audit", Audience: topicAudience},
		{Name: "ref-query", Destination: v1alpha1.Destination{Ref: TopicRef(Topic), URI: uri("?a=b")}, Want: "{topic}?a=b", Audience: topicAudience},
		{Name: "ref-path-query", Destination: v1alpha1.Destination{Ref: TopicRef(Topic), URI: uri("/audit/v1?a=b&c=d")}, Want: "{topic}/audit/v1?a=b&c=d", Audience: topicAudience},
		{Name: "ref-missing", Destination: v1alpha1.Destination{Ref: TopicRef(Missing)}, Reason: v1alpha1.ReasonNotFound, Message: "Topic {ns}/" + Missing},
	}
}
