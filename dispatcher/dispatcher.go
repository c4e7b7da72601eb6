// Package dispatcher is Herald's data plane. A Dispatcher accepts CloudEvents
// over HTTP for the Topics it serves and stores them in each Topic's
// JetStream stream (ServeHTTP), and delivers the stored events to every
// Subscription of those Topics through the Subscription's durable pull
// consumer (Run). What to serve comes from the dispatch plans in the
// plan.KVBucket key-value bucket, which Run watches; changes apply live.
//
// The dispatcher never creates or deletes streams, consumers or the plan
// bucket: the control plane owns them. It waits for whatever is missing.
package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/herald-dev/herald/internal/auth"
	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/internal/contract"
	"github.com/herald-dev/herald/plan"
)

// Options configures a Dispatcher.
type Options struct {
	// Topics the dispatcher serves, as "namespace/name", whatever their
	// plans' SharedDispatcher says; empty serves every plan in the bucket
	// (unless Shared is set).
	Topics []string
	// Shared, when set, makes the dispatcher the shared dispatcher
	// "namespace/name" (its Deployment's): it serves exactly the Topics of
	// that namespace whose plan names it (plan.TopicPlan.SharedDispatcher),
	// taking a Topic up when its plan comes to name it and dropping it, as
	// if its plan were deleted, when its plan stops naming it. It excludes
	// Topics.
	Shared string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the dispatcher's metrics; nil registers them in a
	// private registry.
	Registry prometheus.Registerer
	// HTTPClient sends deliveries, replies and dead letters; nil uses a
	// client with a keep-alive pool sized for many concurrent deliveries
	// that does not follow redirects. Requests to a destination with
	// caCerts use a copy of it whose transport trusts only those
	// certificates (a copy of its *http.Transport, or of the default
	// client's when its Transport is of another type).
	HTTPClient *http.Client
	// Verifier checks the bearer tokens of producers publishing to Topics
	// whose plan authenticates them (plan.PublishPolicy.Authenticate); nil
	// refuses those requests with 503, since no token can be checked.
	Verifier auth.Verifier
	// Tokens supplies the bearer tokens presented to destinations with an
	// audience (plan.SubscriptionPlan.SubscriberAudience and the like); nil
	// sends none. Requests for a Topic's deliveries carry the Sender
	// <topic's namespace>/<topic>-dispatcher (auth.WithSender). A request
	// whose token cannot be obtained is not sent; it is retried, without
	// limit, since the failure is not the destination's.
	Tokens auth.TokenSource
	// TracerProvider, when set, records spans of ingress requests, delivery
	// attempts, replies and dead letters (see tracing.go); nil records
	// none.
	TracerProvider trace.TracerProvider
	// ReplicaID names this process among the dispatchers delivering the
	// same Subscriptions, which split each Subscription's limits between
	// them (plan.Share); it must differ from every other's. Empty uses the
	// host name (a Pod's name) and a random suffix.
	ReplicaID string
}

// Publishing limits of the ingress.
const (
	// publishAckTimeout bounds the wait for JetStream's acknowledgement of
	// an accepted event; the producer gets 503 after it.
	publishAckTimeout = 10 * time.Second
	// maxPendingPublishes bounds publishes awaiting acknowledgement; more
	// concurrent requests wait for a slot, then get 503.
	maxPendingPublishes = 16384
	// maxTopicPendingPublishes bounds the publishes of one Topic awaiting
	// acknowledgement, single and batched events alike, so that a Topic
	// whose stream stops acknowledging (its leader lost, its storage
	// slow) holds at most a quarter of the process's publishes and the
	// other Topics of a shared dispatcher keep storing theirs. Requests
	// beyond it get 503 at once.
	maxTopicPendingPublishes = maxPendingPublishes / 4
	// publishStallWait is how long a request waits for a publish slot.
	publishStallWait = 200 * time.Millisecond
)

