// Package provision makes NATS JetStream match a compiled plan: it creates or
// updates a Topic's stream and its Subscriptions' durable consumers, publishes
// the Topic's plan to the plan bucket, and deletes what is no longer
// declared. The operator and herald dev both use it, on top of the pure
// compiler.Compile.
//
// Every Ensure call compares the desired configuration with what the server
// reports and writes only when they differ, so calling it on every reconcile
// is cheap. Apply goes further: it remembers the consumers it ensured, and
// while a stream holds as many consumers as Apply left it with, it ensures
// only the consumers whose configuration changed since (see Apply).
package provision

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/compiler"
	"github.com/herald-dev/herald/internal/jserr"
	"github.com/herald-dev/herald/plan"
)

// ErrRefused wraps a configuration change JetStream refuses to apply to an
// existing stream (for example a storage type change). Retrying does not
// help; the spec must change or the Topic be recreated.
var ErrRefused = errors.New("jetstream refused the change")

// Provisioner applies plans through one JetStream context. It is safe for
// concurrent use, as long as one Topic is applied by one caller at a time.
type Provisioner struct {
	js jetstream.JetStream
	kv jetstream.KeyValue

	mu sync.Mutex
	// applied remembers, by stream name, what Apply left in each stream.
	applied map[string]*streamMemo
	// plans holds the last plan decoded per key, at its revision, so that
	// many readers of one unchanged plan decode it once.
	plans map[string]decodedPlan
	// counters is the counter stream, looked up once.
	counters jetstream.Stream
	// handles holds stream handles by name, for Consumers.
	handles map[string]jetstream.Stream
	// historyOff holds, by history stream name, the streams Apply found or
	// made absent for a Topic without history, so that it deletes each once.
	historyOff map[string]bool
}

// streamMemo is what Apply left in one stream.
type streamMemo struct {
	// created is the stream's creation time: a stream deleted and created
	// again is not the one remembered.
	created time.Time
	// consumers holds the fingerprint of each consumer's configuration as
	// Apply ensured it, by durable name.
	consumers map[string]string
	// names is the fingerprint of the consumer names Apply kept.
	names string
	// count is how many consumers the stream held when Apply finished.
	count int
}

type decodedPlan struct {
	revision uint64
	plan     *plan.TopicPlan
}

// New returns a Provisioner, creating the plan bucket, the shares bucket
// (SharesBucketConfig), the counter stream and the catalog bucket
// (CatalogBucketConfig) when they are missing.
// replicas is their replica count (1 or 3 for a NATS cluster).
func New(ctx context.Context, js jetstream.JetStream, replicas int) (*Provisioner, error) {
	if replicas < 1 {
		replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      plan.KVBucket,
		Description: "Herald dispatch plans, one key per Topic",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("plan bucket: %w", err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, SharesBucketConfig(replicas)); err != nil {
		return nil, fmt.Errorf("shares bucket: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, CounterStreamConfig(replicas)); err != nil {
		return nil, fmt.Errorf("counter stream: %w", err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, CatalogBucketConfig(replicas)); err != nil {
		return nil, fmt.Errorf("catalog bucket: %w", err)
	}
	return &Provisioner{js: js, kv: kv, applied: map[string]*streamMemo{}, plans: map[string]decodedPlan{}, historyOff: map[string]bool{}}, nil
}

// SharesBucketConfig is the bucket in which dispatcher replicas announce
// their shares of each Subscription's limits (plan.SharesBucket): keys live
// plan.ShareTTL unless refreshed, one value per key, in memory (a restarted
// server loses nothing the replicas do not write again within a second).
func SharesBucketConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      plan.SharesBucket,
		Description: "Herald dispatcher replicas' shares of Subscription limits",
		History:     1,
		TTL:         plan.ShareTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    max(replicas, 1),
	}
}

// CounterStreamConfig is the stream of Herald's counters: one subject per
// counter keeping only its latest total, increments deduplicated on their
// message id for two minutes.
func CounterStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              plan.CounterStream,
		Description:       "Herald counters (dead letters per Subscription)",
		Subjects:          []string{plan.CounterSubjects},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		MaxMsgsPerSubject: 1,
		Duplicates:        2 * time.Minute,
		AllowMsgCounter:   true,
	}
}

