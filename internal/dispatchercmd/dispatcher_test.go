package dispatchercmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
)

func TestParseDispatcherConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	base := map[string]string{"NATS_URL": "nats://nats:4222"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "defaults",
			env:  base,
			check: func(t *testing.T, c Config) {
				if c.NATSURL != "nats://nats:4222" || c.Listen != ":8080" || c.MetricsListen != ":9090" ||
					c.Topics != nil || c.Shared != "" || c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 30*time.Second || c.DrainDelay != 5*time.Second || c.DrainMax != 20*time.Second {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "topics from env",
			env:  map[string]string{"NATS_URL": "nats://n", "HERALD_TOPICS": " shop/orders, shop/returns ,"},
			check: func(t *testing.T, c Config) {
				if !slices.Equal(c.Topics, []string{"shop/orders", "shop/returns"}) {
					t.Errorf("topics %q", c.Topics)
				}
			},
		},
		{
			name: "flags win over env",
			args: []string{"--nats-url", "nats://other", "--topics", "a/b", "--listen", "127.0.0.1:18080", "--metrics-listen", "",
				"--log-level", "debug", "--nats-creds", "/c", "--nats-tls-cert", "/crt", "--nats-tls-key", "/key"},
			env: base,
			check: func(t *testing.T, c Config) {
				if c.NATSURL != "nats://other" || !slices.Equal(c.Topics, []string{"a/b"}) || c.Listen != "127.0.0.1:18080" ||
					c.MetricsListen != "" || c.LogLevel != slog.LevelDebug {
					t.Errorf("config %+v", c)
				}
				if n := len(c.natsOptions(slog.New(slog.DiscardHandler))); n != 7 {
					t.Errorf("nats options: %d", n)
				}
			},
		},
		{
			name: "shared from env",
			env:  map[string]string{"NATS_URL": "nats://n", "HERALD_SHARED": "shop/herald-dispatcher"},
			check: func(t *testing.T, c Config) {
				if c.Shared != "shop/herald-dispatcher" || c.Topics != nil {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "shared flag wins over env",
			args: []string{"--shared", "shop/mine"},
			env:  map[string]string{"NATS_URL": "nats://n", "HERALD_SHARED": "shop/theirs"},
			check: func(t *testing.T, c Config) {
				if c.Shared != "shop/mine" {
					t.Errorf("shared %q", c.Shared)
				}
			},
		},
		{name: "no NATS URL", wantErr: "--nats-url"},
		{name: "bad topic", args: []string{"--topics", "orders"}, env: base, wantErr: `"orders" is not namespace/name`},
		{name: "shared without namespace", args: []string{"--shared", "herald-dispatcher"}, env: base, wantErr: `--shared: "herald-dispatcher" is not namespace/name`},
		{name: "shared with an empty name", args: []string{"--shared", "shop/"}, env: base, wantErr: `--shared: "shop/" is not namespace/name`},
		{name: "shared with a dot", args: []string{"--shared", "shop.a/b"}, env: base, wantErr: `--shared: "shop.a/b" is not namespace/name`},
		{name: "shared with a wildcard", args: []string{"--shared", "*/b"}, env: base, wantErr: `--shared: "*/b" is not namespace/name`},
		{name: "shared with three parts", args: []string{"--shared", "a/b/c"}, env: base, wantErr: `--shared: "a/b/c" is not namespace/name`},
		{
			name:    "shared and topics",
			args:    []string{"--shared", "shop/herald-dispatcher"},
			env:     map[string]string{"NATS_URL": "nats://n", "HERALD_TOPICS": "shop/orders"},
			wantErr: "--shared and --topics exclude each other",
		},
		{name: "bad listen", args: []string{"--listen", "8080"}, env: base, wantErr: "--listen"},
		{name: "drain delay above its maximum", args: []string{"--drain-delay", "30s"}, env: base, wantErr: "--drain-max"},
		{name: "same ports", args: []string{"--listen", ":1", "--metrics-listen", ":1"}, env: base, wantErr: "must differ"},
		{name: "half an ingress key pair", args: []string{"--tls-key-file", "/key"}, env: base, wantErr: "--tls-cert-file and --tls-key-file go together"},
		{
			name: "ingress key pair",
			args: []string{"--tls-cert-file", "/crt"},
			env:  map[string]string{"NATS_URL": "nats://n", "HERALD_TLS_KEY_FILE": "/key"},
			check: func(t *testing.T, c Config) {
				if c.TLSCertFile != "/crt" || c.TLSKeyFile != "/key" {
					t.Errorf("config %+v", c)
				}
			},
		},
		{name: "half a client cert", args: []string{"--nats-tls-cert", "/crt"}, env: base, wantErr: "go together"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, env: base, wantErr: "--log-level"},
		{
			name: "token verification",
			args: []string{"--auth-cache-size", "10"},
			env:  map[string]string{"NATS_URL": "nats://n", "KUBECONFIG": "/kc", "HERALD_AUTH_TOKEN_REVIEW": "true"},
			check: func(t *testing.T, c Config) {
				if c.Kubeconfig != "/kc" || !c.AuthTokenReview || c.AuthCacheSize != 10 {
					t.Errorf("config %+v", c)
				}
			},
		},
		{name: "no token cache", args: []string{"--auth-cache-size", "0"}, env: base, wantErr: "--auth-cache-size"},
		{name: "extra argument", args: []string{"extra"}, env: base, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(tc.args, env(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// natsWithTopic starts an embedded NATS holding the stream and the plan of
// the Topic shop/orders, as the control plane leaves them.
func natsWithTopic(t *testing.T) (*server.Server, jetstream.Stream) {
	t.Helper()
	srv := natstest.Start(t)
	nc := natstest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: plan.KVBucket})
	if err != nil {
		t.Fatal(err)
	}
	res, err := compiler.Compile(&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, res.Stream)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.Plan)
	if _, err := kv.Put(ctx, plan.Key("shop", "orders"), b); err != nil {
		t.Fatal(err)
	}
	return srv, stream
}

// TestRunDispatcher starts herald dispatcher against an embedded NATS, sends
// an event through it and shuts it down as SIGTERM would: it drains, still
// accepting events (closing each connection) and staying ready for as long
// as they keep coming past the drain delay, and stops once they stop.
func TestRunDispatcher(t *testing.T) {
	srv, _ := natsWithTopic(t)
	ctx := context.Background()

	listen, metricsListen := freeAddr(t), freeAddr(t)
	t.Setenv("NATS_URL", srv.ClientURL())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, []string{"--topics", "shop/orders", "--listen", listen, "--metrics-listen", metricsListen, "--log-level", "error", "--drain-delay", "1s", "--drain-max", "20s"})
	}()
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _ := get("http://" + listen + "/readyz"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dispatcher not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("http://" + metricsListen + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz on the metrics port: %d", code)
	}
	send := func(id string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/shop/orders", strings.NewReader("{}"))
		for k, v := range map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Source": "/t", "Ce-Type": "t", "Content-Type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("ingress: %d", resp.StatusCode)
		}
		return resp
	}
	if resp := send("1"); resp.Close {
		t.Error("a response before shutdown closed its connection")
	}
	if code, body := get("http://" + metricsListen + "/metrics"); code != http.StatusOK || !strings.Contains(body, `herald_events_received_total{namespace="shop",topic="orders"} 1`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	stop()
	stopped := time.Now()
	// Events every 100 ms for three times the drain delay: all accepted.
	for i := 0; time.Since(stopped) < 3*time.Second; i++ {
		if resp := send(fmt.Sprintf("drain-%d", i)); !resp.Close {
			t.Fatal("a response while draining kept its connection open")
		}
		if code, _ := get("http://" + listen + "/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz while draining: %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastRequest := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		// The drain ends a second after the last request, not at --drain-max.
		if waited := time.Since(lastRequest); waited > 10*time.Second {
			t.Errorf("stopped %s after the last request", waited)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dispatcher did not shut down")
	}
}

// TestDispatcherVerifier: a kubeconfig or a Pod's in-cluster configuration
// gives a verifier of producers' tokens; neither gives none.
func TestDispatcherVerifier(t *testing.T) {
	kc := t.TempDir() + "/kubeconfig"
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	if v, err := (Config{Kubeconfig: kc}).verifier(noEnv); err != nil || v == nil {
		t.Errorf("with a kubeconfig: %v, %v", v, err)
	}
	if v, err := (Config{}).verifier(noEnv); err != nil || v != nil {
		t.Errorf("outside a cluster: %v, %v; want none", v, err)
	}
	inPod := func(k string) string {
		if k == "KUBERNETES_SERVICE_HOST" {
			return "10.0.0.1"
		}
		return ""
	}
	// This process is no Pod: the in-cluster token is missing.
	if _, err := (Config{}).verifier(inPod); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Errorf("in a Pod without its token: %v", err)
	}
	if _, err := (Config{Kubeconfig: kc + ".missing"}).verifier(noEnv); err == nil {
		t.Error("missing kubeconfig accepted")
	}
}
