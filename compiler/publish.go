package compiler

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// DefaultPublishMode is the publish mode of Topics without publishers when
// none is configured.
const DefaultPublishMode = plan.PublishAllowSameNamespace

// ParsePublishMode returns the mode s names; empty is DefaultPublishMode.
func ParsePublishMode(s string) (plan.PublishMode, error) {
	if s == "" {
		return DefaultPublishMode, nil
	}
	if m := plan.PublishMode(s); slices.Contains(plan.PublishModes, m) {
		return m, nil
	}
	return "", fmt.Errorf("publish policy %q: want one of %s", s, publishModeList())
}

func publishModeList() string {
	out := ""
	for i, m := range plan.PublishModes {
		if i > 0 {
			out += ", "
		}
		out += string(m)
	}
	return out
}

// PublisherRuleName is the name of the rule compiled from the Topic's i-th
// publisher, as 403 answers and status name it.
func PublisherRuleName(i int) string { return fmt.Sprintf("publishers[%d]", i) }

// NamespaceSelector returns the selector of a publisher's
// namespaceSelector.
func NamespaceSelector(sel *v1alpha1.NamespaceSelector) (labels.Selector, error) {
	s, err := metav1.LabelSelectorAsSelector(sel.LabelSelector())
	if err != nil {
		return nil, fmt.Errorf("namespaceSelector: %w", err)
	}
	return s, nil
}

// SelectedNamespaces matches the namespaceSelector of each of t's
// publishers against namespaces (name to labels) and returns, by publisher
// index, the sorted names of the namespaces it selects. Publishers without a
// namespaceSelector have no entry; one selecting no namespace has an empty
// one.
func SelectedNamespaces(t *v1alpha1.Topic, namespaces map[string]map[string]string) (map[int][]string, error) {
	out := map[int][]string{}
	for i, p := range t.Spec.Publishers {
		if p.NamespaceSelector == nil {
			continue
		}
		sel, err := NamespaceSelector(p.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", PublisherRuleName(i), err)
		}
		names := []string{}
		for name, l := range namespaces {
			if sel.Matches(labels.Set(l)) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		out[i] = names
	}
	return out, nil
}

// PublishPolicy compiles the publish policy of t. A Topic with publishers
// gets one rule per publisher, named PublisherRuleName(i), admitting the
// subjects the publisher names to publish what its filters match;
// selected holds the namespaces each namespaceSelector matches (see
// SelectedNamespaces), and a selector without an entry matches none. A
// Topic without publishers gets mode (empty means DefaultPublishMode):
// allow-same-namespace admits the ServiceAccounts of t's namespace,
// authenticated every authenticated producer, allow-all every request
// without authentication, deny-all nobody. An error means the policy
// cannot be compiled (an unknown mode, an invalid selector or filter) and
// must not be replaced by a more open one.
func PublishPolicy(t *v1alpha1.Topic, mode plan.PublishMode, selected map[int][]string) (plan.PublishPolicy, error) {
	if len(t.Spec.Publishers) == 0 {
		return ModePolicy(t.Namespace, mode)
	}
	return listedPolicy(t.Namespace, t.Spec.Publishers, v1alpha1.PublishSourcePublishers, PublisherRuleName, selected)
}

// ConsumerRuleName is the name of the rule compiled from a Subscription's
// i-th consumer, as 403 answers name it.
func ConsumerRuleName(i int) string { return fmt.Sprintf("consumers[%d]", i) }

// ConsumerSource is the plan.PublishPolicy.Source of a pull
// Subscription's policy compiled from its spec.consumers.
const ConsumerSource = "consumers"

// ConsumePolicy compiles who may pull from the pull Subscription s: one
// rule per consumer, named ConsumerRuleName(i), admitting the subjects it
// names, or, without consumers, mode as for a Topic without publishers
// (see ModePolicy). Consumers take no filters and no namespaceSelector
// (the API server refuses them; so does ConsumePolicy).
func ConsumePolicy(s *v1alpha1.Subscription, mode plan.PublishMode) (plan.PublishPolicy, error) {
	if len(s.Spec.Consumers) == 0 {
		return ModePolicy(s.Namespace, mode)
	}
	for i, c := range s.Spec.Consumers {
		if len(c.Filters) > 0 || c.NamespaceSelector != nil {
			return plan.PublishPolicy{}, fmt.Errorf("%s: filters and namespaceSelector apply to a Topic's publishers only", ConsumerRuleName(i))
		}
	}
	return listedPolicy(s.Namespace, s.Spec.Consumers, ConsumerSource, ConsumerRuleName, nil)
}

// listedPolicy compiles entries, declared in namespace, into one rule each
// named ruleName(i); selected holds the namespaces each namespaceSelector
// matches.
func listedPolicy(namespace string, entries []v1alpha1.Publisher, source string, ruleName func(int) string, selected map[int][]string) (plan.PublishPolicy, error) {
	pol := plan.PublishPolicy{Source: source, Authenticate: true}
	for i := range entries {
		p := &entries[i]
		name := ruleName(i)
		rule := plan.PublishRule{Name: name, Subjects: []string{}}
		switch {
		case p.ServiceAccount != nil:
			ns := p.ServiceAccount.Namespace
			if ns == "" {
				ns = namespace
			}
			rule.Subjects = append(rule.Subjects, plan.ServiceAccountSubject(ns, p.ServiceAccount.Name))
		case p.Namespace != "":
			rule.Subjects = append(rule.Subjects, plan.NamespaceSubjects(p.Namespace))
		case p.NamespaceSelector != nil:
			if _, err := NamespaceSelector(p.NamespaceSelector); err != nil {
				return plan.PublishPolicy{}, fmt.Errorf("%s.%w", name, err)
			}
			for _, ns := range selected[i] {
				rule.Subjects = append(rule.Subjects, plan.NamespaceSubjects(ns))
			}
		case p.Sub != "":
			rule.Subjects = append(rule.Subjects, p.Sub)
		default:
			return plan.PublishPolicy{}, fmt.Errorf("%s: sets none of serviceAccount, namespace, namespaceSelector or sub", name)
		}
		for j := range p.Filters {
			f := fromNested(&p.Filters[j])
			if err := f.Validate(); err != nil {
				return plan.PublishPolicy{}, fmt.Errorf("%s.filters[%d]: %w", name, j, err)
			}
			rule.Filters = append(rule.Filters, f)
		}
		pol.Rules = append(pol.Rules, rule)
	}
	return pol, nil
}

// ModePolicy is the publish policy of mode (empty means
// DefaultPublishMode) for a Topic of namespace without publishers.
func ModePolicy(namespace string, mode plan.PublishMode) (plan.PublishPolicy, error) {
	if mode == "" {
		mode = DefaultPublishMode
	}
	pol := plan.PublishPolicy{Source: string(mode), Authenticate: true}
	switch mode {
	case plan.PublishAllowSameNamespace:
		pol.Rules = []plan.PublishRule{{Name: string(mode), Subjects: []string{plan.NamespaceSubjects(namespace)}}}
	case plan.PublishAuthenticated:
		pol.Rules = []plan.PublishRule{{Name: string(mode), Subjects: []string{"*"}}}
	case plan.PublishAllowAll:
		pol.Authenticate = false
	case plan.PublishDenyAll:
	default:
		return plan.PublishPolicy{}, fmt.Errorf("publish policy %q: want one of %s", mode, publishModeList())
	}
	return pol, nil
}
