package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// Timing of the split of a Subscription's limits between replicas.
const (
	// shareSettle is how long the set of replicas must stay unchanged
	// before a replica raises its share: long enough for every replica to
	// have seen the change and published what it holds since.
	shareSettle = 500 * time.Millisecond
	// shareDrainCheck is how often a replica holding more than its limit
	// looks whether its deliveries drained.
	shareDrainCheck = 100 * time.Millisecond
	// sharesRetry is how long a replica that cannot use plan.SharesBucket
	// applies the whole limits before it tries again.
	sharesRetry = 30 * time.Second
)

// shares splits the limits of one Subscription (maxInFlight, rateLimit)
// between the dispatcher replicas delivering it, so that they add up to
// the limits whatever the number of replicas. Each replica keeps a key in
// plan.SharesBucket saying what it holds (plan.Share), refreshed every
// plan.ShareRefresh and on every change, and watches the keys of the
// others. The replicas alive (keys refreshed within plan.ShareTTL, this one
// included), sorted by ID, split each limit evenly, the remainder of
// maxInFlight going to the first; a replica's share of maxInFlight may be
// 0, and it then pulls nothing.
//
// A replica lowers its share at once and raises it only into what is free:
// the limit less what every other replica holds or is due, whichever is
// more, and only once the set of replicas stayed unchanged for
// shareSettle. A replica lowering its share of maxInFlight starts no
// delivery beyond the new share, and publishes what is still under way
// until it drained. A replica joining holds nothing until then; the key of
// a replica that died expires, and the others take its share within about
// plan.ShareTTL plus shareSettle.
//
// Ordered and perKey Subscriptions are not split: one pinned replica
// delivers them at a time, with the whole limits. Nor are the limits
// split while the bucket cannot be used (a NATS server whose permissions
// predate it): each replica then applies them whole, as before shares
// existed, rather than stop delivering.
type shares struct {
	r     *subRunner
	pool  sizedPool
	key   string
	wakeC chan struct{}
	stopC context.CancelFunc
	done  chan struct{}

	// The fields below belong to run's goroutine.
	peers map[string]peer
	// loaded is set once the watch delivered the keys present when it
	// started; changed is when the set of replicas last changed.
	loaded  bool
	changed time.Time
	// limit is the share of maxInFlight the pool runs and held what this
	// replica publishes: at least limit, more while it drains.
	limit     int
	held      plan.Share
	published *plan.Share
}

// peer is another replica's key as last seen.
type peer struct {
	share plan.Share
	seen  time.Time
}

// startShares starts splitting r's limits when p can change size (the
// pool of an unordered Subscription); it returns nil otherwise, and r
// keeps its whole limits.
func (r *subRunner) startShares(p pool) *shares {
	sp, ok := p.(sizedPool)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &shares{
		r: r, pool: sp,
		key:   plan.ShareKey(r.stream, r.consumer, r.d.replicaID),
		wakeC: make(chan struct{}, 1),
		stopC: cancel,
		done:  make(chan struct{}),
	}
	// A replica joining holds nothing until it knows what the others hold.
	s.apply(0, 0, 0)
	r.shares.Store(s)
	go s.run(ctx)
	return s
}

// stop ends the split once the loop's deliveries finished: this replica's
// key is deleted, so that the others take its share at once.
func (s *shares) stop() {
	if s == nil {
		return
	}
	s.stopC()
	<-s.done
	s.r.shares.Store(nil)
}

// wake makes the split look again (the rate limit changed).
func (s *shares) wake() {
	select {
	case s.wakeC <- struct{}{}:
	default:
	}
}

func (s *shares) run(ctx context.Context) {
	defer close(s.done)
	for {
		kv, err := s.r.d.sharesBucket(ctx)
		if err == nil {
			err = s.coordinate(ctx, kv)
		}
		if ctx.Err() != nil {
			return
		}
		s.r.d.sharesUnavailable(err)
		s.whole()
		t := time.NewTimer(sharesRetry)
	wait:
		for {
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-s.wakeC:
				s.whole()
			case <-t.C:
				break wait
			}
		}
	}
}

