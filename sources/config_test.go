package sources

import (
	"log/slog"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func baseEnv() map[string]string {
	return map[string]string{
		EnvSink:            "http://topic.ns1.svc.cluster.local",
		EnvCEOverrides:     `{"extensions":{"team":"a"}}`,
		EnvSourceType:      "ping",
		EnvSourceNamespace: "ns1",
		EnvSourceName:      "tick",
		EnvSourceSpec:      `{"schedule":"@every 10s","data":"{}"}`,
	}
}

func TestParseConfigFromEnv(t *testing.T) {
	cfg, err := ParseConfig(nil, envOf(baseEnv()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sink != "http://topic.ns1.svc.cluster.local" || cfg.Type != v1alpha1.EventSourceTypePing ||
		cfg.Namespace != "ns1" || cfg.Name != "tick" || cfg.Ping == nil || cfg.Ping.Schedule != "@every 10s" ||
		cfg.Extensions["team"] != "a" || cfg.Listen != ":8080" || cfg.MetricsListen != ":9090" ||
		cfg.MaxAttempts != DefaultMaxAttempts || cfg.LogLevel != slog.LevelInfo {
		t.Errorf("config %+v", cfg)
	}
}

func TestParseConfigFlagsWin(t *testing.T) {
	args := []string{"--sink=https://other", "--source-name=flagged", "--listen=:1234", "--metrics-listen=:0",
		"--max-attempts=2", "--log-level=debug", "--ce-overrides="}
	cfg, err := ParseConfig(args, envOf(baseEnv()))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sink != "https://other" || cfg.Name != "flagged" || cfg.Listen != ":1234" || cfg.MetricsListen != ":0" ||
		cfg.MaxAttempts != 2 || cfg.LogLevel != slog.LevelDebug || cfg.Extensions != nil {
		t.Errorf("config %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"no sink", map[string]string{EnvSink: ""}, nil, "K_SINK is empty"},
		{"relative sink", map[string]string{EnvSink: "/topic"}, nil, "not an absolute http(s) URL"},
		{"bad type", map[string]string{EnvSourceType: "container"}, nil, `"container": want ping, apiServer or webhook`},
		{"no namespace", map[string]string{EnvSourceNamespace: ""}, nil, "HERALD_SOURCE_NAMESPACE is empty"},
		{"no spec", map[string]string{EnvSourceSpec: ""}, nil, "HERALD_SOURCE_SPEC is empty"},
		{"unknown spec field", map[string]string{EnvSourceSpec: `{"schedule":"@hourly","shedule":"x"}`}, nil, `unknown field "shedule"`},
		{"bad schedule", map[string]string{EnvSourceSpec: `{"schedule":"* *"}`}, nil, "expected exactly 5 fields, found 2"},
		{"bad timezone", map[string]string{EnvSourceSpec: `{"schedule":"@hourly","timezone":"Nowhere"}`}, nil, "unknown time zone Nowhere"},
		{"bad overrides", map[string]string{EnvCEOverrides: `{"extensions":{"Team":"a"}}`}, nil, `"Team": names are 1 to 20`},
		{"override of an attribute", map[string]string{EnvCEOverrides: `{"extensions":{"type":"a"}}`}, nil, "context attribute"},
		{"overrides not JSON", map[string]string{EnvCEOverrides: `team=a`}, nil, "decode K_CE_OVERRIDES"},
		{"webhook secret missing", map[string]string{EnvSourceType: "webhook", EnvSourceSpec: `{"signature":{"type":"github","secretKeyRef":{"name":"s","key":"k"}}}`}, nil, "HMAC key is empty"},
		{"hmac without header", map[string]string{EnvSourceType: "webhook", EnvWebhookSecret: "k", EnvSourceSpec: `{"signature":{"type":"hmac","secretKeyRef":{"name":"s","key":"k"}}}`}, nil, "needs header"},
		{"apiServer without resources", map[string]string{EnvSourceType: "apiServer", EnvSourceSpec: `{"resources":[]}`}, nil, "resources is empty"},
		{"apiServer bad selector", map[string]string{EnvSourceType: "apiServer", EnvSourceSpec: `{"resources":[{"apiVersion":"v1","kind":"Pod","selector":{"matchExpressions":[{"key":"a","operator":"Near"}]}}]}`}, nil, `"Near" is not a valid label selector operator`},
		{"apiServer bad apiVersion", map[string]string{EnvSourceType: "apiServer", EnvSourceSpec: `{"resources":[{"apiVersion":"a/b/c","kind":"Pod"}]}`}, nil, "resources[0].apiVersion"},
		{"bad log level", nil, []string{"--log-level=loud"}, "--log-level"},
		{"stray argument", nil, []string{"extra"}, "unexpected arguments: extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := ParseConfig(tt.args, envOf(env))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestParseConfigWebhookAndAPIServer(t *testing.T) {
	env := baseEnv()
	env[EnvSourceType] = "webhook"
	env[EnvSourceSpec] = `{"eventType":"com.example.push","signature":{"type":"github","secretKeyRef":{"name":"s","key":"k"}}}`
	env[EnvWebhookSecret] = "shh"
	cfg, err := ParseConfig(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Webhook == nil || cfg.Webhook.EventType != "com.example.push" || string(cfg.WebhookSecret) != "shh" || cfg.Ping != nil {
		t.Errorf("webhook config %+v", cfg)
	}
	env[EnvSourceType] = "apiServer"
	env[EnvSourceSpec] = `{"resources":[{"apiVersion":"v1","kind":"ConfigMap","selector":{"matchLabels":{"a":"b"}}}],"mode":"Resource"}`
	cfg, err = ParseConfig(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIServer == nil || cfg.APIServer.Mode != v1alpha1.APIServerModeResource || cfg.APIServer.Resources[0].Selector.MatchLabels["a"] != "b" {
		t.Errorf("apiServer config %+v", cfg.APIServer)
	}
}

func TestConfigFor(t *testing.T) {
	es := &v1alpha1.EventSource{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "hook"},
		Spec: v1alpha1.EventSourceSpec{
			CEOverrides: &v1alpha1.CloudEventOverrides{Extensions: map[string]string{"team": "a"}},
			Webhook:     &v1alpha1.WebhookSource{},
		},
	}
	cfg, err := ConfigFor(es, "http://127.0.0.1:8080/topics/ns1/t", "aud", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Type != v1alpha1.EventSourceTypeWebhook || cfg.Extensions["team"] != "a" || cfg.Webhook == nil ||
		cfg.Audience != "aud" || cfg.ServiceAccount != "hook-source" {
		t.Errorf("config %+v", cfg)
	}
	es.Spec.Webhook = nil
	es.Spec.Container = &v1alpha1.ContainerSource{}
	if _, err := ConfigFor(es, "http://x", "", nil); err == nil {
		t.Error("a container source has an adapter config")
	}
}
