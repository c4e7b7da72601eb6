package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

// Job is one Replay run: what it copies to its Target and how far it got.
// A Job is carried out in Steps, so that its progress can be recorded (in a
// Replay's status) and a control plane that restarts resumes after
// Position.
type Job struct {
	Target *Target
	// RunID names the run in the copies' message ids: a Step repeated after
	// an interruption stores each copy once.
	RunID string
	// From and Until are the first and last sequence the Job covers: of
	// the Topic's stream, or of the dead-letter Topic's stream when
	// DeadLetters is set.
	From, Until uint64
	// DeadLetters, when set, selects dead letters instead of a range of
	// the Topic's events.
	DeadLetters *Selection
	// Position is the last sequence handled; 0 before the first.
	Position uint64
	// Rate bounds the copies per second; 0 is unbounded.
	Rate float64
}

// StartSeq returns the sequence of the first event of stream on subjects
// stored at or after t; one past the last message when there is none.
func StartSeq(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, t time.Time) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	last := s.CachedInfo().State.LastSeq
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t,
	})
	if err != nil {
		return 0, err
	}
	m, err := c.Next(jetstream.FetchMaxWait(time.Second))
	if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return last + 1, nil
	}
	if err != nil {
		return 0, err
	}
	md, err := m.Metadata()
	if err != nil {
		return 0, err
	}
	return md.Sequence.Stream, nil
}

// LastSeq returns the last sequence of stream.
func LastSeq(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.LastSeq, nil
}

// UntilSeq returns the sequence of the last event of stream on subjects
// stored at or before t.
func UntilSeq(ctx context.Context, js jetstream.JetStream, stream string, subjects []string, t time.Time) (uint64, error) {
	next, err := StartSeq(ctx, js, stream, subjects, t.Add(time.Nanosecond))
	if err != nil {
		return 0, err
	}
	return next - 1, nil
}

// Done reports whether the Job handled every sequence it covers.
func (j *Job) Done() bool { return j.Position >= j.Until || j.From > j.Until }

// Step hands up to limit more events to the Target and advances Position;
// it returns how many it handed over. With a Rate, it waits between events.
func (j *Job) Step(ctx context.Context, js jetstream.JetStream, limit int) (int, error) {
	if j.Done() {
		return 0, nil
	}
	from := max(j.From, j.Position+1)
	if j.DeadLetters != nil {
		return j.stepDeadLetters(ctx, js, from, limit)
	}
	lim := Options{Rate: j.Rate}.limiter()
	n := 0
	var stepErr error
	err := readStream(ctx, js, j.Target.Stream, plan.EventSubjects(j.Target.Namespace, j.Target.Topic), from, j.Until, func(m jetstream.Msg) bool {
		if n >= limit {
			return false
		}
		md, err := m.Metadata()
		if err != nil {
			stepErr = err
			return false
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				stepErr = err
				return false
			}
		}
		if _, err := publishCopy(ctx, js, j.Target, "replay", j.RunID, md.Sequence.Stream, m.Headers(), m.Data(), nil); err != nil {
			stepErr = fmt.Errorf("replay event %d: %w", md.Sequence.Stream, err)
			return false
		}
		j.Position = md.Sequence.Stream
		n++
		return true
	})
	if err == nil {
		err = stepErr
	}
	if err == nil && n < limit {
		// Nothing left on the Topic's subject up to Until.
		j.Position = j.Until
	}
	return n, err
}

func (j *Job) stepDeadLetters(ctx context.Context, js jetstream.JetStream, from uint64, limit int) (int, error) {
	dls, err := listDeadLetters(ctx, js, j.Target, from, j.Until)
	if err != nil {
		return 0, err
	}
	var picked []DeadLetter
	for i := range dls {
		dl := &dls[i]
		if dl.Seq < from || dl.Seq > j.Until || !j.DeadLetters.Match(dl) {
			continue
		}
		if len(picked) == limit {
			break
		}
		picked = append(picked, *dl)
	}
	n, err := Redrive(ctx, js, j.Target, picked, Options{RunID: j.RunID, Rate: j.Rate}, func(dl *DeadLetter) {
		j.Position = dl.Seq
	})
	if err == nil && len(picked) < limit {
		j.Position = j.Until
	}
	return n, err
}
