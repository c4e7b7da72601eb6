package controllers

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// tracerName is the instrumentation scope of the reconcile spans.
const tracerName = "github.com/herald-dev/herald/controllers"

// traced records each reconcile of r as a span "reconcile <kind>" of tp,
// with the object's namespace and name, its error and requeue; with tp nil
// it returns r.
func traced(kind string, tp trace.TracerProvider, r reconcile.Reconciler) reconcile.Reconciler {
	if tp == nil {
		return r
	}
	tr := tp.Tracer(tracerName)
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		ctx, span := tr.Start(ctx, "reconcile "+kind, trace.WithAttributes(
			attribute.String("k8s.namespace.name", req.Namespace),
			attribute.String("herald.object.kind", kind),
			attribute.String("herald.object.name", req.Name),
		))
		defer span.End()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		if res.RequeueAfter > 0 {
			span.SetAttributes(attribute.String("herald.requeue_after", res.RequeueAfter.String()))
		}
		return res, err
	})
}