// Dispatcher serves the ingress and the deliveries of a set of Topics.
type Dispatcher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	client  *http.Client
	tokens  auth.TokenSource
	metrics *metrics
	// served holds the plan keys of Options.Topics; nil serves all
	// (unless shared is set).
	served map[string]bool
	// shared is Options.Shared and sharedNS its namespace; empty unless
	// the dispatcher is a shared one.
	shared, sharedNS string
	// tracer records spans; nil when Options.TracerProvider is.
	tracer trace.Tracer
	// publishErrLog samples logs of failed publishes.
	publishErrLog sampler
	// publishSlots bounds the single-event publishes awaiting their
	// acknowledgement (batches are bounded by the async publisher).
	publishSlots chan struct{}

	// verifier checks producers' tokens (Options.Verifier); authErrLog
	// samples logs of tokens that could not be checked.
	verifier   auth.Verifier
	authErrLog sampler

	// topics maps namespace → topic name → state; replaced, never mutated.
	topics atomic.Pointer[map[string]map[string]*topicState]
	loaded atomic.Bool
	ran    atomic.Bool

	// clients holds the client of each distinct caCerts bundle in use, by
	// the bundle's SHA-256 (see clientFor).
	clientsMu sync.Mutex
	clients   map[[32]byte]*http.Client

	// replicaID names this process in plan.SharesBucket.
	replicaID string
	sharesState

	mu      sync.Mutex
	runCtx  context.Context
	runners map[string]*subRunner
	wg      sync.WaitGroup
}

// topicState is what the ingress needs of one Topic.
type topicState struct {
	plan    *plan.TopicPlan
	publish *publishPolicy
	// contract checks events against the plan's contract; nil when it has
	// none. contractLog samples the logs of its violations in warn mode.
	contract    *contract.Checker
	contractLog *sampler
	// catalog records the event types accepted, shared across plan
	// changes.
	catalog *catalog
	key     string
	metrics *topicMetrics
	// pending counts the Topic's publishes awaiting acknowledgement
	// (maxTopicPendingPublishes); the states of one Topic share it across
	// plan changes.
	pending *atomic.Int64
}

// New returns a Dispatcher using nc. It does not touch the network; Run and
// ServeHTTP do.
func New(nc *nats.Conn, opts Options) (*Dispatcher, error) {
	if nc == nil {
		return nil, errors.New("dispatcher: nil NATS connection")
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingPublishes),
		jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		return nil, fmt.Errorf("dispatcher: jetstream: %w", err)
	}
	d := &Dispatcher{
		nc:      nc,
		js:      js,
		log:     opts.Logger,
		client:  opts.HTTPClient,
		tokens:  opts.Tokens,
		runners: map[string]*subRunner{},
		clients: map[[32]byte]*http.Client{},

		publishSlots: make(chan struct{}, maxPendingPublishes),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.replicaID = opts.ReplicaID; d.replicaID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "dispatcher"
		}
		suffix := make([]byte, 4)
		_, _ = rand.Read(suffix)
		d.replicaID = plan.ReplicaID(host, hex.EncodeToString(suffix))
	} else if plan.ReplicaID(opts.ReplicaID, "") != opts.ReplicaID+"-" {
		return nil, fmt.Errorf("dispatcher: replica ID %q holds characters other than letters, digits, '-' and '_'", opts.ReplicaID)
	}
	d.verifier = opts.Verifier
	if d.client == nil {
		d.client = defaultHTTPClient()
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if d.metrics, err = newMetrics(reg); err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	if opts.Shared != "" {
		ns, name, ok := strings.Cut(opts.Shared, "/")
		if !ok || ns == "" || name == "" || strings.ContainsAny(opts.Shared, ". *>") || strings.Contains(name, "/") {
			return nil, fmt.Errorf("dispatcher: shared dispatcher %q is not namespace/name", opts.Shared)
		}
		if len(opts.Topics) > 0 {
			return nil, errors.New("dispatcher: a shared dispatcher serves the Topics whose plans name it; it takes no Topics")
		}
		d.shared, d.sharedNS = opts.Shared, ns
	}
	if opts.TracerProvider != nil {
		d.tracer = opts.TracerProvider.Tracer(tracerName)
	}
	if len(opts.Topics) > 0 {
		d.served = map[string]bool{}
		for _, t := range opts.Topics {
			ns, name, ok := strings.Cut(t, "/")
			if !ok || ns == "" || name == "" || strings.ContainsAny(t, ". *>") || strings.Contains(name, "/") {
				return nil, fmt.Errorf("dispatcher: topic %q is not namespace/name", t)
			}
			d.served[plan.Key(ns, name)] = true
		}
	}
	empty := map[string]map[string]*topicState{}
	d.topics.Store(&empty)
	return d, nil
}

