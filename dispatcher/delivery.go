package dispatcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/herald-dev/herald/plan"
)

// Timing of a delivery loop.
const (
	// lagInterval is how often consumer lag is read for the metrics.
	lagInterval = 5 * time.Second
	// maxHeartbeat bounds the interval of InProgress calls for held
	// messages; a third of the consumer's AckWait when that is shorter.
	maxHeartbeat = 10 * time.Second
	// pullWait is how long one pull request waits for messages. It must
	// stay well below plan.PinnedTTL minus plan.AckWait (see plan.PinnedTTL).
	pullWait = 2 * time.Second
)

// subConfig is the part of a Subscription's plan a running delivery loop
// takes live: filters, URIs and the clients sending to them, delivery
// policy and rate limit (which the loop's shares apply).
type subConfig struct {
	plan         plan.SubscriptionPlan
	maxEventSize int
	filter       matcher
	// subscriberClient, replyClient and deadLetterClient send to the
	// plan's URIs, trusting their caCerts (see Dispatcher.clientFor).
	subscriberClient, replyClient, deadLetterClient *http.Client
	// signer signs deliveries to the subscriber; nil when the plan has no
	// SigningKeyDir.
	signer *signer
	// history: the Topic keeps delivery history (plan.TopicPlan.History).
	history bool
	// consume is who may pull from a pull Subscription; nil for push.
	consume *publishPolicy
}

// compileSubscription prepares sp for delivery, keeping old's signer when
// its keys did not move.
func (d *Dispatcher) compileSubscription(tp *plan.TopicPlan, sp *plan.SubscriptionPlan, old *subConfig) (*subConfig, error) {
	f, err := compileFilters(sp.Filters)
	if err != nil {
		return nil, err
	}
	cfg := &subConfig{plan: *sp, maxEventSize: tp.MaxEventSize, filter: f, history: tp.History}
	if sp.IsPull() {
		if cfg.consume, err = compileConsumePolicy(tp, sp); err != nil {
			d.log.Error("consume rules admit nothing where their filters do not compile", "subscription", tp.Namespace+"/"+sp.Name, "error", err)
		}
	}
	for _, u := range []struct {
		field, uri, caCerts string
		client              **http.Client
	}{
		{"subscriberUri", sp.SubscriberURI, sp.SubscriberCACerts, &cfg.subscriberClient},
		{"replyUri", sp.ReplyURI, sp.ReplyCACerts, &cfg.replyClient},
		{"deadLetterUri", sp.DeadLetterURI, sp.DeadLetterCACerts, &cfg.deadLetterClient},
	} {
		if u.uri == "" {
			continue
		}
		pu, err := url.Parse(u.uri)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, fmt.Errorf("%s %q is not an absolute http(s) URL", u.field, u.uri)
		}
		if *u.client, err = d.clientFor(u.caCerts); err != nil {
			return nil, fmt.Errorf("CA certificates of %s: %w", u.field, err)
		}
	}
	if sp.Delivery.Timeout <= 0 {
		return nil, errors.New("delivery timeout must be positive")
	}
	if sp.SigningKeyDir != "" {
		if old != nil && old.signer != nil && old.signer.dir == sp.SigningKeyDir {
			cfg.signer = old.signer
		} else {
			cfg.signer = newSigner(sp.SigningKeyDir)
		}
	}
	return cfg, nil
}

// subRunner is the delivery loop of one Subscription: it pulls from the
// Subscription's durable consumer and hands messages to a pool of workers
// shaped by the ordering, as many as the share of maxInFlight this replica
// holds, at the share of the rate limit it holds (see shares).
type subRunner struct {
	d                *Dispatcher
	topicKey         string
	ns, topic, name  string
	stream, consumer string
	ordering         plan.Ordering
	maxInFlight      int
	paused           bool
	// batch shapes the batches of a Subscription delivered in batches;
	// nil for one event per request.
	batch *plan.Batch
	// weights, when set, deliver by priority from the lanes' consumers
	// (priority.go).
	weights   *plan.LaneWeights
	cfg       atomic.Pointer[subConfig]
	m         *subMetrics
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	prev      *subRunner
	heartbeat atomic.Int64
	// pinID is the pin this loop last held, "" when none.
	pinID atomic.Pointer[string]
	// limiter paces deliveries while limited is set, at this replica's
	// share of the rate limit.
	limiter *rate.Limiter
	limited atomic.Bool
	// shares, while the loop runs, splits the Subscription's limits with
	// the other replicas; nil when this replica applies them whole.
	shares atomic.Pointer[shares]
	// pullMode: consumers fetch the Subscription's events over HTTP (pull.go)
	// and the loop only finds the consumer (pullCons, nil until found)
	// and reads its lag.
	pullMode bool
	pullCons atomic.Pointer[jetstream.Consumer]
}

