package devmode

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/dispatcher/plan"
	"github.com/herald-dev/herald/sources"
)

// Without an API server, herald dev checks here the rules the CRDs' schema
// and CEL validations enforce on kubectl apply, as far as they can be checked
// from one object. The messages match the CRDs' where the CRDs have one.

var (
	// dnsLabelRE is an RFC 1123 label: namespaces.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomainRE is an RFC 1123 subdomain: Subscription names.
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// serviceNameRE is the CRDs' rule for Topic and EventSource names.
	serviceNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	absURIRE      = regexp.MustCompile(`^https?://[^/?#]+`)
	startPosRE    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`)
)

// Validate checks an object against the rules the API server would enforce.
// All violations are reported, joined.
func Validate(o *Object) error {
	switch {
	case o.Topic != nil:
		return validateTopic(o.Topic)
	case o.Subscription != nil:
		return validateSubscription(o.Subscription)
	case o.EventSource != nil:
		return validateEventSource(o.EventSource)
	case o.Secret != nil:
		return validateSecret(o.Secret.Namespace, o.Secret.Name, o.Secret.Data)
	}
	return errors.New("empty object")
}

// secretKeyRE is the API server's rule for the keys of a Secret's data.
var secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

func validateSecret(ns, name string, data map[string][]byte) error {
	var e errs
	validateNamespace(&e, ns)
	if len(name) > 253 || !dnsSubdomainRE.MatchString(name) {
		e.addf("metadata.name: must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		if len(k) > 253 || !secretKeyRE.MatchString(k) {
			e.addf("data: key %q: keys are letters, digits, '-', '_' and '.'", k)
		}
	}
	return e.err()
}

type errs []error

// err joins the violations with "; ", nil when there are none.
func (e errs) err() error {
	if len(e) == 0 {
		return nil
	}
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

func (e *errs) addf(format string, a ...any) { *e = append(*e, fmt.Errorf(format, a...)) }

func (e *errs) add(field string, err error) {
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: %w", field, err))
	}
}

func validateNamespace(e *errs, ns string) {
	if len(ns) > 63 || !dnsLabelRE.MatchString(ns) {
		e.addf("metadata.namespace %q: must be lower-case letters, digits and '-', at most 63 characters", ns)
	}
}

func validateTopic(t *v1alpha1.Topic) error {
	var e errs
	validateNamespace(&e, t.Namespace)
	if len(t.Name) > 52 {
		e.addf("metadata.name: Topic names are at most 52 characters so that the dispatcher's Service name (<name>-dispatcher) fits 63")
	}
	if !serviceNameRE.MatchString(t.Name) {
		e.addf("metadata.name: Topic names start with a letter and hold only lower-case letters, digits and '-', because they name a Service")
	}
	s := t.Spec
	if s.Storage != "" && s.Storage != v1alpha1.StorageFile && s.Storage != v1alpha1.StorageMemory {
		e.addf("spec.storage: %q is not one of file, memory", s.Storage)
	}
	switch s.Replicas {
	case 0, 1, 3, 5:
	default:
		e.addf("spec.replicas: %d is not one of 1, 3, 5", s.Replicas)
	}
	if s.MaxEventSize != 0 && (s.MaxEventSize < 1024 || s.MaxEventSize > 8<<20) {
		e.addf("spec.maxEventSize: %d is not between 1024 and 8388608", s.MaxEventSize)
	}
	if r := s.Retention; r != nil {
		if r.MaxBytes != nil && *r.MaxBytes < 1024 {
			e.addf("spec.retention.maxBytes: must be at least 1024")
		}
		if r.MaxMessages != nil && *r.MaxMessages < 1 {
			e.addf("spec.retention.maxMessages: must be at least 1")
		}
		if r.Discard != "" && r.Discard != v1alpha1.DiscardOld && r.Discard != v1alpha1.DiscardNew {
			e.addf("spec.retention.discard: %q is not one of old, new", r.Discard)
		}
	}
	if _, err := plan.StreamConfig(t); err != nil {
		e.add("spec", err)
	}
	if ds := s.Dispatcher; ds != nil && ds.Replicas != nil && (*ds.Replicas < 0 || *ds.Replicas > 50) {
		e.addf("spec.dispatcher.replicas: %d is not between 0 and 50", *ds.Replicas)
	}
	validateDelivery(&e, "spec.delivery", s.Delivery)
	return e.err()
}

func validateSubscription(sub *v1alpha1.Subscription) error {
	var e errs
	validateNamespace(&e, sub.Namespace)
	if len(sub.Name) > 63 {
		e.addf("metadata.name: Subscription names are at most 63 characters because they name a JetStream consumer")
	}
	if !dnsSubdomainRE.MatchString(sub.Name) {
		e.addf("metadata.name: must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
	}
	s := sub.Spec
	if s.Topic == "" {
		e.addf("spec.topic: required")
	} else if len(s.Topic) > 52 {
		e.addf("spec.topic: at most 52 characters")
	}
	validateDestination(&e, "spec.subscriber", &s.Subscriber)
	if s.Reply != nil {
		validateDestination(&e, "spec.reply", s.Reply)
	}
	if len(s.Filters) > 16 {
		e.addf("spec.filters: at most 16 filters")
	}
	for i := range s.Filters {
		f := plan.FromAPI(&s.Filters[i])
		e.add(fmt.Sprintf("spec.filters[%d]", i), f.Validate())
	}
	validateDelivery(&e, "spec.delivery", s.Delivery)
	switch s.Ordering {
	case "", v1alpha1.OrderingUnordered, v1alpha1.OrderingOrdered, v1alpha1.OrderingPerKey:
	default:
		e.addf("spec.ordering: %q is not one of unordered, ordered, perKey", s.Ordering)
	}
	if s.MaxInFlight != 0 && (s.MaxInFlight < 1 || s.MaxInFlight > 10000) {
		e.addf("spec.maxInFlight: %d is not between 1 and 10000", s.MaxInFlight)
	}
	if rl := s.RateLimit; rl != nil {
		if rl.EventsPerSecond < 1 || rl.EventsPerSecond > 1000000 {
			e.addf("spec.rateLimit.eventsPerSecond: %d is not between 1 and 1000000", rl.EventsPerSecond)
		}
		if rl.Burst != nil && (*rl.Burst < 1 || *rl.Burst > 1000000) {
			e.addf("spec.rateLimit.burst: %d is not between 1 and 1000000", *rl.Burst)
		}
	}
	if p := s.StartPosition; p != "" && p != "latest" && p != "earliest" && !startPosRE.MatchString(p) {
		e.addf("spec.startPosition: startPosition is latest, earliest, or an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return e.err()
}

func validateEventSource(src *v1alpha1.EventSource) error {
	var e errs
	validateNamespace(&e, src.Namespace)
	if len(src.Name) > 56 {
		e.addf("metadata.name: EventSource names are at most 56 characters so that the adapter's Deployment and Service name (<name>-source) fits 63")
	}
	if !serviceNameRE.MatchString(src.Name) {
		e.addf("metadata.name: EventSource names start with a letter and hold only lower-case letters, digits and '-', because they name a Service")
	}
	s := src.Spec
	validateDestination(&e, "spec.sink", &s.Sink)
	n := 0
	for _, set := range []bool{s.Ping != nil, s.APIServer != nil, s.Webhook != nil, s.Container != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		e.addf("spec: an EventSource sets exactly one of ping, apiServer, webhook or container")
	}
	if p := s.Ping; p != nil {
		switch {
		case p.Schedule == "":
			e.addf("spec.ping.schedule: required")
		case p.Data != "" && p.DataBase64 != "":
			e.addf("spec.ping: set data or dataBase64, not both")
		default:
			// What the operator reports in the EventSource's status.
			e.add("spec.ping", sources.ValidatePing(p))
		}
	}
	if w := s.Webhook; w != nil && w.Signature != nil {
		validateSignature(&e, w.Signature)
	}
	if o := s.CEOverrides; o != nil {
		e.add("spec.ceOverrides", sources.ValidateExtensions(o.Extensions))
	}
	return e.err()
}

func validateSignature(e *errs, sig *v1alpha1.WebhookSignature) {
	const f = "spec.webhook.signature"
	switch sig.Type {
	case v1alpha1.SignatureGitHub:
	case v1alpha1.SignatureHMAC:
		if sig.Header == "" {
			e.addf("%s: a signature of type hmac needs header, the name of the HTTP header carrying the signature", f)
		}
	default:
		e.addf("%s.type: %q is not one of github, hmac", f, sig.Type)
	}
	if a := sig.Algorithm; a != "" && a != "sha1" && a != "sha256" && a != "sha512" {
		e.addf("%s.algorithm: %q is not one of sha1, sha256, sha512", f, a)
	}
	if enc := sig.Encoding; enc != "" && enc != "hex" && enc != "base64" {
		e.addf("%s.encoding: %q is not one of hex, base64", f, enc)
	}
	if sig.SecretKeyRef.Name == "" || sig.SecretKeyRef.Key == "" {
		e.addf("%s.secretKeyRef: name and key are required", f)
	}
}

func validateDestination(e *errs, field string, d *v1alpha1.Destination) {
	if d.Ref == nil && d.URI == nil {
		e.addf("%s: a destination needs a ref, a uri, or both", field)
		return
	}
	if d.Ref == nil {
		if !absURIRE.MatchString(*d.URI) {
			e.addf("%s.uri: uri must be an absolute http:// or https:// URL (for example http://inventory.shop.svc:8080/orders) when no ref is given", field)
		}
		return
	}
	if d.URI != nil && len(*d.URI) > 0 && (*d.URI)[0] != '/' && (*d.URI)[0] != '?' {
		e.addf("%s.uri: with a ref, uri must be a path such as /orders that is appended to the referent's address", field)
	}
	if d.Ref.APIVersion == "" || d.Ref.Kind == "" || d.Ref.Name == "" {
		e.addf("%s.ref: apiVersion, kind and name are required", field)
	}
}

func validateDelivery(e *errs, field string, d *v1alpha1.DeliverySpec) {
	if d == nil {
		return
	}
	if d.Retry != nil && (*d.Retry < 0 || *d.Retry > 100) {
		e.addf("%s.retry: %d is not between 0 and 100", field, *d.Retry)
	}
	if p := d.BackoffPolicy; p != nil && *p != v1alpha1.BackoffPolicyLinear && *p != v1alpha1.BackoffPolicyExponential {
		e.addf("%s.backoffPolicy: %q is not one of linear, exponential", field, *p)
	}
	if _, err := plan.EffectiveDelivery(d, nil); err != nil {
		e.addf("%s.%s", field, strings.TrimPrefix(err.Error(), "delivery."))
	}
	if d.DeadLetterSink != nil {
		validateDestination(e, field+".deadLetterSink", d.DeadLetterSink)
	}
}
