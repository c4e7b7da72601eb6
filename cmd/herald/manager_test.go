package main

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

func TestParseManagerConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	base := map[string]string{"NATS_URL": "nats://nats:4222", "HERALD_IMAGE": "herald:1"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c managerConfig)
	}{
		{
			name: "defaults from env",
			env:  base,
			check: func(t *testing.T, c managerConfig) {
				if c.NATSURL != "nats://nats:4222" || c.Image.Name != "herald:1" || c.ClusterDomain != "cluster.local" ||
					c.PlanReplicas != 1 || c.Namespaces != nil || c.LogLevel != slog.LevelInfo || c.LeaderElect {
					t.Errorf("config %+v", c)
				}
				cc := c.controllersConfig()
				if cc.Dispatcher.NATS.URL != "nats://nats:4222" || cc.Dispatcher.NATS.Secret != "" || cc.Adapter.Image.Name != "herald:1" ||
					cc.DefaultPublishMode != plan.PublishAllowSameNamespace {
					t.Errorf("controllers config %+v", cc)
				}
			},
		},
		{
			name: "flags win over env",
			args: []string{"--nats-url", "nats://other:4222", "--namespaces", " a, b ,", "--leader-elect", "--cluster-domain", "corp.local",
				"--plan-replicas", "3", "--log-level", "debug"},
			env: base,
			check: func(t *testing.T, c managerConfig) {
				if c.NATSURL != "nats://other:4222" || !slices.Equal(c.Namespaces, []string{"a", "b"}) || !c.LeaderElect ||
					c.ClusterDomain != "corp.local" || c.PlanReplicas != 3 || c.LogLevel != slog.LevelDebug {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "credentials for dispatchers",
			args: []string{"--nats-creds", "/etc/nats/nats.creds", "--nats-tls-ca", "/etc/nats/ca.crt", "--dispatcher-nats-secret", "nats-auth"},
			env:  base,
			check: func(t *testing.T, c managerConfig) {
				n := c.controllersConfig().Dispatcher.NATS
				if n.Secret != "nats-auth" || !n.Creds || !n.TLSCA || n.TLSClient {
					t.Errorf("dispatcher NATS %+v", n)
				}
				if len(c.NATSOptions("herald-manager")) != 5 {
					t.Errorf("nats options %d", len(c.NATSOptions("herald-manager")))
				}
			},
		},
		{
			name: "user and password copied to dispatchers",
			args: []string{"--nats-user", "herald-manager", "--nats-password-file", "/etc/herald/nats/password", "--nats-tls-ca", "/etc/herald/nats/ca.crt",
				"--dispatcher-nats-source", "herald-system/herald-nats-dispatcher", "--dispatcher-network-policy",
				"--metrics-namespace-selector", "kubernetes.io/metadata.name=monitoring"},
			env: base,
			check: func(t *testing.T, c managerConfig) {
				cc := c.controllersConfig()
				n := cc.Dispatcher.NATS
				if n.Secret != "" || !n.Copied || !n.Password || !n.TLSCA || n.Creds || n.TLSClient {
					t.Errorf("dispatcher NATS %+v", n)
				}
				if cc.DispatcherNATSSource.String() != "herald-system/herald-nats-dispatcher" || cc.DispatcherNATSCAFile != "/etc/herald/nats/ca.crt" {
					t.Errorf("source %s, CA file %q", cc.DispatcherNATSSource, cc.DispatcherNATSCAFile)
				}
				np := cc.Dispatcher.NetworkPolicy
				if !np.Enabled || np.MetricsNamespaces == nil || np.MetricsNamespaces.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
					t.Errorf("network policy %+v", np)
				}
			},
		},
		{name: "user without password file", args: []string{"--nats-user", "m", "--dispatcher-nats-source", "a/b"}, env: base, wantErr: "go together"},
		{name: "user and creds", args: []string{"--nats-user", "m", "--nats-password-file", "/p", "--nats-creds", "/c", "--dispatcher-nats-source", "a/b"},
			env: base, wantErr: "exclude each other"},
		{name: "user without dispatcher secret", args: []string{"--nats-user", "m", "--nats-password-file", "/p"}, env: base, wantErr: "--dispatcher-nats-source"},
		{name: "secret and source", args: []string{"--nats-tls-ca", "/c", "--dispatcher-nats-secret", "s", "--dispatcher-nats-source", "a/b"},
			env: base, wantErr: "exclude each other"},
		{name: "source without namespace", args: []string{"--dispatcher-nats-source", "b"}, env: base, wantErr: "want namespace/name"},
		{name: "bad metrics selector", args: []string{"--metrics-namespace-selector", "a in (b"}, env: base, wantErr: "--metrics-namespace-selector"},
		{name: "verbosity number", args: []string{"--log-level", "2"}, env: base,
			check: func(t *testing.T, c managerConfig) {
				if c.LogLevel != slog.Level(-2) {
					t.Errorf("level %v", c.LogLevel)
				}
			}},
		{name: "missing url and image", env: map[string]string{}, wantErr: "--nats-url"},
		{name: "missing image", env: map[string]string{"NATS_URL": "nats://n"}, wantErr: "--image"},
		{name: "creds without dispatcher secret", args: []string{"--nats-creds", "/x"}, env: base, wantErr: "--dispatcher-nats-secret"},
		{name: "cert without key", args: []string{"--nats-tls-cert", "/c", "--dispatcher-nats-secret", "s"}, env: base, wantErr: "go together"},
		{
			name: "image pull settings",
			env:  map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1", "HERALD_IMAGE_PULL_POLICY": "Always", "HERALD_IMAGE_PULL_SECRETS": "a, b,"},
			check: func(t *testing.T, c managerConfig) {
				cc := c.controllersConfig()
				if cc.Dispatcher.Image.PullPolicy != "Always" || !slices.Equal(cc.Dispatcher.Image.PullSecrets, []string{"a", "b"}) ||
					cc.Adapter.Image.PullPolicy != "Always" || !slices.Equal(cc.Adapter.Image.PullSecrets, []string{"a", "b"}) {
					t.Errorf("controllers config %+v", cc)
				}
			},
		},
		{name: "bad pull policy", args: []string{"--image-pull-policy", "always"}, env: base, wantErr: "want Always, IfNotPresent or Never"},
		{name: "bad replicas", args: []string{"--plan-replicas", "2"}, env: base, wantErr: "want 1, 3 or 5"},
		{name: "publish policy from env", env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1", "HERALD_DEFAULT_PUBLISH_POLICY": "deny-all"},
			check: func(t *testing.T, c managerConfig) {
				if c.controllersConfig().DefaultPublishMode != plan.PublishDenyAll {
					t.Errorf("mode %q", c.DefaultPublishMode)
				}
			}},
		{name: "publish policy flag wins", args: []string{"--default-publish-policy", "allow-all"},
			env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1", "HERALD_DEFAULT_PUBLISH_POLICY": "deny-all"},
			check: func(t *testing.T, c managerConfig) {
				if c.DefaultPublishMode != plan.PublishAllowAll {
					t.Errorf("mode %q", c.DefaultPublishMode)
				}
			}},
		{name: "bad publish policy", args: []string{"--default-publish-policy", "open"}, env: base,
			wantErr: "--default-publish-policy: publish policy \"open\": want one of allow-same-namespace, authenticated, allow-all, deny-all"},
		{name: "shared dispatchers by default", env: base,
			check: func(t *testing.T, c managerConfig) {
				cc := c.controllersConfig()
				if cc.DefaultDispatcherMode != v1alpha1.DispatcherShared || cc.Dispatcher.Shared.Replicas != 1 || len(cc.Dispatcher.Shared.Resources.Requests) != 0 {
					t.Errorf("dispatcher mode %q, shared %+v", cc.DefaultDispatcherMode, cc.Dispatcher.Shared)
				}
			}},
		{name: "dedicated dispatchers, shared sized", args: []string{"--default-dispatcher-mode", "dedicated", "--shared-dispatcher-replicas", "3",
			"--shared-dispatcher-resources", `{"requests":{"cpu":"100m"},"limits":{"memory":"256Mi"}}`}, env: base,
			check: func(t *testing.T, c managerConfig) {
				cc := c.controllersConfig()
				sh := cc.Dispatcher.Shared
				if cc.DefaultDispatcherMode != v1alpha1.DispatcherDedicated || sh.Replicas != 3 ||
					sh.Resources.Requests.Cpu().String() != "100m" || sh.Resources.Limits.Memory().String() != "256Mi" {
					t.Errorf("dispatcher mode %q, shared %+v", cc.DefaultDispatcherMode, sh)
				}
			}},
		{name: "dispatcher mode from env", env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1", "HERALD_DEFAULT_DISPATCHER_MODE": "dedicated"},
			check: func(t *testing.T, c managerConfig) {
				if c.DefaultDispatcherMode != v1alpha1.DispatcherDedicated {
					t.Errorf("mode %q", c.DefaultDispatcherMode)
				}
			}},
		{name: "bad dispatcher mode", args: []string{"--default-dispatcher-mode", "pooled"}, env: base, wantErr: `--default-dispatcher-mode "pooled": want shared or dedicated`},
		{name: "bad shared replicas", args: []string{"--shared-dispatcher-replicas", "0"}, env: base, wantErr: "--shared-dispatcher-replicas 0"},
		{name: "bad shared resources", args: []string{"--shared-dispatcher-resources", `{"request":{}}`}, env: base, wantErr: "--shared-dispatcher-resources"},
		{name: "shared dispatchers autoscaled", args: []string{"--shared-dispatcher-autoscaling", `{"minReplicas":2,"maxReplicas":8,"targetLag":50}`}, env: base,
			check: func(t *testing.T, c managerConfig) {
				a := c.controllersConfig().Dispatcher.Shared.Autoscaling
				if a == nil || *a.MinReplicas != 2 || a.MaxReplicas != 8 || *a.TargetLag != 50 {
					t.Errorf("shared autoscaling %+v", a)
				}
			}},
		{name: "shared autoscaling from env", env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1",
			"HERALD_SHARED_DISPATCHER_AUTOSCALING": `{"maxReplicas":4}`},
			check: func(t *testing.T, c managerConfig) {
				if a := c.Shared.Autoscaling; a == nil || a.MinReplicas != nil || a.MaxReplicas != 4 {
					t.Errorf("shared autoscaling %+v", a)
				}
			}},
		{name: "shared autoscaling to zero", args: []string{"--shared-dispatcher-autoscaling", `{"minReplicas":0,"maxReplicas":4}`}, env: base,
			wantErr: "--shared-dispatcher-autoscaling: minReplicas 0: want 1 to 50"},
		{name: "shared autoscaling without max", args: []string{"--shared-dispatcher-autoscaling", `{"minReplicas":1}`}, env: base,
			wantErr: "--shared-dispatcher-autoscaling: maxReplicas 0: want 1 to 50"},
		{name: "shared autoscaling min above max", args: []string{"--shared-dispatcher-autoscaling", `{"minReplicas":5,"maxReplicas":4}`}, env: base,
			wantErr: "--shared-dispatcher-autoscaling: minReplicas must not exceed maxReplicas"},
		{name: "shared autoscaling bad lag", args: []string{"--shared-dispatcher-autoscaling", `{"maxReplicas":4,"targetLag":0}`}, env: base,
			wantErr: "--shared-dispatcher-autoscaling: targetLag 0: want 1 to 1000000"},
		{name: "shared autoscaling unknown field", args: []string{"--shared-dispatcher-autoscaling", `{"max":4}`}, env: base,
			wantErr: `--shared-dispatcher-autoscaling: json: unknown field "max"`},
		{name: "tracing passed on to dispatchers", env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1",
			"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.observability:4318",
			"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
			"OTEL_SERVICE_NAME": "herald-manager", "OTEL_EXPORTER_OTLP_HEADERS": "authorization=secret"},
			check: func(t *testing.T, c managerConfig) {
				got := map[string]string{}
				for _, e := range c.controllersConfig().Dispatcher.Env {
					got[e.Name] = e.Value
				}
				want := map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.observability:4318",
					"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("dispatcher env %v, want %v (no service name, no headers)", got, want)
				}
				if !c.TraceReconciles {
					t.Error("reconciles not traced by default")
				}
			}},
		{name: "no tracing, nothing passed on", env: base,
			check: func(t *testing.T, c managerConfig) {
				if len(c.controllersConfig().Dispatcher.Env) != 0 {
					t.Errorf("dispatcher env %v", c.controllersConfig().Dispatcher.Env)
				}
			}},
		{name: "unknown trace exporter", env: map[string]string{"NATS_URL": "nats://n", "HERALD_IMAGE": "herald:1", "OTEL_TRACES_EXPORTER": "jaeger"},
			wantErr: `OTEL_TRACES_EXPORTER "jaeger": want otlp, console or none`},
		{name: "bad log level", args: []string{"--log-level", "loud"}, env: base, wantErr: "--log-level"},
		{name: "stray argument", args: []string{"extra"}, env: base, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseManagerConfig(tt.args, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
