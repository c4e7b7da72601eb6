package replay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cesql "github.com/cloudevents/sdk-go/sql/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/internal/ce"
	"github.com/herald-dev/herald/plan"
)

// MarkerBucket is the JetStream key-value bucket recording which dead
// letters were redriven: key "<dead-letter stream>.<sequence>".
const MarkerBucket = "herald-redriven"

// DeadLetter is one dead letter of a Subscription, as stored in its
// dead-letter Topic.
type DeadLetter struct {
	// Seq is its sequence in the dead-letter Topic's stream.
	Seq uint64 `json:"sequence"`
	// DeadLetteredAt is heralddeadletteredat, else when it was stored.
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
	ID             string    `json:"id"`
	Type           string    `json:"type"`
	Source         string    `json:"source"`
	// Code is the last attempt's HTTP status; empty when it got none.
	Code string `json:"code,omitempty"`
	// Attempts is heraldattempts.
	Attempts int `json:"attempts"`
	// Destination is the URI that failed (knativeerrordest).
	Destination string `json:"destination,omitempty"`
	// Error is the start of the last response body or the transport error.
	Error string `json:"error,omitempty"`
	// Redriven is when it was redriven; nil if never.
	Redriven *time.Time `json:"redriven,omitempty"`
	// Event is the dead letter with its extensions.
	Event *event.Event `json:"event"`

	header nats.Header
	data   []byte
}

// marker is the value of a MarkerBucket entry.
type marker struct {
	At           time.Time `json:"at"`
	Subscription string    `json:"subscription"`
	// Seq is the copy's sequence in the Subscription's Topic stream.
	Seq uint64 `json:"seq"`
}

// deadLetterStream returns the stream of t's dead-letter Topic and the
// subjects its events are stored on (every priority lane: a dead letter
// keeps the event's priority extension).
func deadLetterStream(t *Target) (stream string, subjects []string, err error) {
	ns, name, ok := strings.Cut(t.DeadLetterTopic, "/")
	if !ok || ns == "" || name == "" {
		return "", nil, fmt.Errorf("subscription %s/%s has no dead-letter Topic: its delivery.deadLetterSink (or its Topic's) must be a ref to a Topic", t.Namespace, t.Subscription)
	}
	return plan.StreamName(ns, name), plan.EventSubjects(ns, name), nil
}

// ListDeadLetters returns the dead letters of t's Subscription held by its
// dead-letter Topic, oldest first, with the time each was redriven.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, t *Target) ([]DeadLetter, error) {
	return listDeadLetters(ctx, js, t, 1, 0)
}

