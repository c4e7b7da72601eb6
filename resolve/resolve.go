// Package resolve turns Destinations into URIs and token audiences. The
// operator and herald dev
// both resolve through it and differ only in their Lookup: the operator
// reads referents from the API server, herald dev from its manifests.
//
// A Destination with a uri only resolves to that uri. With a ref, the
// referent's address is looked up; a uri beside the ref is a path and/or a
// query appended to that address: the path is added to the address's path
// and the query to its query, so ref Topic shop/orders (address
// http://h/shop/orders) with uri /audit?x=1 resolves to
// http://h/shop/orders/audit?x=1. (Knative resolves the uri as an RFC 3986
// reference instead, where /audit would replace the address's path; the two
// agree whenever the referent's address has no path, as a Service's has
// not.)
//
// The audience of the token Herald presents to a Destination is its
// audience field when set; otherwise, for a ref to a Topic, the Topic's
// audience (plan.TopicAudience), and for a ref to another Addressable its
// status.address.audience. A ref to a Service and a bare uri have none.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/plan"
)

// Error says why a Destination has no URI yet. Reason is a condition reason
// (v1alpha1.ReasonNotFound, ReasonNotReady, ReasonNotAddressable,
// ReasonForbidden); Message says what is missing, for example
// "Service shop/inventory not found".
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Address is what a Lookup finds of a referent.
type Address struct {
	// URL is where the referent receives events.
	URL string
	// Audience is the referent's status.address.audience, "" when it
	// publishes none (a Service never does).
	Audience string
}

// Lookup finds the address of a Destination's referent.
type Lookup interface {
	// Address returns the address of ref's referent; ref.Namespace is set.
	// An *Error says why the referent has no address; any other error is a
	// failure to look it up, worth retrying.
	Address(ctx context.Context, ref v1alpha1.KReference) (Address, error)
}

// Target is a resolved Destination.
type Target struct {
	// URI is where events are sent.
	URI string
	// Audience is the audience of the bearer token presented to URI; ""
	// sends none.
	Audience string
}

// Destination resolves d, held by an object in namespace; a nil d
// resolves to the zero Target. A *Error means the Destination cannot
// resolve until something changes; other errors come from the Lookup.
func Destination(ctx context.Context, l Lookup, namespace string, d *v1alpha1.Destination) (Target, error) {
	if d == nil {
		return Target{}, nil
	}
	uri := ""
	if d.URI != nil {
		uri = *d.URI
	}
	explicit := ""
	if d.Audience != nil {
		explicit = *d.Audience
	}
	if d.Ref == nil {
		if uri == "" {
			return Target{}, &Error{Reason: v1alpha1.ReasonNotAddressable, Message: "a destination needs a ref, a uri, or both"}
		}
		return Target{URI: uri, Audience: explicit}, nil
	}
	ref := *d.Ref
	if ref.Namespace == "" {
		ref.Namespace = namespace
	}
	addr, err := l.Address(ctx, ref)
	if err != nil {
		return Target{}, err
	}
	t := Target{URI: addr.URL, Audience: explicit}
	if t.Audience == "" {
		t.Audience = addr.Audience
		if IsTopic(ref) {
			t.Audience = plan.TopicAudience(ref.Namespace, ref.Name)
		}
	}
	if uri != "" {
		if t.URI, err = Join(addr.URL, uri); err != nil {
			return Target{}, err
		}
	}
	return t, nil
}

// IsTopic reports whether ref refers to a Herald Topic.
func IsTopic(ref v1alpha1.KReference) bool {
	return ref.Kind == "Topic" && ref.APIVersion == v1alpha1.GroupVersion.String()
}

// Join appends uri, a path and/or a query such as /orders or ?a=b, to base,
// a referent's address: the path goes after base's path (one slash between
// them), the query after base's query. Any other uri is a *Error.
func Join(base, uri string) (string, error) {
	if !strings.HasPrefix(uri, "/") && !strings.HasPrefix(uri, "?") {
		return "", &Error{Reason: v1alpha1.ReasonNotAddressable,
			Message: fmt.Sprintf("uri %q: with a ref, uri must be a path such as /orders that is appended to the referent's address", uri)}
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", &Error{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf("invalid address %q: %v", base, err)}
	}
	u, err := url.Parse(uri)
	if err != nil || u.Host != "" {
		return "", &Error{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf("invalid uri %q: want a path such as /orders", uri)}
	}
	out := *b
	out.Fragment, out.RawFragment = "", ""
	if u.Path != "" {
		p, err := url.Parse(strings.TrimSuffix(b.EscapedPath(), "/") + u.EscapedPath())
		if err != nil {
			return "", &Error{Reason: v1alpha1.ReasonNotAddressable, Message: fmt.Sprintf("invalid uri %q: %v", uri, err)}
		}
		out.Path, out.RawPath = p.Path, p.RawPath
	}
	switch {
	case u.RawQuery == "":
	case out.RawQuery == "":
		out.RawQuery = u.RawQuery
	default:
		out.RawQuery += "&" + u.RawQuery
	}
	return out.String(), nil
}

