// Command dashboard-preview renders Herald's Grafana dashboard and alerts
// as text against live metrics: it scrapes /metrics endpoints for a while,
// keeps the samples in memory, and evaluates every panel's queries and
// every alert's expression with Prometheus's PromQL engine, printing a
// table per panel. No Prometheus or Grafana is needed; run.sh beside it
// drives herald dev, a dispatcher and a stream of events for it.
//
//	go run ./hack/dashboard-preview -for 2m \
//	  -target job=herald-dispatcher,namespace=default,pod=dispatcher-0,url=http://127.0.0.1:9090/metrics
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard-preview:", err)
		os.Exit(1)
	}
}

// config is the command line, validated.
type config struct {
	targets      []target
	duration     time.Duration
	every        time.Duration
	rateInterval time.Duration
	dashboard    string
	alerts       string
	vars         map[string]string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("dashboard-preview", flag.ContinueOnError)
	var targets, vars listFlag
	fs.Var(&targets, "target", "a /metrics endpoint with its target labels: job=NAME,label=value,...,url=URL; repeatable")
	fs.Var(&vars, "var", "a dashboard variable's value, name=regex (default .*); repeatable")
	c := config{vars: map[string]string{}}
	fs.DurationVar(&c.duration, "for", 2*time.Minute, "how long to scrape before evaluating")
	fs.DurationVar(&c.every, "every", 5*time.Second, "scrape interval, and the step of the panels' range queries")
	fs.DurationVar(&c.rateInterval, "rate-interval", 0, "value of $__rate_interval (default 4 × -every)")
	fs.StringVar(&c.dashboard, "dashboard", "charts/herald/files/herald-dashboard.json", "Grafana dashboard JSON")
	fs.StringVar(&c.alerts, "alerts", "charts/herald/files/herald-alerts.yaml", "Prometheus rule file")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if len(targets) == 0 {
		return config{}, errors.New("name at least one -target")
	}
	for _, s := range targets {
		t, err := parseTarget(s)
		if err != nil {
			return config{}, err
		}
		c.targets = append(c.targets, t)
	}
	for _, v := range vars {
		k, val, ok := strings.Cut(v, "=")
		if !ok {
			return config{}, fmt.Errorf("-var %q is not name=regex", v)
		}
		c.vars[k] = val
	}
	if c.every <= 0 || c.duration < 2*c.every {
		return config{}, errors.New("-for must be at least two -every")
	}
	if c.rateInterval == 0 {
		c.rateInterval = 4 * c.every
	}
	return c, nil
}

