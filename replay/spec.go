package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/herald-dev/herald/api/v1alpha1"
	"github.com/herald-dev/herald/plan"
)

// StepSize is how many events one Advance hands over when the Replay has
// no rate limit; with one, a step lasts about a second.
const StepSize = 1000

// Advance carries r one step further for target t, recording its progress
// in r.Status: on the first call it fixes the sequences the Replay covers
// (a time resolves to the first event stored at or after it; without until,
// the Replay ends with the last event held when it started), then each
// call hands over the next events. It reports whether the Replay is
// complete. Callers set the conditions: the operator in the Replay's
// status, herald dev in its log.
func Advance(ctx context.Context, js jetstream.JetStream, r *v1alpha1.Replay, t *Target) (bool, error) {
	st := &r.Status
	st.Topic = t.Topic
	if st.CompletionTime != nil {
		return true, nil
	}
	if st.StartTime == nil {
		from, until, err := bounds(ctx, js, r, t)
		if err != nil {
			return false, err
		}
		now := metav1.Now()
		st.StartTime = &now
		st.FromSequence, st.UntilSequence = int64(from), int64(until)
	}
	job, err := JobFor(r, t)
	if err != nil {
		return false, err
	}
	limit := StepSize
	if job.Rate > 0 {
		limit = max(int(job.Rate), 1)
	}
	n, err := job.Step(ctx, js, limit)
	st.Replayed += int64(n)
	st.Position = int64(job.Position)
	if err != nil {
		return false, err
	}
	if job.Done() {
		now := metav1.Now()
		st.CompletionTime = &now
		return true, nil
	}
	return false, nil
}

// JobFor returns the Job of r, started (r.Status.StartTime set), for t.
func JobFor(r *v1alpha1.Replay, t *Target) (*Job, error) {
	j := &Job{
		Target:   t,
		RunID:    string(r.UID),
		From:     uint64(r.Status.FromSequence),
		Until:    uint64(r.Status.UntilSequence),
		Position: uint64(r.Status.Position),
	}
	if j.RunID == "" {
		j.RunID = r.Namespace + "." + r.Name
	}
	if rl := r.Spec.RateLimit; rl != nil {
		j.Rate = float64(rl.EventsPerSecond)
	}
	if dl := r.Spec.From.DeadLetters; dl != nil {
		sel, err := SelectionFor(dl)
		if err != nil {
			return nil, err
		}
		j.DeadLetters = sel
	}
	return j, nil
}

// SelectionFor turns a Replay's deadLetters into a Selection.
func SelectionFor(dl *v1alpha1.DeadLetterSelector) (*Selection, error) {
	sel := &Selection{IDs: dl.IDs, Again: dl.Again}
	if dl.Since != nil {
		sel.Since = dl.Since.Time
	}
	if dl.Until != nil {
		sel.Until = dl.Until.Time
	}
	if dl.Filter != "" {
		expr, err := plan.ParseCESQL(dl.Filter)
		if err != nil {
			return nil, fmt.Errorf("deadLetters.filter: %w", err)
		}
		sel.Filter = expr
	}
	return sel, nil
}

// bounds resolves the first and last sequence r covers.
func bounds(ctx context.Context, js jetstream.JetStream, r *v1alpha1.Replay, t *Target) (from, until uint64, err error) {
	from, until = 1, 0
	stream, subjects := t.Stream, plan.EventSubjects(t.Namespace, t.Topic)
	if r.Spec.From.DeadLetters != nil {
		if stream, subjects, err = deadLetterStream(t); err != nil {
			return 0, 0, err
		}
		if _, err := SelectionFor(r.Spec.From.DeadLetters); err != nil {
			return 0, 0, err
		}
	}
	switch f := r.Spec.From; {
	case f.Time != nil:
		if from, err = StartSeq(ctx, js, stream, subjects, f.Time.Time); err != nil {
			return 0, 0, err
		}
	case f.Sequence != nil:
		from = uint64(*f.Sequence)
	}
	switch u := r.Spec.Until; {
	case u != nil && u.Time != nil:
		until, err = UntilSeq(ctx, js, stream, subjects, u.Time.Time)
	case u != nil && u.Sequence != nil:
		until = uint64(*u.Sequence)
		var last uint64
		if last, err = LastSeq(ctx, js, stream); err == nil && until > last {
			until = last
		}
	default:
		until, err = LastSeq(ctx, js, stream)
	}
	if err != nil {
		return 0, 0, err
	}
	return from, until, nil
}

// Elapsed is how long r ran, or has been running.
func Elapsed(r *v1alpha1.Replay) time.Duration {
	if r.Status.StartTime == nil {
		return 0
	}
	end := time.Now()
	if r.Status.CompletionTime != nil {
		end = r.Status.CompletionTime.Time
	}
	return end.Sub(r.Status.StartTime.Time)
}