// DeadLetterCount returns how many events a Subscription dead-lettered and
// when the last one was; zero when none.
func (p *Provisioner) DeadLetterCount(ctx context.Context, namespace, topic, subscription string) (int64, time.Time, error) {
	s, err := p.counterStream(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	m, err := s.GetLastMsgForSubject(ctx, plan.DeadLetterCounter(namespace, topic, subscription))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, time.Time{}, nil
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted behind our back; look it up again next time.
		p.mu.Lock()
		p.counters = nil
		p.mu.Unlock()
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	n, err := counterValue(m.Data)
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, m.Time, nil
}

// counterStream returns the counter stream, looked up on first use.
func (p *Provisioner) counterStream(ctx context.Context) (jetstream.Stream, error) {
	p.mu.Lock()
	s := p.counters
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := p.js.Stream(ctx, plan.CounterStream)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.counters = s
	p.mu.Unlock()
	return s, nil
}

// ResetDeadLetterCount removes a Subscription's dead-letter counter, so a
// Subscription created again under its name starts from zero.
func (p *Provisioner) ResetDeadLetterCount(ctx context.Context, namespace, topic, subscription string) error {
	return p.purgeCounters(ctx, plan.DeadLetterCounter(namespace, topic, subscription))
}

func (p *Provisioner) purgeCounters(ctx context.Context, subject string) error {
	s, err := p.js.Stream(ctx, plan.CounterStream)
	if err == nil {
		err = s.Purge(ctx, jetstream.WithPurgeSubject(subject))
	}
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("purge counters %s: %w", subject, err)
	}
	return nil
}

// JetStream is the JetStream context p works with.
func (p *Provisioner) JetStream() jetstream.JetStream { return p.js }

// Report is what Apply did for one Topic.
type Report struct {
	// Stream is the server's view of the stream after Apply, nil when there
	// is none.
	Stream *jetstream.StreamInfo
	// StreamErr is why the stream does not match the Result's
	// configuration, nil when it does. When JetStream refused the change
	// (errors.Is ErrRefused) the old stream, in Stream, keeps serving and
	// Apply went on with it.
	StreamErr error
	// Subscriptions holds, by Subscription name, the outcome of ensuring
	// each consumer of the Result: nil when the consumer matches, else why
	// it does not. Such a Subscription is left out of the published plan.
	Subscriptions map[string]error
	// Plan is the plan Apply published (or meant to): the Result's without
	// the Subscriptions whose consumer failed.
	Plan plan.TopicPlan
	// Published reports whether the stored plan is Plan.
	Published bool
	// PlanErr is why the plan was not published or the consumers of
	// removed Subscriptions not deleted, nil when both were done.
	PlanErr error
	// HistoryErr is why the delivery-history stream does not match the
	// Result's History (created, updated or, without history, deleted).
	// Deliveries go on without it.
	HistoryErr error
}

// Err joins the Report's Topic-wide errors, StreamErr, HistoryErr and
// PlanErr; the Subscriptions' errors are not among them.
func (r *Report) Err() error { return errors.Join(r.StreamErr, r.HistoryErr, r.PlanErr) }

