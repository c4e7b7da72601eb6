package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/herald-dev/herald/devmode"
	"github.com/herald-dev/herald/plan"
	"github.com/herald-dev/herald/replay"
)

func init() {
	commands["deadletters"] = func(ctx context.Context, args []string) error {
		return runDeadLetters(ctx, args, os.Getenv, os.Stdout)
	}
}

const deadLettersUsage = `Usage:
  herald deadletters list [flags] [namespace/]subscription
  herald deadletters show [flags] [namespace/]subscription ID
  herald deadletters redrive [flags] [namespace/]subscription

Reads a Subscription's dead letters from its dead-letter Topic (its
delivery.deadLetterSink, or its Topic's, must be a ref to a Topic) and
redrives them: each selected dead letter is delivered again to that
Subscription alone, without the dead-letter extensions, with its delivery
policy (retries, backoff, a dead letter again if it still fails). A
redriven dead letter is marked and not redriven by a later run unless
--again. Works against herald dev and, with the NATS port forwarded, a
cluster.

Flags:
`

// deadLettersConfig is herald deadletters' validated configuration.
type deadLettersConfig struct {
	toolNATS
	Verb                   string
	Namespace, Name        string
	ID                     string
	Output                 string
	DeadLetterTopic        string
	IDs                    []string
	Since, Until           time.Time
	Filter                 string
	Rate                   float64
	DryRun, Again, ShowAll bool
}

// idList is a repeatable --id flag.
type idList []string

func (l *idList) String() string     { return strings.Join(*l, ",") }
func (l *idList) Set(v string) error { *l = append(*l, v); return nil }

func parseDeadLettersConfig(args []string, getenv func(string) string) (deadLettersConfig, error) {
	c := deadLettersConfig{}
	fs := flag.NewFlagSet("deadletters", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), deadLettersUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return c, errors.New("name a verb: list, show or redrive")
	}
	c.Verb = args[0]
	switch c.Verb {
	case "list", "show", "redrive":
	default:
		fs.Usage()
		return c, fmt.Errorf("unknown verb %q: want list, show or redrive", c.Verb)
	}
	c.registerToolNATS(fs, getenv)
	fs.StringVar(&c.DeadLetterTopic, "dead-letter-topic", "", "namespace/name of the dead-letter Topic, when the Subscription's sink is a URI rather than a ref to a Topic")
	fs.StringVar(&c.Output, "output", "table", "list and show: table or json")
	fs.StringVar(&c.Output, "o", "table", "shorthand for --output")
	fs.BoolVar(&c.ShowAll, "all", false, "list: include dead letters already redriven")
	var ids idList
	fs.Var(&ids, "id", "redrive: only the dead letter with this CloudEvent id (repeatable)")
	since := fs.String("since", "", "redrive: only dead letters dead-lettered at or after this RFC 3339 time")
	until := fs.String("until", "", "redrive: only dead letters dead-lettered at or before this RFC 3339 time")
	fs.StringVar(&c.Filter, "filter", "", "redrive: only dead letters matching this CESQL expression (extensions included)")
	rateFlag := fs.String("rate", "", "redrive: at most this many events per second, e.g. 50/s")
	fs.BoolVar(&c.DryRun, "dry-run", false, "redrive: print what would be redriven and change nothing")
	fs.BoolVar(&c.Again, "again", false, "redrive: also dead letters redriven before")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return c, err
	}
	want := 1
	if c.Verb == "show" {
		want = 2
	}
	if len(pos) != want {
		fs.Usage()
		if want == 2 {
			return c, errors.New("name the Subscription as [namespace/]subscription and the dead letter's ID")
		}
		return c, errors.New("name one Subscription as [namespace/]subscription")
	}
	if c.Namespace, c.Name, err = parseRef(pos[0], "subscription"); err != nil {
		return c, err
	}
	if want == 2 {
		c.ID = pos[1]
	}
	if c.Output != "table" && c.Output != "json" {
		return c, fmt.Errorf("--output %q: want table or json", c.Output)
	}
	if c.DeadLetterTopic != "" {
		if ns, name, ok := strings.Cut(c.DeadLetterTopic, "/"); !ok || ns == "" || name == "" {
			return c, fmt.Errorf("--dead-letter-topic %q: want namespace/name", c.DeadLetterTopic)
		}
	}
	c.IDs = ids
	for _, tf := range []struct {
		name string
		v    string
		dst  *time.Time
	}{{"since", *since, &c.Since}, {"until", *until, &c.Until}} {
		if tf.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, tf.v)
		if err != nil {
			return c, fmt.Errorf("--%s %q: want an RFC 3339 time", tf.name, tf.v)
		}
		*tf.dst = t
	}
	if !c.Since.IsZero() && !c.Until.IsZero() && c.Until.Before(c.Since) {
		return c, errors.New("--until is before --since")
	}
	if *rateFlag != "" {
		r, err := strconv.ParseFloat(strings.TrimSuffix(*rateFlag, "/s"), 64)
		if err != nil || r <= 0 {
			return c, fmt.Errorf("--rate %q: want events per second, e.g. 50/s", *rateFlag)
		}
		c.Rate = r
	}
	if c.Filter != "" {
		if _, err := plan.ParseCESQL(c.Filter); err != nil {
			return c, fmt.Errorf("--filter: %w", err)
		}
	}
	return c, nil
}

