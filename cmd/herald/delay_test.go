package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDevDelayedDeliverySurvivesRestart: events sent to herald dev with
// deliverat 3 s ahead (by herald send --at and by curl-style binary mode)
// are not delivered before that time, and are delivered once after herald
// dev was stopped and restarted on the same data directory in between.
func TestDevDelayedDeliverySurvivesRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts herald dev twice")
	}
	var (
		mu  sync.Mutex
		got = map[string][]time.Time{}
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.Header.Get("Ce-Id")] = append(got[r.Header.Get("Ce-Id")], time.Now())
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	arrivals := func(id string) []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), got[id]...)
	}

	dir, data := t.TempDir(), t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: reminders
spec:
  scheduling:
    maxDelay: PT1H
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: mailer
spec:
  topic: reminders
  subscriber:
    uri: ` + sink.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "reminders.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeLocalAddr(t)
	ingress := "http://" + listen + "/default/reminders"
	var stderr lockedBuffer
	defer func() {
		if t.Failed() {
			t.Logf("herald dev's stderr:\n%s", stderr.String())
		}
	}()
	start := func() (stop func()) {
		args := []string{"-f", dir, "--data-dir", data, "--listen", listen,
			"--display-listen", "", "--webhook-listen", "", "--nats-listen", "random", "--log-level", "warn"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- devMain(ctx, args, &stderr, &stderr) }()
		waitFor(t, 30*time.Second, func() bool {
			resp, err := http.Post(ingress, "application/json", strings.NewReader(`{}`))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusBadRequest
		}, "herald dev serving the Topic")
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("herald dev: %v", err)
			}
		}
	}

	stop := start()
	due := time.Now().Add(3 * time.Second)
	at := due.UTC().Format(time.RFC3339Nano)
	c, err := parseSendFlags([]string{"--to", ingress, "--type", "com.example.reminder", "--source", "/cli", "--id", "by-send", "--at", at}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.buildEvent(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if code, status, _, err := send(context.Background(), http.DefaultClient, c.to, "", e); err != nil || code != http.StatusAccepted {
		t.Fatalf("herald send --at: %d %q, %v", code, status, err)
	}
	req, _ := http.NewRequest(http.MethodPost, ingress, strings.NewReader(`{"to":"ada"}`))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "com.example.reminder", "ce-source": "/curl",
		"ce-id": "by-curl", "ce-deliverat": at, "content-type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST with ce-deliverat: %s", resp.Status)
	}

	stop()
	if time.Now().After(due) {
		t.Fatalf("stopping herald dev took until after the delivery time; the restart would prove nothing")
	}
	for _, id := range []string{"by-send", "by-curl"} {
		if a := arrivals(id); len(a) > 0 {
			t.Fatalf("%s delivered %v before its time", id, due.Sub(a[0]))
		}
	}
	stop = start()
	defer stop()
	t.Logf("restarted %v before the delivery time", due.Sub(time.Now()).Round(time.Millisecond))
	waitFor(t, 20*time.Second, func() bool { return len(arrivals("by-send")) > 0 && len(arrivals("by-curl")) > 0 },
		"both delayed events delivered after the restart")
	time.Sleep(500 * time.Millisecond)
	for _, id := range []string{"by-send", "by-curl"} {
		a := arrivals(id)
		if a[0].Before(due) {
			t.Errorf("%s delivered %v before its time", id, due.Sub(a[0]))
		}
		if len(a) != 1 {
			t.Errorf("%s delivered %d times, want once", id, len(a))
		}
	}
}

// TestSendDelayFlags: --at and --after set deliverat and deliverafter;
// bad values and both at once are refused before anything is sent.
func TestSendDelayFlags(t *testing.T) {
	base := []string{"--to", "http://127.0.0.1:1/default/t", "--type", "t", "--source", "/s"}
	for _, tc := range []struct {
		args      []string
		attr, val string
		wantErr   string
	}{
		{[]string{"--at", "2030-01-02T09:00:00Z"}, "deliverat", "2030-01-02T09:00:00Z", ""},
		{[]string{"--after", "PT10M"}, "deliverafter", "PT10M", ""},
		{[]string{"--after", "90s"}, "deliverafter", "90s", ""},
		{[]string{"--at", "tomorrow"}, "", "", "--at"},
		{[]string{"--after", "ten minutes"}, "", "", "--after"},
		{[]string{"--at", "2030-01-02T09:00:00Z", "--after", "PT1M"}, "", "", "not both"},
	} {
		c, err := parseSendFlags(append(append([]string(nil), base...), tc.args...), io.Discard)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want one mentioning %s", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		e, err := c.buildEvent(strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := e.Extensions()[tc.attr]; !ok || v != tc.val {
			t.Errorf("%v: extension %s = %v, want %s", tc.args, tc.attr, v, tc.val)
		}
	}
}
