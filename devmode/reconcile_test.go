package devmode

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// testLoader returns a loader of the manifests in dir on an embedded NATS
// server, and that server's JetStream.
func testLoader(t *testing.T, dir string) (*loader, jetstream.JetStream) {
	t.Helper()
	js, err := jetstream.New(natstest.Connect(t, natstest.Start(t)))
	if err != nil {
		t.Fatal(err)
	}
	prov, err := provision.New(context.Background(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	state, err := loadState(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return newLoader([]string{dir}, "http://127.0.0.1:1", prov, dataDir, state, false), js
}

func load(t *testing.T, l *loader) *Status {
	t.Helper()
	st, err := l.load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func errorsAbout(st *Status, object string) []string {
	var out []string
	for _, err := range st.Errors {
		if me, ok := err.(*ManifestError); ok && me.Object == object {
			out = append(out, err.Error())
		}
	}
	return out
}

// A Subscription whose consumer JetStream refuses is reported and left out
// of the plan; the Topic and its other Subscriptions are served, as by the
// operator.
func TestLoadServesTheOtherSubscriptionsWhenAConsumerFails(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "m.yaml", strings.Join([]string{
		fmt.Sprintf(topicYAML, "orders"),
		subscriptionYAML("a", "orders", "http://127.0.0.1:1/a", ""),
		subscriptionYAML("b", "orders", "http://127.0.0.1:1/b", ""),
	}, "---\n"))
	l, js := testLoader(t, dir)
	// The Topic's stream holds one consumer at most: b's cannot be created.
	cfg, err := compiler.StreamConfig(&v1alpha1.Topic{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "orders"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConsumers = 1
	if _, err := js.CreateStream(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}

	st := load(t, l)
	if len(st.Topics) != 1 || len(st.Topics[0].Plan.Subscriptions) != 1 || st.Topics[0].Plan.Subscriptions[0].Name != "a" {
		t.Fatalf("topics %+v; want orders serving subscription a", st.Topics)
	}
	if len(st.Subscriptions) != 1 || st.Subscriptions[0].Name != "a" {
		t.Errorf("subscriptions %+v; want a", st.Subscriptions)
	}
	if errs := errorsAbout(st, "subscription default/b"); len(errs) != 1 || !strings.Contains(errs[0], "maximum consumers") {
		t.Errorf("errors about b: %q; want the refused consumer", errs)
	}
	if errs := errorsAbout(st, "topic default/orders"); len(errs) != 0 {
		t.Errorf("errors about the topic: %q; want none", errs)
	}
}

// A Subscription that stops resolving keeps its consumer, so it resumes
// where it stopped once fixed, as with the operator.
func TestLoadKeepsTheConsumerOfASubscriptionThatStopsResolving(t *testing.T) {
	dir := t.TempDir()
	write := func(bSubscriber string) {
		writeFile(t, dir, "m.yaml", strings.Join([]string{
			fmt.Sprintf(topicYAML, "orders"),
			subscriptionYAML("a", "orders", "http://127.0.0.1:1/a", ""),
			strings.Replace(subscriptionYAML("b", "orders", "http://127.0.0.1:1/b", ""), "    uri: http://127.0.0.1:1/b\n", bSubscriber, 1),
		}, "---\n"))
	}
	write("    uri: http://127.0.0.1:1/b\n")
	l, js := testLoader(t, dir)
	if st := load(t, l); len(st.Subscriptions) != 2 {
		t.Fatalf("subscriptions %+v, errors %v; want a and b", st.Subscriptions, st.Errors)
	}
	write("    ref: {apiVersion: v1, kind: Service, name: b}\n")
	st := load(t, l)
	if errs := errorsAbout(st, "subscription default/b"); len(errs) != 1 {
		t.Fatalf("errors about b: %q; want the unresolvable ref", errs)
	}
	if len(st.Subscriptions) != 1 || st.Subscriptions[0].Name != "a" {
		t.Errorf("subscriptions %+v; want a", st.Subscriptions)
	}
	stream := plan.StreamName("default", "orders")
	for _, name := range []string{"a", "b"} {
		if _, err := js.Consumer(context.Background(), stream, plan.ConsumerName(name)); err != nil {
			t.Errorf("consumer of %s: %v", name, err)
		}
	}
	// Removing b deletes its consumer.
	writeFile(t, dir, "m.yaml", fmt.Sprintf(topicYAML, "orders")+"---\n"+subscriptionYAML("a", "orders", "http://127.0.0.1:1/a", ""))
	load(t, l)
	if _, err := js.Consumer(context.Background(), stream, plan.ConsumerName("b")); err == nil {
		t.Error("the consumer of the removed subscription b still exists")
	}
}
