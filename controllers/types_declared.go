package controllers

import (
	"slices"
	"strings"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// reconcileTypesDeclared owns TypesDeclared, which does not affect Ready:
// False (UndeclaredType) when the Topic has a contract (warn or enforce) and
// s names a type it does not declare, in spec.types or in an exact or
// prefix filter on type (top level or under all) that no declared type
// matches; True otherwise.
func reconcileTypesDeclared(s *v1alpha1.Subscription, t *v1alpha1.Topic, conds conditions) {
	if t.Spec.Contract == "" || t.Spec.Contract == v1alpha1.ContractOff {
		conds.setTrue(v1alpha1.ConditionTypesDeclared, "Topic %s has no contract", t.Name)
		return
	}
	declared := make([]string, 0, len(t.Spec.EventTypes))
	for _, et := range t.Spec.EventTypes {
		declared = append(declared, et.Type)
	}
	var missing []string
	note := func(name string) {
		if !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
	}
	for _, typ := range s.Spec.Types {
		if !slices.Contains(declared, typ) {
			note(typ)
		}
	}
	check := func(a v1alpha1.FilterAttributes) {
		if typ, ok := a.Exact[ceType]; ok && !slices.Contains(declared, typ) {
			note(typ)
		}
		if p, ok := a.Prefix[ceType]; ok && !slices.ContainsFunc(declared, func(d string) bool { return strings.HasPrefix(d, p) }) {
			note(p + "*")
		}
	}
	for _, f := range s.Spec.Filters {
		check(f.FilterAttributes)
		for _, n := range f.All {
			check(n.FilterAttributes)
		}
	}
	if len(missing) == 0 {
		conds.setTrue(v1alpha1.ConditionTypesDeclared, "the Topic's contract declares every type the Subscription names")
		return
	}
	conds.setFalse(v1alpha1.ConditionTypesDeclared, v1alpha1.ReasonUndeclaredType,
		"Topic %s's contract (%s) does not declare %s; the Subscription may never receive such events", t.Name, t.Spec.Contract, strings.Join(missing, ", "))
}

// ceType is the CloudEvents type attribute, as filters name it.
const ceType = "type"
