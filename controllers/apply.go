package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
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
	u, err := applyConfiguration(desired)
	if err != nil {
		return err
	}
	_, err = applyUnstructured(ctx, c, u, out)
	return err
}

// applyConfiguration is desired as apply sends it: without status and nulls.
func applyConfiguration(desired client.Object) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", desired, err)
	}
	delete(m, "status")
	pruneNulls(m)
	return &unstructured.Unstructured{Object: m}, nil
}

// applyUnstructured applies u as apply does and returns the applied
// object's resourceVersion.
func applyUnstructured(ctx context.Context, c client.Client, u *unstructured.Unstructured, out any) (string, error) {
	kind, ns, name := u.GetKind(), u.GetNamespace(), u.GetName()
	rv, err := serverSideApply(ctx, c, u.DeepCopy(), out)
	if apierrors.IsInvalid(err) && replaceDrifted(ctx, c, u) {
		rv, err = serverSideApply(ctx, c, u.DeepCopy(), out)
	}
	if err != nil {
		return "", fmt.Errorf("apply %s %s/%s: %w", kind, ns, name, err)
	}
	return rv, nil
}

func serverSideApply(ctx context.Context, c client.Client, u *unstructured.Unstructured, out any) (string, error) {
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return "", err
	}
	if out == nil {
		return u.GetResourceVersion(), nil
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return "", fmt.Errorf("convert applied %s: %w", u.GetKind(), err)
	}
	return u.GetResourceVersion(), nil
}

// appliedObjects remembers what a reconciler last applied to each object
// it owns and watches, and the resourceVersion the API server answered, so
// that an object neither the reconciler's desired state nor anyone else
// changed since is not applied again. The objects must be in the manager's
// cache (watched): a change by someone else shows there as a new
// resourceVersion, and its watch event reconciles the owner. The zero value
// is ready to use.
type appliedObjects struct {
	mu sync.Mutex
	// m holds entries by object key, then by Go type of the object.
	m map[types.NamespacedName]map[string]appliedEntry
}

type appliedEntry struct {
	fingerprint     [sha256.Size]byte
	resourceVersion string
}

// apply applies desired with apply unless the cached object is the one the
// last apply of the same desired state answered; out (a pointer to an
// object of desired's type, or nil) receives the object either way.
func (a *appliedObjects) apply(ctx context.Context, c client.Client, desired client.Object, out client.Object) error {
	u, err := applyConfiguration(desired)
	if err != nil {
		return err
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return fmt.Errorf("encode %T: %w", desired, err)
	}
	key, kind := client.ObjectKeyFromObject(desired), fmt.Sprintf("%T", desired)
	fp := sha256.Sum256(b)
	a.mu.Lock()
	last, ok := a.m[key][kind]
	a.mu.Unlock()
	if ok && last.fingerprint == fp {
		live := out
		if live == nil {
			live = reflect.New(reflect.TypeOf(desired).Elem()).Interface().(client.Object)
		}
		if err := c.Get(ctx, key, live); err == nil && live.GetResourceVersion() == last.resourceVersion {
			return nil
		}
	}
	rv, err := applyUnstructured(ctx, c, u, out)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		delete(a.m[key], kind)
		return err
	}
	if a.m == nil {
		a.m = map[types.NamespacedName]map[string]appliedEntry{}
	}
	if a.m[key] == nil {
		a.m[key] = map[string]appliedEntry{}
	}
	a.m[key][kind] = appliedEntry{fingerprint: fp, resourceVersion: rv}
	return nil
}

// forget drops what a remembers of the objects named key, of every kind.
func (a *appliedObjects) forget(key types.NamespacedName) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, key)
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
