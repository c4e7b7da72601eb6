package dispatcher

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
)

// batchPool runs n workers that each deliver up to size messages in one
// request, at most limit of them at once (n at first; see resize). It
// holds at most limit×size messages, queued or in a worker's batch, and
// keeps every one of them alive (InProgress every heartbeat), so
// a batch Subscription pulls enough to fill its batches while JetStream
// still redelivers what a dead dispatcher held within one AckWait.
//
// Full batches go out in parallel, up to n at once. A batch that is not
// full goes out only while no other batch is under way (and, with maxWait,
// once its oldest message waited that long): under load, events gather
// into full batches while earlier ones are delivered, instead of many
// small requests competing for the subscriber; under light load, one
// request at a time carries what arrived during the previous one, without
// an added wait. When the pool closes, queued messages are released (Nak)
// for another dispatcher.
type batchPool struct {
	n, size int
	maxWait time.Duration
	gate    *gate
	mu      sync.Mutex
	queue   []queued
	closed  bool
	// sending is how many batches are under way, at most limit.
	sending, limit int
	wake           chan struct{}
	active         []activeBatch
	wg             sync.WaitGroup
	stopHB         chan struct{}
	hbDone         chan struct{}
	heartbeat      func() time.Duration
}

// activeBatch is the batch a worker is delivering.
type activeBatch struct {
	mu    sync.Mutex
	msgs  []jetstream.Msg
	since time.Time
}

func newBatchPool(n, size int, maxWait time.Duration, work func([]jetstream.Msg), heartbeat func() time.Duration) *batchPool {
	p := &batchPool{
		n: n, size: max(size, 1), maxWait: maxWait, limit: n,
		gate:      newGate(n * max(size, 1)),
		wake:      make(chan struct{}, n),
		active:    make([]activeBatch, n),
		stopHB:    make(chan struct{}),
		hbDone:    make(chan struct{}),
		heartbeat: heartbeat,
	}
	p.wg.Add(n)
	for i := range n {
		go p.work(i, work)
	}
	go func() {
		defer close(p.hbDone)
		keepAlive(heartbeat, p.stopHB, p.stale)
	}()
	return p
}

func (p *batchPool) claim(ctx context.Context, wait time.Duration) int {
	return p.gate.claim(ctx, wait)
}

// resize lets at most n batches be under way from now on and returns how
// many are.
func (p *batchPool) resize(n int) int {
	n = min(n, p.n)
	p.mu.Lock()
	p.limit = n
	sending := p.sending
	p.mu.Unlock()
	p.gate.setLimit(n * p.size)
	for range n {
		p.signal()
	}
	return sending
}

func (p *batchPool) submit(m jetstream.Msg) {
	p.gate.add()
	p.mu.Lock()
	p.queue = append(p.queue, queued{msg: m, since: time.Now()})
	p.mu.Unlock()
	p.signal()
}

// signal wakes one waiting worker, if any is waiting.
func (p *batchPool) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns the next batch, waiting for messages (and with maxWait for a
// full batch); nil once the pool is closed.
func (p *batchPool) take() []jetstream.Msg {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil
		}
		n := len(p.queue)
		wait := time.Duration(0)
		if n > 0 && n < p.size && p.maxWait > 0 {
			wait = time.Until(p.queue[0].since.Add(p.maxWait))
		}
		if p.sending < p.limit && (n >= p.size || (n > 0 && p.sending == 0 && wait <= 0)) {
			k := min(n, p.size)
			batch := make([]jetstream.Msg, k)
			for i := range k {
				batch[i] = p.queue[i].msg
			}
			p.queue = append(p.queue[:0], p.queue[k:]...)
			p.sending++
			left := len(p.queue)
			p.mu.Unlock()
			if left > 0 {
				p.signal()
			}
			return batch
		}
		p.mu.Unlock()
		if wait <= 0 {
			<-p.wake
			continue
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-p.wake:
		case <-timer.C:
		}
	}
}

func (p *batchPool) work(i int, work func([]jetstream.Msg)) {
	defer p.wg.Done()
	a := &p.active[i]
	for {
		batch := p.take()
		if batch == nil {
			return
		}
		a.mu.Lock()
		a.msgs, a.since = batch, time.Now()
		a.mu.Unlock()
		work(batch)
		a.mu.Lock()
		a.msgs = nil
		a.mu.Unlock()
		p.mu.Lock()
		p.sending--
		waiting := len(p.queue) > 0
		p.mu.Unlock()
		if waiting {
			p.signal()
		}
		p.gate.done(len(batch))
	}
}

