// Package crdvalidation checks custom resources against their
// CustomResourceDefinitions without an API server, with the code the API
// server itself runs on create (k8s.io/apiextensions-apiserver): strict
// decoding against the structural schema, defaulting, the OpenAPI schema
// validator, list-type invariants and the CEL x-kubernetes-validations, with
// the API server's cost limits. Its verdicts and messages are the API
// server's.
package crdvalidation

import (
	"context"
	"fmt"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/operation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// Validator validates objects of the served versions of a set of
// CustomResourceDefinitions. It is safe for concurrent use.
type Validator struct {
	kinds map[schema.GroupVersionKind]*version
}

// version is what the API server builds for one served version of a CRD.
type version struct {
	groupKind  schema.GroupKind
	namespaced bool
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
	hasStatus  bool
}

// New builds a Validator for the served versions of crds, as the API server
// does when it starts serving them. A schema the API server would not serve
// is an error, and so are preserveUnknownFields and the scale subresource,
// which the Validator does not implement.
func New(crds []*apiextensionsv1.CustomResourceDefinition) (*Validator, error) {
	v := &Validator{kinds: map[schema.GroupVersionKind]*version{}}
	for _, crd := range crds {
		if crd.Spec.PreserveUnknownFields {
			return nil, fmt.Errorf("%s: preserveUnknownFields is not supported", crd.Name)
		}
		for _, ver := range crd.Spec.Versions {
			if !ver.Served {
				continue
			}
			kv, err := newVersion(crd, ver)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", crd.Name, ver.Name, err)
			}
			v.kinds[schema.GroupVersionKind{Group: crd.Spec.Group, Version: ver.Name, Kind: crd.Spec.Names.Kind}] = kv
		}
	}
	return v, nil
}

func newVersion(crd *apiextensionsv1.CustomResourceDefinition, ver apiextensionsv1.CustomResourceDefinitionVersion) (*version, error) {
	val, err := apihelpers.GetSchemaForVersion(crd, ver.Name)
	if err != nil {
		return nil, err
	}
	if val == nil || val.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("no schema")
	}
	internal := &apiextensionsinternal.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(val, internal, nil); err != nil {
		return nil, fmt.Errorf("convert schema: %w", err)
	}
	s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("structural schema: %w", err)
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("prune defaults: %w", err)
	}
	sv, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("schema validator: %w", err)
	}
	subresources, err := apihelpers.GetSubresourcesForVersion(crd, ver.Name)
	if err != nil {
		return nil, err
	}
	if subresources != nil && subresources.Scale != nil {
		return nil, fmt.Errorf("the scale subresource is not supported")
	}
	return &version{
		groupKind:  schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind},
		namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
		structural: s,
		schema:     sv,
		cel:        cel.NewValidator(s, true, celconfig.PerCallLimit),
		hasStatus:  subresources != nil && subresources.Status != nil,
	}, nil
}

// kind returns the version obj's apiVersion and kind name, or an error
// naming what is not served.
func (v *Validator) kind(obj map[string]any) (*version, error) {
	u := unstructured.Unstructured{Object: obj}
	gvk := u.GroupVersionKind()
	kv, ok := v.kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("no kind %q is served in version %q", gvk.Kind, gvk.GroupVersion())
	}
	return kv, nil
}

// Decode returns the object the API server stores when asked to create obj
// (as decoded from JSON, integers as int64) with strict field validation,
// kubectl's default: fields the schema does not know are an error that
// runtime.AsStrictDecodingError recognises, one `unknown field "<path>"` per
// field, as the API server reports them; status is dropped, as the status
// subresource requires; the schema's defaults are applied. obj is not
// modified.
func (v *Validator) Decode(obj map[string]any) (map[string]any, error) {
	kv, err := v.kind(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(obj)}
	kind, apiVersion := u.GetKind(), u.GetAPIVersion()

	meta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(u.Object, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(u.Object, kv.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, kv.structural)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, u.Object, kv.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	unknown = append(unknown, paths...)
	if len(unknown) > 0 {
		errs := make([]error, len(unknown))
		for i, p := range unknown {
			errs[i] = fmt.Errorf("unknown field %q", p)
		}
		return nil, runtime.NewStrictDecodingError(errs)
	}
	u.SetKind(kind)
	u.SetAPIVersion(apiVersion)
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(u.Object, meta); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}

	structuraldefaulting.Default(u.Object, kv.structural)
	if kv.hasStatus {
		delete(u.Object, "status")
	}
	return u.Object, nil
}

// Validate returns the API server's refusal to create obj, an object as
// Decode returns it, as *apierrors.StatusError with reason Invalid whose
// message lists every violation as the API server does, or nil when the
// API server would accept it. The namespace is not checked to exist. An
// object of a kind the Validator does not serve is an error.
func (v *Validator) Validate(ctx context.Context, obj map[string]any) error {
	kv, err := v.kind(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	errs := kv.validate(ctx, u)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(kv.groupKind, u.GetName(), errs)
}

// validate runs the checks of the API server's custom resource strategy for
// create, in its order.
func (kv *version) validate(ctx context.Context, u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, kv.validateMeta(ctx, u)...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.UnstructuredContent(), kv.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u.Object, kv.structural, false)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, kv.structural, u.Object)...)
	if blocked, err := hasBlockingErr(errs); blocked {
		return append(errs, err)
	}
	celErrs, _ := kv.cel.Validate(ctx, nil, kv.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// validateMeta checks metadata as the API server's custom resource
// validator does: names are DNS subdomains, namespaces DNS labels.
func (kv *version) validateMeta(ctx context.Context, u *unstructured.Unstructured) field.ErrorList {
	meta, found, err := schemaobjectmeta.GetObjectMeta(u.Object, false)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("metadata"), u.Object["metadata"], err.Error())}
	}
	if !found {
		meta = &metav1.ObjectMeta{}
	}
	return metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, kv.namespaced,
		metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"), utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta))
}

// hasBlockingErr is the API server's rule for skipping the CEL rules: they
// assume the schema holds, so errors of these types stop them.
func hasBlockingErr(errs field.ErrorList) (bool, *field.Error) {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return false, nil
}