// listDeadLetters is ListDeadLetters over the sequences [from, until] of
// the dead-letter stream (until 0: to its end).
func listDeadLetters(ctx context.Context, js jetstream.JetStream, t *Target, from, until uint64) ([]DeadLetter, error) {
	stream, subjects, err := deadLetterStream(t)
	if err != nil {
		return nil, err
	}
	markers, err := readMarkers(ctx, js, stream)
	if err != nil {
		return nil, err
	}
	who := t.Namespace + "/" + t.Subscription
	var out []DeadLetter
	var decodeErr error
	err = readStream(ctx, js, stream, subjects, from, until, func(m jetstream.Msg) bool {
		ev, err := ce.SDKEvent(m.Headers(), m.Data())
		if err != nil {
			return true
		}
		e := &ev
		if ext(e, ce.ExtSubscription) != who {
			return true
		}
		md, err := m.Metadata()
		if err != nil {
			decodeErr = err
			return false
		}
		dl := DeadLetter{
			Seq: md.Sequence.Stream, DeadLetteredAt: md.Timestamp,
			ID: e.ID(), Type: e.Type(), Source: e.Source(),
			Code: ext(e, ce.ExtErrorCode), Destination: ext(e, ce.ExtErrorDest),
			Event: e, header: m.Headers(), data: m.Data(),
		}
		if at, err := time.Parse(time.RFC3339, ext(e, ce.ExtDeadLetteredAt)); err == nil {
			dl.DeadLetteredAt = at
		}
		dl.Attempts, _ = strconv.Atoi(ext(e, ce.ExtAttempts))
		if b, err := base64.StdEncoding.DecodeString(ext(e, ce.ExtErrorData)); err == nil {
			dl.Error = string(b)
		}
		if mk, ok := markers[dl.Seq]; ok {
			at := mk.At
			dl.Redriven = &at
		}
		out = append(out, dl)
		return true
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("dead-letter Topic %s has no stream in this NATS server", t.DeadLetterTopic)
	}
	if err == nil {
		err = decodeErr
	}
	return out, err
}

// ext is the string value of extension name of e; "" when absent.
func ext(e *event.Event, name string) string {
	v, ok := e.Extensions()[name]
	if !ok {
		return ""
	}
	return fmt.Sprint(v)
}

// readMarkers returns the redrive markers of stream's dead letters by
// sequence; none when the bucket does not exist yet.
func readMarkers(ctx context.Context, js jetstream.JetStream, stream string) (map[uint64]marker, error) {
	out := map[uint64]marker{}
	kv, err := js.KeyValue(ctx, MarkerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeysFiltered(ctx, stream+".*")
	if err != nil {
		return nil, err
	}
	for key := range keys.Keys() {
		seq, err := strconv.ParseUint(strings.TrimPrefix(key, stream+"."), 10, 64)
		if err != nil {
			continue
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var mk marker
		if json.Unmarshal(e.Value(), &mk) == nil {
			out[seq] = mk
		}
	}
	return out, nil
}

// Selection picks dead letters to redrive. Zero fields select everything
// not redriven yet.
type Selection struct {
	// IDs, when set, are the CloudEvent ids to take.
	IDs []string
	// Since and Until bound DeadLetteredAt (inclusive); zero is open.
	Since, Until time.Time
	// Filter is a CESQL expression the dead letter (with its extensions)
	// must satisfy; nil takes all.
	Filter cesql.Expression
	// Again takes dead letters that were redriven before.
	Again bool
}

// Match reports whether s selects dl.
func (s *Selection) Match(dl *DeadLetter) bool {
	switch {
	case dl.Redriven != nil && !s.Again,
		len(s.IDs) > 0 && !slices.Contains(s.IDs, dl.ID),
		!s.Since.IsZero() && dl.DeadLetteredAt.Before(s.Since),
		!s.Until.IsZero() && dl.DeadLetteredAt.After(s.Until):
		return false
	}
	if s.Filter != nil {
		v, err := s.Filter.Evaluate(*dl.Event)
		if err != nil {
			return false
		}
		b, ok := v.(bool)
		return ok && b
	}
	return true
}

// Redrive copies dls to t's redelivery subject, paced by opts.Rate, and
// marks each as redriven once its copy is stored; done is called for each
// (also in a dry run, which publishes and marks nothing). It returns how
// many were redriven.
func Redrive(ctx context.Context, js jetstream.JetStream, t *Target, dls []DeadLetter, opts Options, done func(*DeadLetter)) (int, error) {
	stream, _, err := deadLetterStream(t)
	if err != nil {
		return 0, err
	}
	var kv jetstream.KeyValue
	if !opts.DryRun && len(dls) > 0 {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: MarkerBucket, History: 1,
			Description: "Herald: dead letters that were redriven"})
		if err != nil {
			return 0, fmt.Errorf("open the redrive markers (bucket %s): %w", MarkerBucket, err)
		}
	}
	lim := opts.limiter()
	n := 0
	for i := range dls {
		dl := &dls[i]
		if opts.DryRun {
			if done != nil {
				done(dl)
			}
			n++
			continue
		}
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return n, err
			}
		}
		seq, err := publishCopy(ctx, js, t, "redrive", opts.RunID, dl.Seq, dl.header, dl.data, isDeadLetterHeader)
		if err != nil {
			return n, fmt.Errorf("redrive dead letter %d (id %s): %w", dl.Seq, dl.ID, err)
		}
		now := time.Now().UTC()
		b, _ := json.Marshal(marker{At: now, Subscription: t.Namespace + "/" + t.Subscription, Seq: seq})
		if _, err := kv.Put(ctx, stream+"."+strconv.FormatUint(dl.Seq, 10), b); err != nil {
			return n, fmt.Errorf("mark dead letter %d (id %s) redriven: %w", dl.Seq, dl.ID, err)
		}
		dl.Redriven = &now
		n++
		if done != nil {
			done(dl)
		}
	}
	return n, nil
}

// isDeadLetterHeader reports whether stored header key holds one of the
// dead-letter extensions.
func isDeadLetterHeader(key string) bool {
	name, ok := strings.CutPrefix(strings.ToLower(key), "ce-")
	return ok && slices.Contains(ce.DeadLetterExtensions, name)
}
