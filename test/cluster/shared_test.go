//go:build cluster

package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// sharedDispatcher is the name of every namespace's shared dispatcher
// Deployment and Service.
const sharedDispatcher = "herald-dispatcher-shared"

const shared = "  dispatcher: {mode: shared}\n"

// testSharedDispatchers: the shared Topics of two namespaces are served by
// one dispatcher Deployment per namespace, each Topic at its own path of
// its namespace's shared Service, and every accepted event is delivered.
func testSharedDispatchers(t *testing.T) {
	var all []*fixture
	for _, ns := range []string{"e2e-shared-a", "e2e-shared-b"} {
		f := newFixture(t, ns, "orders", shared)
		all = append(all, f, f.addTopic(t, "payments", shared))
	}
	for _, f := range all {
		if f.dispatcher != sharedDispatcher {
			t.Fatalf("%s/%s is served by %q, want %s", f.ns, f.topic, f.dispatcher, sharedDispatcher)
		}
		deps := kubectl(t, "", "-n", f.ns, "get", "deployments", "-l", "app.kubernetes.io/name=herald-dispatcher", "-o", "jsonpath={.items[*].metadata.name}")
		if deps != sharedDispatcher {
			t.Errorf("namespace %s has dispatcher Deployments %q, want only %s", f.ns, deps, sharedDispatcher)
		}
	}
	for i, f := range all {
		l := startLoad(t, f, fmt.Sprintf("shared-%d", i), 500, 4)
		if s := l.deliveredAll(t, "shared-"+f.ns+"-"+f.topic, 60*time.Second); s.Duplicates != 0 {
			t.Errorf("%s/%s: %d duplicates without any failure", f.ns, f.topic, s.Duplicates)
		}
	}
}

// testMoveToShared: a Topic switched from its dedicated dispatcher to its
// namespace's shared one under load loses nothing. The producers follow the
// Topic's status.address.url, as one that reads it would: the address
// changes once the shared dispatcher is available, the dedicated one goes
// only then, draining for 5 to 20 s.
func testMoveToShared(t *testing.T) {
	f := newFixture(t, "e2e-move", "invoices", "")
	if f.dispatcher != "invoices-dispatcher" {
		t.Fatalf("dedicated Topic served by %q", f.dispatcher)
	}
	// Paced to last about 30 s, so that the move happens mid-stream.
	const n = 8000
	l := startPacedLoad(t, f, "move", n, 8, 30*time.Millisecond)
	l.progress(t, 0.1, 60*time.Second)
	kubectl(t, "", "-n", f.ns, "patch", "topic/"+f.topic, "--type=merge", "-p", `{"spec":{"dispatcher":{"mode":"shared"}}}`)
	patched := l.accepted.Load()
	eventually(t, 120*time.Second, "the Topic to be served by the shared dispatcher", func() bool {
		name, err := run("", env.kubectl, "-n", f.ns, "get", "topic/"+f.topic, "-o", "jsonpath={.status.dispatcher.name}")
		return err == nil && strings.TrimSpace(name) == sharedDispatcher
	})
	f.setIngress(t)
	moved := l.accepted.Load()
	f.dispatcher = sharedDispatcher
	t.Logf("move: patched after %d accepted events, address moved after %d", patched, moved)
	if moved >= n {
		t.Errorf("move: the address changed only after the load ended")
	}
	eventually(t, 60*time.Second, "the dedicated dispatcher Deployment to be deleted", func() bool {
		out, err := run("", env.kubectl, "-n", f.ns, "get", "deployment", "invoices-dispatcher")
		return err != nil && strings.Contains(out, "NotFound")
	})
	l.deliveredAll(t, "moved-to-shared", 90*time.Second)
}
