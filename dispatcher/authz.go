package dispatcher

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Reason of a 403 in the ingress's error answers.
const reasonForbiddenBody = "forbidden"

// publishPolicy is a plan.PublishPolicy compiled for the ingress: a
// Topic's (who may publish) or a pull Subscription's (who may pull).
type publishPolicy struct {
	// authenticate is plan.PublishPolicy.Authenticate: false admits every
	// request without looking at credentials.
	authenticate bool
	// audience is the audience producers' tokens must carry.
	audience string
	source   string
	rules    []publishRule
	// action ("publish" or "pull") and listed (the Source of a policy
	// from listed identities, "publishers" or "consumers") word 403s.
	action, listed, owner string
}

// publishRule is a plan.PublishRule with its filters compiled; a rule
// whose filters do not compile admits nothing.
type publishRule struct {
	name     string
	subjects []string
	filter   matcher
	// filtered is false when the rule admits every event of its subjects.
	filtered bool
}

// compilePublishPolicy compiles the publish policy of p. Rule filters that
// do not compile make their rule admit nothing (the control plane
// validates them, so this is a plan from a newer or broken compiler); the
// errors are returned for logging.
func compilePublishPolicy(p *plan.TopicPlan) (*publishPolicy, error) {
	pp := &publishPolicy{action: "publish", listed: "publishers", owner: "Topic"}
	return pp, pp.compile(&p.Publish, topicAudience(p))
}

// compileConsumePolicy compiles who may pull from the pull Subscription
// sp of Topic p; a plan without its Consume admits nobody.
func compileConsumePolicy(p *plan.TopicPlan, sp *plan.SubscriptionPlan) (*publishPolicy, error) {
	pp := &publishPolicy{action: "pull", listed: "consumers", owner: "Subscription"}
	pol := sp.Consume
	if pol == nil {
		pol = &plan.PublishPolicy{Source: "deny-all", Authenticate: true}
	}
	return pp, pp.compile(pol, topicAudience(p))
}

func topicAudience(p *plan.TopicPlan) string {
	if p.Audience != "" {
		return p.Audience
	}
	return plan.TopicAudience(p.Namespace, p.Name)
}

// compile fills pp from pol; see compilePublishPolicy.
func (pp *publishPolicy) compile(pol *plan.PublishPolicy, audience string) error {
	pp.authenticate, pp.audience, pp.source = pol.Authenticate, audience, pol.Source
	if pp.source == "" {
		pp.source = pp.listed
	}
	var errs []error
	for i, r := range pol.Rules {
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("rules[%d]", i)
		}
		m, err := compileFilters(r.Filters)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s rule %s: %w", pp.action, name, err))
			m = not{matchAll{}}
		}
		pp.rules = append(pp.rules, publishRule{name: name, subjects: r.Subjects, filter: m, filtered: len(r.Filters) > 0 || err != nil})
	}
	return errors.Join(errs...)
}

// admission is what a policy says about one authenticated producer: the
// rules whose subjects match it, in order.
type admission struct {
	policy  *publishPolicy
	subject string
	rules   []*publishRule
	// all is true when a matching rule has no filters: every event is
	// admitted without looking at it.
	all bool
}

// admit returns the admission of subject.
func (pp *publishPolicy) admit(subject string) admission {
	a := admission{policy: pp, subject: subject}
	for i := range pp.rules {
		r := &pp.rules[i]
		if !r.matchesSubject(subject) {
			continue
		}
		if !r.filtered {
			a.all = true
			a.rules = nil
			return a
		}
		a.rules = append(a.rules, r)
	}
	return a
}

func (r *publishRule) matchesSubject(subject string) bool {
	for _, s := range r.subjects {
		if plan.SubjectMatches(s, subject) {
			return true
		}
	}
	return false
}

// refusal returns why e is not admitted, or "" when it is: the first rule
// whose subjects match and whose filters match e admits it.
func (a *admission) refusal(e *ce.Event) string {
	if a.all {
		return ""
	}
	if len(a.rules) == 0 {
		return a.noRule()
	}
	v := eventView{ev: e}
	names := make([]string, 0, len(a.rules))
	for _, r := range a.rules {
		if r.filter.match(&v) {
			return ""
		}
		names = append(names, r.name)
	}
	typ, _ := e.Get(ce.AttrType)
	return fmt.Sprintf("%s admits %s only for events matching its filters; this event of type %q does not",
		strings.Join(names, ", "), a.subject, truncateText(typ, 128))
}

func (a *admission) noRule() string {
	pp := a.policy
	if pp.source != pp.listed {
		return fmt.Sprintf("no %s rule admits %s (policy %s)", pp.action, a.subject, pp.source)
	}
	names := make([]string, len(pp.rules))
	for i := range pp.rules {
		names[i] = pp.rules[i].name
	}
	if len(names) == 0 {
		return fmt.Sprintf("no %s rule admits %s (the %s's %s admit nobody)", pp.action, a.subject, pp.owner, pp.listed)
	}
	return fmt.Sprintf("no %s rule admits %s (the %s's %s: %s)", pp.action, a.subject, pp.owner, pp.listed, strings.Join(names, ", "))
}

// authenticate checks the request's bearer token against pp, t's publish
// policy or the consume policy of one of its pull Subscriptions, which
// asks for one. ok false means the answer was written: 401 for a refused
// token, 503 (with Retry-After) when it cannot be checked.
func (d *Dispatcher) authenticate(w http.ResponseWriter, r *http.Request, t *topicState, pp *publishPolicy) (adm admission, ok bool) {
	if d.verifier == nil {
		t.metrics.reject(reasonUnavailable)
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "this " + pp.owner + " admits authenticated clients only and the dispatcher has no token verifier", Reason: string(auth.ReasonUnavailable)})
		return admission{}, false
	}
	token, err := auth.BearerToken(r.Header)
	var id auth.Identity
	if err == nil {
		id, err = d.verifier.Verify(r.Context(), token, pp.audience)
	}
	if err != nil {
		var ae *auth.Error
		if !errors.As(err, &ae) {
			ae = &auth.Error{Reason: auth.ReasonUnavailable, Message: err.Error()}
		}
		if ae.Reason == auth.ReasonUnavailable {
			t.metrics.reject(reasonUnavailable)
			if d.authErrLog.allow(time.Now()) {
				d.log.Warn("cannot check tokens (logged at most once a second)", "topic", t.plan.Namespace+"/"+t.plan.Name, "error", ae.Message)
			}
			w.Header().Set("Retry-After", retryAfterUnavailable)
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "cannot check the bearer token now: " + ae.Message, Reason: string(ae.Reason)})
			return admission{}, false
		}
		t.metrics.reject(reasonUnauthenticated)
		if ae.Reason == auth.ReasonMissing {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token", error_description="`+quotedText(ae.Message)+`"`)
		}
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: ae.Message, Reason: string(ae.Reason)})
		return admission{}, false
	}
	return pp.admit(id.Subject), true
}

// forbid answers 403 with msg; index is the batch position, or nil.
func forbid(w http.ResponseWriter, t *topicState, msg string, index *int) {
	t.metrics.reject(reasonForbidden)
	writeJSON(w, http.StatusForbidden, errorBody{Error: msg, Reason: reasonForbiddenBody, Index: index})
}

// quotedText makes s fit an HTTP quoted-string: printable ASCII without
// '"' and '\'.
func quotedText(s string) string {
	b := []byte(truncateText(s, 256))
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '\''
		}
	}
	return string(b)
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
