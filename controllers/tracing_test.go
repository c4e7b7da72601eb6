package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestTracedReconcile(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	failing := reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
		return reconcile.Result{RequeueAfter: time.Second}, errors.New("stream refused")
	})
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "orders"}}
	if _, err := traced("topic", tp, failing).Reconcile(context.Background(), req); err == nil {
		t.Fatal("the wrapper lost the error")
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "reconcile topic" || spans[0].Status.Code != codes.Error {
		t.Fatalf("spans %+v", spans)
	}
	attrs := map[string]string{}
	for _, kv := range spans[0].Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["k8s.namespace.name"] != "shop" || attrs["herald.object.name"] != "orders" || attrs["herald.requeue_after"] != "1s" {
		t.Errorf("attributes %v", attrs)
	}
	if r := traced("topic", nil, failing); r == nil {
		t.Fatal("nil reconciler without a provider")
	}
}
