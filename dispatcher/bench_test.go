package dispatcher

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// The benchmarks measure HTTP producer → system → HTTP subscriber with 1 KiB
// binary-mode events and 32 concurrent producers, all in this process
// (embedded NATS with file storage). Each reports events/s (first send to
// last delivery) and cpu-us/event (process CPU per event, producer and
// subscriber included), which is steadier than rates on a shared machine.
// Compare Herald with the baselines of the same run:
//
//   - BenchmarkBaselineDirect: producer → subscriber, the HTTP limit;
//   - BenchmarkBaselineJetStreamHTTP: the minimal hand-written path (sync
//     publish, 202 after the PubAck, pull consumer, POST, ack), as in
//     shared/bench's jetstream-http.

// benchSink is a subscriber counting the events it accepted (each of a
// batch); it answers 503 to failPct percent of requests.
func benchSink(b *testing.B, failPct int64) (url string, delivered *atomic.Int64) {
	delivered = new(atomic.Int64)
	var requests atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events := int64(1)
		if r.Header.Get("Content-Type") == ce.MediaBatchJSON {
			body, _ := io.ReadAll(r.Body)
			evs, err := ce.DecodeBatch(body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			events = int64(len(evs))
		} else {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		if failPct > 0 && requests.Add(1)%100 < failPct {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(events)
		w.WriteHeader(http.StatusAccepted)
	}))
	b.Cleanup(s.Close)
	return s.URL, delivered
}

// produce posts b.N events to url from 32 goroutines, waits until
// delivered reaches want and reports the metrics.
func produce(b *testing.B, url string, delivered *atomic.Int64, want int64) {
	produceWith(b, url, "", delivered, want)
}

// produceWith is produce sending an Authorization header when authz is
// not empty.
func produceWith(b *testing.B, url, authz string, delivered *atomic.Int64, want int64) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
	data := bytes.Repeat([]byte("x"), 1024)
	var seq atomic.Int64
	b.SetBytes(int64(len(data)))
	b.SetParallelism(16)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
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
			if authz != "" {
				req.Header["Authorization"] = []string{authz}
			}
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				b.Errorf("ingress answered %d", resp.StatusCode)
				return
			}
		}
	})
	ingress := time.Since(start)
	eventually(b, 5*time.Minute, func() bool { return delivered.Load() >= want }, "%d deliveries", want)
	total, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/ingress.Seconds(), "ingress-events/s")
	b.ReportMetric(float64(b.N)/total.Seconds(), "events/s")
	b.ReportMetric(float64(want)/total.Seconds(), "deliveries/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/event")
	}
}

// BenchmarkEndToEnd is Herald: its ingress, JetStream, its delivery, with a
// fan-out to 1 and 10 Subscriptions, and with 10% of deliveries failing
// (retried after 10 ms).
func BenchmarkEndToEnd(b *testing.B) {
	for _, bc := range []struct {
		name    string
		fanout  int
		failPct int64

		batch int32
	}{
		{"fanout1", 1, 0, 0},
		{"fanout10", 10, 0, 0},
		{"fanout1-fail10pct", 1, 10, 0},
		{"fanout1-batch100", 1, 0, 100},
		{"fanout10-batch100", 10, 0, 100},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b)
			sink, delivered := benchSink(b, bc.failPct)
			var subs []subscription
			for i := range bc.fanout {
				subs = append(subs, subscription{name: fmt.Sprintf("s%d", i), uri: sink, spec: func(s *v1alpha1.SubscriptionSpec) {
					s.Delivery = fastRetry(10)
					if bc.batch > 0 {
						s.Batch = &v1alpha1.Batch{MaxEvents: bc.batch}
					}
				}})
			}
			res := e.provision(newTopic("bench"), subs, nil)
			r := e.start(nil, Options{})
			r.waitDelivering(b, &res.Plan)
			produce(b, r.url+"/default/bench", delivered, int64(b.N)*int64(bc.fanout))
		})
	}
}

