package dispatcher

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/tracing"
)

// Tracing. With Options.TracerProvider set, the dispatcher records:
//
//   - an "ingress" span per request to a Topic (server kind), child of the
//     producer's traceparent; the events it stores carry the ingress
//     span's context as their traceparent, so that everything that follows
//     joins the producer's trace, also after the hop through JetStream and
//     a dispatcher restart;
//   - a "deliver" span per delivery attempt (client kind), child of the
//     stored context, whose context the subscriber receives;
//   - "reply" and "dead-letter" spans, children of the attempt's, whose
//     context the reply's and the dead letter's destinations receive.
//
// Without it, nothing is recorded and stored trace context passes through
// unchanged.

// Span attribute keys of Herald's own.
const (
	attrTopic        = attribute.Key("herald.topic")
	attrSubscription = attribute.Key("herald.subscription")
	attrAttempt      = attribute.Key("herald.attempt")
	attrSequence     = attribute.Key("herald.stream.sequence")
	attrOutcome      = attribute.Key("herald.outcome")
	attrBackoff      = attribute.Key("herald.retry.backoff")
	attrEvents       = attribute.Key("herald.events")
	attrEventID      = attribute.Key("messaging.message.id")
	attrEventType    = attribute.Key("cloudevents.event_type")
	attrEventSource  = attribute.Key("cloudevents.event_source")
	attrStatus       = attribute.Key("http.response.status_code")
	attrURL          = attribute.Key("url.full")
)

// tracerName is the instrumentation scope of the dispatcher's spans.
const tracerName = "github.com/herald-dev/herald/dispatcher"

// statusWriter records the status an ingress response was written with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// startIngress starts the ingress span of request r to Topic t, child of
// the producer's trace context, and returns the request carrying it and a
// writer that records the response's status for end.
func (d *Dispatcher) startIngress(w http.ResponseWriter, r *http.Request, t *topicState) (*statusWriter, *http.Request, trace.Span) {
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := d.tracer.Start(ctx, "ingress "+t.plan.Namespace+"/"+t.plan.Name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attrTopic.String(t.plan.Namespace+"/"+t.plan.Name)))
	return &statusWriter{ResponseWriter: w}, r.WithContext(ctx), span
}

// endIngress ends the ingress span with the response's status.
func endIngress(sw *statusWriter, span trace.Span) {
	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	span.SetAttributes(attrStatus.Int(status))
	if status >= 400 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// traceEvent makes e carry the span context of ctx, when ctx has a span
// that records, as the trace context stored with it.
func traceEvent(ctx context.Context, e *ce.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.SpanContext().IsValid() {
		return
	}
	e.TraceParent, e.TraceState = tracing.Strings(ctx)
	if id, ok := e.Get(ce.AttrID); ok && span.IsRecording() {
		span.SetAttributes(attrEventID.String(id))
	}
}

// attemptTrace records one delivery attempt: its span when tracing is on,
// its delivery-history record when the Topic keeps history (see
// history.go); nil when neither is, which every method allows.
type attemptTrace struct {
	ctx  context.Context
	span trace.Span
	r    *subRunner
	// hist is the attempt's history record, nil without history.
	hist *historyAttempt
}

// startAttempt starts the record of attempt number attempt at delivering
// the stored message msg: a span, child of the trace context stored with
// it, and the attempt's history.
func (r *subRunner) startAttempt(msg jetstream.Msg, attempt int) *attemptTrace {
	tr := r.d.tracer
	hist := r.historyAttempt(msg, attempt)
	if tr == nil {
		if hist == nil {
			return nil
		}
		return &attemptTrace{r: r, hist: hist}
	}
	h := msg.Headers()
	ctx := tracing.Extract(context.Background(), h)
	attrs := []attribute.KeyValue{
		attrTopic.String(r.ns + "/" + r.topic),
		attrSubscription.String(r.ns + "/" + r.name),
		attrAttempt.Int(attempt),
	}
	if id, ok := ce.StoredAttr(h, ce.AttrID); ok {
		attrs = append(attrs, attrEventID.String(id))
	}
	if typ, ok := ce.StoredAttr(h, ce.AttrType); ok {
		attrs = append(attrs, attrEventType.String(typ))
	}
	if md, err := msg.Metadata(); err == nil {
		attrs = append(attrs, attrSequence.Int64(int64(md.Sequence.Stream)))
	}
	ctx, span := tr.Start(ctx, "deliver "+r.ns+"/"+r.name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return &attemptTrace{ctx: ctx, span: span, r: r, hist: hist}
}

// startBatch starts the span of a batch request delivering msgs: a trace
// of its own, linked to the stored trace context of each event.
func (r *subRunner) startBatch(msgs []jetstream.Msg) *attemptTrace {
	tr := r.d.tracer
	if tr == nil {
		return nil
	}
	links := make([]trace.Link, 0, len(msgs))
	for _, m := range msgs {
		if sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), m.Headers())); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	ctx, span := tr.Start(context.Background(), "deliver batch "+r.ns+"/"+r.name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(links...),
		trace.WithAttributes(attrTopic.String(r.ns+"/"+r.topic), attrSubscription.String(r.ns+"/"+r.name), attrEvents.Int(len(msgs))))
	return &attemptTrace{ctx: ctx, span: span, r: r}
}

// inject writes the attempt's trace context into the headers of a request
// it sends.
func (a *attemptTrace) inject(h http.Header) {
	if a == nil || a.span == nil {
		return
	}
	tracing.Inject(a.ctx, h)
}

// request records a request to url and its result.
func (a *attemptTrace) request(url string, res *result) {
	if a == nil {
		return
	}
	a.hist.request(url, res)
	if a.span == nil {
		return
	}
	a.span.SetAttributes(attrURL.String(url))
	if res.status != 0 {
		a.span.SetAttributes(attrStatus.Int(res.status))
	}
	if res.err != nil {
		a.span.RecordError(res.err)
	}
}

// end ends the attempt's span with its outcome; delay is the backoff
// before the next attempt of a retried one.
func (a *attemptTrace) end(outcome string, delay time.Duration) {
	if a == nil {
		return
	}
	a.r.endHistory(a.hist, outcome)
	if a.span == nil {
		return
	}
	a.span.SetAttributes(attrOutcome.String(outcome))
	if outcome == outcomeRetried {
		a.span.SetAttributes(attrBackoff.String(delay.String()))
	}
	if outcome != outcomeDelivered && outcome != outcomeFiltered {
		a.span.SetStatus(codes.Error, outcome)
	}
	a.span.End()
}

// child starts a span of the attempt's for sending to url, named name
// ("reply", "dead-letter"); its context goes into h. The caller ends it
// with endChild.
func (a *attemptTrace) child(name, url string, h map[string][]string) trace.Span {
	if a == nil || a.span == nil {
		return nil
	}
	ctx, span := a.r.d.tracer.Start(a.ctx, name+" "+a.r.ns+"/"+a.r.name, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrSubscription.String(a.r.ns+"/"+a.r.name), attrURL.String(url)))
	tracing.Inject(ctx, h)
	return span
}

// endChild ends a span child started, with the result of its request.
func endChild(span trace.Span, res *result) {
	if span == nil {
		return
	}
	if res.status != 0 {
		span.SetAttributes(attrStatus.Int(res.status))
	}
	if res.err != nil {
		span.RecordError(res.err)
	}
	if res.verdict() != verdictSuccess {
		span.SetStatus(codes.Error, "status "+strconv.Itoa(res.status))
	}
	span.End()
}
