package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
)

// configMapKey reads the schemas Topics name in schemaFrom with the API
// reader: the manager watches only ConfigMaps' metadata (configMapTopics),
// so that the data of a cluster's ConfigMaps is not held in its cache.
func (r *TopicReconciler) configMapKey(ctx context.Context) compiler.ConfigMapKey {
	return func(namespace string, ref corev1.ConfigMapKeySelector) (string, error) {
		var cm corev1.ConfigMap
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &cm)
		if apierrors.IsNotFound(err) {
			return "", compiler.MissingConfigMapKey(namespace, ref, false)
		}
		if err != nil {
			return "", fmt.Errorf("get ConfigMap %s/%s: %w", namespace, ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			return "", compiler.MissingConfigMapKey(namespace, ref, true)
		}
		return v, nil
	}
}

// configMapTopics maps a ConfigMap to the Topics of its namespace whose
// eventTypes read a schema from it.
func (r *TopicReconciler) configMapTopics(ctx context.Context, o client.Object) []reconcile.Request {
	var topics v1alpha1.TopicList
	if err := r.Client.List(ctx, &topics, client.InNamespace(o.GetNamespace())); err != nil {
		log.FromContext(ctx).Error(err, "list topics reading schemas from a ConfigMap", "namespace", o.GetNamespace())
		return nil
	}
	var reqs []reconcile.Request
	for i := range topics.Items {
		t := &topics.Items[i]
		for _, et := range t.Spec.EventTypes {
			if et.SchemaFrom != nil && et.SchemaFrom.ConfigMapKeyRef.Name == o.GetName() {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(t)})
				break
			}
		}
	}
	return reqs
}
