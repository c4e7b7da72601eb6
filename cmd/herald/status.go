package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

func init() {
	commands["status"] = func(ctx context.Context, args []string) error {
		return runStatus(ctx, args, os.Getenv, os.Stdout)
	}
}

const statusUsage = `Usage: herald status [flags] [[namespace/]topic]

Shows how events flow through Topics and Subscriptions: each Topic's
ingress rate and what its stream holds, each Subscription's delivery rate,
lag, events in flight and dead letters. The figures come straight from
NATS (herald dev's embedded server, or a cluster's with --nats-url), the
Topics and Subscriptions from the plans the control plane applied.

  herald status                      namespace default
  herald status -A --watch           every namespace, redrawn every --interval
  herald status shop/orders -o json  one Topic and its Subscriptions

Rates are per second over a window, as kubectl top reports them: herald
status samples twice, --interval apart (default 1s), before it prints.
--interval 0 samples once and leaves the rates blank. --watch redraws
every --interval with the rates of the last interval.

Topic columns:
  IN/S          events stored in the Topic's stream per second
  EVENTS, SIZE  events and bytes the stream holds now
  LAST EVENT    when the newest of them was stored
Subscription columns:
  OUT/S         events handed to the Subscription's dispatcher per second,
                retries included (every delivery of its JetStream consumer)
  LAG           events not yet delivered (the consumer's pending count)
  IN FLIGHT     delivered and not yet acknowledged: being delivered, queued
                in a dispatcher, or waiting out a retry's backoff
  REDELIVERED   of those in flight, events delivered more than once
  DEAD LETTERS  events dead-lettered since the Subscription was created
  STATE         active, paused, or "no consumer" (not provisioned yet)

-o json prints one document per sample (one line per refresh with --watch):
  {"time", "rateWindowSeconds",
   "topics": [{"namespace", "name", "stream", "eventsPerSecond", "events",
     "bytes", "firstSequence", "lastSequence", "firstEventTime",
     "lastEventTime", "subscriptionCount", "problem"}],
   "subscriptions": [{"namespace", "name", "topic", "consumer",
     "deliveriesPerSecond", "pending", "ackPending", "redelivered",
     "deadLetters", "lastDeadLetterTime", "lastDeliveryTime",
     "waitingPulls", "paused", "problem"}]}
Rates and rateWindowSeconds are null without a second sample, times null
when there is none; problem is left out when there is none.

Flags:
`

// statusConfig is herald status's validated configuration.
type statusConfig struct {
	toolNATS
	// Namespace scopes the Topics shown; empty with AllNamespaces.
	Namespace     string
	AllNamespaces bool
	// Topic, when set, shows that Topic of Namespace alone.
	Topic string
	// Watch redraws every Interval until interrupted.
	Watch bool
	// Interval separates the two samples rates come from, and the refreshes
	// of Watch; 0 (without Watch) samples once.
	Interval time.Duration
	// Output is table or json.
	Output string
}

func parseStatusConfig(args []string, getenv func(string) string) (statusConfig, error) {
	c := statusConfig{}
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), statusUsage)
		fs.PrintDefaults()
	}
	c.registerToolNATS(fs, getenv)
	fs.StringVar(&c.Namespace, "namespace", "default", "show the Topics of this namespace")
	fs.StringVar(&c.Namespace, "n", "default", "shorthand for --namespace")
	fs.BoolVar(&c.AllNamespaces, "all-namespaces", false, "show the Topics of every namespace")
	fs.BoolVar(&c.AllNamespaces, "A", false, "shorthand for --all-namespaces")
	fs.BoolVar(&c.Watch, "watch", false, "redraw every --interval until interrupted")
	fs.BoolVar(&c.Watch, "w", false, "shorthand for --watch")
	fs.DurationVar(&c.Interval, "interval", time.Second, "time between the two samples rates come from, and between refreshes with --watch (0: one sample, no rates)")
	fs.StringVar(&c.Output, "output", "table", "table or json")
	fs.StringVar(&c.Output, "o", "table", "shorthand for --output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	nsSet := false
	fs.Visit(func(f *flag.Flag) { nsSet = nsSet || f.Name == "namespace" || f.Name == "n" })
	switch {
	case len(pos) > 1:
		fs.Usage()
		return c, errors.New("name at most one Topic, as [namespace/]topic")
	case len(pos) == 1:
		if c.AllNamespaces {
			return c, errors.New("a Topic cannot be named with --all-namespaces: name it as namespace/topic")
		}
		c.Topic = pos[0]
		if ns, name, ok := strings.Cut(pos[0], "/"); ok {
			if nsSet && ns != c.Namespace {
				return c, fmt.Errorf("%q is in namespace %s, not --namespace %s", pos[0], ns, c.Namespace)
			}
			c.Namespace, c.Topic = ns, name
		}
		if c.Namespace == "" || c.Topic == "" || strings.ContainsAny(c.Topic, "/.*> ") {
			return c, fmt.Errorf("%q is not [namespace/]topic", pos[0])
		}
	}
	if c.AllNamespaces {
		if nsSet {
			return c, errors.New("--namespace and --all-namespaces exclude each other")
		}
		c.Namespace = ""
	} else if c.Namespace == "" || strings.ContainsAny(c.Namespace, "/.*> ") {
		return c, fmt.Errorf("--namespace %q is no namespace", c.Namespace)
	}
	switch {
	case c.Interval < 0:
		return c, errors.New("--interval must not be negative")
	case c.Watch && c.Interval < 100*time.Millisecond:
		return c, errors.New("--watch needs an --interval of at least 100ms")
	}
	if c.Output != "table" && c.Output != "json" {
		return c, fmt.Errorf("--output %q: want table or json", c.Output)
	}
	return c, nil
}

