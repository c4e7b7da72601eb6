//go:build cluster

package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// producerPodYAML is a Pod running `herald send` once to a Topic's ingress
// through its Service's cluster DNS name. With an audience, the Pod mounts
// a projected ServiceAccount token for it and sends it; without, it sends
// no credentials.
const producerPodYAML = `apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: send
    image: %[3]s
    imagePullPolicy: Never
    args: [send, --to, "%[4]s", --type, dev.herald.e2e.auth, --source, /e2e/auth/%[2]s, --id, %[2]s%[5]s]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
%[6]s`

const projectedTokenYAML = `    volumeMounts: [{name: token, mountPath: /var/run/secrets/herald, readOnly: true}]
  volumes:
  - name: token
    projected:
      sources:
      - serviceAccountToken: {audience: "%s", path: token, expirationSeconds: 600}
`

// runProducerPod runs a producer Pod to completion and returns its phase
// and log.
func runProducerPod(t *testing.T, ns, name, ingress, audience string) (phase, log string) {
	t.Helper()
	tokenArgs, volume := "", ""
	if audience != "" {
		tokenArgs, volume = ", --token-file, /var/run/secrets/herald/token", fmt.Sprintf(projectedTokenYAML, audience)
	}
	kubectl(t, fmt.Sprintf(producerPodYAML, ns, name, heraldImage(t), ingress, tokenArgs, volume), "apply", "-f", "-")
	eventually(t, 120*time.Second, "producer pod "+ns+"/"+name+" to finish", func() bool {
		phase = kubectl(t, "", "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		return phase == "Succeeded" || phase == "Failed"
	})
	log = kubectl(t, "", "-n", ns, "logs", name)
	return phase, log
}

// heraldImage is the image the operator runs dispatchers with.
func heraldImage(t *testing.T) string {
	t.Helper()
	return kubectl(t, "", "-n", env.namespace, "get", "deployment", "-l", "app.kubernetes.io/component=manager",
		"-o", "jsonpath={.items[0].spec.template.spec.containers[0].image}")
}

// Producers authenticate with their ServiceAccount: under the default
// policy (allow-same-namespace) a Pod of the Topic's namespace with a
// projected token for the Topic's audience publishes, a Pod without a token
// gets 401, and a Pod of another namespace with a valid token gets 403.
// Herald in turn presents a token to a subscriber that verifies it with a
// TokenReview, which receives every event.
func testAuth(t *testing.T) {
	f := newFixture(t, "e2e-auth", "orders", "")
	// The subscriber answers 401 unless the request carries a token of the
	// Topic's dispatcher for its audience, checked with a TokenReview.
	f.requireTokens(t, "https://sink.e2e.herald.dev")
	svcURL := "http://orders-dispatcher." + f.ns + ".svc.cluster.local/" + f.ns + "/orders"

	phase, log := runProducerPod(t, f.ns, "with-token", svcURL, f.audience)
	if phase != "Succeeded" || !strings.Contains(log, "202 Accepted") {
		t.Errorf("producer with a projected token: phase %s, log:\n%s", phase, log)
	}
	phase, log = runProducerPod(t, f.ns, "without-token", svcURL, "")
	if phase != "Failed" || !strings.Contains(log, "401") {
		t.Errorf("producer without a token: phase %s, want Failed with 401, log:\n%s", phase, log)
	}
	other := f.ns + "-other"
	kubectl(t, "", "create", "namespace", other)
	t.Cleanup(func() { _, _ = run("", env.kubectl, "delete", "namespace", other, "--wait=false") })
	phase, log = runProducerPod(t, other, "other-namespace", svcURL, f.audience)
	if phase != "Failed" || !strings.Contains(log, "403") {
		t.Errorf("producer of another namespace: phase %s, want Failed with 403, log:\n%s", phase, log)
	}

	// Only the event of the Pod with a token reached the subscriber.
	for deadline := time.Now().Add(30 * time.Second); f.stats(t).Unique < 1; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			sinkLogs, _ := run("", env.kubectl, "-n", f.ns, "logs", "--tail=30", "deployment/sink")
			t.Fatalf("timed out after 30s waiting for the authenticated producer's event at the subscriber; subscriber %+v\n%s\nsubscriber logs:\n%s",
				f.stats(t), f.diagnostics(), sinkLogs)
		}
	}
	if s := f.stats(t); s.Unique != 1 {
		t.Errorf("subscriber received %d events, want 1 (only the authenticated producer's)", s.Unique)
	}

	// A load from an authenticated producer: every event reaches the
	// subscriber, which refused none of Herald's requests.
	l := startLoad(t, f, "auth", 500, 8)
	l.deliveredAll(t, "auth", 60*time.Second)
	if s := f.stats(t); s.Refused != 0 {
		t.Errorf("the subscriber refused %d of Herald's requests: their tokens did not pass its TokenReview", s.Refused)
	}
}
