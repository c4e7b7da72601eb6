package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// Priority lanes. The ingress stores an event on the lane subject of its
// priority extension (plan.LaneSubject). A Subscription without priority
// reads every lane through its one consumer, in stream order. A priority
// Subscription has a consumer per lane (plan.LaneConsumer), and its loop
// shares the delivery slots its pool frees between the lanes holding
// events by their weights (smooth weighted round robin): with high 8,
// normal 3 and low 1 and a backlog in each lane, 12 free slots go 8, 3
// and 1, so high events overtake a backlog of normal ones and low ones
// still progress; a lane without events leaves its share to the others.
// JetStream's own priority applies to pull requests, not to messages,
// which is why the lanes are subjects and consumers of their own.
//
// Slots are filled with pull requests that do not wait (FetchNoWait), so
// a lane gets no more than its share. When every lane is empty, the loop
// leaves a pull request for one message outstanding on each lane and
// waits for the first to bring one; the others stay outstanding until
// they bring one or expire (pullWait), and the messages they bring are
// handed to the pool then, kept alive meanwhile. A priority Subscription
// therefore holds up to two messages beyond its share of maxInFlight,
// queued; deliveries under way stay within the share.

// checkPriority returns an *ce.AttributeError naming the priority
// extension when e's value names no plan.Priority and the Topic's stream
// has lanes (index is the event's position in a batch, -1 otherwise). A
// typo must not silently turn an urgent event into a normal one.
func checkPriority(p *plan.TopicPlan, e *ce.Event, index int) error {
	if !p.Lanes {
		return nil
	}
	v, ok := e.Get(ce.AttrPriority)
	if !ok {
		return nil
	}
	if _, err := plan.ParsePriority(v); err != nil {
		return ce.NewAttributeError(ce.AttrPriority, index, err.Error())
	}
	return nil
}

// eventSubject is the subject e is stored on: the LaneSubject of its
// priority when the Topic's stream has lanes, the Topic's Subject
// otherwise. e's priority was checked (checkPriority).
func eventSubject(p *plan.TopicPlan, e *ce.Event) string {
	if !p.Lanes {
		return p.Subject
	}
	v, ok := e.Get(ce.AttrPriority)
	if !ok {
		return p.Subject
	}
	pr, err := plan.ParsePriority(v)
	if err != nil || pr == plan.PriorityNormal {
		return p.Subject
	}
	return plan.LaneSubject(p.Namespace, p.Name, pr)
}

// lane is one lane of a priority Subscription as its loop sees it. Only
// the loop's goroutine touches it.
type lane struct {
	priority plan.Priority
	consumer string
	cons     jetstream.Consumer
	weight   int
	// current is the lane's smooth weighted round robin counter.
	current int
	// empty: the lane brought fewer messages than asked in this round.
	empty bool
	// polling: a pull request waiting for one message is outstanding.
	polling bool
}

// laneResult is what an outstanding pull request of lane brought: a
// message, or none when it expired, or an error.
type laneResult struct {
	lane int
	msg  jetstream.Msg
	err  error
}

// lookupLanes returns the lanes of a priority Subscription, main being the
// consumer of its normal lane, waiting until their consumers exist; nil
// once the loop is stopped.
func (r *subRunner) lookupLanes(main jetstream.Consumer) []*lane {
	out := make([]*lane, 0, len(plan.Lanes))
	for _, p := range plan.Lanes {
		l := &lane{priority: p, consumer: plan.LaneConsumer(r.consumer, p), weight: max(r.weights.Weight(p), 1)}
		if p == plan.PriorityNormal {
			l.cons = main
		} else if l.cons = r.lookupConsumer(l.consumer); l.cons == nil {
			return nil
		}
		out = append(out, l)
	}
	return out
}