// CACerts returns d's caCerts, "" when d is nil or has none.
func CACerts(d *v1alpha1.Destination) string {
	if d == nil || d.CACerts == nil {
		return ""
	}
	return *d.CACerts
}

// ServiceURL is the in-cluster URL of a Service: the scheme, host
// <name>.<namespace>.svc.<clusterDomain> and the port of the Service's
// first port. The scheme is https when that port is named https or has
// appProtocol https, http otherwise; the port is left out when it is the
// scheme's default (80 for http, 443 for https). A Service without ports
// resolves to http without a port.
func ServiceURL(svc *corev1.Service, clusterDomain string) string {
	host := svc.Name + "." + svc.Namespace + ".svc." + clusterDomain
	if len(svc.Spec.Ports) == 0 {
		return "http://" + host
	}
	p := svc.Spec.Ports[0]
	scheme, defaultPort := "http", int32(80)
	if p.Name == "https" || (p.AppProtocol != nil && *p.AppProtocol == "https") {
		scheme, defaultPort = "https", 443
	}
	if p.Port != defaultPort {
		host += ":" + strconv.Itoa(int(p.Port))
	}
	return scheme + "://" + host
}

// DeadLetterSink returns a Subscription's effective dead-letter sink: its
// own delivery.deadLetterSink, else its Topic's (topic may be nil), else
// nil. field names where it came from, for messages.
func DeadLetterSink(topic *v1alpha1.Topic, s *v1alpha1.Subscription) (field string, d *v1alpha1.Destination) {
	if s.Spec.Delivery != nil && s.Spec.Delivery.DeadLetterSink != nil {
		return "delivery.deadLetterSink", s.Spec.Delivery.DeadLetterSink
	}
	if topic != nil && topic.Spec.Delivery != nil && topic.Spec.Delivery.DeadLetterSink != nil {
		return "Topic delivery.deadLetterSink", topic.Spec.Delivery.DeadLetterSink
	}
	return "", nil
}

// DeadLetterTopic returns "namespace/name" of the Topic a Subscription's
// effective dead-letter sink refers to (see DeadLetterSink; topic may be
// nil), or "" when that sink is no ref to a Topic.
func DeadLetterTopic(topic *v1alpha1.Topic, s *v1alpha1.Subscription) string {
	_, d := DeadLetterSink(topic, s)
	if d == nil || d.Ref == nil || !IsTopic(*d.Ref) {
		return ""
	}
	ns := d.Ref.Namespace
	if ns == "" {
		ns = s.Namespace
	}
	return ns + "/" + d.Ref.Name
}

// Subscription resolves a Subscription's subscriber (none in pull mode),
// reply and effective dead-letter sink (see DeadLetterSink; topic may be nil). It resolves what
// it can; the error is about the first Destination that did not resolve,
// its message prefixed with the field, and is a *Error when that
// Destination's was. A Subscription with spec.signing gets the directory
// the operator mounts its Secret at (plan.SigningKeyDir); herald dev
// replaces it with its own.
func Subscription(ctx context.Context, l Lookup, topic *v1alpha1.Topic, s *v1alpha1.Subscription) (compiler.ResolvedSubscription, error) {
	rs := compiler.ResolvedSubscription{Subscription: s}
	if s.Spec.Signing != nil {
		rs.SigningKeyDir = plan.SigningKeyDir(s.Name)
	}
	var first error
	note := func(field string, err error) {
		if err == nil || first != nil {
			return
		}
		var re *Error
		if errors.As(err, &re) {
			first = &Error{Reason: re.Reason, Message: field + ": " + re.Message}
			return
		}
		first = fmt.Errorf("%s: %w", field, err)
	}
	if s.Spec.Mode != v1alpha1.ModePull {
		sub, err := Destination(ctx, l, s.Namespace, &s.Spec.Subscriber)
		note("subscriber", err)
		rs.SubscriberURI, rs.SubscriberAudience = sub.URI, sub.Audience
		rs.SubscriberCACerts = CACerts(&s.Spec.Subscriber)
	}
	reply, err := Destination(ctx, l, s.Namespace, s.Spec.Reply)
	note("reply", err)
	rs.ReplyURI, rs.ReplyAudience = reply.URI, reply.Audience
	rs.ReplyCACerts = CACerts(s.Spec.Reply)
	// A Subscription and its Topic share a namespace.
	field, dls := DeadLetterSink(topic, s)
	dl, err := Destination(ctx, l, s.Namespace, dls)
	note(field, err)
	rs.DeadLetterURI, rs.DeadLetterAudience = dl.URI, dl.Audience
	rs.DeadLetterCACerts, rs.DeadLetterField = CACerts(dls), field
	if err == nil {
		rs.DeadLetterTopic = DeadLetterTopic(topic, s)
	}
	return rs, first
}
