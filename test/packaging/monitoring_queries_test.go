package packaging_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/herald-dev/herald/dispatcher"
	"github.com/herald-dev/herald/internal/natstest"
	"github.com/herald-dev/herald/sources"
)

// externalMetrics are the metrics the dashboard and the alerts read that
// Herald does not export, each with where it comes from.
var externalMetrics = map[string]string{
	"up":                                 "Prometheus, one series per scrape target",
	"container_cpu_usage_seconds_total":  "cAdvisor, scraped through the kubelet",
	"container_memory_working_set_bytes": "cAdvisor, scraped through the kubelet",
	"kube_pod_status_ready":              "kube-state-metrics",
}

// scrapeLabels are the labels Prometheus gives every series of a target
// of the chart's PodMonitor besides its relabelings' (the Prometheus
// Operator's defaults for a PodMonitor).
var scrapeLabels = []string{"job", "instance", "namespace", "pod", "container", "endpoint"}

// metricSet maps a series name to the names of its labels.
type metricSet map[string]map[string]bool

// recordingRegisterer passes registrations on and keeps the collectors.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// heraldMetrics returns the series Herald's data plane exports, from the
// collectors its code registers: a dispatcher's (dispatcher.New, as
// herald-dispatcher builds it) and an adapter's (sources.NewMetrics). A
// histogram's series are <name>_bucket (with le), _sum and _count. The
// Go and process collectors the binaries add are left out: the dashboard
// and the alerts use none of their metrics.
func heraldMetrics(t *testing.T) metricSet {
	t.Helper()
	rec := &recordingRegisterer{Registerer: prometheus.NewRegistry()}
	if _, err := dispatcher.New(natstest.Connect(t, natstest.Start(t)), dispatcher.Options{Registry: rec}); err != nil {
		t.Fatal(err)
	}
	if _, err := sources.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	set := metricSet{}
	for _, c := range rec.collectors {
		suffixes, extra := []string{""}, []string(nil)
		switch c.(type) {
		case *prometheus.HistogramVec, prometheus.Histogram:
			suffixes, extra = []string{"_bucket", "_sum", "_count"}, []string{"le"}
		case *prometheus.SummaryVec, prometheus.Summary:
			suffixes, extra = []string{"", "_sum", "_count"}, []string{"quantile"}
		}
		descs := make(chan *prometheus.Desc)
		go func() {
			c.Describe(descs)
			close(descs)
		}()
		for d := range descs {
			name, lbls := readDesc(t, d)
			for _, s := range suffixes {
				ls := map[string]bool{}
				for _, l := range lbls {
					ls[l] = true
				}
				if s == "_bucket" || (s == "" && extra != nil) {
					for _, l := range extra {
						ls[l] = true
					}
				}
				set[name+s] = ls
			}
		}
	}
	if len(set) < 10 {
		t.Fatalf("only %d series from the dispatcher's and adapters' collectors: %v", len(set), sortedKeys(set))
	}
	return set
}

