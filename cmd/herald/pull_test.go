package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const pullManifests = `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: jobs}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata: {name: jobs-dlq}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: workers}
spec:
  topic: jobs
  mode: pull
  pull: {ackDeadline: 1s}
  delivery:
    retry: 1
    deadLetterSink:
      ref: {apiVersion: eventing.herald.dev/v1alpha1, kind: Topic, name: jobs-dlq}
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata: {name: dlq-reader}
spec:
  topic: jobs-dlq
  mode: pull
`

// TestPullFromDev: herald pull against herald dev prints and acknowledges
// a pull Subscription's events; nacked past the retry limit, an event is
// dead-lettered to the Subscription's dead-letter Topic.
func TestPullFromDev(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(pullManifests), 0o600); err != nil {
		t.Fatal(err)
	}
	dev := startDev(t, dir)
	pull := func(sub, topic string, args ...string) string {
		t.Helper()
		c, err := parsePullConfig(append([]string{"--url", "http://" + dev.listen, "--topic", topic}, append(args, sub)...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := runPull(context.Background(), c, http.DefaultClient, &out); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	dev.send(t, "default/jobs", "job-1")
	dev.send(t, "default/jobs", "job-2")
	out := pull("workers", "jobs", "--max", "10", "--wait", "5s", "--ack")
	for _, want := range []string{"ackId: ", "deliveryAttempt: 1\n", "  id: job-1\n", "  id: job-2\n", "acknowledged 2 events\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("herald pull output lacks %q:\n%s", want, out)
		}
	}
	if out := pull("default/workers", "jobs", "--wait", "1500ms"); out != "" {
		t.Fatalf("acknowledged events pulled again:\n%s", out)
	}

	dev.send(t, "default/jobs", "job-3")
	for attempt := 1; attempt <= 2; attempt++ {
		var resp struct {
			ReceivedEvents []pulledEvent `json:"receivedEvents"`
		}
		if err := json.Unmarshal([]byte(pull("workers", "jobs", "--wait", "5s", "-o", "json", "--nack", "--nack-delay", "0s")), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.ReceivedEvents) != 1 || resp.ReceivedEvents[0].DeliveryAttempt != attempt {
			t.Fatalf("attempt %d: %+v", attempt, resp.ReceivedEvents)
		}
	}
	if out := pull("workers", "jobs", "--wait", "2s"); out != "" {
		t.Fatalf("pulled past the retry limit:\n%s", out)
	}
	out = pull("dlq-reader", "jobs-dlq", "--wait", "5s", "--ack")
	for _, want := range []string{"  id: job-3\n", "heraldattempts: 2\n", "heraldsubscription: default/workers\n", "knativeerrordest: /default/jobs/subscriptions/workers:pull\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("dead letter lacks %q:\n%s", want, out)
		}
	}
}

func TestPullFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"jobs"}, "missing --topic"},
		{[]string{"--topic", "t"}, "name one Subscription"},
		{[]string{"--topic", "t", "--max", "0", "s"}, "--max must be between 1 and 1000"},
		{[]string{"--topic", "t", "--wait", "31s", "s"}, "--wait must be between 0 and 30s"},
		{[]string{"--topic", "t", "--ack", "--nack", "s"}, "not both"},
		{[]string{"--topic", "t", "--nack-delay", "1s", "s"}, "--nack-delay goes with --nack"},
		{[]string{"--topic", "t", "-o", "yaml", "s"}, "want text or json"},
		{[]string{"--topic", "t", "a/b/c"}, "is not [namespace/]subscription"},
	} {
		if _, err := parsePullConfig(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.wantErr)
		}
	}
	c, err := parsePullConfig([]string{"--topic", "orders", "shop/jobs"}, io.Discard)
	if err != nil || c.namespace != "shop" || c.subscription != "jobs" || c.url != "http://127.0.0.1:8080" || c.max != 10 {
		t.Errorf("config = %+v, %v", c, err)
	}
}