// Apply makes JetStream match res, the one way the operator and herald dev
// change a Topic's stream, consumers and plan: it ensures the stream, then
// each Subscription's consumer, publishes the plan without the
// Subscriptions whose consumer failed (one broken Subscription does not
// stop the others) and deletes the stream's consumers of Subscriptions
// neither in res nor named in keep. keep names live Subscriptions left out
// of res (for example with a Destination that does not resolve yet): their
// consumers stay, so they resume where they stopped once fixed.
//
// Apply remembers what it left in each stream. While the stream is the same
// and holds as many consumers as Apply left it with, it ensures only the
// consumers whose configuration changed since, and lists the stream's
// consumers to prune only when the set of names changed: applying an
// unchanged Topic costs two requests (the stream and the plan), and adding
// one Subscription to a Topic of k costs a constant number, not k. A
// consumer deleted behind Apply's back changes the count, and the next
// Apply ensures every consumer again; a consumer's configuration edited
// behind its back is repaired when the Provisioner is new (a restart) or
// the count changes.
//
// Without a stream Apply stops after trying to create it. The returned
// error is the Report's Err.
func (p *Provisioner) Apply(ctx context.Context, res *compiler.Result, keep ...string) (*Report, error) {
	rep := &Report{Subscriptions: map[string]error{}, Plan: res.Plan}
	stream := res.Stream.Name
	rep.Stream, rep.StreamErr = p.EnsureStream(ctx, res.Stream)
	if rep.StreamErr != nil {
		// A refused change leaves the old stream in place.
		info, err := p.StreamInfo(ctx, stream)
		if err != nil || info == nil {
			p.forget(stream)
			return rep, rep.Err()
		}
		rep.Stream = info
	}
	rep.HistoryErr = p.applyHistory(ctx, res)
	prev := p.remembered(stream, rep.Stream)
	next := &streamMemo{created: rep.Stream.Created, consumers: map[string]string{}}
	names := map[string]bool{}
	for _, name := range keep {
		// A kept Subscription may deliver by priority: keep its lanes too.
		for _, l := range plan.Lanes {
			names[plan.LaneConsumer(plan.ConsumerName(name), l)] = true
		}
	}
	changed := prev == nil
	for _, name := range slices.Sorted(maps.Keys(res.Consumers)) {
		// The lanes first: a lane created for a Subscription turning
		// priority on starts where its consumer stood, before that stops
		// reading the lane.
		for _, cc := range append(slices.Clone(res.LaneConsumers[name]), res.Consumers[name]) {
			names[cc.Durable] = true
			fp := fingerprint(cc)
			if prev != nil && prev.consumers[cc.Durable] == fp {
				next.consumers[cc.Durable] = fp
				continue
			}
			changed = true
			var err error
			if cc.Durable != res.Consumers[name].Durable {
				_, err = p.ensureLane(ctx, stream, res.Consumers[name].Durable, cc)
			} else {
				_, err = p.ensureMain(ctx, stream, cc)
			}
			if err != nil {
				rep.Subscriptions[name] = errors.Join(rep.Subscriptions[name], err)
				continue
			}
			next.consumers[cc.Durable] = fp
		}
		if _, failed := rep.Subscriptions[name]; !failed {
			rep.Subscriptions[name] = nil
		}
	}
	next.names = fingerprint(slices.Sorted(maps.Keys(names)))
	changed = changed || prev.names != next.names
	rep.Plan.Subscriptions = slices.DeleteFunc(slices.Clone(res.Plan.Subscriptions), func(sp plan.SubscriptionPlan) bool {
		return rep.Subscriptions[sp.Name] != nil
	})
	if err := p.PutPlan(ctx, &rep.Plan); err != nil {
		rep.PlanErr = err
		p.forget(stream)
		return rep, rep.Err()
	}
	rep.Published = true
	if !changed {
		next.count = prev.count
		p.remember(stream, next)
		return rep, rep.Err()
	}
	n, err := p.pruneConsumers(ctx, stream, names)
	rep.PlanErr = err
	if err != nil {
		p.forget(stream)
		return rep, rep.Err()
	}
	next.count = n
	p.remember(stream, next)
	return rep, rep.Err()
}

// applyHistory ensures the delivery-history stream res declares, or
// deletes the Topic's history stream when res declares none (once per
// Provisioner: a Topic without history has none to delete afterwards).
func (p *Provisioner) applyHistory(ctx context.Context, res *compiler.Result) error {
	name := plan.HistoryStream(res.Plan.Namespace, res.Plan.Name)
	if res.History != nil {
		p.mu.Lock()
		delete(p.historyOff, name)
		p.mu.Unlock()
		_, err := p.EnsureStream(ctx, *res.History)
		return err
	}
	p.mu.Lock()
	off := p.historyOff[name]
	p.mu.Unlock()
	if off {
		return nil
	}
	if err := p.DeleteStream(ctx, name); err != nil {
		return err
	}
	p.mu.Lock()
	p.historyOff[name] = true
	p.mu.Unlock()
	return nil
}

// remembered returns what Apply left in the stream info describes, or nil
// when it has nothing to trust: no memory of it, a stream created since, or
// a consumer count other than the one it left.
func (p *Provisioner) remembered(stream string, info *jetstream.StreamInfo) *streamMemo {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.applied[stream]
	if m == nil || !m.created.Equal(info.Created) || m.count != info.State.Consumers {
		return nil
	}
	c := *m
	c.consumers = maps.Clone(m.consumers)
	return &c
}

