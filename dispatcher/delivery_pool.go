package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// pool runs a set of workers over submitted messages. Every message it
// holds, queued or being delivered, gets InProgress every heartbeat, so the
// consumer's AckWait can stay short: JetStream redelivers the messages of a
// dispatcher that died within one AckWait, and never those of one that is
// merely slow.
type pool interface {
	// claim waits until the pool can start on at least one more message
	// at once, at most wait, and returns how many, reserving room for
	// them until the next claim; 0 when wait passed or ctx ended first.
	// One goroutine calls claim and submit.
	claim(ctx context.Context, wait time.Duration) int
	// submit hands msg to the pool. It does not wait when the caller
	// submits no more messages than claim returned.
	submit(msg jetstream.Msg)
	// closeAndWait stops taking messages and returns once the workers
	// finished the ones they hold.
	closeAndWait()
}

// sizedPool is a pool whose concurrency can change while it runs: the
// share of a Subscription's maxInFlight this replica holds (see shares).
type sizedPool interface {
	pool
	// resize lets the pool run at most n deliveries at once from now on
	// and returns how many are under way or claimed (more than n while
	// the pool drains down to a lower n).
	resize(n int) (inUse int)
}

// newPool builds the pool of r's ordering: unordered runs maxInFlight
// workers over one queue (each delivering a batch at a time when the
// Subscription takes batches) and ordered a single one (the consumer's
// MaxAckPending of 1 keeps strict FIFO, retries included, with retry state
// in JetStream); perKey runs maxInFlight FIFO queues, one worker each,
// chosen by the partitionkey extension.
func (r *subRunner) newPool() pool {
	heartbeat := func() time.Duration { return time.Duration(r.heartbeat.Load()) }
	switch r.ordering {
	case plan.OrderingOrdered:
		return newSharedPool(1, r.deliverOnce, heartbeat)
	case plan.OrderingPerKey:
		return newKeyedPool(r.ctx, r.maxInFlight, 4*r.maxInFlight, r.deliverHeld, heartbeat)
	}
	if r.batch != nil {
		return newBatchPool(r.maxInFlight, r.batch.MaxEvents, r.batch.MaxWait.Duration(), r.deliverBatch, heartbeat)
	}
	return newSharedPool(r.maxInFlight, r.deliverOnce, heartbeat)
}

// inflight records the message each worker is delivering, so that one
// keep-alive loop per pool can send InProgress for those taking longer than
// a heartbeat (a slow subscriber, retries held in process, a rate limit).
type inflight struct {
	slots []inflightSlot
}

type inflightSlot struct {
	mu    sync.Mutex
	msg   jetstream.Msg
	since time.Time
}

func newInflight(n int) *inflight { return &inflight{slots: make([]inflightSlot, n)} }

// begin records that worker i started on m, last kept alive (or received)
// at since.
func (f *inflight) begin(i int, m jetstream.Msg, since time.Time) {
	s := &f.slots[i]
	s.mu.Lock()
	s.msg, s.since = m, since
	s.mu.Unlock()
}

// end records that worker i is done with its message.
func (f *inflight) end(i int) {
	s := &f.slots[i]
	s.mu.Lock()
	s.msg = nil
	s.mu.Unlock()
}

// stale appends to out the messages held for at least hb since start or
// their last InProgress, and restarts their clocks.
func (f *inflight) stale(now time.Time, hb time.Duration, out []jetstream.Msg) []jetstream.Msg {
	for i := range f.slots {
		s := &f.slots[i]
		s.mu.Lock()
		if s.msg != nil && now.Sub(s.since) >= hb {
			s.since = now
			out = append(out, s.msg)
		}
		s.mu.Unlock()
	}
	return out
}

// keepAlive calls collect every half heartbeat until stop closes and sends
// InProgress for each message it returns, those held for half a heartbeat
// or more: no held message goes longer than a heartbeat (a third of
// AckWait) without one.
func keepAlive(heartbeat func() time.Duration, stop <-chan struct{}, collect func(now time.Time, hb time.Duration, out []jetstream.Msg) []jetstream.Msg) {
	var held []jetstream.Msg
	for {
		hb := heartbeat() / 2
		t := time.NewTimer(hb)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		held = collect(time.Now(), hb, held[:0])
		for _, m := range held {
			_ = m.InProgress()
		}
		clear(held)
	}
}