// BenchmarkIngress is Herald's ingress alone: producers → validation →
// JetStream (202 after the PubAck), a Topic without Subscriptions.
func BenchmarkIngress(b *testing.B) {
	e := newEnv(b)
	e.provision(newTopic("bench"), nil, nil)
	r := e.start(nil, Options{})
	eventually(b, 10*time.Second, func() bool { return r.d.topic("default", "bench") != nil }, "topic served")
	produce(b, r.url+"/default/bench", new(atomic.Int64), 0)
}

// BenchmarkDelivery is Herald's delivery alone: b.N events of 1 KiB are
// stored in the Topic's stream first, then the dispatcher starts and
// delivers them to the subscriber, one per request or in batches of 100.
// It reports deliveries/s and cpu-us/event (subscriber included).
func BenchmarkDelivery(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int32
	}{{"single", 0}, {"batch100", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b)
			sink, delivered := benchSink(b, 0)
			res := e.provision(newTopic("bench"), []subscription{{name: "s", uri: sink, spec: func(s *v1alpha1.SubscriptionSpec) {
				if bc.batch > 0 {
					s.Batch = &v1alpha1.Batch{MaxEvents: bc.batch}
				}
			}}}, nil)
			data := bytes.Repeat([]byte("x"), 1024)
			var futures []jetstream.PubAckFuture
			for i := range b.N {
				ev := &ce.Event{Attrs: []ce.Attribute{{Name: ce.AttrSpecVersion, Value: "1.0"}, {Name: ce.AttrID, Value: strconv.Itoa(i)},
					{Name: ce.AttrSource, Value: "/bench"}, {Name: ce.AttrType, Value: "dev.herald.bench"}}, ContentType: "application/octet-stream", Data: data}
				f, err := e.js.PublishMsgAsync(&nats.Msg{Subject: res.Plan.Subject, Header: ev.Header(), Data: data})
				if err != nil {
					b.Fatal(err)
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			e.start(nil, Options{})
			eventually(b, 5*time.Minute, func() bool { return delivered.Load() >= int64(b.N) }, "%d deliveries", b.N)
			total, cpu := time.Since(start), cpuTime()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/total.Seconds(), "deliveries/s")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/event")
			}
		})
	}
}

// BenchmarkBaselineDirect: producer → subscriber, nothing between.
func BenchmarkBaselineDirect(b *testing.B) {
	sink, delivered := benchSink(b, 0)
	produce(b, sink, delivered, int64(b.N))
}

// BenchmarkBaselineJetStreamHTTP is the minimal hand-written data path:
// ingress publishing synchronously (202 after the PubAck), a durable pull
// consumer and 32 workers POSTing and acking; no validation, deduplication,
// filters, retries policy or metrics.
func BenchmarkBaselineJetStreamHTTP(b *testing.B) {
	e := newEnv(b)
	sink, delivered := benchSink(b, 0)
	ctx := context.Background()
	inc, dnc := e.connect(), e.connect()
	js, _ := jetstream.New(inc)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CE", Subjects: []string{"ce.events"}, Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "sub1", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 1000}); err != nil {
		b.Fatal(err)
	}
	djs, _ := jetstream.New(dnc)
	cons, err := djs.Consumer(ctx, "CE", "sub1")
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	work := make(chan jetstream.Msg, 32)
	for range 32 {
		go func() {
			for m := range work {
				req, _ := http.NewRequest(http.MethodPost, sink, bytes.NewReader(m.Data()))
				for k, v := range m.Headers() {
					req.Header[k] = v
				}
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
				if err == nil && resp.StatusCode/100 == 2 {
					_ = m.Ack()
				} else {
					_ = m.NakWithDelay(100 * time.Millisecond)
				}
			}
		}()
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { work <- m })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		msg := &nats.Msg{Subject: "ce.events", Header: nats.Header{}, Data: body}
		for k, v := range r.Header {
			if strings.HasPrefix(k, "Ce-") || k == "Content-Type" {
				msg.Header[k] = v
			}
		}
		if _, err := js.PublishMsg(r.Context(), msg); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	b.Cleanup(ingress.Close)
	produce(b, ingress.URL, delivered, int64(b.N))
}
