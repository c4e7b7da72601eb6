package dispatcher

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// replyBinary answers 200 with a binary-mode reply event.
func replyBinary(status int) func(int, received, http.ResponseWriter) {
	return func(n int, r received, w http.ResponseWriter) {
		w.Header().Set("Ce-Specversion", "1.0")
		w.Header().Set("Ce-Id", "reply-to-"+r.ce("id"))
		w.Header().Set("Ce-Source", "/replier")
		w.Header().Set("Ce-Type", "dev.herald.reply")
		w.Header().Set("Ce-Note", "caf%C3%A9")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		fmt.Fprint(w, "reply body")
	}
}

// TestReplies: a 200 carrying a CloudEvent goes to the reply destination
// with heraldhops; 202 is never a reply; hop limit and missing destination
// drop it; a failing reply destination is retried like the subscriber.
func TestReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	structured := func(n int, rec received, w http.ResponseWriter) {
		w.Header().Set("Content-Type", ce.MediaStructuredJSON)
		fmt.Fprintf(w, `{"specversion":"0.3","id":"s-%s","source":"/replier","type":"t","datacontenttype":"application/json","data":{"ok":true}}`, rec.ce("id"))
	}
	tests := []struct {
		name      string
		respond   func(int, received, http.ResponseWriter)
		noReply   bool
		failReply bool
		hops      string
		forwarded bool
		metric    string
	}{
		{name: "binary reply", respond: replyBinary(200), forwarded: true, metric: replyForwarded},
		{name: "structured reply", respond: structured, forwarded: true, metric: replyForwarded},
		{name: "202 is not a reply", respond: replyBinary(202)},
		{name: "200 without an event", respond: respondSeq(200)},
		{name: "hop count incremented", respond: replyBinary(200), hops: "3", forwarded: true, metric: replyForwarded},
		{name: "hop limit", respond: replyBinary(200), hops: "8", metric: replyHopLimit},
		{name: "no reply destination", respond: replyBinary(200), noReply: true, metric: replyNoDestination},
		{name: "invalid reply", respond: func(n int, _ received, w http.ResponseWriter) {
			w.Header().Set("Ce-Specversion", "1.0")
			w.WriteHeader(200)
		}, metric: replyInvalid},
		{name: "failing reply destination", respond: replyBinary(200), failReply: true, metric: replyFailed},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := newSink(t, tc.respond)
			replies := newSink(t, nil)
			if tc.failReply {
				replies = newSink(t, respondSeq(500))
			}
			dls := newSink(t, nil)
			s := subscription{name: "s", uri: sub.url(), reply: replies.url(), deadLetter: dls.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
				s.Delivery = fastRetry(1)
			}}
			if tc.noReply {
				s.reply = ""
			}
			topic := fmt.Sprintf("reply%d", i)
			res := e.provision(newTopic(topic), []subscription{s}, nil)
			r.waitDelivering(t, &res.Plan)
			var extra []string
			if tc.hops != "" {
				extra = []string{"Ce-Heraldhops", tc.hops}
			}
			sendOK(t, r.url+"/default/"+topic, "ev", extra...)
			waitSettled(t, e, res.Plan.Stream, "sub_s")
			switch {
			case tc.forwarded:
				eventually(t, 5*time.Second, func() bool { return replies.count() == 1 }, "reply forwarded")
				got := replies.requests()[0]
				wantHops := "1"
				if tc.hops != "" {
					wantHops = "4"
				}
				if got.ce("heraldhops") != wantHops {
					t.Errorf("heraldhops = %q, want %s", got.ce("heraldhops"), wantHops)
				}
				if got.ce("source") != "/replier" {
					t.Errorf("reply source = %q", got.ce("source"))
				}
			case tc.failReply:
				if dls.count() != 1 || replies.count() != 2 || sub.count() != 2 {
					t.Errorf("subscriber %d, reply destination %d, dead letters %d requests; want 2, 2, 1", sub.count(), replies.count(), dls.count())
				} else if dest := ce.Decode(dls.requests()[0].ce("knativeerrordest")); dest != replies.url() {
					t.Errorf("knativeerrordest = %q, want the reply destination %q", dest, replies.url())
				}
			default:
				if replies.count() != 0 {
					t.Errorf("reply destination got %d requests, want none", replies.count())
				}
				if sub.count() != 1 || dls.count() != 0 {
					t.Errorf("subscriber got %d, dead letters %d; want 1, 0", sub.count(), dls.count())
				}
			}
			if tc.metric != "" {
				if got := testutil.ToFloat64(r.d.metrics.replies.WithLabelValues("default", topic, "s", tc.metric)); got < 1 {
					t.Errorf("replies{outcome=%s} = %v, want ≥ 1", tc.metric, got)
				}
			}
		})
	}
	t.Run("reply content", func(t *testing.T) {
		t.Parallel()
		sub := newSink(t, replyBinary(200))
		replies := newSink(t, nil)
		res := e.provision(newTopic("replycontent"), []subscription{{name: "s", uri: sub.url(), reply: replies.url()}}, nil)
		r.waitDelivering(t, &res.Plan)
		sendOK(t, r.url+"/default/replycontent", "orig", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
		eventually(t, 5*time.Second, func() bool { return replies.count() == 1 }, "reply")
		got := replies.requests()[0]
		if got.ce("id") != "reply-to-orig" || ce.Decode(got.ce("note")) != "café" || string(got.body) != "reply body" ||
			got.header.Get("Content-Type") != "text/plain" {
			t.Errorf("reply changed on the way: %v %q", got.header, got.body)
		}
		if got.header.Get("Traceparent") == "" {
			t.Error("reply lost the trace context")
		}
		if sub.requests()[0].header.Get("Prefer") != "reply" {
			t.Error("delivery lacks Prefer: reply")
		}
	})
}