func (d *Dispatcher) newRunner(key string, p *plan.TopicPlan, sp *plan.SubscriptionPlan, cfg *subConfig, prev *subRunner) *subRunner {
	ctx, cancel := context.WithCancel(d.runCtx)
	r := &subRunner{
		d: d, topicKey: key,
		ns: p.Namespace, topic: p.Name, name: sp.Name,
		stream: p.Stream, consumer: sp.Consumer,
		ordering: sp.Ordering, maxInFlight: max(sp.MaxInFlight, 1), paused: sp.Paused,
		batch: sp.Batch, weights: sp.Priority, pullMode: sp.IsPull(),
		m:   d.metrics.forSubscription(p.Namespace, p.Name, sp.Name),
		log: d.log.With("topic", p.Namespace+"/"+p.Name, "subscription", sp.Name),
		ctx: ctx, cancel: cancel,
		done: make(chan struct{}),
		prev: prev,
	}
	if r.ordering == "" {
		r.ordering = plan.OrderingUnordered
	}
	r.cfg.Store(cfg)
	r.heartbeat.Store(int64(maxHeartbeat))
	r.limiter = rate.NewLimiter(0, 0)
	if rl := sp.RateLimit; rl != nil && rl.EventsPerSecond > 0 {
		// Full at first, like the bucket of a replica delivering alone.
		r.limiter = rate.NewLimiter(rate.Limit(rl.EventsPerSecond), max(rl.Burst, 1))
	}
	r.applyWhole()
	return r
}

// needsRestart reports whether taking sp requires a new loop.
func (r *subRunner) needsRestart(p *plan.TopicPlan, sp *plan.SubscriptionPlan) bool {
	ordering := sp.Ordering
	if ordering == "" {
		ordering = plan.OrderingUnordered
	}
	return r.stream != p.Stream || r.consumer != sp.Consumer || r.ordering != ordering ||
		r.maxInFlight != max(sp.MaxInFlight, 1) || r.paused != sp.Paused || r.pullMode != sp.IsPull() ||
		!sameBatch(r.batch, sp.Batch) || !sameWeights(r.weights, sp.Priority)
}

func sameBatch(a, b *plan.Batch) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// stop asks the loop to stop pulling; done closes once in-flight
// deliveries finished.
func (r *subRunner) stop() { r.cancel() }

func (r *subRunner) pinnedOrdering() bool {
	return r.ordering == plan.OrderingOrdered || r.ordering == plan.OrderingPerKey
}

func (r *subRunner) run() {
	defer close(r.done)
	if r.prev != nil {
		select {
		case <-r.prev.done:
		case <-r.ctx.Done():
			return
		}
	}
	cons := r.lookup()
	if cons == nil {
		return
	}
	var lanes []*lane
	if r.weights != nil && !r.pullMode {
		if lanes = r.lookupLanes(cons); lanes == nil {
			return
		}
	}
	var aux sync.WaitGroup
	aux.Add(1)
	go func() {
		defer aux.Done()
		if lanes != nil {
			r.pollLaneLag(lanes)
			return
		}
		r.pollLag(cons)
	}()
	defer aux.Wait()
	if r.pullMode {
		r.pullCons.Store(&cons)
		r.log.Info("serving pull requests", "consumer", r.consumer)
		<-r.ctx.Done()
		r.pullCons.Store(nil)
		return
	}
	if r.paused {
		r.log.Info("subscription paused; not pulling")
		<-r.ctx.Done()
		return
	}
	r.log.Info("delivering", "consumer", r.consumer, "ordering", r.ordering, "maxInFlight", r.maxInFlight)
	p := r.newPool()
	sh := r.startShares(p)
	if lanes != nil {
		r.log.Info("delivering by priority", "high", r.weights.High, "normal", r.weights.Normal, "low", r.weights.Low)
		r.pullLanes(lanes, p)
	} else {
		r.pull(cons, p)
	}
	p.closeAndWait()
	sh.stop()
	r.unpin()
}

// lookup returns the Subscription's consumer, waiting until it exists;
// nil once the loop is stopped.
func (r *subRunner) lookup() jetstream.Consumer { return r.lookupConsumer(r.consumer) }

