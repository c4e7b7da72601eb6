package packaging_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The largest message a Topic's stream takes: maxEventSize at its API
// maximum (8 MiB) plus the 64 KiB the plan compiler allows for headers
// (compiler headerAllowance). NATS's max_payload must not be lower.
const maxTopicMessage = 8<<20 + 64<<10

// processNATSConf parses conf the way nats-server does at start, with the
// environment of the StatefulSet's first pod.
func processNATSConf(t *testing.T, conf string) *server.Options {
	t.Helper()
	t.Setenv("SERVER_NAME", "herald-nats-0")
	// The users' passwords, unless the caller set those of a rendered Secret.
	for _, env := range []string{"HERALD_MANAGER_PASSWORD", "HERALD_DISPATCHER_PASSWORD"} {
		if os.Getenv(env) == "" {
			t.Setenv(env, "P"+strings.ToLower(env))
		}
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, conf)
	}
	return opts
}

// TestNATSConfig parses the chart's nats.conf (one and three servers) and
// config/nats's with nats-server's own parser.
func TestNATSConfig(t *testing.T) {
	kustomized, err := os.ReadFile(filepath.Join(repoRoot, "config", "nats", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	chartConf := func(v valueSet) (*server.Options, *appsv1.StatefulSet) {
		r := mustRender(t, v, "herald-system")
		return chartNATSOptions(t, r), statefulSet(t, r.objs, "herald-nats")
	}
	defaultOpts, _ := chartConf(defaultValues)
	haOpts, haSts := chartConf(haValues)

	tests := []struct {
		name     string
		opts     *server.Options
		conf     string
		fileMax  int64
		clusterd bool
	}{
		{"chart default", defaultOpts, "", 8 << 30, false},
		{"chart ha", haOpts, "", 40 << 30, true},
		{"config/nats", nil, string(kustomized), 8 << 30, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			if o == nil {
				o = processNATSConf(t, tt.conf)
			}
			if o.ServerName != "herald-nats-0" {
				t.Errorf("server_name %q, want the pod name", o.ServerName)
			}
			if o.Port != 4222 || o.HTTPPort != 8222 {
				t.Errorf("ports client %d monitor %d, want 4222 and 8222", o.Port, o.HTTPPort)
			}
			if o.MaxPayload < maxTopicMessage {
				t.Errorf("max_payload %d is below the largest Topic message, %d", o.MaxPayload, maxTopicMessage)
			}
			if !o.JetStream || o.StoreDir != "/data/jetstream" {
				t.Errorf("JetStream %v in %q, want on in /data/jetstream (the volume)", o.JetStream, o.StoreDir)
			}
			if o.JetStreamMaxStore != tt.fileMax || o.JetStreamMaxMemory != 256<<20 {
				t.Errorf("JetStream limits file %d memory %d, want %d and %d", o.JetStreamMaxStore, o.JetStreamMaxMemory, tt.fileMax, 256<<20)
			}
			if o.LameDuckDuration != 30*time.Second {
				t.Errorf("lame_duck_duration %s", o.LameDuckDuration)
			}
			if !tt.clusterd {
				if len(o.Routes) != 0 || o.Cluster.Port != 0 {
					t.Errorf("a single server has routes %v, cluster port %d", o.Routes, o.Cluster.Port)
				}
				return
			}
			if o.Cluster.Name != "herald" || o.Cluster.Port != 6222 || !o.Cluster.NoAdvertise {
				t.Errorf("cluster %q on %d, no_advertise %v", o.Cluster.Name, o.Cluster.Port, o.Cluster.NoAdvertise)
			}
			// Routes: every pod of the StatefulSet by its stable DNS name.
			var want, got []string
			for i := range int(*haSts.Spec.Replicas) {
				want = append(want, fmt.Sprintf("nats://%s-%d.%s.%s.svc.cluster.local:6222", haSts.Name, i, haSts.Spec.ServiceName, haSts.Namespace))
			}
			for _, u := range o.Routes {
				got = append(got, u.String())
			}
			if !slices.Equal(got, want) {
				t.Errorf("routes %v, want %v", got, want)
			}
		})
	}
}

// TestNATSConfigRuns starts nats-server with the chart's configuration
// (on free ports, in a temporary store), asks it the StatefulSet's probes,
// and stores in a stream the operator's user created, as the dispatchers'
// user, the largest message a Topic takes.
func TestNATSConfigRuns(t *testing.T) {
	r := mustRender(t, defaultValues, "herald-system")
	n := startChartNATS(t, defaultValues)
	s := n.srv

	sts := statefulSet(t, r.objs, "herald-nats")
	c := sts.Spec.Template.Spec.Containers[0]
	probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
	for name, p := range probes {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Port.StrVal != "monitor" {
			t.Errorf("%s probe %+v: want an HTTP GET on the monitor port", name, p)
			continue
		}
		url := fmt.Sprintf("http://%s%s", s.MonitorAddr(), p.HTTPGet.Path)
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("status %s", resp.Status)
			}
			if time.Now().After(deadline) {
				t.Errorf("%s probe %s: %v", name, p.HTTPGet.Path, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	js, err := jetstream.New(n.connect(t, "manager"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "big", Subjects: []string{"herald.events.packaging.big"}, MaxMsgSize: maxTopicMessage, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if js, err = jetstream.New(n.connect(t, "dispatcher")); err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("herald.events.packaging.big")
	msg.Data = bytes.Repeat([]byte{'x'}, 8<<20)
	msg.Header.Set("ce-specversion", "1.0")
	msg.Header.Set("ce-type", "com.example.big")
	msg.Header.Set("ce-source", "/packaging-test")
	msg.Header.Set("ce-id", "1")
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Errorf("publish an 8 MiB event: %v", err)
	}
}
