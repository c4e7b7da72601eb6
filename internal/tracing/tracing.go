// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and carries trace context through Herald's stored
// messages.
//
// Tracing is off unless OTEL_TRACES_EXPORTER names an exporter:
//
//   - otlp: OTLP over OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
//     OTEL_EXPORTER_OTLP_PROTOCOL, "grpc" or "http/protobuf" (the default),
//     to OTEL_EXPORTER_OTLP_ENDPOINT and the other OTEL_EXPORTER_OTLP_*
//     variables the exporters read themselves;
//   - console: spans as JSON lines on standard error;
//   - none: off.
//
// The sampler comes from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (the SDK reads them; parentbased_always_on without them) and the resource
// from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Environment variables this package reads besides those the SDK and the
// exporters read.
const (
	EnvExporter       = "OTEL_TRACES_EXPORTER"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// Provider is a configured tracer provider; Shutdown flushes and stops it.
type Provider struct {
	trace.TracerProvider
	Shutdown func(context.Context) error
}

// FromEnv returns the tracer provider the environment (getenv) asks for,
// nil when tracing is off. service names the process when
// OTEL_SERVICE_NAME does not; console output goes to stderr.
func FromEnv(ctx context.Context, getenv func(string) string, service string, stderr io.Writer) (*Provider, error) {
	if err := Check(getenv); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(strings.ToLower(getenv(EnvExporter)))
	var exp sdktrace.SpanExporter
	var err error
	switch name {
	case "", "none":
		return nil, nil
	case "console":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(stderr))
	default: // otlp
		proto := getenv(EnvTracesProtocol)
		if proto == "" {
			proto = getenv(EnvProtocol)
		}
		if proto == "grpc" {
			exp, err = otlptracegrpc.New(ctx)
		} else {
			exp, err = otlptracehttp.New(ctx)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s exporter: %w", name, err)
	}
	return New(ctx, exp, service)
}

// Close flushes the spans not yet exported and stops p, waiting at most
// 5 s; onErr, when not nil, receives a failure.
func (p *Provider) Close(onErr func(error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil && onErr != nil {
		onErr(err)
	}
}

// New returns a provider exporting to exp in batches, with the sampler of
// the environment.
func New(ctx context.Context, exp sdktrace.SpanExporter, service string) (*Provider, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
	)
	return &Provider{TracerProvider: tp, Shutdown: tp.Shutdown}, nil
}

// Propagator is the W3C trace context, the one CloudEvents' distributed
// tracing extension and Herald's stored messages use.
var Propagator = propagation.TraceContext{}

// Carrier adapts header maps whose trace context keys are in lower case
// ("traceparent", "tracestate"), as in Herald's stored messages and the
// HTTP headers it builds from them, to the propagator.
type Carrier map[string][]string

// Get returns the first value of key.
func (c Carrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key.
func (c Carrier) Set(key, value string) { c[key] = []string{value} }

// Keys lists the keys.
func (c Carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Extract returns ctx with the remote span context of the trace context
// headers in h, kept in lower case.
func Extract(ctx context.Context, h map[string][]string) context.Context {
	return Propagator.Extract(ctx, Carrier(h))
}

// Inject writes the span context of ctx into h as lower case trace context
// headers, removing a tracestate the new context does not carry.
func Inject(ctx context.Context, h map[string][]string) {
	delete(h, "tracestate")
	Propagator.Inject(ctx, Carrier(h))
}

// Strings returns the traceparent and tracestate of ctx's span context.
func Strings(ctx context.Context) (traceparent, tracestate string) {
	c := Carrier{}
	Propagator.Inject(ctx, c)
	return c.Get("traceparent"), c.Get("tracestate")
}

// Forwarded lists the environment variables a process passes on to the
// processes it configures (the operator to its dispatchers), so that one
// setting traces them all. OTEL_SERVICE_NAME stays with each process, and
// headers and certificate files, which may carry credentials or name files
// of its own, are not passed on.
var Forwarded = []string{
	EnvExporter,
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	EnvProtocol, EnvTracesProtocol,
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
	"OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
}

// Check reports an exporter or protocol setting FromEnv would refuse.
func Check(getenv func(string) string) error {
	switch name := strings.TrimSpace(strings.ToLower(getenv(EnvExporter))); name {
	case "", "none", "console":
		return nil
	case "otlp":
		proto := getenv(EnvTracesProtocol)
		if proto == "" {
			proto = getenv(EnvProtocol)
		}
		if proto != "" && proto != "grpc" && proto != "http/protobuf" {
			return fmt.Errorf("%s %q: want grpc or http/protobuf", EnvTracesProtocol, proto)
		}
		return nil
	default:
		return fmt.Errorf("%s %q: want otlp, console or none", EnvExporter, name)
	}
}
