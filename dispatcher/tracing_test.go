package dispatcher

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// producerTrace is the trace a test producer's traceparent names.
const (
	producerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	producerParent  = "00-" + producerTraceID + "-00f067aa0ba902b7-01"
)

// recordSpans returns a tracer provider recording every span, at once, in
// the returned exporter.
func recordSpans(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return tp, exp
}

// spansNamed returns the ended spans called name, in the order they ended.
func spansNamed(exp *tracetest.InMemoryExporter, name string) tracetest.SpanStubs {
	var out tracetest.SpanStubs
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// traceparentOf is the traceparent header value naming span s.
func traceparentOf(s tracetest.SpanStub) string {
	return fmt.Sprintf("00-%s-%s-01", s.SpanContext.TraceID(), s.SpanContext.SpanID())
}

// TestTraceOfAnEventsJourney: an event whose producer sent a traceparent,
// refused twice by its subscriber, delivered at the third attempt, whose
// reply goes to another Topic, makes one trace with the producer's trace
// id: the ingress, three delivery attempts (each the parent of the request
// the subscriber got), the reply, and the reply Topic's ingress.
func TestTraceOfAnEventsJourney(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tp, exp := recordSpans(t)
	r := e.start(nil, Options{TracerProvider: tp})
	sub := newSink(t, func(n int, rec received, w http.ResponseWriter) {
		if n < 2 {
			respondSeq(500)(n, rec, w)
			return
		}
		replyBinary(200)(n, rec, w)
	})
	replies := e.provision(newTopic("replies"), nil, nil)
	res := e.provision(newTopic("traced"), []subscription{{name: "s", uri: sub.url(), reply: r.url + "/default/replies"}}, nil)
	r.waitDelivering(t, &res.Plan)
	r.waitDelivering(t, &replies.Plan)

	sendOK(t, r.url+"/default/traced", "ev-1", "Traceparent", producerParent)
	eventually(t, 10*time.Second, func() bool { return e.streamMsgs(replies.Plan.Stream) == 1 }, "reply stored")
	eventually(t, 5*time.Second, func() bool { return len(spansNamed(exp, "ingress default/replies")) == 1 }, "reply ingress span")

	for _, s := range exp.GetSpans() {
		if got := s.SpanContext.TraceID().String(); got != producerTraceID {
			t.Errorf("span %q in trace %s, want the producer's %s", s.Name, got, producerTraceID)
		}
	}
	ingress := spansNamed(exp, "ingress default/traced")
	if len(ingress) != 1 {
		t.Fatalf("%d ingress spans, want 1", len(ingress))
	}
	in := ingress[0]
	if in.Parent.SpanID().String() != "00f067aa0ba902b7" || in.SpanKind != trace.SpanKindServer {
		t.Errorf("ingress span: parent %s kind %v, want the producer's span, server", in.Parent.SpanID(), in.SpanKind)
	}
	if attr(in, attrSequence).AsInt64() != 1 || attr(in, attrStatus).AsInt64() != http.StatusAccepted || attr(in, attrEventID).AsString() != "ev-1" {
		t.Errorf("ingress attributes %v", in.Attributes)
	}

	attempts := spansNamed(exp, "deliver default/s")
	if len(attempts) != 3 {
		t.Fatalf("%d delivery spans, want 3", len(attempts))
	}
	wantStatus := []int64{500, 500, 200}
	wantOutcome := []string{outcomeRetried, outcomeRetried, outcomeDelivered}
	got := sub.requests()
	for i, a := range attempts {
		if a.Parent.SpanID() != in.SpanContext.SpanID() {
			t.Errorf("attempt %d: parent %s, want the ingress span %s", i+1, a.Parent.SpanID(), in.SpanContext.SpanID())
		}
		if attr(a, attrAttempt).AsInt64() != int64(i+1) || attr(a, attrStatus).AsInt64() != wantStatus[i] ||
			attr(a, attrOutcome).AsString() != wantOutcome[i] || attr(a, attrSubscription).AsString() != "default/s" {
			t.Errorf("attempt %d attributes %v", i+1, a.Attributes)
		}
		if i < 2 && attr(a, attrBackoff).AsString() == "" {
			t.Errorf("attempt %d: no backoff recorded", i+1)
		}
		if tp := got[i].header.Get("Traceparent"); tp != traceparentOf(a) {
			t.Errorf("request %d to the subscriber: traceparent %q, want its attempt's %q", i+1, tp, traceparentOf(a))
		}
	}

	reply := spansNamed(exp, "reply default/s")
	if len(reply) != 1 || reply[0].Parent.SpanID() != attempts[2].SpanContext.SpanID() {
		t.Fatalf("reply spans %v, want one, child of the third attempt", reply)
	}
	replyIngress := spansNamed(exp, "ingress default/replies")[0]
	if replyIngress.Parent.SpanID() != reply[0].SpanContext.SpanID() {
		t.Errorf("reply Topic's ingress: parent %s, want the reply span %s", replyIngress.Parent.SpanID(), reply[0].SpanContext.SpanID())
	}
}

// TestTraceSurvivesADispatcherRestart: the attempt after a dispatcher
// restart belongs to the trace of the event's ingress, since the trace
// context travels in the stored message.
func TestTraceSurvivesADispatcherRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tp1, exp1 := recordSpans(t)
	tp2, exp2 := recordSpans(t)
	sub := newSink(t, respondSeq(500, 200))
	res := e.provision(newTopic("restart"), []subscription{{name: "s", uri: sub.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Delivery = fastRetry(3)
		s.Delivery.BackoffDelay = dur("2s")
		s.Delivery.BackoffMax = dur("2s")
	}}}, nil)
	first := e.start(e.connect(), Options{TracerProvider: tp1})
	first.waitDelivering(t, &res.Plan)
	sendOK(t, first.url+"/default/restart", "ev-r", "Traceparent", producerParent)
	eventually(t, 5*time.Second, func() bool { return len(spansNamed(exp1, "deliver default/s")) == 1 }, "first attempt")
	first.stop()

	second := e.start(e.connect(), Options{TracerProvider: tp2})
	second.waitDelivering(t, &res.Plan)
	eventually(t, 10*time.Second, func() bool { return len(spansNamed(exp2, "deliver default/s")) == 1 }, "second attempt, after the restart")

	in := spansNamed(exp1, "ingress default/restart")[0]
	a1, a2 := spansNamed(exp1, "deliver default/s")[0], spansNamed(exp2, "deliver default/s")[0]
	for i, a := range []tracetest.SpanStub{a1, a2} {
		if a.SpanContext.TraceID().String() != producerTraceID || a.Parent.SpanID() != in.SpanContext.SpanID() {
			t.Errorf("attempt %d: trace %s parent %s, want trace %s and the ingress span %s",
				i+1, a.SpanContext.TraceID(), a.Parent.SpanID(), producerTraceID, in.SpanContext.SpanID())
		}
		if attr(a, attrAttempt).AsInt64() != int64(i+1) {
			t.Errorf("attempt %d recorded as %d", i+1, attr(a, attrAttempt).AsInt64())
		}
	}
	if got := sub.requests(); len(got) != 2 || got[1].header.Get("Traceparent") != traceparentOf(a2) {
		t.Errorf("subscriber got %d requests; the second's traceparent should name the second attempt", len(got))
	}
}

// TestNoTracingLeavesTraceContextAlone: without a tracer provider the
// subscriber gets the producer's traceparent and tracestate unchanged.
func TestNoTracingLeavesTraceContextAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	sub := newSink(t, nil)
	res := e.provision(newTopic("untraced"), []subscription{{name: "s", uri: sub.url()}}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/untraced", "ev-u", "Traceparent", producerParent, "Tracestate", "vendor=1")
	eventually(t, 5*time.Second, func() bool { return sub.count() == 1 }, "delivery")
	h := sub.requests()[0].header
	if h.Get("Traceparent") != producerParent || h.Get("Tracestate") != "vendor=1" {
		t.Errorf("traceparent %q tracestate %q, want the producer's", h.Get("Traceparent"), h.Get("Tracestate"))
	}
}
