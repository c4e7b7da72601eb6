package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// The bulk readers below serve a periodic refresh of many objects' figures:
// a few requests for every stream, one per stream for its consumers, and
// the counter stream read only when it changed.

// Streams returns the server's view of every stream of the account, by
// name, listed in pages of many streams per request.
func (p *Provisioner) Streams(ctx context.Context) (map[string]*jetstream.StreamInfo, error) {
	out := map[string]*jetstream.StreamInfo{}
	l := p.js.ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = info
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("list streams: %w", err)
	}
	return out, nil
}

// Consumers returns the server's view of every consumer of a stream, by
// durable name, listed in pages of many consumers per request; nil when
// the stream does not exist.
func (p *Provisioner) Consumers(ctx context.Context, stream string) (map[string]*jetstream.ConsumerInfo, error) {
	s, err := p.streamHandle(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*jetstream.ConsumerInfo{}
	l := s.ListConsumers(ctx)
	for info := range l.Info() {
		out[info.Name] = info
	}
	if err := l.Err(); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			p.mu.Lock()
			delete(p.handles, stream)
			p.mu.Unlock()
			return nil, nil
		}
		return nil, fmt.Errorf("list consumers of %s: %w", stream, err)
	}
	return out, nil
}

// streamHandle returns a handle on a stream, looked up once: listing a
// stream's consumers needs only its name, not its current info.
func (p *Provisioner) streamHandle(ctx context.Context, name string) (jetstream.Stream, error) {
	p.mu.Lock()
	s := p.handles[name]
	p.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := p.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.handles == nil {
		p.handles = map[string]jetstream.Stream{}
	}
	p.handles[name] = s
	p.mu.Unlock()
	return s, nil
}

// DeadLetters is one Subscription's dead-letter counter.
type DeadLetters struct {
	// Count is how many events the Subscription dead-lettered.
	Count int64
	// Last is when the last one was.
	Last time.Time
}

// DeadLetterCounts reads every dead-letter counter, by counter subject
// (plan.DeadLetterCounter). A counter missing from the result is zero.
func (p *Provisioner) DeadLetterCounts(ctx context.Context) (map[string]DeadLetters, error) {
	s, err := p.counterStream(ctx)
	if err != nil {
		return nil, err
	}
	return ReadDeadLetterCounts(ctx, s, plan.DeadLetterCounters("*", "*"))
}

// ReadDeadLetterCounts reads the dead-letter counters of the counter stream
// s (plan.CounterStream) on the subjects filter matches (such as
// plan.DeadLetterCounters), by counter subject, with one short-lived
// ordered consumer: the stream holds one message per counter. It only
// reads, for tools that must not create what a Provisioner would.
func ReadDeadLetterCounts(ctx context.Context, s jetstream.Stream, filter string) (map[string]DeadLetters, error) {
	out := map[string]DeadLetters{}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	for {
		batch, err := c.FetchNoWait(256)
		if err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		n := 0
		var pending uint64
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("read counters: %w", err)
			}
			pending = md.NumPending
			count, err := counterValue(m.Data())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.Subject(), err)
			}
			out[m.Subject()] = DeadLetters{Count: count, Last: md.Timestamp}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		if n == 0 || pending == 0 {
			return out, nil
		}
	}
}

// counterValue decodes a counter message's total.
func counterValue(data []byte) (int64, error) {
	var v struct {
		Val string `json:"val"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return 0, fmt.Errorf("dead-letter counter: %w", err)
	}
	n, err := strconv.ParseInt(v.Val, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("dead-letter counter %q: %w", v.Val, err)
	}
	return n, nil
}

// InSync reports whether the stream info describes is still the one Apply
// left, holding as many consumers as Apply left in it; known is false when
// Apply has not applied the stream since the Provisioner was created.
func (p *Provisioner) InSync(info *jetstream.StreamInfo) (inSync, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.applied[info.Config.Name]
	if m == nil {
		return false, false
	}
	return m.created.Equal(info.Created) && m.count == info.State.Consumers, true
}
