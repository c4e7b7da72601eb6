package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashChildEnv carries herald dev's arguments to the child process of
// TestDevRecoversFromSIGKILL, separated by newlines.
const crashChildEnv = "HERALD_TEST_DEV_ARGS"

// TestDevChildProcess is herald dev in a process of its own, started by
// TestDevRecoversFromSIGKILL so that it can be killed; it does nothing in
// a normal run.
func TestDevChildProcess(t *testing.T) {
	args := os.Getenv(crashChildEnv)
	if args == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := devMain(ctx, strings.Split(args, "\n"), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// deliveries records the first and last delivery of each event id.
type deliveries struct {
	mu    sync.Mutex
	first map[string]time.Time
	last  time.Time
	dups  int
}

func (d *deliveries) record(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if _, ok := d.first[id]; ok {
		d.dups++
	} else {
		d.first[id] = now
		d.last = now
	}
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.first)
}

// missing returns the accepted ids not delivered yet.
func (d *deliveries) missing(accepted []string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, id := range accepted {
		if _, ok := d.first[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// TestDevRecoversFromSIGKILL kills herald dev with SIGKILL while events
// flow and restarts it on the same data: every accepted event is
// delivered, and the events the dead process held come back within
// seconds of the restart although the Subscription keeps the default 30 s
// timeout. The recovery time is printed; the assertion allows a generous
// bound well below the minute that a timeout-sized AckWait takes.
func TestDevRecoversFromSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts herald dev twice")
	}
	got := &deliveries{first: map[string]time.Time{}}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		got.record(r.Header.Get("Ce-Id"))
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()

	dir, data := t.TempDir(), t.TempDir()
	manifest := `apiVersion: eventing.herald.dev/v1alpha1
kind: Topic
metadata:
  name: crash
---
apiVersion: eventing.herald.dev/v1alpha1
kind: Subscription
metadata:
  name: slow
spec:
  topic: crash
  subscriber:
    uri: ` + sink.URL + `/
`
	if err := os.WriteFile(filepath.Join(dir, "crash.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeLocalAddr(t)
	ingress := "http://" + listen + "/default/crash"
	var stderr lockedBuffer
	defer func() {
		if t.Failed() {
			t.Logf("herald dev's stderr:\n%s", stderr.String())
		}
	}()
	start := func() *exec.Cmd {
		args := []string{"-f", dir, "--data-dir", data, "--listen", listen,
			"--display-listen", "", "--webhook-listen", "", "--nats-listen", "random", "--log-level", "warn"}
		cmd := exec.Command(os.Args[0], "-test.run=^TestDevChildProcess$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+strings.Join(args, "\n"))
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	send := func(id string) bool {
		req, _ := http.NewRequest(http.MethodPost, ingress, strings.NewReader(`{"n":1}`))
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-type": "dev.herald.crash", "ce-source": "/crash", "ce-id": id, "content-type": "application/json"} {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	}

	first := start()
	defer func() { _ = first.Process.Kill(); _ = first.Wait() }()
	waitFor(t, 30*time.Second, func() bool { return send("warm-up") }, "herald dev accepting events")

	const n = 3000
	var (
		mu       sync.Mutex
		accepted = []string{"warm-up"}
		wg       sync.WaitGroup
	)
	ids := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				if send(id) {
					mu.Lock()
					accepted = append(accepted, id)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		ids <- fmt.Sprintf("e%d", i)
	}
	close(ids)
	wg.Wait()
	waitFor(t, 30*time.Second, func() bool { return got.count() >= 500 }, "deliveries under way")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if len(got.missing(accepted)) == 0 {
		t.Skip("everything was delivered before the kill; nothing to recover")
	}
	heldAtKill := len(got.missing(accepted))

	restarted := time.Now()
	second := start()
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	waitFor(t, 45*time.Second, func() bool { return len(got.missing(accepted)) == 0 },
		"every accepted event delivered after the restart")
	got.mu.Lock()
	recovery, dups := got.last.Sub(restarted), got.dups
	got.mu.Unlock()
	t.Logf("accepted %d events; %d undelivered at the kill; all delivered, the last %.1f s after the restart; %d duplicate deliveries",
		len(accepted), heldAtKill, recovery.Seconds(), dups)
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
