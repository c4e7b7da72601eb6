package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/herald-dev/herald/plan"
)

func init() {
	commands["history"] = func(ctx context.Context, args []string) error {
		return runHistory(ctx, args, os.Getenv, os.Stdout)
	}
}

const historyUsage = `Usage: herald history [flags] [namespace/]topic [ID]

Prints the delivery history of a Topic that keeps one (spec.history):
with an event ID, that event's journey through each Subscription, every
attempt with its time, status or error and latency, and the outcome;
without one, the records matching the flags, oldest first.

  herald history orders order-7
  herald history orders --subscription billing --outcome dead_lettered --since 1h

Outcomes: retried, delivered, dead_lettered, filtered, replayed, redriven.

Flags:
`

// historyConfig is herald history's validated configuration.
type historyConfig struct {
	toolNATS
	Namespace, Topic string
	// ID is the CloudEvent id of the event whose journey is printed; empty
	// lists records.
	ID string
	// Source narrows ID to the events of one source.
	Source string
	// Subscription, Outcome and Since narrow the records read.
	Subscription string
	Outcome      string
	Since        time.Time
	// Limit is the most records listed without an ID.
	Limit  int
	Output string
}

func parseHistoryConfig(args []string, getenv func(string) string, now time.Time) (historyConfig, error) {
	c := historyConfig{}
	fs := flag.NewFlagSet("history", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), historyUsage)
		fs.PrintDefaults()
	}
	c.registerToolNATS(fs, getenv)
	fs.StringVar(&c.Subscription, "subscription", "", "only records of this Subscription")
	fs.StringVar(&c.Outcome, "outcome", "", "only records with this outcome")
	fs.StringVar(&c.Source, "source", "", "only events with this CloudEvents source")
	since := fs.String("since", "", "only records from this long ago (e.g. 1h, 30m) or from this RFC 3339 time")
	fs.IntVar(&c.Limit, "limit", 1000, "without an ID: list at most this many records (0: all)")
	fs.StringVar(&c.Output, "output", "table", "table or json")
	fs.StringVar(&c.Output, "o", "table", "shorthand for --output")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return c, err
	}
	if len(pos) < 1 || len(pos) > 2 {
		fs.Usage()
		return c, errors.New("name a Topic as [namespace/]topic, and optionally an event ID")
	}
	if c.Namespace, c.Topic, err = parseRef(pos[0], "topic"); err != nil {
		return c, err
	}
	if len(pos) == 2 {
		c.ID = pos[1]
		if c.ID == "" {
			return c, errors.New("the event ID is empty")
		}
	}
	if c.Outcome != "" && !slices.Contains(plan.HistoryOutcomes, c.Outcome) {
		return c, fmt.Errorf("--outcome %q: want one of %s", c.Outcome, strings.Join(plan.HistoryOutcomes, ", "))
	}
	if strings.ContainsAny(c.Subscription, "/*> ") {
		return c, fmt.Errorf("--subscription %q: name a Subscription of the Topic's namespace", c.Subscription)
	}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil && d > 0 {
			c.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, *since); err == nil {
			c.Since = t
		} else {
			return c, fmt.Errorf("--since %q: want a duration such as 1h or an RFC 3339 time", *since)
		}
	}
	if c.Limit < 0 {
		return c, errors.New("--limit must not be negative")
	}
	if c.Output != "table" && c.Output != "json" {
		return c, fmt.Errorf("--output %q: want table or json", c.Output)
	}
	return c, nil
}

func runHistory(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	c, err := parseHistoryConfig(args, getenv, time.Now())
	if err != nil {
		return err
	}
	nc, js, err := c.connect("herald history")
	if err != nil {
		return err
	}
	defer nc.Close()
	limit := c.Limit
	if c.ID != "" {
		limit = 0
	}
	recs, more, err := readHistory(ctx, js, c, limit)
	if err != nil {
		return err
	}
	if c.ID != "" {
		journeys := journeysOf(recs)
		if len(journeys) == 0 {
			return fmt.Errorf("no history of an event with id %q in topic %s/%s (kept for spec.history.maxAge)", c.ID, c.Namespace, c.Topic)
		}
		return printJourneys(out, c.Output, journeys)
	}
	if err := printHistoryRecords(out, c.Output, recs); err != nil {
		return err
	}
	if more && c.Output == "table" {
		fmt.Fprintf(os.Stderr, "(first %d records shown; narrow with --since, --subscription or --outcome, or raise --limit)\n", limit)
	}
	return nil
}

// readHistory reads the records of c's Topic matching c, oldest first, at
// most limit of them (0: all); more reports that more matched.
func readHistory(ctx context.Context, js jetstream.JetStream, c historyConfig, limit int) (recs []plan.HistoryRecord, more bool, err error) {
	id, sub, outcome := "*", "*", "*"
	if c.ID != "" {
		id = c.ID
	}
	if c.Subscription != "" {
		sub = c.Subscription
	}
	if c.Outcome != "" {
		outcome = c.Outcome
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{plan.HistorySubject(c.Namespace, c.Topic, id, sub, outcome)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	}
	if !c.Since.IsZero() {
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cfg.OptStartTime = &c.Since
	}
	stream := plan.HistoryStream(c.Namespace, c.Topic)
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("topic %s/%s keeps no delivery history: set spec.history.enabled: true on it", c.Namespace, c.Topic)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the history of topic %s/%s: %w", c.Namespace, c.Topic, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, false, err
	}
	pending := info.NumPending
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 500)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, false, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			pending = md.NumPending
			var r plan.HistoryRecord
			if json.Unmarshal(m.Data(), &r) != nil {
				continue
			}
			if c.ID != "" && r.ID != c.ID || c.Source != "" && r.Source != c.Source {
				continue
			}
			if limit > 0 && len(recs) == limit {
				return recs, true, nil
			}
			recs = append(recs, r)
		}
		if err := batch.Error(); err != nil {
			return nil, false, err
		}
		if n == 0 {
			return nil, false, fmt.Errorf("read the history of topic %s/%s: %d records remain but none arrived", c.Namespace, c.Topic, pending)
		}
	}
	return recs, false, nil
}

