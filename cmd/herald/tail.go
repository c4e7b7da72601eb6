package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/devmode"
	"github.com/herald-dev/herald/plan"
)

func init() {
	commands["tail"] = func(ctx context.Context, args []string) error {
		cfg, err := parseTailConfig(args, os.Getenv)
		if err != nil {
			return err
		}
		return runTail(ctx, cfg, os.Stdout)
	}
}

const tailUsage = `Usage: herald tail [flags] [namespace/]topic

Prints a Topic's events as they arrive, read straight from its JetStream
stream with an ephemeral consumer: nothing is acknowledged and no
Subscription is affected. With --from earliest it replays what the Topic
still holds; on a dead-letter Topic that shows each failed event with the
knativeerror* extensions saying where and why it failed.

Flags:
`

// tailConfig is herald tail's validated configuration.
type tailConfig struct {
	toolNATS
	Namespace string
	Topic     string
	// From is new, earliest, or a start time.
	From      string
	StartTime time.Time
	// Count stops after this many events; 0 follows until interrupted.
	Count int
}

func parseTailConfig(args []string, getenv func(string) string) (tailConfig, error) {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tailUsage)
		fs.PrintDefaults()
	}
	c := tailConfig{}
	c.registerToolNATS(fs, getenv)
	fs.StringVar(&c.From, "from", "new", "where to start: new (events from now on), earliest, or an RFC 3339 time")
	fs.IntVar(&c.Count, "n", 0, "stop after this many events (0: follow until interrupted)")
	if err := fs.Parse(args); err != nil {
		return tailConfig{}, err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return tailConfig{}, errors.New("name one Topic as [namespace/]topic")
	}
	var err error
	if c.Namespace, c.Topic, err = parseRef(fs.Arg(0), "topic"); err != nil {
		return tailConfig{}, err
	}
	switch c.From {
	case "new", "earliest":
	default:
		t, err := time.Parse(time.RFC3339Nano, c.From)
		if err != nil {
			return tailConfig{}, fmt.Errorf("--from %q: want new, earliest or an RFC 3339 time", c.From)
		}
		c.StartTime = t
	}
	if c.Count < 0 {
		return tailConfig{}, errors.New("-n must not be negative")
	}
	return c, nil
}

func runTail(ctx context.Context, c tailConfig, out io.Writer) error {
	nc, js, err := c.connect("herald tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	// Delayed events show when they are due, not while their schedule waits.
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubjects: append(plan.EventSubjects(c.Namespace, c.Topic), plan.RedeliverySubjects(c.Namespace, c.Topic))}
	switch {
	case c.From == "earliest":
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case !c.StartTime.IsZero():
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &c.StartTime
	}
	stream := plan.StreamName(c.Namespace, c.Topic)
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("topic %s/%s has no stream in this NATS server", c.Namespace, c.Topic)
	}
	if err != nil {
		return fmt.Errorf("read topic %s/%s: %w", c.Namespace, c.Topic, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for n := 0; c.Count == 0 || n < c.Count; n++ {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		e, err := devmode.EventFromBinary(msg.Headers(), msg.Data())
		if err != nil {
			fmt.Fprintf(out, "(message %s is no CloudEvent: %v)\n", msgSeq(msg), err)
			continue
		}
		var b strings.Builder
		devmode.FormatEvent(&b, e, "")
		_, _ = io.WriteString(out, b.String())
	}
	it.Stop()
	return nil
}

func msgSeq(m jetstream.Msg) string {
	if md, err := m.Metadata(); err == nil {
		return fmt.Sprint(md.Sequence.Stream)
	}
	return "?"
}