// whole applies the whole limits, as a replica delivering alone.
func (s *shares) whole() {
	s.limit = s.r.maxInFlight
	s.pool.resize(s.limit)
	s.r.applyWhole()
	rate := 0.0
	if rl := s.r.cfg.Load().plan.RateLimit; rl != nil {
		rate = float64(rl.EventsPerSecond)
	}
	s.held = plan.Share{InFlight: s.limit, Rate: rate}
}

// coordinate splits the limits through kv until ctx ends (nil) or the
// bucket fails (the error).
func (s *shares) coordinate(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.Watch(ctx, plan.ShareKeys(s.r.stream, s.r.consumer))
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	s.peers, s.loaded, s.changed, s.published = map[string]peer{}, false, time.Now(), nil
	refresh := time.NewTicker(plan.ShareRefresh)
	defer refresh.Stop()
	// recheck looks again while deliveries drain and when the replicas
	// settled, without waiting for the next refresh.
	var recheck *time.Timer
	defer func() {
		if recheck != nil {
			recheck.Stop()
		}
	}()
	var recheckC <-chan time.Time
	s.put(ctx, kv, true)
	for {
		force := false
		select {
		case <-ctx.Done():
			s.leave(kv)
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("shares watch closed")
			}
			if e == nil {
				s.loaded = true
			} else {
				s.observe(e, time.Now())
			}
		case <-refresh.C:
			s.expire(time.Now())
			force = true
		case <-s.wakeC:
		case <-recheckC:
			recheckC = nil
		}
		now := time.Now()
		s.evaluate(now)
		s.put(ctx, kv, force)
		wait := time.Duration(0)
		if s.held.InFlight > s.limit {
			wait = shareDrainCheck
		}
		if left := s.changed.Add(shareSettle).Sub(now); s.loaded && left > 0 && (wait == 0 || left < wait) {
			wait = left
		}
		if wait > 0 && recheckC == nil {
			if recheck == nil {
				recheck = time.NewTimer(wait)
			} else {
				recheck.Reset(wait)
			}
			recheckC = recheck.C
		}
	}
}

// observe takes another replica's key into account.
func (s *shares) observe(e jetstream.KeyValueEntry, now time.Time) {
	if e.Key() == s.key {
		return
	}
	if op := e.Operation(); op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		if _, ok := s.peers[e.Key()]; ok {
			delete(s.peers, e.Key())
			s.changed = now
		}
		return
	}
	var sh plan.Share
	if err := json.Unmarshal(e.Value(), &sh); err != nil {
		s.r.log.Debug("ignoring unreadable share", "key", e.Key(), "error", err)
		return
	}
	if _, ok := s.peers[e.Key()]; !ok {
		s.changed = now
	}
	s.peers[e.Key()] = peer{share: sh, seen: now}
}

// expire forgets the replicas whose keys were not refreshed within
// plan.ShareTTL: they are gone (a key expiring in the bucket leaves no
// mark a watch would see).
func (s *shares) expire(now time.Time) {
	for k, p := range s.peers {
		if now.Sub(p.seen) > plan.ShareTTL {
			delete(s.peers, k)
			s.changed = now
		}
	}
}

// evaluate decides the shares this replica holds and applies them.
func (s *shares) evaluate(now time.Time) {
	members := make([]string, 0, len(s.peers)+1)
	members = append(members, s.key)
	for k := range s.peers {
		members = append(members, k)
	}
	slices.Sort(members)
	settled := s.loaded && now.Sub(s.changed) >= shareSettle

	total := s.r.maxInFlight
	free := total
	for i, k := range members {
		if k != s.key {
			free -= max(s.peers[k].share.InFlight, splitInt(total, len(members), i))
		}
	}
	me := slices.Index(members, s.key)
	limit := nextLimit(splitInt(total, len(members), me), s.limit, free, settled)

	rl := s.r.cfg.Load().plan.RateLimit
	rate, burst := 0.0, 0
	if rl != nil && rl.EventsPerSecond > 0 {
		totalRate := float64(rl.EventsPerSecond)
		freeRate := totalRate
		for _, k := range members {
			if k != s.key {
				freeRate -= max(s.peers[k].share.Rate, totalRate/float64(len(members)))
			}
		}
		rate = nextRate(totalRate/float64(len(members)), s.held.Rate, freeRate, settled)
		burst = splitInt(max(rl.Burst, 1), len(members), me)
		if rate > 0 {
			burst = max(burst, 1)
		} else {
			burst = 0
		}
	}
	s.apply(limit, rate, burst)
}

