package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// devRun is herald dev running in-process for a test.
type devRun struct {
	// listen is the ingress address.
	listen         string
	stdout, stderr lockedBuffer
}

// startDev runs herald dev on the manifests in dir, with a data directory of
// the test's own, a free ingress port, a random NATS port and neither display
// nor webhooks; extra flags come last and win. It waits for the banner and
// stops herald dev when the test ends, logging its stderr if it failed.
func startDev(t *testing.T, dir string, extra ...string) *devRun {
	t.Helper()
	d := &devRun{listen: freeLocalAddr(t)}
	args := append([]string{"-f", dir, "--data-dir", t.TempDir(), "--listen", d.listen,
		"--display-listen", "", "--webhook-listen", "", "--nats-listen", "random"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- devMain(ctx, args, &d.stdout, &d.stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("herald dev: %v", err)
		}
		if t.Failed() {
			t.Logf("stderr:\n%s", d.stderr.String())
		}
	})
	waitUntil(t, func() bool { return strings.Contains(d.stderr.String(), "Send an event:") }, "no banner")
	return d
}

// send posts a binary-mode com.example.order.created event with id to
// namespace/topic and fails the test unless it is accepted.
func (d *devRun) send(t *testing.T, topic, id string) {
	t.Helper()
	d.sendWith(t, topic, map[string]string{"ce-id": id})
}

// sendWith posts a binary-mode event to namespace/topic, its headers
// those of send overridden by headers, and fails the test unless it is
// accepted.
func (d *devRun) sendWith(t *testing.T, topic string, headers map[string]string) {
	t.Helper()
	if code, body := d.post(t, topic, headers); code != http.StatusAccepted {
		t.Fatalf("POST %v to %s: %d %s", headers, topic, code, body)
	}
}

// post posts a binary-mode event to namespace/topic, its headers those of
// send overridden by headers, and returns the answer's status and body.
func (d *devRun) post(t *testing.T, topic string, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.listen+"/"+topic, strings.NewReader(`{}`))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.order.created", "ce-source": "/shop",
		"content-type": "application/json"} {
		req.Header.Set(k, v)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// natsEnv is the environment of a terminal tool pointed at the NATS
// server at addr.
func natsEnv(addr string) func(string) string {
	return func(k string) string {
		if k == "NATS_URL" {
			return "nats://" + addr
		}
		return ""
	}
}
