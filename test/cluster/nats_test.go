//go:build cluster

package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/plan"
)

// The bundled NATS refuses a client that brings no credentials, over TLS
// with the chart's CA, and one that does not speak TLS; the operator's login
// from its Secret is accepted, so the refusals are about what was missing.
func testNATSRefusesAnonymous(t *testing.T) {
	secret := func(key string) string {
		t.Helper()
		v := kubectl(t, "", "-n", env.namespace, "get", "secret", natsStatefulSet()+"-manager",
			"-o", "jsonpath={.data."+strings.ReplaceAll(key, ".", `\.`)+"}")
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) == 0 {
			t.Fatalf("Secret %s-manager key %s: %q, %v", natsStatefulSet(), key, v, err)
		}
		return string(b)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(secret("ca.crt"))) {
		t.Fatal("ca.crt of the manager's NATS Secret holds no certificate")
	}
	svc := natsStatefulSet()
	tlsConf := &tls.Config{RootCAs: pool, ServerName: svc + "." + env.namespace + ".svc.cluster.local", MinVersion: tls.VersionTLS12}
	addr := clusterIP(t, env.namespace, svc) + ":4222"

	nc, err := nats.Connect("tls://"+addr, nats.Secure(tlsConf), nats.Timeout(10*time.Second))
	if err == nil {
		nc.Close()
		t.Fatal("the bundled NATS accepted a client without credentials")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("a client without credentials: %v, want an authorization violation", err)
	}
	t.Logf("nats: a client without credentials is refused: %v", err)

	plain, err := nats.Connect("nats://"+addr, nats.UserInfo("herald-manager", secret("password")), nats.Timeout(10*time.Second))
	if err == nil {
		plain.Close()
		t.Fatal("the bundled NATS accepted a client that does not verify its certificate")
	}
	t.Logf("nats: a client without the CA is refused: %v", err)

	nc, err = nats.Connect("tls://"+addr, nats.Secure(tlsConf), nats.UserInfo("herald-manager", secret("password")), nats.Timeout(10*time.Second))
	if err != nil {
		t.Fatalf("the operator's login from its Secret: %v", err)
	}
	nc.Close()
}

// A Topic with 3 replicas on the chart's 3-server NATS StatefulSet loses no
// accepted event when the NATS pod leading its stream is killed mid-stream.
// It installs the chart anew with nats.replicas=3 (after helm-uninstall) and
// uninstalls it at the end.
func testNATSR3LeaderKilled(t *testing.T) {
	start := time.Now()
	helm(t, "install", env.release, env.chart, "-n", env.namespace, "--create-namespace", "-f", env.values,
		"--set", "nats.replicas=3", "--wait", "--timeout", "5m")
	t.Logf("nats-r3: chart with 3 NATS servers installed in %v", time.Since(start).Round(time.Millisecond))
	f := newFixture(t, "e2e-nats-r3", "shipments", "  replicas: 3\n")
	// Paced to last about 15 s; the leader is killed at once (grace period
	// 0), a crash rather than a lame-duck handover, and comes back with an
	// empty data directory.
	const n = 6000
	l := startPacedLoad(t, f, "nats-r3", n, 8, 15*time.Millisecond)
	l.progress(t, 0.25, 60*time.Second)
	leader := streamLeader(t, plan.StreamName(f.ns, f.topic))
	ip := kubectl(t, "", "-n", env.namespace, "get", "pod", leader, "-o", "jsonpath={.status.podIP}")
	at := l.accepted.Load()
	kubectl(t, "", "-n", env.namespace, "delete", "pod", leader, "--wait=false", "--grace-period=0", "--force")
	stopped := waitStopped(t, "http://"+ip+":8222/healthz")
	t.Logf("nats-r3: killed the stream's leader %s after %d accepted events; it stopped answering %v later, after %d",
		leader, at, stopped.Round(time.Millisecond), l.accepted.Load())
	if l.accepted.Load() >= n {
		t.Errorf("nats-r3: the leader stopped only after the load ended, not mid-stream")
	}
	l.deliveredAll(t, "nats-r3-leader-killed", 180*time.Second)
	kubectl(t, "", "-n", env.namespace, "rollout", "status", "statefulset/"+natsStatefulSet(), "--timeout=180s")
	uninstall(t)
}

func natsStatefulSet() string {
	if strings.Contains(env.release, "herald") {
		return env.release + "-nats"
	}
	return env.release + "-herald-nats"
}

// streamLeader asks a NATS server's monitoring endpoint which server leads
// the stream; server names are pod names.
func streamLeader(t *testing.T, stream string) string {
	t.Helper()
	ips := strings.Fields(kubectl(t, "", "-n", env.namespace, "get", "pods", "-l", "app.kubernetes.io/component=nats",
		"-o", "jsonpath={.items[*].status.podIP}"))
	for _, ip := range ips {
		var jsz struct {
			Accounts []struct {
				Streams []struct {
					Name    string `json:"name"`
					Cluster struct {
						Leader   string `json:"leader"`
						Replicas []struct {
							Name    string `json:"name"`
							Current bool   `json:"current"`
						} `json:"replicas"`
					} `json:"cluster"`
				} `json:"stream_detail"`
			} `json:"account_details"`
		}
		if err := getJSON(fmt.Sprintf("http://%s:8222/jsz?streams=true", ip), &jsz); err != nil {
			t.Logf("jsz on %s: %v", ip, err)
			continue
		}
		for _, a := range jsz.Accounts {
			for _, s := range a.Streams {
				if s.Name == stream && s.Cluster.Leader != "" {
					if len(s.Cluster.Replicas) != 2 {
						t.Fatalf("stream %s: leader %s and %d replicas besides the asked server, want 2 (R3)", stream, s.Cluster.Leader, len(s.Cluster.Replicas))
					}
					t.Logf("stream %s: leader %s; replicas besides the server at %s: %s and %s", stream, s.Cluster.Leader, ip, s.Cluster.Replicas[0].Name, s.Cluster.Replicas[1].Name)
					return s.Cluster.Leader
				}
			}
		}
	}
	t.Logf("no leader found for stream %s; deleting %s-0", stream, natsStatefulSet())
	return natsStatefulSet() + "-0"
}