func run(args []string, out io.Writer) error {
	c, err := parseConfig(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	st := newStore()
	client := &http.Client{Timeout: c.every}
	start := time.Now()
	fmt.Fprintf(os.Stderr, "scraping %d target(s) every %s for %s (Ctrl-C evaluates early)\n", len(c.targets), c.every, c.duration)
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	deadline := time.After(c.duration)
	scrapeAll := func(now time.Time) {
		for _, t := range c.targets {
			if err := scrape(ctx, client, st, t, now); err != nil {
				fmt.Fprintln(os.Stderr, "scrape:", err)
			}
		}
	}
	scrapeAll(start)
loop:
	for {
		select {
		case now := <-tick.C:
			scrapeAll(now)
		case <-deadline:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	end := time.Now()
	ev := &evaluator{
		engine: promql.NewEngine(promql.EngineOpts{
			Logger: slog.New(slog.DiscardHandler), MaxSamples: 50_000_000, Timeout: time.Minute,
			LookbackDelta: 5 * time.Minute, Parser: parser.NewParser(parser.Options{}),
		}),
		st: st, start: start, end: end, step: c.every,
		vars: c.vars, rateInterval: c.rateInterval,
	}
	if err := ev.dashboard(out, c.dashboard); err != nil {
		return err
	}
	return ev.alerts(out, c.alerts)
}

// evaluator runs queries over the scraped samples.
type evaluator struct {
	engine           *promql.Engine
	st               *store
	start, end       time.Time
	step             time.Duration
	vars             map[string]string
	rateInterval     time.Duration
	failed, nonEmpty int
}

var varRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expand substitutes Grafana's variables as Grafana would before sending
// the query.
func (e *evaluator) expand(q string) string {
	return varRE.ReplaceAllStringFunc(q, func(m string) string {
		name := varRE.FindStringSubmatch(m)[1]
		switch name {
		case "__rate_interval":
			return model.Duration(e.rateInterval).String()
		case "__interval":
			return model.Duration(e.step).String()
		case "__range":
			return model.Duration(e.end.Sub(e.start).Round(time.Second)).String()
		}
		if v, ok := e.vars[name]; ok {
			return v
		}
		return ".*"
	})
}

func (e *evaluator) rangeQuery(q string) (promql.Matrix, error) {
	qry, err := e.engine.NewRangeQuery(context.Background(), e.st, nil, q, e.start, e.end, e.step)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Matrix()
}

type dashboardJSON struct {
	Title  string `json:"title"`
	Panels []struct {
		Type        string `json:"type"`
		Title       string `json:"title"`
		FieldConfig struct {
			Defaults struct {
				Unit string `json:"unit"`
			} `json:"defaults"`
		} `json:"fieldConfig"`
		Targets []struct {
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

var legendRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// dashboard prints each panel: per series its legend, the last value and
// the largest over the run (a row of a stat panel is its one value).
func (e *evaluator) dashboard(out io.Writer, path string) error {
	var d dashboardJSON
	if err := readJSON(path, &d); err != nil {
		return err
	}
	fmt.Fprintf(out, "# %s, %s to %s, step %s, $__rate_interval %s\n", d.Title,
		e.start.Format(time.TimeOnly), e.end.Format(time.TimeOnly), e.step, model.Duration(e.rateInterval))
	for _, p := range d.Panels {
		if p.Type == "row" {
			fmt.Fprintf(out, "\n== %s ==\n", p.Title)
			continue
		}
		fmt.Fprintf(out, "\n%s [%s]\n", p.Title, p.Type)
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SERIES\tLAST\tMAX")
		rows := 0
		for _, tg := range p.Targets {
			m, err := e.rangeQuery(e.expand(tg.Expr))
			if err != nil {
				e.failed++
				fmt.Fprintf(tw, "  error: %v\t\t\n", err)
				continue
			}
			for _, s := range m {
				if len(s.Floats) == 0 {
					continue
				}
				legend := legendRE.ReplaceAllStringFunc(tg.LegendFormat, func(x string) string {
					return s.Metric.Get(legendRE.FindStringSubmatch(x)[1])
				})
				if legend == "" {
					legend = s.Metric.String()
				}
				if legend == "{}" {
					legend = "(total)"
				}
				last, peak := s.Floats[len(s.Floats)-1].F, math.NaN()
				for _, f := range s.Floats {
					if !math.IsNaN(f.F) && (math.IsNaN(peak) || f.F > peak) {
						peak = f.F
					}
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\n", legend, format(last, p.FieldConfig.Defaults.Unit), format(peak, p.FieldConfig.Defaults.Unit))
				rows++
			}
		}
		if rows == 0 {
			fmt.Fprintln(tw, "  (no data)\t\t")
		} else {
			e.nonEmpty++
		}
		tw.Flush()
	}
	fmt.Fprintf(out, "\n%d panels with data, %d queries failed\n", e.nonEmpty, e.failed)
	return nil
}

// alerts prints, for each alert, the series its expression returned at
// the end and since when without a gap: firing if that is at least its
// for, pending otherwise.
func (e *evaluator) alerts(out io.Writer, path string) error {
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	fmt.Fprintf(out, "\n# Alerts (evaluated every %s over the run)\n", e.step)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALERT\tSTATE\tVALUE\tLABELS")
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			m, err := e.rangeQuery(r.Expr)
			if err != nil {
				fmt.Fprintf(tw, "%s\terror\t\t%v\n", r.Alert, err)
				continue
			}
			active := 0
			for _, s := range m {
				n := len(s.Floats)
				if n == 0 || s.Floats[n-1].T != e.lastStep() {
					continue
				}
				since := s.Floats[n-1].T
				for i := n - 1; i > 0 && s.Floats[i].T-s.Floats[i-1].T == e.step.Milliseconds(); i-- {
					since = s.Floats[i-1].T
				}
				state := "pending"
				if time.Duration(e.lastStep()-since)*time.Millisecond >= time.Duration(r.For) {
					state = "firing"
				}
				fmt.Fprintf(tw, "%s\t%s (%s)\t%g\t%s\n", r.Alert, state,
					time.Duration(e.lastStep()-since)*time.Millisecond, s.Floats[n-1].F, s.Metric)
				active++
			}
			if active == 0 {
				fmt.Fprintf(tw, "%s\tinactive\t\t\n", r.Alert)
			}
		}
	}
	return tw.Flush()
}

// lastStep is the timestamp of the range queries' last step.
func (e *evaluator) lastStep() int64 {
	steps := e.end.Sub(e.start) / e.step
	return e.start.Add(steps * e.step).UnixMilli()
}

// format prints v in a panel's unit; NaN (a quantile of no
// observations, shown as a gap by Grafana) as "-".
func format(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case "s":
		return fmt.Sprintf("%.3gms", v*1000)
	case "percentunit":
		return fmt.Sprintf("%.3g%%", v*100)
	case "bytes":
		return fmt.Sprintf("%.3gMiB", v/(1<<20))
	case "cps", "reqps":
		return fmt.Sprintf("%.3g/s", v)
	}
	return fmt.Sprintf("%.4g", v)
}

func readJSON(path string, into any) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return json.NewDecoder(f).Decode(into)
}
