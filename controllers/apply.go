package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/herald-dev/herald/controllers/resources"
)

// FieldOwner is the server-side apply field manager of everything the
// operator applies.
const FieldOwner = resources.ManagedBy

// apply makes the server's object match desired by server-side apply with
// FieldOwner, taking over fields someone else changed (drift repair), and
// decodes the server's answer into out (nil to skip). Fields the operator
// applied before and no longer declares are removed.
//
// Apply keeps list entries another manager added, which can make the merged
// object invalid: a Service port renumbered by hand comes back beside the
// edited one with the same name. When the API server refuses the applied
// object and the live one is controlled by the same owner, its spec is
// replaced with the declared one and applied again.
func apply(ctx context.Context, c client.Client, desired client.Object, out any) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return fmt.Errorf("convert %T: %w", desired, err)
	}
	delete(m, "status")
	pruneNulls(m)
	u := &unstructured.Unstructured{Object: m}
	kind, ns, name := u.GetKind(), u.GetNamespace(), u.GetName()
	err = serverSideApply(ctx, c, u.DeepCopy(), out)
	if apierrors.IsInvalid(err) && replaceDrifted(ctx, c, u) {
		err = serverSideApply(ctx, c, u.DeepCopy(), out)
	}
	if err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", kind, ns, name, err)
	}
	return nil
}

func serverSideApply(ctx context.Context, c client.Client, u *unstructured.Unstructured, out any) error {
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return fmt.Errorf("convert applied %s: %w", u.GetKind(), err)
	}
	return nil
}

// replaceDrifted replaces the live object's spec and labels with desired's
// when the live object is controlled by desired's controller, and reports
// whether it did. Values the server allocated (a Service's cluster IP) are
// kept by the server.
func replaceDrifted(ctx context.Context, c client.Client, desired *unstructured.Unstructured) bool {
	owner := metav1.GetControllerOfNoCopy(desired)
	if owner == nil {
		return false
	}
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(desired.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(desired), live); err != nil {
		return false
	}
	if cur := metav1.GetControllerOfNoCopy(live); cur == nil || cur.UID != owner.UID {
		return false
	}
	spec, ok := desired.Object["spec"]
	if !ok {
		return false
	}
	live.Object["spec"] = runtime.DeepCopyJSONValue(spec)
	labels := live.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range desired.GetLabels() {
		labels[k] = v
	}
	live.SetLabels(labels)
	if err := c.Update(ctx, live, client.FieldOwner(FieldOwner)); err != nil {
		log.FromContext(ctx).V(1).Info("replace drifted object", "kind", live.GetKind(), "name", live.GetName(), "error", err.Error())
		return false
	}
	log.FromContext(ctx).Info("replaced drifted object", "kind", live.GetKind(), "name", live.GetName())
	return true
}

// pruneNulls removes null values, which typed objects produce for unset
// structs such as metadata.creationTimestamp: applying a null would claim
// ownership of a field the operator does not set.
func pruneNulls(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			pruneNulls(v)
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					pruneNulls(em)
				}
			}
		}
	}
}