// lookupConsumer returns the named consumer of the Subscription's stream,
// waiting until it exists; nil once the loop is stopped.
func (r *subRunner) lookupConsumer(name string) jetstream.Consumer {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for r.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		cons, err := r.d.js.Consumer(ctx, r.stream, name)
		cancel()
		if err == nil {
			if ci := cons.CachedInfo(); ci != nil && ci.Config.AckWait > 0 {
				r.heartbeat.Store(int64(min(max(ci.Config.AckWait/3, 100*time.Millisecond), maxHeartbeat)))
			}
			return cons
		}
		if r.ctx.Err() != nil {
			return nil
		}
		if bo.n == 0 {
			r.log.Info("waiting for consumer", "stream", r.stream, "consumer", name, "error", err)
		}
		bo.wait(r.ctx)
	}
	return nil
}

func (r *subRunner) pollLag(cons jetstream.Consumer) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		info, err := cons.Info(ctx)
		cancel()
		if err == nil {
			r.m.lag(info.NumPending, info.NumAckPending, info.Paused || r.paused)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pull feeds p from the consumer until the loop stops, starting over when
// the consumer disappears. Each pull request asks for no more messages than
// p can start on at once, so no message waits unseen in a client buffer
// while AckWait runs; requests last at most pullWait, so that a pinned
// dispatcher renews its pin well within the consumer's PinnedTTL. Ordered
// and perKey loops keep a request for at least one message outstanding
// even while every worker is busy (JetStream's MaxAckPending holds back
// what they could not take), so a busy pinned dispatcher keeps its pin.
func (r *subRunner) pull(cons jetstream.Consumer, p pool) {
	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for r.ctx.Err() == nil {
		n := p.claim(r.ctx, pullWait)
		if r.ctx.Err() != nil {
			return
		}
		if n == 0 {
			if !r.pinnedOrdering() {
				continue
			}
			n = 1
		}
		err := r.fetch(cons, p, n)
		switch {
		case err == nil:
			bo.reset()
			continue
		case errors.Is(err, jetstream.ErrPinIDMismatch):
			// Another dispatcher holds the pin now.
			r.pinID.Store(nil)
			bo.reset()
			continue
		case r.ctx.Err() != nil:
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		_, ierr := cons.Info(ctx)
		cancel()
		if errors.Is(ierr, jetstream.ErrConsumerNotFound) || errors.Is(ierr, jetstream.ErrStreamNotFound) {
			r.log.Warn("consumer gone; waiting for it to return")
		} else {
			r.log.Warn("cannot pull", "error", err)
		}
		bo.wait(r.ctx)
		if cons = r.lookup(); cons == nil {
			return
		}
	}
}

// fetch makes one pull request for at most n messages and hands them to p
// as they arrive. Messages arriving once the loop is stopping are released
// at once (Nak) for another dispatcher or a later run.
func (r *subRunner) fetch(cons jetstream.Consumer, p pool, n int) error {
	// A request cancelled on stop drops the messages already on their way
	// to it, which JetStream then redelivers after AckWait. That is fine
	// for an unordered Subscription, which stops at once; an ordered or
	// perKey one lets its last request run out instead and releases what
	// it brings (handOver), so that the next pinned dispatcher gets every
	// held message before any later one.
	parent := r.ctx
	if r.pinnedOrdering() {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, pullWait)
	defer cancel()
	opts := []jetstream.FetchOpt{jetstream.FetchContext(ctx)}
	if r.pinnedOrdering() {
		opts = append(opts, jetstream.FetchPriorityGroup(plan.PinnedGroup))
	}
	batch, err := cons.Fetch(n, opts...)
	if err != nil {
		return err
	}
	msgs := batch.Messages()
	for msg := range msgs {
		if r.ordering == plan.OrderingPerKey && deliveryCount(msg) > 1 {
			r.handOverInOrder(p, msg, msgs)
			continue
		}
		r.handOver(p, msg)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// handOver submits msg to p, or releases it when the loop is stopping.
func (r *subRunner) handOver(p pool, msg jetstream.Msg) {
	if r.ctx.Err() != nil {
		_ = msg.Nak()
		return
	}
	if id := msg.Headers().Get("Nats-Pin-Id"); id != "" {
		if cur := r.pinID.Load(); cur == nil || *cur != id {
			r.pinID.Store(&id)
		}
	}
	p.submit(msg)
}

// redeliveryBurst is how long a perKey loop waits for the next message of
// a burst of redeliveries before it orders the burst.
const redeliveryBurst = 10 * time.Millisecond

// handOverInOrder hands first, a redelivered message of a perKey
// Subscription, and the messages arriving right after it to p in stream
// order. JetStream queues the messages of a dispatcher that died for
// redelivery in the order their AckWait ran out, which is not stream order
// when some of them were kept alive longer than others; by the time the
// pin moves (plan.PinnedTTL) all of them are due, and JetStream sends them
// in one burst ahead of any newer message, so ordering the burst restores
// the order of each key.
func (r *subRunner) handOverInOrder(p pool, first jetstream.Msg, msgs <-chan jetstream.Msg) {
	burst := []jetstream.Msg{first}
	t := time.NewTimer(redeliveryBurst)
	defer t.Stop()
collect:
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				break collect
			}
			burst = append(burst, m)
			t.Reset(redeliveryBurst)
		case <-t.C:
			break collect
		}
	}
	slices.SortStableFunc(burst, func(a, b jetstream.Msg) int {
		return cmp.Compare(streamSeq(a), streamSeq(b))
	})
	for _, m := range burst {
		r.handOver(p, m)
	}
}

// streamSeq is msg's sequence in its stream; 0 when unknown.
func streamSeq(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

// unpin hands the pinned-client role of an ordered or perKey consumer to
// the next puller at once instead of after the pin's TTL. It is called when
// the loop ended and none of its messages are held any more, and unpins
// only while this loop still holds the pin, never another dispatcher's.
func (r *subRunner) unpin() {
	id := r.pinID.Swap(nil)
	if !r.pinnedOrdering() || id == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := r.d.js.Stream(ctx, r.stream)
	if err == nil {
		var c jetstream.Consumer
		if c, err = s.Consumer(ctx, r.consumer); err == nil && !holdsPin(c.CachedInfo(), *id) {
			return
		}
	}
	if err == nil {
		err = s.UnpinConsumer(ctx, r.consumer, plan.PinnedGroup)
	}
	if err != nil {
		r.log.Debug("unpin", "error", err)
	}
}

// holdsPin reports whether pin id holds the pin of Herald's priority group.
func holdsPin(ci *jetstream.ConsumerInfo, id string) bool {
	for _, g := range ci.PriorityGroups {
		if g.Group == plan.PinnedGroup && g.PinnedClientID == id {
			return true
		}
	}
	return false
}

// hold waits d while keeping msg from being redelivered (InProgress every
// heartbeat); false when the loop stopped meanwhile.
func (r *subRunner) hold(msg jetstream.Msg, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return r.ctx.Err() == nil
		}
		if !sleep(r.ctx, min(left, time.Duration(r.heartbeat.Load()))) {
			return false
		}
		if time.Until(deadline) > 0 {
			_ = msg.InProgress()
		}
	}
}

