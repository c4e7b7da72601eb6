package dispatcher

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/internal/ce"
)

// pool runs a fixed set of workers over submitted messages.
type pool interface {
	// submit hands msg to a worker, waiting while all are busy; false when
	// ctx ended first (msg was not taken). One goroutine calls submit.
	submit(ctx context.Context, msg jetstream.Msg) bool
	// closeAndWait stops taking messages and returns once the workers
	// finished the ones they hold.
	closeAndWait()
}

// newPool builds the pool of r's ordering: unordered runs maxInFlight
// workers over one queue and ordered a single one (the consumer's
// MaxAckPending of 1 keeps strict FIFO, retries included, with retry state
// in JetStream); perKey runs maxInFlight FIFO queues, one worker each,
// chosen by the partitionkey extension.
func (r *subRunner) newPool() pool {
	heartbeat := func() time.Duration { return time.Duration(r.heartbeat.Load()) }
	switch r.ordering {
	case string(v1alpha1.OrderingOrdered):
		return newSharedPool(1, r.deliverOnce, heartbeat)
	case string(v1alpha1.OrderingPerKey):
		return newKeyedPool(r.ctx, r.maxInFlight, 4*r.maxInFlight, r.deliverHeld, heartbeat)
	}
	return newSharedPool(r.maxInFlight, r.deliverOnce, heartbeat)
}

// sharedPool is n workers reading one unbuffered channel. A message waiting
// for a free worker gets InProgress every heartbeat.
type sharedPool struct {
	ch        chan jetstream.Msg
	wg        sync.WaitGroup
	heartbeat func() time.Duration
	// timer is the feeder's heartbeat timer; submit has one caller.
	timer *time.Timer
}

func newSharedPool(n int, work func(jetstream.Msg), heartbeat func() time.Duration) *sharedPool {
	p := &sharedPool{ch: make(chan jetstream.Msg), heartbeat: heartbeat}
	p.wg.Add(n)
	for range n {
		go func() {
			defer p.wg.Done()
			for m := range p.ch {
				work(m)
			}
		}()
	}
	return p
}

func (p *sharedPool) submit(ctx context.Context, m jetstream.Msg) bool {
	select {
	case p.ch <- m:
		return true
	default:
	}
	hb := p.heartbeat()
	if p.timer == nil {
		p.timer = time.NewTimer(hb)
	} else {
		p.timer.Reset(hb)
	}
	defer p.timer.Stop()
	for {
		select {
		case p.ch <- m:
			return true
		case <-ctx.Done():
			return false
		case <-p.timer.C:
			_ = m.InProgress()
			p.timer.Reset(hb)
		}
	}
}

func (p *sharedPool) closeAndWait() {
	close(p.ch)
	p.wg.Wait()
}

// keyedPool keeps one FIFO queue and worker per key slot: messages with the
// same partitionkey go to the same queue, so they are delivered one at a
// time in the order pulled, while different keys proceed in parallel. At
// most capacity messages are held; queued ones get InProgress every
// heartbeat so they are not redelivered while waiting. When ctx ends,
// queued messages are released (Nak) in order instead of delivered.
type keyedPool struct {
	ctx       context.Context
	queues    []*keyQueue
	slots     chan struct{}
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

func newKeyedPool(ctx context.Context, n, capacity int, work func(jetstream.Msg), heartbeat func() time.Duration) *keyedPool {
	p := &keyedPool{
		ctx:       ctx,
		queues:    make([]*keyQueue, n),
		slots:     make(chan struct{}, capacity),
		stopHB:    make(chan struct{}),
		hbDone:    make(chan struct{}),
		heartbeat: heartbeat,
	}
	p.wg.Add(n)
	for i := range p.queues {
		q := &keyQueue{wake: make(chan struct{}, 1)}
		p.queues[i] = q
		go p.work(q, work)
	}
	go p.keepAlive()
	return p
}

func (p *keyedPool) submit(ctx context.Context, m jetstream.Msg) bool {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
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
	return true
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

func (p *keyedPool) work(q *keyQueue, work func(jetstream.Msg)) {
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
			work(it.msg)
		}
		<-p.slots
	}
}

// keepAlive sends InProgress for messages queued longer than a heartbeat.
func (p *keyedPool) keepAlive() {
	defer close(p.hbDone)
	for {
		hb := p.heartbeat()
		t := time.NewTimer(hb)
		select {
		case <-p.stopHB:
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		var stale []jetstream.Msg
		for _, q := range p.queues {
			q.mu.Lock()
			for i := range q.items {
				if now.Sub(q.items[i].since) >= hb {
					q.items[i].since = now
					stale = append(stale, q.items[i].msg)
				}
			}
			q.mu.Unlock()
		}
		for _, m := range stale {
			_ = m.InProgress()
		}
	}
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
