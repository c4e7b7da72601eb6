package dispatcher

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// BenchmarkEndToEnd measures HTTP ingress → JetStream (file storage) →
// HTTP subscriber with 1 KiB binary-mode events and 32 concurrent
// producers. events/s counts accepted events; deliveries/s successful
// deliveries, fan-out included; the run ends when every event reached every
// subscription.
func BenchmarkEndToEnd(b *testing.B) {
	for _, bc := range []struct {
		name     string
		fanout   int
		failRate int // percent of deliveries answered 503
	}{
		{"fanout1", 1, 0},
		{"fanout10", 10, 0},
		{"fanout1-fail10pct", 1, 10},
	} {
		b.Run(bc.name, func(b *testing.B) { benchEndToEnd(b, bc.fanout, bc.failRate) })
	}
}

func benchEndToEnd(b *testing.B, fanout, failRate int) {
	e := newEnv(b)
	var delivered, requests atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if failRate > 0 && requests.Add(1)%100 < int64(failRate) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	b.Cleanup(sink.Close)
	var subs []subscription
	for i := range fanout {
		subs = append(subs, subscription{name: fmt.Sprintf("s%d", i), uri: sink.URL, spec: func(s *v1alpha1.SubscriptionSpec) {
			s.Delivery = fastRetry(10)
		}})
	}
	res := e.provision(newTopic("bench"), subs, nil)
	r := e.start(nil, Options{})
	r.waitDelivering(b, &res.Plan)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
	url := r.url + "/default/bench"
	data := bytes.Repeat([]byte("x"), 1024)
	var seq atomic.Int64
	b.SetBytes(int64(len(data)))
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
			req.Header = http.Header{
				"Ce-Specversion": {"1.0"},
				"Ce-Id":          {strconv.FormatInt(seq.Add(1), 10)},
				"Ce-Source":      {"/bench"},
				"Ce-Type":        {"dev.herald.bench"},
				"Content-Type":   {"application/octet-stream"},
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("ingress answered %d", resp.StatusCode)
				return
			}
		}
	})
	ingress := time.Since(start)
	want := int64(b.N) * int64(fanout)
	eventually(b, 5*time.Minute, func() bool { return delivered.Load() >= want }, "%d deliveries", want)
	total := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/ingress.Seconds(), "ingress-events/s")
	b.ReportMetric(float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(want)/total.Seconds(), "deliveries/s")
}
