package tracing

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "off by default", env: nil},
		{name: "none", env: map[string]string{EnvExporter: "none"}},
		{name: "console", env: map[string]string{EnvExporter: "console"}, on: true},
		{name: "otlp over http by default", env: map[string]string{EnvExporter: "otlp"}, on: true},
		{name: "otlp over grpc", env: map[string]string{EnvExporter: "otlp", EnvProtocol: "grpc"}, on: true},
		{name: "traces protocol wins", env: map[string]string{EnvExporter: "otlp", EnvProtocol: "thrift", EnvTracesProtocol: "grpc"}, on: true},
		{name: "unknown exporter", env: map[string]string{EnvExporter: "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER "zipkin": want otlp, console or none`},
		{name: "unknown protocol", env: map[string]string{EnvExporter: "otlp", EnvProtocol: "http/json"}, wantErr: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL "http/json": want grpc or http/protobuf`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromEnv(context.Background(), func(k string) string { return tt.env[k] }, "test", &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (p != nil) != tt.on {
				t.Fatalf("provider %v, want on=%v", p, tt.on)
			}
			if p != nil {
				_ = p.Shutdown(context.Background())
			}
		})
	}
}

// TestConsolePrintsSpans: the console exporter writes ended spans, with
// the service name, to the writer given.
func TestConsolePrintsSpans(t *testing.T) {
	var out bytes.Buffer
	p, err := FromEnv(context.Background(), func(k string) string {
		return map[string]string{EnvExporter: "console"}[k]
	}, "herald-test", &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer("t").Start(context.Background(), "ingress default/orders")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, `"ingress default/orders"`) || !strings.Contains(s, "herald-test") {
		t.Errorf("console output lacks the span or the service:\n%s", s)
	}
}

func TestInjectExtractLowerCase(t *testing.T) {
	h := map[string][]string{"traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "tracestate": {"a=1"}}
	ctx := Extract(context.Background(), h)
	tp, ts := Strings(ctx)
	if tp != h["traceparent"][0] || ts != "a=1" {
		t.Errorf("round trip gave %q %q", tp, ts)
	}
	out := map[string][]string{"tracestate": {"stale=1"}}
	Inject(context.Background(), out)
	if len(out) != 0 {
		t.Errorf("injecting no span context left %v", out)
	}
}
