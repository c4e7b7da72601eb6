//go:build cluster

package cluster

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCluster runs the scenarios in order: the last ones reinstall and
// uninstall the chart, so they cannot run before the others.
func TestCluster(t *testing.T) {
	t.Run("deliver", testDeliver)
	t.Run("auth", testAuth)
	t.Run("nats-refuses-anonymous", testNATSRefusesAnonymous)
	t.Run("dispatcher-pod-deleted", func(t *testing.T) { testDispatcherPodLost(t, false) })
	t.Run("dispatcher-pod-killed", func(t *testing.T) { testDispatcherPodLost(t, true) })
	t.Run("dispatcher-scaled-to-3", testDispatcherScaled)
	t.Run("shared-dispatchers", testSharedDispatchers)
	t.Run("move-to-shared", testMoveToShared)
	t.Run("helm-upgrade", testHelmUpgrade)
	t.Run("helm-uninstall", testHelmUninstall)
	t.Run("nats-r3-leader-killed", testNATSR3LeaderKilled)
}

// Every accepted event reaches a subscriber that is a Deployment behind a
// Service, addressed by ref and resolved through cluster DNS.
func testDeliver(t *testing.T) {
	f := newFixture(t, "e2e-deliver", "orders", "")
	l := startLoad(t, f, "deliver", 1000, 8)
	s := l.deliveredAll(t, "deliver", 60*time.Second)
	if s.Duplicates != 0 {
		t.Errorf("deliver: %d duplicates without any failure", s.Duplicates)
	}
}

// A dispatcher pod deleted mid-stream (gracefully, or killed at once with
// grace period 0) loses no accepted event: producers retry what was not
// accepted; what was accepted is delivered by the replacement pod.
func testDispatcherPodLost(t *testing.T, kill bool) {
	name, ns := "dispatcher-pod-deleted", "e2e-delete"
	if kill {
		name, ns = "dispatcher-pod-killed", "e2e-kill"
	}
	f := newFixture(t, ns, "payments", "")
	// Paced to last about 15 s, so that the pod stops mid-stream.
	const n = 6000
	l := startPacedLoad(t, f, name, n, 8, 15*time.Millisecond)
	l.progress(t, 0.25, 60*time.Second)
	pods := f.dispatcherPods(t)
	if len(pods) != 1 {
		t.Fatalf("dispatcher pods %v, want one", pods)
	}
	ip := kubectl(t, "", "-n", f.ns, "get", "pod", pods[0], "-o", "jsonpath={.status.podIP}")
	args := []string{"-n", f.ns, "delete", "pod", pods[0], "--wait=false"}
	if kill {
		args = append(args, "--grace-period=0", "--force")
	}
	// The old pod's log, followed until it exits: what it did after the
	// deletion.
	follow := exec.Command(env.kubectl, "-n", f.ns, "logs", "-f", "--timestamps", pods[0])
	var oldLog bytes.Buffer
	follow.Stdout, follow.Stderr = &oldLog, &oldLog
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	followDone := make(chan struct{})
	go func() { _ = follow.Wait(); close(followDone) }()
	at := l.accepted.Load()
	kubectl(t, "", args...)
	stopped := waitStopped(t, "http://"+ip+":8080/healthz")
	t.Logf("%s: deleted pod %s after %d accepted events; it stopped answering %v later, after %d",
		name, pods[0], at, stopped.Round(time.Millisecond), l.accepted.Load())
	if l.accepted.Load() >= n {
		t.Errorf("%s: the pod stopped only after the load ended, not mid-stream", name)
	}
	l.deliveredAll(t, name, 120*time.Second)
	select {
	case <-followDone:
	case <-time.After(5 * time.Second):
		_ = follow.Process.Kill()
		<-followDone
	}
	if n := l.failureCount("404"); n > 0 || t.Failed() {
		t.Logf("%s: the ingress answered 404 (unknown topic) %d times for a Topic that exists; the deleted pod's log:\n%s", name, n, oldLog.String())
	}
	if after := f.dispatcherPods(t); len(after) != 1 || after[0] == pods[0] {
		t.Errorf("dispatcher pods after the deletion: %v", after)
	}
}

// The dispatcher scaled from 1 to 3 replicas under load delivers every
// event; duplicates only within the in-flight window.
func testDispatcherScaled(t *testing.T) {
	f := newFixture(t, "e2e-scale", "clicks", "")
	const n = 6000
	l := startPacedLoad(t, f, "scale", n, 8, 15*time.Millisecond)
	l.progress(t, 0.25, 60*time.Second)
	kubectl(t, "", "-n", f.ns, "patch", "topic/"+f.topic, "--type=merge", "-p", `{"spec":{"dispatcher":{"replicas":3}}}`)
	eventually(t, 90*time.Second, "3 dispatcher pods ready", func() bool {
		out := kubectl(t, "", "-n", f.ns, "get", "deployment", f.dispatcher, "-o", "jsonpath={.status.readyReplicas}")
		return out == "3"
	})
	t.Logf("scale: 3 replicas ready after %d accepted events", l.accepted.Load())
	if l.accepted.Load() >= n {
		t.Errorf("scale: the replicas were ready only after the load ended")
	}
	s := l.deliveredAll(t, "dispatcher-scaled-to-3", 120*time.Second)
	// The in-flight window: maxInFlight (64 by default) per subscription
	// and dispatcher.
	if s.Duplicates > 3*64 {
		t.Errorf("scale: %d duplicates, more than the in-flight window of 3 dispatchers", s.Duplicates)
	}
	// More load with three replicas: every one receives its share.
	l2 := startLoad(t, f, "scale-3", 3000, 8)
	l2.deliveredAll(t, "dispatcher-3-replicas", 60*time.Second)
}