// stale collects the queued messages and those of batches under way held
// for at least hb since they arrived or were last kept alive.
func (p *batchPool) stale(now time.Time, hb time.Duration, out []jetstream.Msg) []jetstream.Msg {
	p.mu.Lock()
	out = staleQueued(p.queue, now, hb, out)
	p.mu.Unlock()
	for i := range p.active {
		a := &p.active[i]
		a.mu.Lock()
		if a.msgs != nil && now.Sub(a.since) >= hb {
			a.since = now
			out = append(out, a.msgs...)
		}
		a.mu.Unlock()
	}
	return out
}

func (p *batchPool) closeAndWait() {
	p.mu.Lock()
	p.closed = true
	rest := p.queue
	p.queue = nil
	p.mu.Unlock()
	for range p.n {
		p.signal()
	}
	for _, q := range rest {
		_ = q.msg.Nak()
		p.gate.done(1)
	}
	p.wg.Wait()
	close(p.stopHB)
	<-p.hbDone
}

// deliverBatch delivers msgs in one request in CloudEvents batch mode: the
// events the Subscription's filters select, each as a structured-mode
// event. A 2xx acknowledges them all; any other outcome is each event's
// own failed attempt, retried (JetStream redelivers it after the backoff)
// or dead-lettered according to its own attempt count.
func (r *subRunner) deliverBatch(msgs []jetstream.Msg) {
	cfg := r.cfg.Load()
	keep := msgs[:0]
	size := 2
	for _, m := range msgs {
		view := eventView{h: m.Headers()}
		if !cfg.filter.match(&view) {
			r.ack(m)
			r.m.filtered.Inc()
			r.historyOf(cfg, m, 0, outcomeFiltered, "", nil)
			continue
		}
		keep = append(keep, m)
		size += len(m.Data())*4/3 + 512
	}
	if len(keep) == 0 {
		return
	}
	for i, m := range keep {
		if !r.waitRate(m) {
			for _, m := range keep[i:] {
				_ = m.Nak()
			}
			return
		}
	}
	cfg = r.cfg.Load()
	body := make([]byte, 0, size)
	body = append(body, '[')
	for i, m := range keep {
		if i > 0 {
			body = append(body, ',')
		}
		body = ce.AppendStructured(body, m.Headers(), m.Data())
	}
	body = append(body, ']')
	start := time.Now()
	hdr := http.Header{ce.HeaderContentType: batchContentType}
	bt := r.startBatch(keep)
	bt.inject(hdr)
	var res result
	if cfg.signer != nil {
		hs := make([]nats.Header, len(keep))
		for i, m := range keep {
			hs[i] = m.Headers()
		}
		if err := r.signDelivery(cfg, hdr, webhookID(hs...), body, start); err != nil {
			res = result{err: err}
		}
	}
	if res.err == nil {
		if nt := r.authorize(hdr, cfg.plan.SubscriberAudience, cfg.plan.Delivery.Timeout.Duration()); nt != nil {
			res = *nt
		}
	}
	if res.err == nil {
		res = r.d.post(cfg.subscriberClient, cfg.plan.SubscriberURI, hdr, body, cfg.plan.Delivery.Timeout.Duration(), 0)
		r.m.observe(res.elapsed)
		r.m.batch(len(keep))
	}
	bt.request(cfg.plan.SubscriberURI, &res)
	if res.verdict() == verdictSuccess {
		for _, m := range keep {
			r.ack(m)
			r.historyOf(cfg, m, deliveryCount(m), outcomeDelivered, cfg.plan.SubscriberURI, &res)
		}
		r.m.outcomes(outcomeDelivered, res.codeClass(), len(keep))
		bt.end(outcomeDelivered, 0)
		return
	}
	bt.end(outcomeRetried, 0)
	dest := cfg.plan.SubscriberURI
	for _, m := range keep {
		attempt := deliveryCount(m)
		if res.verdict() == verdictRetry && (attempt <= cfg.plan.Delivery.Retry || res.noToken) {
			r.m.outcome(outcomeRetried, res.codeClass())
			r.historyOf(cfg, m, attempt, outcomeRetried, dest, &res)
			_ = m.NakWithDelay(retryDelay(cfg.plan.Delivery, attempt, res.status, res.retryAfter, time.Now()))
			continue
		}
		r.keepAlive(m, start)
		at := r.startAttempt(m, attempt)
		at.request(dest, &res)
		if out := r.deadLetter(cfg, m, dest, &res, attempt, at); !out.done {
			_ = m.NakWithDelay(out.delay)
		}
	}
	r.log.Debug("batch delivery failed", "destination", dest, "events", len(keep), "result", res.describe())
}

// batchContentType is the Content-Type of batch deliveries, shared by every
// request: net/http only reads header values.
var batchContentType = []string{ce.MediaBatchJSON}
