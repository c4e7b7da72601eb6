package dispatcher

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/ce"
)

// Limits of batched mode.
const (
	// maxBatchEvents bounds the events of one batch.
	maxBatchEvents = 1000
	// batchSizeFactor times the Topic's MaxEventSize bounds a batch's body.
	batchSizeFactor = 16
)

func batchBodyLimit(maxEventSize int) int64 { return int64(maxEventSize) * batchSizeFactor }

// batchResult is one event's entry in the report of a partly failed batch.
type batchResult struct {
	Index  int    `json:"index"`
	ID     string `json:"id"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// batchReport is the body of a partly failed batch's answer.
type batchReport struct {
	Error   string        `json:"error"`
	Results []batchResult `json:"results"`
}

// serveBatch stores a batched-mode request (application/cloudevents-batch+json).
//
// Validation is all or nothing: when any event is invalid or too large the
// whole batch is refused (400 or 413, with "index" naming the event) and
// nothing is stored. Valid batches are published concurrently; once every
// event is stored the answer is 202. If storing some events failed, the
// answer is 503 (or 429 when the stream is full) with Retry-After and a
// per-event report {"error", "results": [{"index", "id", "status",
// "error"}]}; the events reported 202 are stored. Resending the whole batch
// is safe: events are deduplicated on source and id within the Topic's
// duplicate window. An empty batch is answered 202. A batch that does not
// fit the Topic's budget of publishes awaiting acknowledgement
// (maxTopicPendingPublishes) is refused at once with 503 and Retry-After,
// nothing stored.
//
// With an enforced contract every event must satisfy it, else the batch is
// refused with 400 and "index" naming the first event that does not.
//
// With adm set (the Topic authenticates producers), every event must be
// admitted by the publish policy, else the batch is refused with 403 and
// "index" naming the first refused event.
func (d *Dispatcher) serveBatch(w http.ResponseWriter, r *http.Request, t *topicState, adm *admission, body []byte, start time.Time) {
	events, err := ce.DecodeBatch(body)
	if err != nil {
		t.metrics.reject(reasonInvalid)
		writeEventError(w, err)
		return
	}
	if len(events) > maxBatchEvents {
		t.metrics.reject(reasonTooLarge)
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a batch holds at most %d events", maxBatchEvents), "")
		return
	}
	whens := make([]time.Time, len(events))
	for i, e := range events {
		if whens[i], err = deliveryTime(e, start, t.plan.MaxDelay.Duration(), i); err == nil {
			err = checkPriority(t.plan, e, i)
		}
		if err != nil {
			t.metrics.reject(reasonInvalid)
			writeEventError(w, err)
			return
		}
	}
	for i, e := range events {
		if e.Size() > t.plan.MaxEventSize {
			t.metrics.reject(reasonTooLarge)
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{
				Error: fmt.Sprintf("event of %d bytes exceeds the limit of %d", e.Size(), t.plan.MaxEventSize),
				Index: &i,
			})
			return
		}
		e.SetTrace(r.Header)
		if d.tracer != nil {
			traceEvent(r.Context(), e)
		}
	}
	if d.tracer != nil {
		trace.SpanFromContext(r.Context()).SetAttributes(attrEvents.Int(len(events)))
	}
	if adm != nil {
		for i, e := range events {
			if msg := adm.refusal(e); msg != "" {
				forbid(w, t, fmt.Sprintf("events[%d]: %s", i, msg), &i)
				return
			}
		}
	}
	for i, e := range events {
		if v := d.checkContract(t, e, i); v != nil {
			refuseContract(w, t, v, i)
			return
		}
	}
	if !d.nc.IsConnected() {
		t.metrics.reject(reasonUnavailable)
		w.Header().Set("Retry-After", retryAfterUnavailable)
		writeError(w, http.StatusServiceUnavailable, "event store unavailable", "")
		return
	}
	if !t.reserve(len(events)) {
		t.metrics.reject(reasonBackpressure)
		w.Header().Set("Retry-After", retryAfterFull)
		writeError(w, http.StatusServiceUnavailable, "storing the events: "+errTopicBacklog.Error(), "")
		return
	}
	scope := r.Header.Get(HeaderDedupScope)
	pafs := make([]jetstream.PubAckFuture, len(events))
	errs := make([]error, len(events))
	for i, e := range events {
		pafs[i], errs[i] = d.publishAsync(t, e, scope, whens[i])
	}
	failed := 0
	// abandoned are the publishes still awaiting acknowledgement when the
	// producer went away; they count against the Topic's budget until
	// resolved.
	var abandoned []jetstream.PubAckFuture
	for i := range events {
		if errs[i] != nil {
			failed++
			continue
		}
		dup, err := awaitAck(r.Context(), pafs[i])
		if err != nil {
			if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
				abandoned = append(abandoned, pafs[i])
			}
			errs[i] = err
			failed++
			continue
		}
		t.metrics.received.Inc()
		if dup {
			t.metrics.duplicates.Inc()
		}
		t.catalog.record(events[i], start)
	}
	t.release(len(events) - len(abandoned))
	if len(abandoned) > 0 {
		go t.releaseWhenResolved(abandoned)
	}
	if failed == 0 {
		t.metrics.duration.Observe(time.Since(start).Seconds())
		w.WriteHeader(http.StatusAccepted)
		return
	}
	report := batchReport{
		Error:   fmt.Sprintf("%d of %d events were not stored; resend the batch", failed, len(events)),
		Results: make([]batchResult, len(events)),
	}
	status, retryAfter := http.StatusTooManyRequests, retryAfterFull
	for i, e := range events {
		id, _ := e.Get(ce.AttrID)
		res := batchResult{Index: i, ID: id, Status: http.StatusAccepted}
		if errs[i] != nil {
			st, reason, _ := publishStatus(errs[i])
			t.metrics.reject(reason)
			res.Status, res.Error = st, errs[i].Error()
			if st != http.StatusTooManyRequests {
				status, retryAfter = http.StatusServiceUnavailable, retryAfterUnavailable
			}
		}
		report.Results[i] = res
	}
	d.log.Warn("batch partly stored", "topic", t.plan.Namespace+"/"+t.plan.Name, "failed", failed, "events", len(events))
	w.Header().Set("Retry-After", retryAfter)
	writeJSON(w, status, report)
}
