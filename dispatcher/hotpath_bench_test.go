package dispatcher

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// The hot-path benchmarks measure Herald's own per-event work, without
// NATS or HTTP I/O: allocations per event are steady on a shared machine,
// unlike end-to-end rates.

var (
	benchMsgSink    *nats.Msg
	benchHeaderSink http.Header
)

func benchIngressHeader() http.Header {
	return http.Header{
		"Ce-Specversion": {"1.0"},
		"Ce-Id":          {"12345"},
		"Ce-Source":      {"/bench/load/1700000000"},
		"Ce-Type":        {"dev.herald.bench"},
		"Ce-Benchts":     {"1700000000123456789"},
		"Content-Type":   {"application/octet-stream"},
	}
}

// BenchmarkIngressPrepare: decoding a binary-mode request into the message
// the ingress publishes.
func BenchmarkIngressPrepare(b *testing.B) {
	h := benchIngressHeader()
	body := bytes.Repeat([]byte("x"), 1024)
	t := &topicState{plan: &plan.TopicPlan{Stream: "HERALD_default_bench", Subject: "herald.default.bench"}}
	b.ReportAllocs()
	for b.Loop() {
		e, err := ce.DecodeBinary(h, body)
		if err != nil {
			b.Fatal(err)
		}
		benchMsgSink = storedMsg(t, e, "")
	}
}

// BenchmarkDeliveryHeader: the headers of a delivery request built from a
// stored message's.
func BenchmarkDeliveryHeader(b *testing.B) {
	e, err := ce.DecodeBinary(benchIngressHeader(), nil)
	if err != nil {
		b.Fatal(err)
	}
	stored := e.Header()
	b.ReportAllocs()
	for b.Loop() {
		benchHeaderSink = subscriberHeader(stored)
	}
}
