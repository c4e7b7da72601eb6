package sources

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // IANA timezones in images without /usr/share/zoneinfo

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/robfig/cron/v3"

	"github.com/herald-dev/herald/api/v1alpha1"
)

// PingEventType is the type of the events of a ping source.
const PingEventType = "dev.herald.sources.ping"

// cronParser reads five-field schedules and descriptors (@hourly, @every 10s).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ValidateSchedule checks a ping schedule and timezone; the error carries
// the cron parser's or timezone database's message, for status.
func ValidateSchedule(schedule, timezone string) error {
	_, err := parseSchedule(schedule, timezone)
	return err
}

// ValidatePing checks a ping spec: schedule, timezone, and data or
// dataBase64 (not both; dataBase64 must decode).
func ValidatePing(spec *v1alpha1.PingSource) error {
	if err := ValidateSchedule(spec.Schedule, spec.Timezone); err != nil {
		return err
	}
	_, _, err := pingData(spec)
	return err
}

// parseSchedule parses schedule in timezone (default UTC). A schedule may
// instead carry its own CRON_TZ= or TZ= prefix, but not both.
func parseSchedule(schedule, timezone string) (cron.Schedule, error) {
	s := strings.TrimSpace(schedule)
	if s == "" {
		return nil, errors.New("schedule is empty")
	}
	prefixed := strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=")
	switch {
	case prefixed && timezone != "":
		return nil, fmt.Errorf("schedule %q has a CRON_TZ= prefix and timezone is %q: set one of them", schedule, timezone)
	case !prefixed:
		if timezone == "" {
			timezone = "UTC"
		}
		if _, err := time.LoadLocation(timezone); err != nil {
			return nil, fmt.Errorf("timezone %q: %w", timezone, err)
		}
		s = "CRON_TZ=" + timezone + " " + s
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", schedule, err)
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		return alignedEvery(every.Delay), nil
	}
	return sched, nil
}

// alignedEvery is @every d with ticks at whole multiples of d (counted from
// the zero time; for a d that divides a day, at wall-clock multiples), so
// that every replica and a restarted adapter agree on the tick times, and
// thus on the event ids.
type alignedEvery time.Duration

func (a alignedEvery) Next(t time.Time) time.Time {
	d := time.Duration(a)
	return t.Truncate(d).Add(d)
}

// pingData is the data and content type a ping spec sends.
func pingData(spec *v1alpha1.PingSource) ([]byte, string, error) {
	var data []byte
	switch {
	case spec.Data != "" && spec.DataBase64 != "":
		return nil, "", errors.New("set data or dataBase64, not both")
	case spec.Data != "":
		data = []byte(spec.Data)
	case spec.DataBase64 != "":
		b, err := base64.StdEncoding.DecodeString(spec.DataBase64)
		if err != nil {
			return nil, "", fmt.Errorf("dataBase64: %w", err)
		}
		data = b
	default:
		return nil, "", nil
	}
	ct := spec.ContentType
	if ct == "" {
		ct = "application/json"
	}
	return data, ct, nil
}

// Ping sends one event per tick of a cron schedule.
//
// Event attributes: type dev.herald.sources.ping; source the EventSource's
// path (SourcePath); id <name>-<unix seconds of the scheduled tick>; time
// the scheduled tick (UTC); data and datacontenttype from the spec (none
// when it sets no data). Ticks missed while a send was still retrying are
// skipped, not sent late.
type Ping struct {
	name, source string
	sched        cron.Schedule
	data         []byte
	contentType  string
	sender       *Sender
	log          *slog.Logger
	ready        atomic.Bool
	now          func() time.Time
}

var _ ReadyChecker = (*Ping)(nil)

// NewPing returns the ping source of cfg (cfg.Ping must be set).
func NewPing(cfg Config, opts Options) (*Ping, error) {
	if cfg.Ping == nil {
		return nil, errors.New("ping: no ping spec")
	}
	sched, err := parseSchedule(cfg.Ping.Schedule, cfg.Ping.Timezone)
	if err != nil {
		return nil, err
	}
	data, ct, err := pingData(cfg.Ping)
	if err != nil {
		return nil, err
	}
	cfg.Type = v1alpha1.EventSourceTypePing
	sender, err := NewSenderFor(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &Ping{
		name:        cfg.Name,
		source:      SourcePath(cfg.Namespace, cfg.Name),
		sched:       sched,
		data:        data,
		contentType: ct,
		sender:      sender,
		log:         opts.logger().With("eventsource", cfg.Namespace+"/"+cfg.Name, "type", "ping"),
		now:         time.Now,
	}, nil
}

// Ready reports whether the schedule is armed.
func (p *Ping) Ready() bool { return p.ready.Load() }

// Event is the event of the tick at t.
func (p *Ping) Event(t time.Time) event.Event {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(fmt.Sprintf("%s-%d", p.name, t.Unix()))
	e.SetSource(p.source)
	e.SetType(PingEventType)
	e.SetTime(t.UTC())
	if p.data != nil {
		_ = e.SetData(p.contentType, p.data)
	}
	return e
}

// Run sends an event at every tick until ctx ends.
func (p *Ping) Run(ctx context.Context) error {
	sendCtx, cancel := DrainContext(ctx, ShutdownGrace)
	defer cancel()
	next := p.sched.Next(p.now())
	p.ready.Store(true)
	defer p.ready.Store(false)
	p.log.Info("ping source started", "next", next)
	for {
		if !sleepUntil(ctx, next, p.now) {
			return nil
		}
		if err := p.sender.Send(sendCtx, p.Event(next)); err != nil {
			p.log.Error("ping event not sent", "tick", next, "error", err)
		}
		after := p.sched.Next(maxTime(p.now(), next))
		if skipped := countTicks(p.sched, next, after); skipped > 0 {
			p.log.Warn("ticks skipped while sending", "skipped", skipped, "next", after)
		}
		next = after
	}
}

// sleepUntil waits until the wall clock reaches t; false when ctx ended.
func sleepUntil(ctx context.Context, t time.Time, now func() time.Time) bool {
	for {
		d := t.Sub(now())
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// countTicks counts the ticks strictly between from and to (at most 1000).
func countTicks(s cron.Schedule, from, to time.Time) int {
	n := 0
	for t := s.Next(from); t.Before(to) && n < 1000; t = s.Next(t) {
		n++
	}
	return n
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