// gate counts the messages a pool holds against a limit that may change.
// The pull loop claims room before it asks JetStream for messages, and
// what it claimed counts as held until the next claim: the messages of a
// pull request still on their way when the limit is lowered are counted
// with those already held.
type gate struct {
	mu       sync.Mutex
	limit    int
	held     int
	reserved int
	freed    chan struct{}
}

func newGate(limit int) *gate { return &gate{limit: limit, freed: make(chan struct{}, 1)} }

// claim reserves room for as many messages as the limit admits, waiting
// at most wait for some; see pool.claim.
func (g *gate) claim(ctx context.Context, wait time.Duration) int {
	var t *time.Timer
	for {
		g.mu.Lock()
		n := max(g.limit-g.held, 0)
		g.reserved = n
		g.mu.Unlock()
		if n > 0 {
			return n
		}
		if t == nil {
			t = time.NewTimer(wait)
			defer t.Stop()
		}
		select {
		case <-g.freed:
		case <-t.C:
			return 0
		case <-ctx.Done():
			return 0
		}
	}
}

// add counts one more held message, taking it from the room claimed.
func (g *gate) add() {
	g.mu.Lock()
	g.held++
	if g.reserved > 0 {
		g.reserved--
	}
	g.mu.Unlock()
}

// done counts one held message less.
func (g *gate) done(n int) {
	g.mu.Lock()
	g.held -= n
	g.mu.Unlock()
	g.signal()
}

// setLimit changes the limit and returns the messages held or claimed.
func (g *gate) setLimit(n int) int {
	g.mu.Lock()
	g.limit = n
	used := g.held + g.reserved
	g.mu.Unlock()
	g.signal()
	return used
}

func (g *gate) signal() {
	select {
	case g.freed <- struct{}{}:
	default:
	}
}

// sharedPool delivers up to its limit of messages at a time (at most n,
// the limit it starts with), each on a goroutine of its own started when
// it is submitted: an idle Subscription holds no goroutines, so that a
// shared dispatcher serving hundreds of Subscriptions costs little memory
// while they are quiet. slots hands out the indexes of the inflight
// records.
type sharedPool struct {
	gate      *gate
	slots     chan int
	work      func(jetstream.Msg)
	wg        sync.WaitGroup
	inflight  *inflight
	heartbeat func() time.Duration
	stopHB    chan struct{}
	hbDone    chan struct{}
}

func newSharedPool(n int, work func(jetstream.Msg), heartbeat func() time.Duration) *sharedPool {
	p := &sharedPool{
		gate: newGate(n), slots: make(chan int, n), work: work,
		inflight: newInflight(n), heartbeat: heartbeat,
		stopHB: make(chan struct{}), hbDone: make(chan struct{}),
	}
	for i := range n {
		p.slots <- i
	}
	go func() {
		defer close(p.hbDone)
		keepAlive(heartbeat, p.stopHB, p.inflight.stale)
	}()
	return p
}

// run delivers m in slot i, then frees the slot.
func (p *sharedPool) run(i int, m jetstream.Msg) {
	defer p.wg.Done()
	p.inflight.begin(i, m, time.Now())
	p.work(m)
	p.inflight.end(i)
	p.slots <- i
	p.gate.done(1)
}

func (p *sharedPool) claim(ctx context.Context, wait time.Duration) int {
	return p.gate.claim(ctx, wait)
}

func (p *sharedPool) resize(n int) int { return p.gate.setLimit(min(n, cap(p.slots))) }

func (p *sharedPool) submit(m jetstream.Msg) {
	p.gate.add()
	p.wg.Add(1)
	select {
	case i := <-p.slots:
		go p.run(i, m)
		return
	default:
	}
	// Every slot is taken: only when the caller submits more than claim
	// said. Keep m alive while it waits.
	t := time.NewTimer(p.heartbeat())
	defer t.Stop()
	for {
		select {
		case i := <-p.slots:
			go p.run(i, m)
			return
		case <-t.C:
			_ = m.InProgress()
			t.Reset(p.heartbeat())
		}
	}
}