func runDeadLetters(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	c, err := parseDeadLettersConfig(args, getenv)
	if err != nil {
		return err
	}
	nc, js, err := c.connect("herald deadletters")
	if err != nil {
		return err
	}
	defer nc.Close()
	t, err := replay.FindTarget(ctx, js, c.Namespace, c.Name)
	if err != nil {
		return err
	}
	if c.DeadLetterTopic != "" {
		t.DeadLetterTopic = c.DeadLetterTopic
	}
	dls, err := replay.ListDeadLetters(ctx, js, t)
	if err != nil {
		return err
	}
	switch c.Verb {
	case "list":
		if !c.ShowAll {
			kept := dls[:0]
			for _, dl := range dls {
				if dl.Redriven == nil {
					kept = append(kept, dl)
				}
			}
			dls = kept
		}
		return printDeadLetters(out, c.Output, dls)
	case "show":
		for i := range dls {
			if dls[i].ID == c.ID {
				return showDeadLetter(out, c.Output, &dls[i])
			}
		}
		return fmt.Errorf("subscription %s/%s has no dead letter with id %q in %s", c.Namespace, c.Name, c.ID, t.DeadLetterTopic)
	}
	sel := replay.Selection{IDs: c.IDs, Since: c.Since, Until: c.Until, Again: c.Again}
	if c.Filter != "" {
		sel.Filter, _ = plan.ParseCESQL(c.Filter)
	}
	var picked []replay.DeadLetter
	for i := range dls {
		if sel.Match(&dls[i]) {
			picked = append(picked, dls[i])
		}
	}
	verb := "redriven"
	if c.DryRun {
		verb = "would redrive"
	}
	n, err := replay.Redrive(ctx, js, t, picked, replay.Options{RunID: runID(), Rate: c.Rate, DryRun: c.DryRun}, func(dl *replay.DeadLetter) {
		fmt.Fprintf(out, "%s %s (type %s, source %s, dead-lettered %s)\n", verb, dl.ID, dl.Type, dl.Source, dl.DeadLetteredAt.Format(time.RFC3339))
	})
	fmt.Fprintf(out, "%d of %d dead letters of %s/%s %s to %s\n", n, len(dls), c.Namespace, c.Name, verb, t.Subject)
	return err
}

// parseInterspersed parses fs's flags wherever they stand among args, as
// kubectl does, and returns the other arguments in order; "--" ends the
// flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// runID names one redrive run in the message ids of its copies.
func runID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printDeadLetters(out io.Writer, format string, dls []replay.DeadLetter) error {
	if format == "json" {
		if dls == nil {
			dls = []replay.DeadLetter{}
		}
		return printJSON(out, dls)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEAD-LETTERED AT\tID\tTYPE\tSOURCE\tCODE\tATTEMPTS\tREDRIVEN")
	for _, dl := range dls {
		code, redriven := dl.Code, ""
		if code == "" {
			code = "-"
		}
		if dl.Redriven != nil {
			redriven = dl.Redriven.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", dl.DeadLetteredAt.Format(time.RFC3339), dl.ID, dl.Type, dl.Source, code, dl.Attempts, redriven)
	}
	return w.Flush()
}

func showDeadLetter(out io.Writer, format string, dl *replay.DeadLetter) error {
	if format == "json" {
		return printJSON(out, dl)
	}
	fmt.Fprintf(out, "Dead-lettered at: %s\nDestination:      %s\n", dl.DeadLetteredAt.Format(time.RFC3339), dl.Destination)
	code := dl.Code
	if code == "" {
		code = "no response"
	}
	fmt.Fprintf(out, "Last status:      %s\nAttempts:         %d\nError:            %s\n", code, dl.Attempts, dl.Error)
	if dl.Redriven != nil {
		fmt.Fprintf(out, "Redriven at:      %s\n", dl.Redriven.Format(time.RFC3339))
	}
	var b strings.Builder
	devmode.FormatEvent(&b, dl.Event, "")
	_, err := io.WriteString(out, b.String())
	return err
}
