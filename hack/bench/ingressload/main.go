// Command ingressload measures the rate at which a Topic's ingress accepts
// events: it POSTs n binary-mode CloudEvents of size bytes over c keep-alive
// connections, optionally with a bearer token, and prints one result line
// of key=value pairs (as the peers' harness does) with the accepted rate and
// latency percentiles. hack/bench/run.sh uses it to compare Herald's ingress
// with authentication on and off in the same run.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type config struct {
	target, label, tokenFile, source string
	n, c, size, warmup               int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ingressload:", err)
		os.Exit(1)
	}
}

func run() error {
	var c config
	flag.StringVar(&c.target, "target", "", "ingress URL of the Topic (required)")
	flag.StringVar(&c.label, "label", "ingress", "scenario name printed in the result line")
	flag.StringVar(&c.tokenFile, "token-file", "", "file holding a bearer token sent with every request")
	flag.StringVar(&c.source, "source", fmt.Sprintf("/bench/ingress/%d", time.Now().UnixNano()), "ce-source of the events")
	flag.IntVar(&c.n, "n", 20000, "events sent in the measured phase")
	flag.IntVar(&c.c, "c", 32, "concurrent keep-alive connections")
	flag.IntVar(&c.size, "size", 1024, "event body size in bytes")
	flag.IntVar(&c.warmup, "warmup", 2000, "unmeasured events sent first")
	flag.Parse()
	if c.target == "" {
		return errors.New("-target is required")
	}
	token := ""
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: c.c,
		MaxConnsPerHost:     c.c,
	}}
	body := bytes.Repeat([]byte("x"), c.size)
	if _, err := send(client, c, token, body, "warmup-", c.warmup); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	start := time.Now()
	lat, err := send(client, c, token, body, "run-", c.n)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	fmt.Printf("scenario=%s n=%d c=%d size=%d ingress_eps=%.0f p50_ms=%.3f p99_ms=%.3f\n", c.label, c.n, c.c, c.size,
		float64(c.n)/elapsed.Seconds(), ms(pct(lat, 0.50)), ms(pct(lat, 0.99)))
	return nil
}

// send posts n events from c workers and returns each one's latency; any
// answer but 202 fails the run.
func send(client *http.Client, c config, token string, body []byte, prefix string, n int) ([]time.Duration, error) {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     = make([]time.Duration, 0, n)
		failure atomic.Value
		wg      sync.WaitGroup
	)
	for range c.c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for failure.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, c.target, bytes.NewReader(body))
				if err != nil {
					failure.Store(err)
					return
				}
				req.Header = http.Header{
					"Ce-Specversion": {"1.0"},
					"Ce-Id":          {prefix + strconv.FormatInt(i, 10)},
					"Ce-Source":      {c.source},
					"Ce-Type":        {"dev.bench.event"},
					"Content-Type":   {"application/octet-stream"},
				}
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failure.Store(err)
					return
				}
				answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failure.Store(fmt.Errorf("event %s%d: %s: %s", prefix, i, resp.Status, answer))
					return
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err, _ := failure.Load().(error); err != nil {
		return nil, err
	}
	return lat, nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
