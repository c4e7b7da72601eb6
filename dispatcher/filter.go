package dispatcher

import (
	"fmt"
	"strings"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	ceevent "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// matcher is a compiled filter expression of the CloudEvents Subscriptions
// API.
type matcher interface {
	match(v *eventView) bool
}

// eventView gives filters the attributes of a stored event (h), decoding
// values on demand, or of an event the ingress decoded (ev).
type eventView struct {
	h   nats.Header
	ev  *ce.Event
	sdk *ceevent.Event
}

func (v *eventView) attr(name string) (string, bool) {
	if v.ev != nil {
		return v.ev.Get(name)
	}
	return ce.StoredAttr(v.h, name)
}

// sdkEvent is the event as the CESQL evaluator takes it, built once.
func (v *eventView) sdkEvent() ceevent.Event {
	if v.sdk == nil {
		if v.h == nil && v.ev != nil {
			v.h = v.ev.Header()
		}
		e := toSDKEvent(v.h)
		v.sdk = &e
	}
	return *v.sdk
}

// toSDKEvent builds an SDK event holding the context attributes of stored
// headers h (no data).
func toSDKEvent(h nats.Header) ceevent.Event {
	e, err := ce.SDKEvent(h, nil)
	if err != nil {
		return ceevent.New()
	}
	return e
}

// compileFilters compiles a Subscription's filters, which must all match.
// No filters match every event.
func compileFilters(fs []plan.Filter) (matcher, error) {
	if len(fs) == 0 {
		return matchAll{}, nil
	}
	all := make(allOf, 0, len(fs))
	for i := range fs {
		m, err := compileFilter(&fs[i])
		if err != nil {
			return nil, fmt.Errorf("filters[%d]: %w", i, err)
		}
		all = append(all, m)
	}
	if len(all) == 1 {
		return all[0], nil
	}
	return all, nil
}

func compileFilter(f *plan.Filter) (matcher, error) {
	switch {
	case f.Exact != nil:
		return newAttrMatcher(f.Exact, func(v, want string) bool { return v == want }), nil
	case f.Prefix != nil:
		return newAttrMatcher(f.Prefix, strings.HasPrefix), nil
	case f.Suffix != nil:
		return newAttrMatcher(f.Suffix, strings.HasSuffix), nil
	case f.CESQL != "":
		expr, err := plan.ParseCESQL(f.CESQL)
		if err != nil {
			return nil, fmt.Errorf("cesql %q: %w", f.CESQL, err)
		}
		return cesqlMatcher{expr}, nil
	case f.All != nil:
		out := make(allOf, 0, len(f.All))
		for i := range f.All {
			m, err := compileFilter(&f.All[i])
			if err != nil {
				return nil, fmt.Errorf("all[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case f.Any != nil:
		out := make(anyOf, 0, len(f.Any))
		for i := range f.Any {
			m, err := compileFilter(&f.Any[i])
			if err != nil {
				return nil, fmt.Errorf("any[%d]: %w", i, err)
			}
			out = append(out, m)
		}
		return out, nil
	case f.Not != nil:
		m, err := compileFilter(f.Not)
		if err != nil {
			return nil, fmt.Errorf("not: %w", err)
		}
		return not{m}, nil
	}
	return nil, fmt.Errorf("empty filter")
}

// matchAll matches every event.
type matchAll struct{}

func (matchAll) match(*eventView) bool { return true }

// attrMatcher matches when every named attribute is present and its value
// satisfies cmp against the wanted value. Attribute names are compared
// lower-case, values case-sensitively.
type attrMatcher struct {
	names, values []string
	cmp           func(value, want string) bool
}

func newAttrMatcher(m map[string]string, cmp func(string, string) bool) *attrMatcher {
	a := &attrMatcher{cmp: cmp}
	for k, v := range m {
		a.names = append(a.names, strings.ToLower(k))
		a.values = append(a.values, v)
	}
	return a
}

func (a *attrMatcher) match(v *eventView) bool {
	for i, name := range a.names {
		got, ok := v.attr(name)
		if !ok || !a.cmp(got, a.values[i]) {
			return false
		}
	}
	return true
}

type allOf []matcher

func (all allOf) match(v *eventView) bool {
	for _, m := range all {
		if !m.match(v) {
			return false
		}
	}
	return true
}

type anyOf []matcher

func (anyM anyOf) match(v *eventView) bool {
	for _, m := range anyM {
		if m.match(v) {
			return true
		}
	}
	return false
}

type not struct{ m matcher }

func (n not) match(v *eventView) bool { return !n.m.match(v) }

// cesqlMatcher matches when the expression evaluates to true; an evaluation
// error (a missing attribute, a failed cast) does not match, as in Knative;
// neither does a panic of the SDK's evaluator.
type cesqlMatcher struct{ expr cesql.Expression }

func (c cesqlMatcher) match(v *eventView) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	res, err := c.expr.Evaluate(v.sdkEvent())
	if err != nil {
		return false
	}
	b, ok := res.(bool)
	return ok && b
}