func (p *Provisioner) remember(stream string, m *streamMemo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applied[stream] = m
}

func (p *Provisioner) forget(stream string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.applied, stream)
}

// fingerprint is a digest of v's JSON encoding (map keys sorted).
func fingerprint(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// EnsureStream creates the stream or updates it when it differs from cfg.
// A change the server refuses is returned wrapped in ErrRefused.
func (p *Provisioner) EnsureStream(ctx context.Context, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := p.js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = p.js.CreateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("create stream %s: %w", cfg.Name, refused(err))
		}
		return s.CachedInfo(), nil
	case err != nil:
		return nil, fmt.Errorf("get stream %s: %w", cfg.Name, err)
	}
	info := s.CachedInfo()
	if StreamConfigEqual(info.Config, cfg) {
		return info, nil
	}
	merged := cfg
	merged.Metadata = mergeMetadata(info.Config.Metadata, cfg.Metadata)
	// JetStream cannot turn message schedules off, and schedules need
	// roll-ups.
	merged.AllowMsgSchedules = cfg.AllowMsgSchedules || info.Config.AllowMsgSchedules
	merged.AllowRollup = cfg.AllowRollup || merged.AllowMsgSchedules
	s, err = p.js.UpdateStream(ctx, merged)
	if err != nil {
		return nil, fmt.Errorf("update stream %s: %w", cfg.Name, refused(err))
	}
	return s.CachedInfo(), nil
}

// refused returns err wrapped in ErrRefused, with the server's description,
// when JetStream refused the configuration for good; err itself otherwise.
func refused(err error) error {
	var apiErr *jetstream.APIError
	if jserr.Classify(err) == jserr.Refused && errors.As(err, &apiErr) {
		return fmt.Errorf("%w: %s", ErrRefused, apiErr.Description)
	}
	return err
}

// StreamInfo returns the server's view of a stream, or nil when it does not exist.
func (p *Provisioner) StreamInfo(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	s, err := p.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// StreamConfigEqual reports whether the server's stream configuration has
// every setting of want. Settings the server defaults and Herald does not
// declare are ignored.
func StreamConfigEqual(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) &&
		have.Description == want.Description &&
		have.Retention == want.Retention &&
		have.Discard == want.Discard &&
		have.Storage == want.Storage &&
		have.Replicas == want.Replicas &&
		have.MaxMsgs == want.MaxMsgs &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxAge == want.MaxAge &&
		have.MaxMsgSize == want.MaxMsgSize &&
		have.Duplicates == want.Duplicates &&
		(have.AllowMsgSchedules || !want.AllowMsgSchedules) &&
		(have.AllowRollup || !want.AllowRollup) &&
		metadataHas(have.Metadata, want.Metadata)
}

// EnsureConsumer creates the durable consumer or updates it when it differs
// from cfg. The start position only applies at creation. A change the server
// refuses to apply in place (such as a new ordering mode) recreates the
// consumer at the position the old one had reached, so no event is skipped
// or delivered again apart from those in flight.
func (p *Provisioner) EnsureConsumer(ctx context.Context, stream string, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	c, err := p.js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = p.js.CreateConsumer(ctx, stream, cfg)
		if err != nil {
			return nil, fmt.Errorf("create consumer %s: %w", cfg.Durable, err)
		}
		return c.CachedInfo(), nil
	case err != nil:
		return nil, fmt.Errorf("get consumer %s: %w", cfg.Durable, err)
	}
	info := c.CachedInfo()
	if ConsumerConfigEqual(info.Config, cfg) {
		return info, nil
	}
	upd := cfg
	// The start position is fixed at creation; keep the server's.
	upd.DeliverPolicy = info.Config.DeliverPolicy
	upd.OptStartSeq = info.Config.OptStartSeq
	upd.OptStartTime = info.Config.OptStartTime
	upd.Metadata = mergeMetadata(info.Config.Metadata, cfg.Metadata)
	c, err = p.js.UpdateConsumer(ctx, stream, upd)
	if err == nil {
		if err := p.syncPause(ctx, stream, cfg, c.CachedInfo()); err != nil {
			return nil, err
		}
		return c.Info(ctx)
	}
	if jserr.Classify(err) != jserr.Refused {
		return nil, fmt.Errorf("update consumer %s: %w", cfg.Durable, err)
	}
	// Recreate at the old consumer's ack floor.
	fresh, ierr := c.Info(ctx)
	if ierr != nil {
		return nil, fmt.Errorf("update consumer %s: %w", cfg.Durable, err)
	}
	if derr := p.js.DeleteConsumer(ctx, stream, cfg.Durable); derr != nil && !errors.Is(derr, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("recreate consumer %s: %w", cfg.Durable, derr)
	}
	re := cfg
	re.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	re.OptStartSeq = fresh.AckFloor.Stream + 1
	re.OptStartTime = nil
	c, err = p.js.CreateConsumer(ctx, stream, re)
	if err != nil {
		return nil, fmt.Errorf("recreate consumer %s: %w", cfg.Durable, err)
	}
	return c.CachedInfo(), nil
}

