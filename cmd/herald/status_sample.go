package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/provision"
)

// statusReader takes the samples of herald status: the Topic plans in
// scope (plan.KVBucket), their streams (one paged list request), the
// consumers of the streams with Subscriptions (one paged list request per
// stream) and the dead-letter counters (plan.CounterStream), read again
// only when the counter stream changed. It keeps stream handles and the
// counters between the samples of a --watch.
type statusReader struct {
	js jetstream.JetStream
	// namespace ("" for all) and topic ("" for all) are the scope.
	namespace, topic string

	kv      jetstream.KeyValue
	handles map[string]jetstream.Stream
	// counterState is the counter stream's last sequence and message count
	// when counters was read.
	counterState [2]uint64
	counters     map[string]provision.DeadLetters
}

// statusSample is what one read found.
type statusSample struct {
	// at is when the sample was taken, on this machine's clock.
	at time.Time
	// namespace and topic are the reader's scope.
	namespace, topic string
	// plans are the Topic plans in scope, by namespace and name.
	plans []*plan.TopicPlan
	// streams holds the info of the plans' streams that exist, by name.
	streams map[string]*jetstream.StreamInfo
	// consumers holds, by stream, the info of its consumers by name.
	consumers map[string]map[string]*jetstream.ConsumerInfo
	// counters holds the dead-letter counters in scope by counter subject
	// (plan.DeadLetterCounter); nil when the counter stream does not exist.
	counters map[string]provision.DeadLetters
}

func newStatusReader(js jetstream.JetStream, namespace, topic string) *statusReader {
	return &statusReader{js: js, namespace: namespace, topic: topic, handles: map[string]jetstream.Stream{}}
}

// sampleTimeout bounds the requests of one sample.
const sampleTimeout = 10 * time.Second

// sample reads everything herald status shows once.
func (r *statusReader) sample(ctx context.Context) (*statusSample, error) {
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	s := &statusSample{at: time.Now(), namespace: r.namespace, topic: r.topic,
		streams: map[string]*jetstream.StreamInfo{}, consumers: map[string]map[string]*jetstream.ConsumerInfo{}}
	var err error
	if s.plans, err = r.readPlans(ctx); err != nil {
		return nil, err
	}
	if len(s.plans) == 0 {
		return s, nil
	}
	if err := r.readStreams(ctx, s); err != nil {
		return nil, err
	}
	for _, tp := range s.plans {
		if len(tp.Subscriptions) == 0 || s.streams[tp.Stream] == nil {
			continue
		}
		cons, err := r.readConsumers(ctx, tp.Stream)
		if err != nil {
			return nil, err
		}
		s.consumers[tp.Stream] = cons
	}
	if s.counters, err = r.readCounters(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// missing is the error of a sample in which the one Topic asked for has
// no plan.
func (s *statusSample) missing() error {
	if s.topic != "" && len(s.plans) == 0 {
		return fmt.Errorf("topic %s/%s has no plan in this NATS server (bucket %s): is it applied, and is herald dev or the operator running?", s.namespace, s.topic, plan.KVBucket)
	}
	return nil
}

// readPlans reads the plans in scope with one watcher of the plan bucket,
// which delivers the current value of every matching key and then nil.
func (r *statusReader) readPlans(ctx context.Context) ([]*plan.TopicPlan, error) {
	if r.kv == nil {
		kv, err := r.js.KeyValue(ctx, plan.KVBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("no Topic plans in this NATS server (bucket %s): is herald dev or the operator running against it?", plan.KVBucket)
		}
		if err != nil {
			return nil, fmt.Errorf("read the Topic plans (bucket %s): %w", plan.KVBucket, err)
		}
		r.kv = kv
	}
	keys := ">"
	switch {
	case r.topic != "":
		keys = plan.Key(r.namespace, r.topic)
	case r.namespace != "":
		keys = plan.NamespaceKeys(r.namespace)
	}
	w, err := r.kv.Watch(ctx, keys, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read the Topic plans: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var plans []*plan.TopicPlan
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read the Topic plans: %w", ctx.Err())
		case e := <-w.Updates():
			if e == nil {
				slices.SortFunc(plans, func(a, b *plan.TopicPlan) int {
					return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
				})
				return plans, nil
			}
			tp := &plan.TopicPlan{}
			if json.Unmarshal(e.Value(), tp) != nil || tp.Stream == "" ||
				(r.namespace != "" && tp.Namespace != r.namespace) {
				continue
			}
			slices.SortFunc(tp.Subscriptions, func(a, b plan.SubscriptionPlan) int { return cmp.Compare(a.Name, b.Name) })
			plans = append(plans, tp)
		}
	}
}

// readStreams lists the streams whose subjects overlap the scope's Topic
// subjects and keeps those of s's plans.
func (r *statusReader) readStreams(ctx context.Context, s *statusSample) error {
	ns, topic := cmp.Or(r.namespace, "*"), cmp.Or(r.topic, "*")
	want := map[string]bool{}
	for _, tp := range s.plans {
		want[tp.Stream] = true
	}
	l := r.js.ListStreams(ctx, jetstream.WithStreamListSubject(plan.Subject(ns, topic)))
	for info := range l.Info() {
		if want[info.Config.Name] {
			s.streams[info.Config.Name] = info
		}
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("list streams: %w", err)
	}
	return nil
}

// readConsumers returns the consumers of stream by name; nil when the
// stream is gone.
func (r *statusReader) readConsumers(ctx context.Context, stream string) (map[string]*jetstream.ConsumerInfo, error) {
	h := r.handles[stream]
	if h == nil {
		var err error
		h, err = r.js.Stream(ctx, stream)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", stream, err)
		}
		r.handles[stream] = h
	}
	out := map[string]*jetstream.ConsumerInfo{}
	l := h.ListConsumers(ctx)
	for info := range l.Info() {
		out[info.Name] = info
	}
	if err := l.Err(); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			delete(r.handles, stream)
			return nil, nil
		}
		return nil, fmt.Errorf("list consumers of %s: %w", stream, err)
	}
	return out, nil
}

// readCounters returns the dead-letter counters in scope, read with one
// short-lived ordered consumer over the counter stream (one message per
// counter) when the stream changed since the last read; nil when the
// counter stream does not exist.
func (r *statusReader) readCounters(ctx context.Context) (map[string]provision.DeadLetters, error) {
	cs, err := r.js.Stream(ctx, plan.CounterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("counter stream: %w", err)
	}
	info := cs.CachedInfo()
	state := [2]uint64{info.State.LastSeq, info.State.Msgs}
	if r.counters != nil && state == r.counterState {
		return r.counters, nil
	}
	out := map[string]provision.DeadLetters{}
	if info.State.Msgs > 0 {
		if out, err = provision.ReadDeadLetterCounts(ctx, cs, plan.DeadLetterCounters(cmp.Or(r.namespace, "*"), cmp.Or(r.topic, "*"))); err != nil {
			return nil, fmt.Errorf("read the dead-letter counters: %w", err)
		}
	}
	r.counters, r.counterState = out, state
	return out, nil
}