var descRE = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), .*, variableLabels: \{([^}]*)\}\}$`)

// readDesc returns the name and variable labels of d, which client_golang
// exposes only through its String form.
func readDesc(t *testing.T, d *prometheus.Desc) (string, []string) {
	t.Helper()
	if err := d.Err(); err != nil {
		t.Fatalf("metric %s: %v", d, err)
	}
	m := descRE.FindStringSubmatch(d.String())
	if m == nil {
		t.Fatalf("cannot read the name and labels of %s: has client_golang's Desc.String changed?", d)
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		t.Fatalf("%s: %v", d, err)
	}
	var lbls []string
	for l := range strings.SplitSeq(m[2], ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			lbls = append(lbls, l)
		}
	}
	return name, lbls
}

// query is a PromQL expression and where it was found.
type query struct {
	where, expr string
}

// grafanaRanges are Grafana's range variables, replaced by a duration so
// that a panel's query parses as Prometheus will receive it.
var grafanaRanges = strings.NewReplacer("${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m", "${__range}", "1h", "$__range", "1h")

// labelValuesRE is a Grafana variable query label_values(selector, label).
var labelValuesRE = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// grafanaDashboard is the part of a Grafana dashboard the tests read.
type grafanaDashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *grafanaDS `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string     `json:"expr"`
		RefID      string     `json:"refId"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
}

func dashboardPath() string { return filepath.Join(chartDir(), "files", "herald-dashboard.json") }

func readDashboard(t *testing.T) (grafanaDashboard, []byte) {
	t.Helper()
	data, err := os.ReadFile(dashboardPath())
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardPath(), err)
	}
	return d, data
}

// dashboardQueries returns the PromQL of every panel and variable of d.
// Panels with no query, other than rows, are errors.
func dashboardQueries(t *testing.T, d grafanaDashboard) []query {
	t.Helper()
	var qs []query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query is not a string: %s", v.Name, v.Query)
			continue
		}
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q (%s)", p.Title, tg.RefID), tg.Expr})
		}
	}
	return qs
}

func alertsPath() string { return filepath.Join(chartDir(), "files", "herald-alerts.yaml") }

// parseRules parses a Prometheus rule file as Prometheus does when it
// loads it (unknown fields refused, expressions and annotation templates
// checked), with label names restricted to the classic character set.
func parseRules(t *testing.T, where string, data []byte) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(data, false, model.LegacyValidation, parser.NewParser(parser.Options{}),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("%s: %v", where, err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

func ruleQueries(groups *rulefmt.RuleGroups) []query {
	var qs []query
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{"alert " + r.Alert, r.Expr})
		}
	}
	return qs
}

// checkQueries parses each query with Prometheus's PromQL parser and
// checks that every metric it selects is one Herald exports, or one of
// externalMetrics, and that Herald's metrics are selected and grouped by
// labels they have (their own or those the scrape adds, targetLabels).
func checkQueries(t *testing.T, qs []query, exported metricSet, targetLabels []string) {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	hasLabel := func(metric, label string) bool {
		return label == model.MetricNameLabel || exported[metric][label] || slices.Contains(targetLabels, label)
	}
	for _, q := range qs {
		expr, err := p.ParseExpr(grafanaRanges.Replace(q.expr))
		if err != nil {
			t.Errorf("%s: %v\n%s", q.where, err, q.expr)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			switch n := n.(type) {
			case *parser.VectorSelector:
				name := metricName(n)
				if _, ok := exported[name]; !ok {
					if _, ok := externalMetrics[name]; !ok {
						t.Errorf("%s: metric %q is neither exported by Herald nor a known external metric\n%s", q.where, name, q.expr)
					}
					return nil
				}
				for _, m := range n.LabelMatchers {
					if !hasLabel(name, m.Name) {
						t.Errorf("%s: %s has no label %q\n%s", q.where, name, m.Name, q.expr)
					}
				}
			case *parser.AggregateExpr:
				if n.Without {
					return nil
				}
				var names []string
				parser.Inspect(n.Expr, func(n parser.Node, _ []parser.Node) error {
					if vs, ok := n.(*parser.VectorSelector); ok {
						names = append(names, metricName(vs))
					}
					return nil
				})
				for _, l := range n.Grouping {
					if !slices.ContainsFunc(names, func(name string) bool {
						_, external := externalMetrics[name]
						return external || hasLabel(name, l)
					}) {
						t.Errorf("%s: groups by %q, which none of %v has\n%s", q.where, l, names, q.expr)
					}
				}
			}
			return nil
		})
	}
}

// metricName is the metric a selector selects: its name, or its
// __name__="..." matcher.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// TestMonitoringQueriesUseExportedMetrics parses every query of the Grafana
// dashboard and every expression of the alerts with Prometheus's own
// parsers and checks each metric they read against those Herald's code
// registers: a renamed or removed metric, or a label it no longer has,
// fails here instead of leaving an empty panel or an alert that never
// fires.
func TestMonitoringQueriesUseExportedMetrics(t *testing.T) {
	exported := heraldMetrics(t)
	targetLabels := podMonitorTargetLabels(t)
	t.Logf("Herald exports %d series; the PodMonitor's targets add %v", len(exported), targetLabels)

	d, _ := readDashboard(t)
	dq := dashboardQueries(t, d)
	checkQueries(t, dq, exported, targetLabels)

	data, err := os.ReadFile(alertsPath())
	if err != nil {
		t.Fatal(err)
	}
	rq := ruleQueries(parseRules(t, alertsPath(), data))
	checkQueries(t, rq, exported, targetLabels)

	// The checks above see every metric the two files read.
	used := map[string]bool{}
	for _, q := range append(dq, rq...) {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaRanges.Replace(q.expr))
		if err != nil {
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				used[metricName(vs)] = true
			}
			return nil
		})
	}
	t.Logf("%d dashboard and %d alert queries read %s", len(dq), len(rq), strings.Join(sortedKeys(used), ", "))
	for _, want := range []string{"herald_events_received_total", "herald_events_rejected_total",
		"herald_deliveries_total", "herald_delivery_duration_seconds_bucket", "herald_consumer_pending",
		"herald_consumer_ack_pending", "herald_dead_letters_total", "container_cpu_usage_seconds_total",
		"container_memory_working_set_bytes"} {
		if !used[want] {
			t.Errorf("no query reads %s", want)
		}
	}
}

// TestDashboard checks the Grafana dashboard's structure: every panel
// queries the data source variable, the variables it uses exist, ids are
// unique and the panels fit Grafana's 24-column grid without overlapping.
func TestDashboard(t *testing.T) {
	d, _ := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q, title %q", d.UID, d.Title)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
			t.Errorf("variable %s does not query ${datasource}", v.Name)
		}
	}
	for _, want := range []string{"datasource", "namespace", "topic", "subscription"} {
		if !vars[want] {
			t.Errorf("dashboard lacks the variable %s", want)
		}
	}
	builtins := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
	varRE := regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)
	ids := map[int]string{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if prev, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", prev, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not query ${datasource}", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range varRE.FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[m[1]] && !builtins[m[1]] {
					t.Errorf("panel %q uses $%s, which the dashboard does not define", p.Title, m[1])
				}
			}
		}
	}
}

// alertsDoc returns docs/alerts.md and the anchors of its headings, as
// GitHub makes them.
func alertsDoc(t *testing.T) (string, map[string]bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(string(data), -1) {
		a := strings.ToLower(strings.TrimSpace(m[1]))
		a = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(a, "")
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	return string(data), anchors
}

// TestAlerts checks files/herald-alerts.yaml as Prometheus loads it, and
// that each alert has a severity, a summary and a description, and a
// runbook in docs/alerts.md, whose herald commands exist.
func TestAlerts(t *testing.T) {
	data, err := os.ReadFile(alertsPath())
	if err != nil {
		t.Fatal(err)
	}
	groups := parseRules(t, alertsPath(), data)
	doc, anchors := alertsDoc(t)
	const runbooks = "https://github.com/herald-dev/herald/blob/main/docs/alerts.md#"
	n := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is no alert: %q", g.Name, r.Record)
				continue
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s has no %s", r.Alert, a)
				}
			}
			if want := runbooks + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("docs/alerts.md has no section %s", r.Alert)
			}
		}
	}
	if n < 8 {
		t.Errorf("%d alerts", n)
	}

	// The herald commands the runbooks give exist.
	commands := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(repoRoot, "cmd", "herald", "*.go"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`commands\["([a-z-]+)"\]`).FindAllStringSubmatch(string(src), -1) {
			commands[m[1]] = true
		}
	}
	seen := 0
	for _, m := range regexp.MustCompile("(?m)(?:^\\s*|`)herald ([a-z][a-z-]*)").FindAllStringSubmatch(doc, -1) {
		seen++
		if !commands[m[1]] {
			t.Errorf("docs/alerts.md runs herald %s, which cmd/herald lacks (it has %v)", m[1], sortedKeys(commands))
		}
	}
	if seen == 0 {
		t.Error("docs/alerts.md names no herald command")
	}
}