func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   1024,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Ready reports nil once NATS is connected and the plans of the served
// Topics were loaded, and an error saying what is missing otherwise.
func (d *Dispatcher) Ready() error {
	if !d.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	if !d.loaded.Load() {
		return errors.New("dispatch plans not loaded yet")
	}
	return nil
}

// Run watches the plans of the served Topics, runs one delivery loop per
// Subscription and applies plan changes live. It waits for the plan bucket
// and for consumers that do not exist yet. When ctx is done it stops
// pulling, lets in-flight deliveries finish and returns nil. Run may be
// called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return errors.New("dispatcher: Run called twice")
	}
	d.mu.Lock()
	d.runCtx = ctx
	d.mu.Unlock()
	defer d.stopRunners()
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		d.pollScheduled(ctx)
	}()
	go func() {
		defer d.wg.Done()
		d.flushCatalogs(ctx)
	}()

	bo := newBackoff(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		kv, err := d.js.KeyValue(ctx, plan.KVBucket)
		if err != nil {
			if ctx.Err() == nil {
				d.logWait(bo, "waiting for the plan bucket", "bucket", plan.KVBucket, "error", err)
			}
			bo.wait(ctx)
			continue
		}
		if err := d.watch(ctx, kv); err != nil && ctx.Err() == nil {
			d.log.Warn("plan watch ended; restarting", "error", err)
		}
		bo.wait(ctx)
	}
	return nil
}

func (d *Dispatcher) logWait(bo *backoff, msg string, args ...any) {
	if bo.n == 0 {
		d.log.Info(msg, args...)
	} else {
		d.log.Debug(msg, args...)
	}
}

// stopRunners stops every delivery loop and waits for them.
func (d *Dispatcher) stopRunners() {
	d.mu.Lock()
	for _, r := range d.runners {
		r.stop()
	}
	d.mu.Unlock()
	d.wg.Wait()
}

// topic returns the state of a served Topic, nil when unknown.
func (d *Dispatcher) topic(ns, name string) *topicState {
	return (*d.topics.Load())[ns][name]
}

// setTopic replaces or (with ts nil) removes the Topic of a plan key.
// d.mu must be held.
func (d *Dispatcher) setTopic(ns, name string, ts *topicState) {
	old := *d.topics.Load()
	next := make(map[string]map[string]*topicState, len(old)+1)
	for n, m := range old {
		next[n] = m
	}
	inner := make(map[string]*topicState, len(old[ns])+1)
	for k, v := range old[ns] {
		inner[k] = v
	}
	if ts == nil {
		delete(inner, name)
	} else {
		inner[name] = ts
	}
	if len(inner) == 0 {
		delete(next, ns)
	} else {
		next[ns] = inner
	}
	d.topics.Store(&next)
}

// backoff is a capped doubling wait.
type backoff struct {
	min, max time.Duration
	n        int
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max}
}

// wait sleeps the next interval or until ctx is done.
func (b *backoff) wait(ctx context.Context) {
	b.n++
	sleep(ctx, ce.Backoff(ce.Exponential, b.min, b.max, b.n))
}

func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx is done and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
