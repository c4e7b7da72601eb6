package dispatcher

import (
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Delivery history. For a Topic whose plan has History set, every attempt
// ends with a plan.HistoryRecord published to the Topic's history stream
// (plan.HistorySubject), as does every event a Subscription's filters
// leave out. Records go out as core NATS messages, which the history
// stream stores without the delivery waiting for an acknowledgement: a
// record lost while NATS is unreachable costs the history one line, never
// a delivery its latency. herald_history_records_total counts them by
// whether they were handed to the connection.

// historyAttempt is the history of one delivery attempt while it runs.
type historyAttempt struct {
	msg     jetstream.Msg
	attempt int
	dest    string
	status  int
	err     string
	elapsed time.Duration
}

// historyAttempt starts the history of attempt number attempt at
// delivering msg; nil when r's Topic keeps no history.
func (r *subRunner) historyAttempt(msg jetstream.Msg, attempt int) *historyAttempt {
	if !r.cfg.Load().history {
		return nil
	}
	return &historyAttempt{msg: msg, attempt: attempt}
}

// request records the attempt's request to url and its result; the last
// one recorded is the attempt's.
func (h *historyAttempt) request(url string, res *result) {
	if h == nil {
		return
	}
	h.dest, h.status, h.elapsed, h.err = url, res.status, res.elapsed, ""
	if res.err != nil {
		h.err = res.err.Error()
	}
}

// endHistory records h's attempt with outcome.
func (r *subRunner) endHistory(h *historyAttempt, outcome string) {
	if h == nil {
		return
	}
	r.writeHistory(h.msg, plan.HistoryRecord{
		Attempt:       h.attempt,
		Outcome:       outcome,
		Status:        h.status,
		Error:         h.err,
		LatencyMillis: float64(h.elapsed.Microseconds()) / 1000,
		Destination:   h.dest,
	})
}

// outcomeAt makes the request to url with result res the one the
// attempt's history records: a failed reply or dead-letter request after
// the subscriber's.
func (a *attemptTrace) outcomeAt(url string, res *result) {
	if a == nil {
		return
	}
	a.hist.request(url, res)
}

// historyOf records an outcome of msg that had no attempt of its own
// (filtered), or the attempt of a batch request, when cfg keeps history.
func (r *subRunner) historyOf(cfg *subConfig, msg jetstream.Msg, attempt int, outcome, dest string, res *result) {
	if !cfg.history {
		return
	}
	rec := plan.HistoryRecord{Attempt: attempt, Outcome: outcome, Destination: dest}
	if res != nil {
		rec.Status = res.status
		rec.LatencyMillis = float64(res.elapsed.Microseconds()) / 1000
		if res.err != nil {
			rec.Error = res.err.Error()
		}
	}
	r.writeHistory(msg, rec)
}

// writeHistory completes rec with msg's event and publishes it.
func (r *subRunner) writeHistory(msg jetstream.Msg, rec plan.HistoryRecord) {
	h := msg.Headers()
	rec.Time = time.Now().UTC()
	rec.Subscription = r.name
	rec.ID, _ = ce.StoredAttr(h, ce.AttrID)
	rec.Source, _ = ce.StoredAttr(h, ce.AttrSource)
	rec.Type, _ = ce.StoredAttr(h, ce.AttrType)
	if md, err := msg.Metadata(); err == nil {
		rec.Sequence = md.Sequence.Stream
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return
	}
	subject := plan.HistorySubject(r.ns, r.topic, rec.ID, r.name, rec.Outcome)
	if err := r.d.nc.Publish(subject, data); err != nil {
		r.d.metrics.history.WithLabelValues(r.ns, r.topic, "failed").Inc()
		return
	}
	r.d.metrics.history.WithLabelValues(r.ns, r.topic, "written").Inc()
}