// helm upgrade with a changed value rolls the operator out under load; a
// changed image tag (the same image under a second tag) makes the operator
// roll every dispatcher too. No accepted event is lost.
func testHelmUpgrade(t *testing.T) {
	f := newFixture(t, "e2e-upgrade", "invoices", "")
	// Paced to last about 40 s, through the operator's and the dispatcher's
	// rollouts.
	const n = 4000
	l := startPacedLoad(t, f, "upgrade", n, 8, 80*time.Millisecond)
	l.progress(t, 0.25, 60*time.Second)
	before := f.dispatcherPods(t)
	args := []string{"upgrade", env.release, env.chart, "-n", env.namespace, "-f", env.values,
		"--set-string", "manager.podAnnotations.e2e-upgrade=" + fmt.Sprint(time.Now().Unix()), "--wait", "--timeout", "3m"}
	if env.upgradeTag != "" {
		args = append(args, "--set", "image.tag="+env.upgradeTag)
	}
	// The generated NATS passwords, CA and certificate survive the upgrade.
	natsSecrets := func() string {
		return kubectl(t, "", "-n", env.namespace, "get", "secret",
			natsStatefulSet()+"-tls", natsStatefulSet()+"-manager", natsStatefulSet()+"-dispatcher", "-o", "jsonpath={.items[*].data}")
	}
	secretsBefore := natsSecrets()
	start := time.Now()
	helm(t, args...)
	t.Logf("upgrade: helm upgrade took %v, after %d accepted events", time.Since(start).Round(time.Millisecond), l.accepted.Load())
	if natsSecrets() != secretsBefore {
		t.Errorf("upgrade: the NATS Secrets changed; the generated CA, certificate and passwords must be kept")
	}
	if env.upgradeTag != "" {
		// The status counts describe the new image only once the
		// deployment controller observed the Deployment's generation.
		eventually(t, 120*time.Second, "dispatcher rolled to the new image", func() bool {
			img := kubectl(t, "", "-n", f.ns, "get", "deployment", f.dispatcher, "-o",
				"jsonpath={.spec.template.spec.containers[0].image} {.status.updatedReplicas} {.status.readyReplicas} {.status.replicas} {.metadata.generation} {.status.observedGeneration}")
			var image string
			var updated, ready, replicas, gen, observed int
			_, _ = fmt.Sscan(img, &image, &updated, &ready, &replicas, &gen, &observed)
			return image == "localhost/herald:"+env.upgradeTag && updated == 1 && ready == 1 && replicas == 1 && gen == observed
		})
		if after := f.dispatcherPods(t); len(after) == 1 && len(before) == 1 && after[0] == before[0] {
			t.Errorf("upgrade: the dispatcher pod %s was not replaced", before[0])
		}
		at := l.accepted.Load()
		t.Logf("upgrade: dispatcher rolled to %s after %d of %d accepted events", env.upgradeTag, at, n)
		if at >= n {
			t.Logf("upgrade: the load ended before the dispatcher's rollout; it did not run under load")
		}
	}
	l.deliveredAll(t, "helm-upgrade", 120*time.Second)
}

// helm uninstall, after the Topics and Subscriptions are deleted while the
// operator runs (their finalizers remove streams and consumers), leaves no
// Herald pod, workload or Service behind.
func testHelmUninstall(t *testing.T) {
	uninstall(t)
}

func uninstall(t *testing.T) {
	t.Helper()
	start := time.Now()
	kubectl(t, "", "delete", "subscriptions.eventing.herald.dev,topics.eventing.herald.dev,eventsources.eventing.herald.dev",
		"--all", "--all-namespaces", "--wait", "--timeout=120s")
	helm(t, "uninstall", env.release, "-n", env.namespace, "--wait", "--timeout", "3m")
	eventually(t, 120*time.Second, "no Herald pod left", func() bool {
		out := kubectl(t, "", "get", "pods", "-A", "-l", "app.kubernetes.io/part-of=herald", "-o", "name")
		return strings.TrimSpace(out) == ""
	})
	left := kubectl(t, "", "get", "deployments,statefulsets,services,configmaps,serviceaccounts,poddisruptionbudgets,pvc", "-A",
		"-l", "app.kubernetes.io/part-of=herald", "-o", "name")
	if strings.TrimSpace(left) != "" {
		t.Errorf("left after helm uninstall:\n%s", left)
	}
	sys := kubectl(t, "", "get", "all", "-n", env.namespace, "-o", "name")
	if strings.TrimSpace(sys) != "" {
		t.Errorf("left in %s after helm uninstall:\n%s", env.namespace, sys)
	}
	t.Logf("FIGURES helm-uninstall: nothing running %v after the Topics' deletion began", time.Since(start).Round(time.Millisecond))
}