// journey is one event's history: its records grouped by Subscription.
type journey struct {
	ID            string              `json:"id"`
	Source        string              `json:"source"`
	Type          string              `json:"type,omitempty"`
	Subscriptions []subscriptionTrail `json:"subscriptions"`
}

// subscriptionTrail is what happened to an event for one Subscription.
type subscriptionTrail struct {
	Name string `json:"name"`
	// Outcome is the last record's outcome.
	Outcome string `json:"outcome"`
	// Attempts counts the delivery attempts.
	Attempts int                  `json:"attempts"`
	Records  []plan.HistoryRecord `json:"records"`
}

// journeysOf groups recs by event (source and id) and Subscription, each
// Subscription's records in time order.
func journeysOf(recs []plan.HistoryRecord) []journey {
	var js []journey
	index := map[[2]string]int{}
	for _, r := range recs {
		k := [2]string{r.Source, r.ID}
		i, ok := index[k]
		if !ok {
			i = len(js)
			index[k] = i
			js = append(js, journey{ID: r.ID, Source: r.Source, Type: r.Type})
		}
		j := &js[i]
		t := slices.IndexFunc(j.Subscriptions, func(s subscriptionTrail) bool { return s.Name == r.Subscription })
		if t < 0 {
			t = len(j.Subscriptions)
			j.Subscriptions = append(j.Subscriptions, subscriptionTrail{Name: r.Subscription})
		}
		s := &j.Subscriptions[t]
		s.Records = append(s.Records, r)
		if r.Attempt > 0 {
			s.Attempts++
		}
	}
	for i := range js {
		slices.SortFunc(js[i].Subscriptions, func(a, b subscriptionTrail) int { return strings.Compare(a.Name, b.Name) })
		// Records of one Subscription come from its dispatchers and from
		// replays and redrives, which need not reach the history in the
		// order they happened.
		for k := range js[i].Subscriptions {
			s := &js[i].Subscriptions[k]
			slices.SortStableFunc(s.Records, func(a, b plan.HistoryRecord) int { return a.Time.Compare(b.Time) })
			s.Outcome = s.Records[len(s.Records)-1].Outcome
		}
	}
	return js
}

func printJourneys(out io.Writer, format string, journeys []journey) error {
	if format == "json" {
		return printJSON(out, journeys)
	}
	for i, j := range journeys {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "Event %s  source %s  type %s\n", j.ID, j.Source, j.Type)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "SUBSCRIPTION\tATTEMPT\tTIME\tOUTCOME\tSTATUS\tLATENCY\tDETAIL")
		for _, s := range j.Subscriptions {
			for _, r := range s.Records {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, attemptCell(r), r.Time.Format("2006-01-02T15:04:05.000Z07:00"),
					r.Outcome, statusCell(r), latencyCell(r), detailCell(r))
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func printHistoryRecords(out io.Writer, format string, recs []plan.HistoryRecord) error {
	if format == "json" {
		if recs == nil {
			recs = []plan.HistoryRecord{}
		}
		return printJSON(out, recs)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tSUBSCRIPTION\tID\tSOURCE\tATTEMPT\tOUTCOME\tSTATUS\tLATENCY\tDETAIL")
	for _, r := range recs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format("2006-01-02T15:04:05.000Z07:00"), r.Subscription, r.ID, r.Source,
			attemptCell(r), r.Outcome, statusCell(r), latencyCell(r), detailCell(r))
	}
	return w.Flush()
}

func attemptCell(r plan.HistoryRecord) string {
	if r.Attempt == 0 {
		return "-"
	}
	return strconv.Itoa(r.Attempt)
}

func statusCell(r plan.HistoryRecord) string {
	if r.Status == 0 {
		return "-"
	}
	return strconv.Itoa(r.Status)
}

func latencyCell(r plan.HistoryRecord) string {
	if r.LatencyMillis == 0 {
		return "-"
	}
	return (time.Duration(r.LatencyMillis * float64(time.Millisecond))).Round(10 * time.Microsecond).String()
}

// detailCell says why an attempt failed, where a failed reply or
// dead-letter request went, or where a copy came from.
func detailCell(r plan.HistoryRecord) string {
	var parts []string
	if r.Error != "" {
		parts = append(parts, r.Error)
	}
	if r.From != 0 {
		parts = append(parts, "copy of #"+strconv.FormatUint(r.From, 10)+" stored as #"+strconv.FormatUint(r.Sequence, 10))
	}
	if (r.Outcome == plan.HistoryRetried || r.Outcome == plan.HistoryDeadLettered) && r.Destination != "" {
		parts = append(parts, "at "+r.Destination)
	}
	return strings.Join(parts, "; ")
}