func (p *sharedPool) closeAndWait() {
	p.wg.Wait()
	close(p.stopHB)
	<-p.hbDone
}

// keyedPool keeps one FIFO queue and worker per key slot: messages with the
// same partitionkey go to the same queue, so they are delivered one at a
// time in the order pulled, while different keys proceed in parallel. It
// holds about capacity messages (the consumer's MaxAckPending bounds them
// for good). When ctx ends, queued messages are released (Nak) in order
// instead of delivered.
type keyedPool struct {
	ctx       context.Context
	gate      *gate
	queues    []*keyQueue
	inflight  *inflight
	wg        sync.WaitGroup
	stopHB    chan struct{}
	hbDone    chan struct{}
	heartbeat func() time.Duration
}

type keyQueue struct {
	mu     sync.Mutex
	items  []queued
	wake   chan struct{}
	closed bool
}

type queued struct {
	msg   jetstream.Msg
	since time.Time
}

// staleQueued appends to out the messages of items held for at least hb
// since they arrived or were last kept alive, and restarts their clocks.
func staleQueued(items []queued, now time.Time, hb time.Duration, out []jetstream.Msg) []jetstream.Msg {
	for i := range items {
		if now.Sub(items[i].since) >= hb {
			items[i].since = now
			out = append(out, items[i].msg)
		}
	}
	return out
}

func newKeyedPool(ctx context.Context, n, capacity int, work func(jetstream.Msg), heartbeat func() time.Duration) *keyedPool {
	p := &keyedPool{
		ctx:       ctx,
		gate:      newGate(capacity),
		queues:    make([]*keyQueue, n),
		inflight:  newInflight(n),
		stopHB:    make(chan struct{}),
		hbDone:    make(chan struct{}),
		heartbeat: heartbeat,
	}
	p.wg.Add(n)
	for i := range p.queues {
		q := &keyQueue{wake: make(chan struct{}, 1)}
		p.queues[i] = q
		go p.work(i, q, work)
	}
	go func() {
		defer close(p.hbDone)
		keepAlive(heartbeat, p.stopHB, p.stale)
	}()
	return p
}

func (p *keyedPool) claim(ctx context.Context, wait time.Duration) int {
	return p.gate.claim(ctx, wait)
}

func (p *keyedPool) submit(m jetstream.Msg) {
	p.gate.add()
	key := ""
	if v := m.Headers()[ce.Key(ce.AttrPartitionKey)]; len(v) > 0 {
		key = v[0]
	}
	q := p.queues[keySlot(key, len(p.queues))]
	q.mu.Lock()
	q.items = append(q.items, queued{msg: m, since: time.Now()})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// keySlot maps a key to one of n queues (FNV-1a).
func keySlot(key string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

func (p *keyedPool) work(i int, q *keyQueue, work func(jetstream.Msg)) {
	defer p.wg.Done()
	for {
		q.mu.Lock()
		for len(q.items) == 0 && !q.closed {
			q.mu.Unlock()
			<-q.wake
			q.mu.Lock()
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			return
		}
		it := q.items[0]
		q.items[0] = queued{}
		q.items = q.items[1:]
		q.mu.Unlock()
		if p.ctx.Err() != nil {
			_ = it.msg.Nak()
		} else {
			p.inflight.begin(i, it.msg, it.since)
			work(it.msg)
			p.inflight.end(i)
		}
		p.gate.done(1)
	}
}

// stale collects the queued and in-flight messages held for at least hb
// since they arrived or were last kept alive.
func (p *keyedPool) stale(now time.Time, hb time.Duration, out []jetstream.Msg) []jetstream.Msg {
	for _, q := range p.queues {
		q.mu.Lock()
		out = staleQueued(q.items, now, hb, out)
		q.mu.Unlock()
	}
	return p.inflight.stale(now, hb, out)
}

func (p *keyedPool) closeAndWait() {
	for _, q := range p.queues {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	p.wg.Wait()
	close(p.stopHB)
	<-p.hbDone
}
