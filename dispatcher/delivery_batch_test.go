package dispatcher

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// batchIDs decodes every batch request s received: the ids in each.
func batchIDs(t *testing.T, s *sink) [][]string {
	t.Helper()
	var out [][]string
	for i, r := range s.requests() {
		if ct := r.header.Get("Content-Type"); ct != ce.MediaBatchJSON {
			t.Fatalf("request %d: Content-Type %q, want %q", i, ct, ce.MediaBatchJSON)
		}
		evs, err := ce.DecodeBatch(r.body)
		if err != nil {
			t.Fatalf("request %d is not a CloudEvents batch: %v\n%s", i, err, r.body)
		}
		var ids []string
		for _, e := range evs {
			id, _ := e.Get(ce.AttrID)
			ids = append(ids, id)
			if src, _ := e.Get(ce.AttrSource); src != "/test" || e.ContentType != "application/json" || string(e.Data) != `{"n":1}` {
				t.Errorf("request %d: event %s came out as source %q, content type %q, data %q", i, id, src, e.ContentType, e.Data)
			}
		}
		out = append(out, ids)
	}
	return out
}

func batchSub(maxEvents int32, maxWait string) func(*v1alpha1.SubscriptionSpec) {
	return func(s *v1alpha1.SubscriptionSpec) {
		s.Batch = &v1alpha1.Batch{MaxEvents: maxEvents, MaxWait: dur(maxWait)}
		s.Filters = []v1alpha1.SubscriptionsAPIFilter{{FilterAttributes: v1alpha1.FilterAttributes{Exact: map[string]string{"type": "dev.herald.test"}}}}
	}
}

// TestBatchDelivery: a Subscription with batch gets its events in
// CloudEvents batch mode, at most maxEvents per request, each selected
// event once, filtered ones never.
func TestBatchDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	s := newSink(t, nil)
	res := e.provision(newTopic("batched"), []subscription{{name: "s", uri: s.url(), spec: batchSub(10, "300ms")}}, nil)
	r.waitDelivering(t, &res.Plan)
	want := map[string]bool{}
	for i := range 25 {
		id := fmt.Sprintf("e%02d", i)
		sendOK(t, r.url+"/default/batched", id)
		want[id] = true
		if i%5 == 0 {
			sendOK(t, r.url+"/default/batched", fmt.Sprintf("other%d", i), "Ce-Type", "dev.herald.other")
		}
	}
	eventually(t, 10*time.Second, func() bool {
		n := 0
		for _, ids := range batchIDs(t, s) {
			n += len(ids)
		}
		return n >= len(want)
	}, "25 events in batches")
	time.Sleep(200 * time.Millisecond) // nothing else may follow
	got := map[string]int{}
	largest := 0
	for i, ids := range batchIDs(t, s) {
		if len(ids) > 10 {
			t.Errorf("request %d carries %d events, more than maxEvents 10", i, len(ids))
		}
		largest = max(largest, len(ids))
		for _, id := range ids {
			got[id]++
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, got[id])
		}
	}
	for id, n := range got {
		if !want[id] {
			t.Errorf("event %s delivered %d times: the filter selects only dev.herald.test", id, n)
		}
	}
	if largest < 2 {
		t.Errorf("no request carried more than one event (maxWait 300ms, 25 events sent at once)")
	}
}

// TestBatchFailures: a failed batch is each event's failed attempt: a
// retryable answer has JetStream redeliver every event of the batch, and
// a final failure dead-letters each event on its own, in binary mode.
func TestBatchFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})

	t.Run("retried", func(t *testing.T) {
		t.Parallel()
		s := newSink(t, respondSeq(503, 200))
		res := e.provision(newTopic("batchretry"), []subscription{{name: "s", uri: s.url(), spec: batchSub(20, "300ms")}}, nil)
		r.waitDelivering(t, &res.Plan)
		for i := range 6 {
			sendOK(t, r.url+"/default/batchretry", fmt.Sprintf("r%d", i))
		}
		eventually(t, 10*time.Second, func() bool {
			seen := map[string]bool{}
			for _, ids := range batchIDs(t, s)[min(1, s.count()):] {
				for _, id := range ids {
					seen[id] = true
				}
			}
			return len(seen) == 6
		}, "every event delivered after the failed batch")
		first := batchIDs(t, s)[0]
		if len(first) == 0 {
			t.Fatalf("the first (failed) batch was empty")
		}
	})

	t.Run("dead-lettered", func(t *testing.T) {
		t.Parallel()
		s := newSink(t, respondSeq(400))
		dls := newSink(t, nil)
		res := e.provision(newTopic("batchdead"), []subscription{{name: "s", uri: s.url(), deadLetter: dls.url(), spec: batchSub(20, "300ms")}}, nil)
		r.waitDelivering(t, &res.Plan)
		for i := range 4 {
			sendOK(t, r.url+"/default/batchdead", fmt.Sprintf("d%d", i))
		}
		eventually(t, 10*time.Second, func() bool { return dls.count() == 4 }, "4 dead letters")
		var ids []string
		for _, dl := range dls.requests() {
			ids = append(ids, dl.ce("id"))
			if dl.ce("knativeerrorcode") != "400" || dl.ce("heraldsubscription") != "default/s" || string(dl.body) != `{"n":1}` {
				t.Errorf("dead letter %s: code %q subscription %q body %q", dl.ce("id"), dl.ce("knativeerrorcode"), dl.ce("heraldsubscription"), dl.body)
			}
		}
		sort.Strings(ids)
		if fmt.Sprint(ids) != "[d0 d1 d2 d3]" {
			t.Errorf("dead letters %v, want one per event d0..d3", ids)
		}
		if s.count() == 0 {
			t.Errorf("the subscriber got no batch")
		}
	})
}

// TestBatchGathersWhileOneIsUnderWay: without maxWait, events that arrive
// while a batch is being delivered wait for it and go out together in the
// next request, instead of one request each.
func TestBatchGathersWhileOneIsUnderWay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.start(nil, Options{})
	release := make(chan struct{})
	s := newSink(t, func(n int, _ received, w http.ResponseWriter) {
		if n == 0 {
			<-release
		}
		w.WriteHeader(http.StatusOK)
	})
	res := e.provision(newTopic("gather"), []subscription{{name: "s", uri: s.url(), spec: func(s *v1alpha1.SubscriptionSpec) {
		s.Batch = &v1alpha1.Batch{MaxEvents: 100}
	}}}, nil)
	r.waitDelivering(t, &res.Plan)
	sendOK(t, r.url+"/default/gather", "first")
	eventually(t, 10*time.Second, func() bool { return s.count() == 1 }, "the first batch under way")
	for i := range 5 {
		sendOK(t, r.url+"/default/gather", fmt.Sprintf("later%d", i))
	}
	time.Sleep(100 * time.Millisecond) // let the dispatcher pull them
	close(release)
	eventually(t, 10*time.Second, func() bool { return s.count() >= 2 }, "a second batch")
	time.Sleep(100 * time.Millisecond)
	got := batchIDs(t, s)
	if len(got) != 2 || len(got[1]) != 5 {
		t.Errorf("batches %v, want [first] then the 5 later events in one request", got)
	}
}