// rateRetry is how often a delivery waiting for a rate share (this
// replica holding none yet) looks again.
const rateRetry = 100 * time.Millisecond

// waitRate waits for the rate limiter; false when the loop stopped.
func (r *subRunner) waitRate(msg jetstream.Msg) bool {
	for r.limited.Load() {
		res := r.limiter.Reserve()
		if res.OK() {
			if !r.hold(msg, res.Delay()) {
				res.Cancel()
				return false
			}
			return true
		}
		// No share of the rate (a burst of 0).
		if !r.hold(msg, rateRetry) {
			return false
		}
	}
	return true
}

// setRate paces deliveries at perSecond with burst; no pacing when
// perSecond is 0 and off is set.
func (r *subRunner) setRate(perSecond float64, burst int, off bool) {
	if off {
		r.limited.Store(false)
		return
	}
	now := time.Now()
	r.limiter.SetLimitAt(now, rate.Limit(perSecond))
	r.limiter.SetBurstAt(now, burst)
	r.limited.Store(true)
}

// applyWhole applies the Subscription's whole rate limit to this replica,
// as when it delivers alone.
func (r *subRunner) applyWhole() {
	rl := r.cfg.Load().plan.RateLimit
	if rl == nil || rl.EventsPerSecond <= 0 {
		r.setRate(0, 0, true)
		r.m.share(r.maxInFlight, 0, false)
		return
	}
	r.setRate(float64(rl.EventsPerSecond), max(rl.Burst, 1), false)
	r.m.share(r.maxInFlight, float64(rl.EventsPerSecond), true)
}

// limitsChanged takes a new rate limit of the running loop into effect.
func (r *subRunner) limitsChanged() {
	if sh := r.shares.Load(); sh != nil {
		sh.wake()
		return
	}
	r.applyWhole()
}
