package compiler

import (
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/contract"
	"github.com/herald-dev/herald/plan"
)

// ErrSchemaSource is wrapped by InlineSchemas' errors when a schemaFrom
// could not be read: the ConfigMap or its key is missing.
var ErrSchemaSource = errors.New("schema source")

// ConfigMapKey returns the value of ref's key in the ConfigMap ref names in
// namespace, or an error wrapping ErrSchemaSource when the ConfigMap or
// the key does not exist (other errors are the lookup's own).
type ConfigMapKey func(namespace string, ref corev1.ConfigMapKeySelector) (string, error)

// InlineSchemas returns t, or a copy of t whose event types with schemaFrom
// carry the text get returns as their schema instead, ready for Compile.
func InlineSchemas(t *v1alpha1.Topic, get ConfigMapKey) (*v1alpha1.Topic, error) {
	var out *v1alpha1.Topic
	for i, et := range t.Spec.EventTypes {
		if et.SchemaFrom == nil {
			continue
		}
		text, err := get(t.Namespace, et.SchemaFrom.ConfigMapKeyRef)
		if err != nil {
			return nil, fmt.Errorf("eventTypes[%s].schemaFrom: %w", et.Type, err)
		}
		if out == nil {
			out = t.DeepCopy()
		}
		out.Spec.EventTypes[i].Schema, out.Spec.EventTypes[i].SchemaFrom = text, nil
	}
	if out == nil {
		return t, nil
	}
	return out, nil
}

// MissingConfigMapKey is the error of a ConfigMapKey whose ConfigMap or key
// does not exist.
func MissingConfigMapKey(namespace string, ref corev1.ConfigMapKeySelector, cmFound bool) error {
	if !cmFound {
		return fmt.Errorf("%w: ConfigMap %s/%s not found", ErrSchemaSource, namespace, ref.Name)
	}
	return fmt.Errorf("%w: ConfigMap %s/%s has no key %q", ErrSchemaSource, namespace, ref.Name, ref.Key)
}

// Contract is the plan.Contract of t, nil when its contract is off. Schemas
// given in YAML become JSON; each is compiled (contract.Compile), so that a
// schema that does not compile is refused here, naming the type. A
// schemaFrom must have been inlined (InlineSchemas).
func Contract(t *v1alpha1.Topic) (*plan.Contract, error) {
	mode := t.Spec.Contract
	if mode == "" || mode == v1alpha1.ContractOff {
		return nil, nil
	}
	if mode != v1alpha1.ContractWarn && mode != v1alpha1.ContractEnforce {
		return nil, fmt.Errorf("contract %q: want off, warn or enforce", mode)
	}
	if len(t.Spec.EventTypes) == 0 {
		return nil, errors.New("contract warn or enforce needs eventTypes")
	}
	c := &plan.Contract{Mode: string(mode), Types: make([]plan.EventType, 0, len(t.Spec.EventTypes))}
	for _, et := range t.Spec.EventTypes {
		if et.SchemaFrom != nil {
			return nil, fmt.Errorf("eventTypes[%s].schemaFrom: not resolved", et.Type)
		}
		pt := plan.EventType{Type: et.Type, DataContentType: et.DataContentType, RequiredExtensions: et.RequiredExtensions}
		if et.Schema != "" {
			j, err := yaml.YAMLToJSON([]byte(et.Schema))
			if err != nil {
				return nil, fmt.Errorf("eventTypes[%s].schema: neither JSON nor YAML: %w", et.Type, err)
			}
			pt.Schema = string(j)
		}
		c.Types = append(c.Types, pt)
	}
	if _, err := contract.Compile(c); err != nil {
		return nil, err
	}
	return c, nil
}
