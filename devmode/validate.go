package devmode

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/config/crd"
	"github.com/herald-dev/herald/internal/crdvalidation"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/replay"
	"github.com/herald-dev/herald/sources"
)

// crdValidator validates with the CRDs built into the binary, the ones
// generated from api/v1alpha1 that the API server serves.
var crdValidator = sync.OnceValues(func() (*crdvalidation.Validator, error) {
	crds, err := crd.Definitions()
	if err != nil {
		return nil, fmt.Errorf("read the built-in CRDs: %w", err)
	}
	v, err := crdvalidation.New(crds)
	if err != nil {
		return nil, fmt.Errorf("build validation from the built-in CRDs: %w", err)
	}
	return v, nil
})

// Validate checks an object as the API server would on create and then as
// the operator would before applying it. A Topic, Subscription or
// EventSource is checked against the CRD's schema and CEL rules, with the
// API server's code; the error is then the API server's, a StatusError of
// k8s.io/apimachinery/pkg/api/errors with reason Invalid that lists every
// violation. An object the API server accepts is then checked as the
// operator does (stream configuration, filters, delivery, ping schedules,
// CloudEvents extensions), which in a cluster shows in its status; those
// violations are joined with "; ". A Secret is checked for the API server's
// name and key rules.
func Validate(o *Object) error {
	switch {
	case o.Topic != nil, o.Subscription != nil, o.EventSource != nil, o.Replay != nil:
		if o.content == nil {
			return errors.New("not decoded from a manifest")
		}
		v, err := crdValidator()
		if err != nil {
			return err
		}
		if err := v.Validate(context.Background(), o.content); err != nil {
			return err
		}
	}
	switch {
	case o.Topic != nil:
		return validateTopic(o.Topic)
	case o.Subscription != nil:
		return validateSubscription(o.Subscription)
	case o.EventSource != nil:
		return validateEventSource(o.EventSource)
	case o.Replay != nil:
		if dl := o.Replay.Spec.From.DeadLetters; dl != nil {
			if _, err := replay.SelectionFor(dl); err != nil {
				return fmt.Errorf("spec.from.%w", err)
			}
		}
		return nil
	case o.Secret != nil:
		return validateSecret(o.Secret.Namespace, o.Secret.Name, o.Secret.Data)
	case o.ConfigMap != nil:
		data := make(map[string][]byte, len(o.ConfigMap.Data))
		for k, v := range o.ConfigMap.Data {
			data[k] = []byte(v)
		}
		return validateSecret(o.ConfigMap.Namespace, o.ConfigMap.Name, data)
	}
	return errors.New("empty object")
}

// validateSecret checks what the API server checks of a Secret's (or a
// ConfigMap's) metadata and keys, with its messages.
func validateSecret(ns, name string, data map[string][]byte) error {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	for _, msg := range validation.ValidateNamespaceName(ns, false) {
		errs = append(errs, field.Invalid(meta.Child("namespace"), ns, msg))
	}
	for _, msg := range validation.NameIsDNSSubdomain(name, false) {
		errs = append(errs, field.Invalid(meta.Child("name"), name, msg))
	}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		for _, msg := range utilvalidation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
		}
	}
	return errs.ToAggregate()
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

func (e *errs) add(field string, err error) {
	if err != nil {
		*e = append(*e, fmt.Errorf("%s: %w", field, err))
	}
}

// The checks below are the operator's own, on objects the API server
// accepted; the CRDs cannot express them.

func validateTopic(t *v1alpha1.Topic) error {
	var e errs
	if _, err := compiler.StreamConfig(t); err != nil {
		e.add("spec", err)
	}
	validateDelivery(&e, "spec.delivery", t.Spec.Delivery)
	return e.err()
}

func validateSubscription(sub *v1alpha1.Subscription) error {
	var e errs
	validateCACerts(&e, "spec.subscriber", &sub.Spec.Subscriber)
	validateCACerts(&e, "spec.reply", sub.Spec.Reply)
	for i := range sub.Spec.Filters {
		f := compiler.FromAPI(&sub.Spec.Filters[i])
		e.add(fmt.Sprintf("spec.filters[%d]", i), f.Validate())
	}
	validateDelivery(&e, "spec.delivery", sub.Spec.Delivery)
	return e.err()
}

// validateCACerts checks d's caCerts as the compiler does (plan.CertPool).
func validateCACerts(e *errs, field string, d *v1alpha1.Destination) {
	if d == nil || d.CACerts == nil {
		return
	}
	_, err := plan.CertPool(*d.CACerts)
	e.add(field+".caCerts", err)
}

func validateEventSource(src *v1alpha1.EventSource) error {
	var e errs
	if p := src.Spec.Ping; p != nil {
		e.add("spec.ping", sources.ValidatePing(p))
	}
	if o := src.Spec.CEOverrides; o != nil {
		e.add("spec.ceOverrides", sources.ValidateExtensions(o.Extensions))
	}
	return e.err()
}

func validateDelivery(e *errs, field string, d *v1alpha1.DeliverySpec) {
	if d == nil {
		return
	}
	if _, err := compiler.EffectiveDelivery(d, nil); err != nil {
		*e = append(*e, fmt.Errorf("%s.%s", field, strings.TrimPrefix(err.Error(), "delivery.")))
	}
	validateCACerts(e, field+".deadLetterSink", d.DeadLetterSink)
}