// syncPause pauses or resumes the consumer when an in-place update left its
// pause state different from cfg's.
func (p *Provisioner) syncPause(ctx context.Context, stream string, cfg jetstream.ConsumerConfig, info *jetstream.ConsumerInfo) error {
	want := cfg.PauseUntil != nil && !cfg.PauseUntil.IsZero()
	if want == info.Paused {
		return nil
	}
	var err error
	if want {
		_, err = p.js.PauseConsumer(ctx, stream, cfg.Durable, *cfg.PauseUntil)
	} else {
		_, err = p.js.ResumeConsumer(ctx, stream, cfg.Durable)
	}
	if err != nil {
		return fmt.Errorf("pause or resume consumer %s: %w", cfg.Durable, err)
	}
	return nil
}

// ConsumerConfigEqual reports whether the server's consumer configuration
// has every setting of want that can change after creation.
func ConsumerConfigEqual(have, want jetstream.ConsumerConfig) bool {
	return have.Description == want.Description &&
		have.AckPolicy == want.AckPolicy &&
		have.AckWait == want.AckWait &&
		have.MaxDeliver == want.MaxDeliver &&
		have.FilterSubject == want.FilterSubject &&
		slices.Equal(have.FilterSubjects, want.FilterSubjects) &&
		have.MaxAckPending == want.MaxAckPending &&
		have.PriorityPolicy == want.PriorityPolicy &&
		slices.Equal(have.PriorityGroups, want.PriorityGroups) &&
		(want.PriorityPolicy == jetstream.PriorityPolicyNone || have.PinnedTTL == want.PinnedTTL) &&
		pauseEqual(have.PauseUntil, want.PauseUntil) &&
		metadataHas(have.Metadata, want.Metadata)
}

func pauseEqual(a, b *time.Time) bool {
	az := a == nil || a.IsZero()
	bz := b == nil || b.IsZero()
	if az || bz {
		return az == bz
	}
	return a.Equal(*b)
}

// metadataHas reports whether have holds every entry of want. The server
// adds keys of its own (prefixed _nats) which are not compared.
func metadataHas(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	for k := range have {
		if _, ok := want[k]; !ok && !strings.HasPrefix(k, "_nats") {
			return false
		}
	}
	return true
}

func mergeMetadata(have, want map[string]string) map[string]string {
	out := maps.Clone(want)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range have {
		if strings.HasPrefix(k, "_nats") {
			out[k] = v
		}
	}
	return out
}

// ConsumerInfo returns the server's view of a consumer, or nil when it does not exist.
func (p *Provisioner) ConsumerInfo(ctx context.Context, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := p.js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Looking the consumer up fetched its info: one request.
	return c.CachedInfo(), nil
}

// DeleteConsumer deletes a consumer; a missing consumer or stream is not an error.
func (p *Provisioner) DeleteConsumer(ctx context.Context, stream, name string) error {
	err := p.js.DeleteConsumer(ctx, stream, name)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete consumer %s: %w", name, err)
	}
	if err == nil {
		// Keep what Apply remembers of the stream in step, so that the
		// next Apply need not ensure every consumer again.
		p.mu.Lock()
		if m := p.applied[stream]; m != nil {
			delete(m.consumers, name)
			m.count--
		}
		p.mu.Unlock()
	}
	return nil
}

