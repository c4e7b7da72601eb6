package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/controllers/resources"
)

// sink is the Subscriptions' subscriber: it counts what it receives.
type sink struct {
	url      string
	received atomic.Int64
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{url: "http://" + l.Addr().String() + "/events"}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			s.received.Add(1)
		}))
	}()
	return s, nil
}

// deployments counts the dispatcher Deployments.
func (b *bench) deployments(ctx context.Context) int {
	var list appsv1.DeploymentList
	if err := b.cache.List(ctx, &list, client.MatchingLabels{resources.LabelName: resources.DispatcherAppName}); err != nil {
		return -1
	}
	return len(list.Items)
}

// dispatcherProc is a dispatcher started as the cluster would run it.
type dispatcherProc struct {
	cmd    *exec.Cmd
	listen string
	topics []*v1alpha1.Topic
}

// serveAll runs the dispatchers the operator's Deployments describe, as
// processes on the benchmark's NATS, POSTs one event to every Topic they
// serve at the path of its status.address.url, and reports what they
// accepted and delivered and their memory.
func (b *bench) serveAll(ctx context.Context) error {
	var topics v1alpha1.TopicList
	if err := b.cache.List(ctx, &topics); err != nil {
		return err
	}
	byDispatcher := map[string]*dispatcherProc{}
	var keys []string
	for i := range topics.Items {
		t := &topics.Items[i]
		if t.Status.Dispatcher == nil || t.Status.Address == nil {
			return fmt.Errorf("topic %s/%s has no dispatcher in its status", t.Namespace, t.Name)
		}
		key := t.Namespace + "/" + t.Status.Dispatcher.Name
		if t.Status.Dispatcher.Mode == v1alpha1.DispatcherDedicated {
			// One dedicated dispatcher stands for all: a thousand
			// processes would measure this machine, not Herald.
			if len(byDispatcher) > 0 {
				continue
			}
		}
		p := byDispatcher[key]
		if p == nil {
			p = &dispatcherProc{listen: freeAddr()}
			byDispatcher[key] = p
			keys = append(keys, key)
		}
		p.topics = append(p.topics, t)
	}
	sort.Strings(keys)
	defer func() {
		for _, p := range byDispatcher {
			if p.cmd != nil && p.cmd.Process != nil {
				_ = p.cmd.Process.Signal(os.Interrupt)
				_ = p.cmd.Wait()
			}
		}
	}()
	for _, key := range keys {
		p := byDispatcher[key]
		t := p.topics[0]
		args := []string{"--nats-url", b.natsURL, "--listen", p.listen, "--metrics-listen", "", "--log-level", "warn", "--drain-delay", "0s"}
		if t.Status.Dispatcher.Mode == v1alpha1.DispatcherShared {
			args = append(args, "--shared", resources.SharedDispatcherID(t.Namespace))
		} else {
			args = append(args, "--topics", t.Namespace+"/"+t.Name)
		}
		p.cmd = exec.Command(b.dispatcherBin, args...)
		logFile, err := os.Create(filepath.Join(b.dir, strings.ReplaceAll(key, "/", "_")+".log"))
		if err != nil {
			return err
		}
		defer logFile.Close()
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		if err := p.cmd.Start(); err != nil {
			return fmt.Errorf("start dispatcher %s: %w", key, err)
		}
	}
	served := 0
	for _, key := range keys {
		p := byDispatcher[key]
		if err := waitHTTP(ctx, "http://"+p.listen+"/readyz", time.Minute); err != nil {
			return fmt.Errorf("dispatcher %s not ready: %w", key, err)
		}
		served += len(p.topics)
	}
	time.Sleep(2 * time.Second)
	idleRSS := map[string]int64{}
	for _, key := range keys {
		idleRSS[key] = rss(byDispatcher[key].cmd.Process.Pid)
	}

	start := time.Now()
	before := b.sink.received.Load()
	var accepted, refused atomic.Int64
	var firstRefusal atomic.Value
	work := make(chan [2]string)
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 30 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range work {
				code, answer := post(c, w[0], w[1])
				if code == http.StatusAccepted {
					accepted.Add(1)
					continue
				}
				refused.Add(1)
				firstRefusal.CompareAndSwap(nil, fmt.Sprintf("POST %s: %d %s", w[0], code, answer))
			}
		}()
	}
	for _, key := range keys {
		p := byDispatcher[key]
		for _, t := range p.topics {
			u, err := url.Parse(t.Status.Address.URL)
			if err != nil {
				return err
			}
			work <- [2]string{"http://" + p.listen + u.Path, t.Namespace + "-" + t.Name}
		}
	}
	close(work)
	wg.Wait()
	want := accepted.Load() * int64(b.c.subs)
	deadline := time.Now().Add(2 * time.Minute)
	for b.sink.received.Load()-before < want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	delivered := b.sink.received.Load() - before
	var idle, peak []string
	var idleSum, peakSum int64
	for _, key := range keys {
		pid := byDispatcher[key].cmd.Process.Pid
		idleSum += idleRSS[key]
		peakSum += peakRSS(pid)
		idle = append(idle, fmt.Sprint(idleRSS[key]>>20))
		peak = append(peak, fmt.Sprint(peakRSS(pid)>>20))
	}
	fmt.Printf("phase=serve mode=%s dispatchers=%d topics_served=%d accepted=%d refused=%d deliveries=%d want_deliveries=%d elapsed_s=%.1f "+
		"dispatcher_rss_idle_mib=%s dispatcher_rss_peak_mib=%s dispatcher_rss_idle_total_mib=%d dispatcher_rss_peak_total_mib=%d\n",
		b.c.mode, len(keys), served, accepted.Load(), refused.Load(), delivered, want, time.Since(start).Seconds(),
		strings.Join(idle, ","), strings.Join(peak, ","), idleSum>>20, peakSum>>20)
	if f := firstRefusal.Load(); f != nil {
		logf("first refusal: %s", f)
	}
	if refused.Load() > 0 || delivered < want {
		return fmt.Errorf("serve: %d refused, %d of %d deliveries", refused.Load(), delivered, want)
	}
	return nil
}

// post sends one binary-mode CloudEvent.
func post(c *http.Client, u, id string) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader([]byte(`{"bench":true}`)))
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Type", "dev.herald.bench.scale")
	req.Header.Set("Ce-Source", "/bench/scale")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// rss returns a process's current resident set size (VmRSS) in bytes.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}