func runStatus(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	c, err := parseStatusConfig(args, getenv)
	if err != nil {
		return err
	}
	nc, js, err := c.connect("herald status")
	if err != nil {
		return err
	}
	defer nc.Close()
	r := newStatusReader(js, c.Namespace, c.Topic)
	if !c.Watch {
		return statusOnce(ctx, c, r, out)
	}
	return statusWatch(ctx, c, r, out, isTerminal(out))
}

// statusOnce prints one report, from two samples Interval apart unless
// Interval is 0.
func statusOnce(ctx context.Context, c statusConfig, r *statusReader, out io.Writer) error {
	first, err := r.sample(ctx)
	if err == nil {
		err = first.missing()
	}
	if err != nil {
		return err
	}
	var prev *statusSample
	cur := first
	if c.Interval > 0 {
		if !sleepCtx(ctx, c.Interval) {
			return ctx.Err()
		}
		if cur, err = r.sample(ctx); err != nil {
			return err
		}
		prev = first
	}
	rep := buildStatusReport(prev, cur)
	if c.Output == "json" {
		return writeStatusJSON(out, rep, true)
	}
	return writeStatusTable(out, rep, c.scope(), cur.at)
}

// statusWatch samples every Interval and prints each report: a table
// redrawn in place on a terminal, one after another elsewhere, or one JSON
// line each. A failed sample is reported and the next one tried; it
// returns when ctx is done.
func statusWatch(ctx context.Context, c statusConfig, r *statusReader, out io.Writer, terminal bool) error {
	var prev *statusSample
	var frame bytes.Buffer
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for first := true; ; first = false {
		cur, err := r.sample(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = cur.missing()
		}
		frame.Reset()
		if c.Output == "json" {
			if err != nil {
				fmt.Fprintf(os.Stderr, "herald status: %v\n", err)
			} else if err := writeStatusJSON(&frame, buildStatusReport(prev, cur), false); err != nil {
				return err
			}
		} else {
			now := time.Now()
			fmt.Fprintf(&frame, "Every %s: herald status %s    %s    %s\n\n", c.Interval, c.scope(), redactURLs(c.NATSURL), now.Format(time.TimeOnly))
			if err != nil {
				fmt.Fprintf(&frame, "error: %v\n", err)
			} else if err := writeStatusTable(&frame, buildStatusReport(prev, cur), c.scope(), cur.at); err != nil {
				return err
			}
		}
		data := frame.Bytes()
		switch {
		case c.Output == "json":
		case terminal:
			data = redraw(data, first)
		case !first:
			data = append([]byte("\n"), data...)
		}
		if _, err := out.Write(data); err != nil {
			return err
		}
		if err == nil {
			prev = cur
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// scope describes what c shows, as a table's title and its empty message
// name it.
func (c statusConfig) scope() string {
	switch {
	case c.Topic != "":
		return c.Namespace + "/" + c.Topic
	case c.Namespace == "":
		return "--all-namespaces"
	default:
		return "--namespace " + c.Namespace
	}
}

// redraw turns frame into what redraws a terminal in place: the cursor
// home, each line cleared to its end, and whatever the last frame left
// below cleared; the first frame clears the screen.
func redraw(frame []byte, first bool) []byte {
	var b bytes.Buffer
	if first {
		b.WriteString("\x1b[2J")
	}
	b.WriteString("\x1b[H")
	for line := range strings.Lines(string(frame)) {
		b.WriteString(strings.TrimSuffix(line, "\n"))
		b.WriteString("\x1b[K\n")
	}
	b.WriteString("\x1b[J")
	return b.Bytes()
}

// redactURLs is a comma-separated list of URLs with their passwords
// masked, fit for a screen.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// isTerminal reports whether out is a terminal, where --watch redraws.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// sleepCtx waits d; false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