// PruneConsumers deletes the stream's Herald consumers whose names are not in keep.
func (p *Provisioner) PruneConsumers(ctx context.Context, stream string, keep map[string]bool) error {
	_, err := p.pruneConsumers(ctx, stream, keep)
	return err
}

// pruneConsumers is PruneConsumers, returning how many consumers the stream
// holds afterwards.
func (p *Provisioner) pruneConsumers(ctx context.Context, stream string, keep map[string]bool) (int, error) {
	s, err := p.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("get stream %s: %w", stream, err)
	}
	names := s.ConsumerNames(ctx)
	var stale []string
	all := 0
	for n := range names.Name() {
		all++
		if strings.HasPrefix(n, plan.ConsumerPrefix) && !keep[n] {
			stale = append(stale, n)
		}
	}
	if err := names.Err(); err != nil {
		return 0, fmt.Errorf("list consumers of %s: %w", stream, err)
	}
	for _, n := range stale {
		if err := p.js.DeleteConsumer(ctx, stream, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return 0, fmt.Errorf("delete consumer %s: %w", n, err)
		}
		all--
	}
	return all, nil
}

// DeleteStream deletes a stream with its events and consumers; a missing
// stream is not an error.
func (p *Provisioner) DeleteStream(ctx context.Context, name string) error {
	p.forget(name)
	err := p.js.DeleteStream(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete stream %s: %w", name, err)
	}
	return nil
}

// PutPlan publishes a Topic's plan when it differs from the stored one.
func (p *Provisioner) PutPlan(ctx context.Context, tp *plan.TopicPlan) error {
	data, err := json.Marshal(tp)
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	key := plan.Key(tp.Namespace, tp.Name)
	if e, err := p.kv.Get(ctx, key); err == nil && string(e.Value()) == string(data) {
		return nil
	}
	if _, err := p.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("put plan %s: %w", key, err)
	}
	return nil
}

// GetPlan returns the stored plan of a Topic, or nil when there is none.
// The plan is shared with other callers reading the same revision: it must
// not be changed.
func (p *Provisioner) GetPlan(ctx context.Context, namespace, topic string) (*plan.TopicPlan, error) {
	key := plan.Key(namespace, topic)
	e, err := p.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get plan: %w", err)
	}
	p.mu.Lock()
	d, ok := p.plans[key]
	p.mu.Unlock()
	if ok && d.revision == e.Revision() {
		return d.plan, nil
	}
	var tp plan.TopicPlan
	if err := json.Unmarshal(e.Value(), &tp); err != nil {
		return nil, fmt.Errorf("decode plan: %w", err)
	}
	p.mu.Lock()
	p.plans[key] = decodedPlan{revision: e.Revision(), plan: &tp}
	p.mu.Unlock()
	return &tp, nil
}

// DeletePlan removes a Topic's plan (purging its history); a missing key is
// not an error. Dispatchers stop serving the Topic when they see it go.
func (p *Provisioner) DeletePlan(ctx context.Context, namespace, topic string) error {
	p.mu.Lock()
	delete(p.plans, plan.Key(namespace, topic))
	p.mu.Unlock()
	err := p.kv.Purge(ctx, plan.Key(namespace, topic))
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete plan: %w", err)
	}
	return nil
}

// DeleteTopic deletes the plan, the stream (with its consumers) and the
// delivery history.
func (p *Provisioner) DeleteTopic(ctx context.Context, namespace, topic string) error {
	if err := p.DeletePlan(ctx, namespace, topic); err != nil {
		return err
	}
	if err := p.purgeCounters(ctx, plan.DeadLetterCounters(namespace, topic)); err != nil {
		return err
	}
	if err := p.purgeCatalog(ctx, namespace, topic); err != nil {
		return err
	}
	if err := p.DeleteStream(ctx, plan.HistoryStream(namespace, topic)); err != nil {
		return err
	}
	return p.DeleteStream(ctx, plan.StreamName(namespace, topic))
}

// Keys lists the Topics that have a stored plan, as plan keys.
func (p *Provisioner) Keys(ctx context.Context) ([]string, error) {
	keys, err := p.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	return keys, err
}