// apply runs the pool at limit deliveries at once and paces it at rate
// with burst (with no rate limit, not at all), and records what this
// replica holds.
func (s *shares) apply(limit int, rate float64, burst int) {
	s.limit = limit
	inUse := s.pool.resize(limit)
	rl := s.r.cfg.Load().plan.RateLimit
	limited := rl != nil && rl.EventsPerSecond > 0
	s.r.setRate(rate, burst, !limited)
	s.held = plan.Share{InFlight: max(limit, inUse), Rate: rate}
	s.r.m.share(s.held.InFlight, rate, limited)
}

// put publishes what this replica holds when it changed, or with force
// (the refresh that keeps the key alive).
func (s *shares) put(ctx context.Context, kv jetstream.KeyValue, force bool) {
	if !force && s.published != nil && *s.published == s.held {
		return
	}
	b, err := json.Marshal(s.held)
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := kv.Put(pctx, s.key, b); err != nil {
		if ctx.Err() == nil {
			s.r.log.Debug("cannot publish share", "key", s.key, "error", err)
		}
		s.published = nil
		return
	}
	held := s.held
	s.published = &held
}

// leave deletes this replica's key.
func (s *shares) leave(kv jetstream.KeyValue) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := kv.Delete(ctx, s.key); err != nil {
		s.r.log.Debug("cannot delete share", "key", s.key, "error", err)
	}
}

// splitInt is member i's part of total split evenly between n members,
// the remainder going to the first.
func splitInt(total, n, i int) int {
	if n <= 0 {
		return total
	}
	p := total / n
	if i < total%n {
		p++
	}
	return p
}

// nextLimit is the share of maxInFlight a replica runs next: its target
// at once when that is lower than what it runs now, and otherwise as much
// of the target as is free, once the replicas settled. free is the total
// less, for every other replica, what it holds or is due, whichever is
// more.
func nextLimit(target, current, free int, settled bool) int {
	next := min(target, max(free, 0))
	if next > current && !settled {
		return current
	}
	return next
}

// nextRate is nextLimit for the rate.
func nextRate(target, current, free float64, settled bool) float64 {
	next := min(target, max(free, 0))
	if next > current && !settled {
		return current
	}
	return next
}

// sharesBucket returns plan.SharesBucket, looking it up at most once per
// sharesRetry while it cannot be found.
func (d *Dispatcher) sharesBucket(ctx context.Context) (jetstream.KeyValue, error) {
	d.sharesMu.Lock()
	defer d.sharesMu.Unlock()
	if d.sharesKV != nil {
		return d.sharesKV, nil
	}
	if d.sharesErr != nil && time.Since(d.sharesErrAt) < sharesRetry {
		return nil, d.sharesErr
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := d.js.KeyValue(lctx, plan.SharesBucket)
	if err != nil {
		d.sharesErr, d.sharesErrAt = err, time.Now()
		return nil, err
	}
	d.sharesKV, d.sharesErr = kv, nil
	return kv, nil
}

// sharesUnavailable logs, once per dispatcher, that limits are applied
// whole in each replica because the bucket cannot be used, and makes the
// next attempt look the bucket up again.
func (d *Dispatcher) sharesUnavailable(err error) {
	d.sharesMu.Lock()
	d.sharesKV = nil
	if d.sharesErr == nil {
		d.sharesErr, d.sharesErrAt = err, time.Now()
	}
	d.sharesMu.Unlock()
	if d.sharesWarned.CompareAndSwap(false, true) {
		d.log.Warn("cannot split Subscriptions' limits with the other replicas; each replica applies maxInFlight and rateLimit whole",
			"bucket", plan.SharesBucket, "error", err)
	} else {
		d.log.Debug("shares bucket unavailable", "bucket", plan.SharesBucket, "error", err)
	}
}

// sharesState is the Dispatcher's handle on plan.SharesBucket.
type sharesState struct {
	sharesMu     sync.Mutex
	sharesKV     jetstream.KeyValue
	sharesErr    error
	sharesErrAt  time.Time
	sharesWarned atomic.Bool
}