// pullLanes feeds p from lanes by their weights until the loop stops (see
// the comment at the top of this file).
func (r *subRunner) pullLanes(lanes []*lane, p pool) {
	results := make(chan laneResult)
	var polls sync.WaitGroup
	defer func() {
		// The outstanding requests end with the loop's context; release
		// what they bring.
		go func() {
			polls.Wait()
			close(results)
		}()
		for res := range results {
			if res.msg != nil {
				_ = res.msg.Nak()
			}
		}
	}()
	take := func(res laneResult) {
		lanes[res.lane].polling = false
		if res.err != nil {
			r.log.Debug("lane pull", "lane", lanes[res.lane].priority, "error", res.err)
		}
		if res.msg != nil {
			r.handOver(p, res.msg)
		}
	}
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for r.ctx.Err() == nil {
	drained:
		for {
			select {
			case res := <-results:
				take(res)
			default:
				break drained
			}
		}
		n := p.claim(r.ctx, pullWait)
		if r.ctx.Err() != nil {
			return
		}
		if n == 0 {
			continue
		}
		got, err := r.fetchLanes(lanes, p, n)
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.log.Warn("cannot pull", "error", err)
			bo.wait(r.ctx)
			for _, l := range lanes {
				if l.cons = r.lookupConsumer(l.consumer); l.cons == nil {
					return
				}
			}
			continue
		}
		bo.reset()
		if got > 0 {
			continue
		}
		for i, l := range lanes {
			if !l.polling {
				l.polling = true
				polls.Add(1)
				go r.pollLane(i, l.cons, results, &polls)
			}
		}
		select {
		case res := <-results:
			take(res)
		case <-r.ctx.Done():
			return
		}
	}
}

// fetchLanes hands p up to n messages from lanes, sharing the n slots
// between the lanes holding messages by weight, and returns how many it
// handed over.
func (r *subRunner) fetchLanes(lanes []*lane, p pool, n int) (int, error) {
	for _, l := range lanes {
		l.empty = false
	}
	total := 0
	var allot [3]int
	for n > 0 {
		clear(allot[:])
		k := 0
		for range n {
			best, sum := -1, 0
			for i, l := range lanes {
				if l.empty {
					continue
				}
				l.current += l.weight
				sum += l.weight
				if best < 0 || l.current > lanes[best].current {
					best = i
				}
			}
			if best < 0 {
				break
			}
			lanes[best].current -= sum
			allot[best]++
			k++
		}
		if k == 0 {
			break
		}
		for i, l := range lanes {
			if allot[i] == 0 {
				continue
			}
			got, err := r.fetchNoWait(l.cons, p, allot[i])
			total += got
			n -= got
			if err != nil {
				return total, err
			}
			if got < allot[i] {
				l.empty = true
			}
		}
	}
	return total, nil
}

// fetchNoWait hands p the messages cons holds, at most n, without waiting
// for more.
func (r *subRunner) fetchNoWait(cons jetstream.Consumer, p pool, n int) (int, error) {
	batch, err := cons.FetchNoWait(n)
	if err != nil {
		return 0, err
	}
	got := 0
	for msg := range batch.Messages() {
		r.handOver(p, msg)
		got++
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return got, err
	}
	return got, nil
}

// pollLane waits up to pullWait for one message of lane i and sends what
// it brought to results, keeping the message alive until the loop takes
// it.
func (r *subRunner) pollLane(i int, cons jetstream.Consumer, results chan<- laneResult, wg *sync.WaitGroup) {
	defer wg.Done()
	res := laneResult{lane: i}
	ctx, cancel := context.WithTimeout(r.ctx, pullWait)
	batch, err := cons.Fetch(1, jetstream.FetchContext(ctx))
	if err == nil {
		for m := range batch.Messages() {
			res.msg = m
		}
		if e := batch.Error(); e != nil && !errors.Is(e, context.DeadlineExceeded) && !errors.Is(e, context.Canceled) {
			err = e
		}
	}
	cancel()
	res.err = err
	t := time.NewTicker(time.Duration(r.heartbeat.Load()))
	defer t.Stop()
	for {
		select {
		case results <- res:
			return
		case <-t.C:
			if res.msg != nil {
				_ = res.msg.InProgress()
			}
		}
	}
}

// pollLaneLag reports the lag of a priority Subscription every
// lagInterval: each lane's in herald_lane_pending, their sums in the
// Subscription's herald_consumer_pending and herald_consumer_ack_pending.
func (r *subRunner) pollLaneLag(lanes []*lane) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		var pending uint64
		ackPending, paused, ok := 0, false, true
		for _, l := range lanes {
			ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
			info, err := l.cons.Info(ctx)
			cancel()
			if err != nil {
				ok = false
				continue
			}
			pending += info.NumPending
			ackPending += info.NumAckPending
			paused = paused || info.Paused
			r.m.lanePending(string(l.priority), info.NumPending)
		}
		if ok {
			r.m.lag(pending, ackPending, paused || r.paused)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sameWeights reports whether a and b weigh the lanes alike (both nil:
// no priority).
func sameWeights(a, b *plan.LaneWeights) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
