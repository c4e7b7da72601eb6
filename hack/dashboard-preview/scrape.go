package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// target is a /metrics endpoint and the labels Prometheus would give its
// series (job, namespace, pod, ... and instance, the URL's host).
type target struct {
	url    string
	labels labels.Labels
}

// parseTarget reads "job=herald-dispatcher,namespace=default,url=http://...".
func parseTarget(s string) (target, error) {
	var t target
	b := labels.NewBuilder(labels.EmptyLabels())
	for kv := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return target{}, fmt.Errorf("target %q: %q is not label=value", s, kv)
		}
		if k == "url" {
			u, err := url.Parse(v)
			if err != nil || u.Host == "" {
				return target{}, fmt.Errorf("target %q: url %q", s, v)
			}
			t.url = v
			b.Set(model.InstanceLabel, u.Host)
			continue
		}
		b.Set(k, v)
	}
	if t.url == "" {
		return target{}, fmt.Errorf("target %q has no url=", s)
	}
	if b.Get(model.JobLabel) == "" {
		return target{}, fmt.Errorf("target %q has no job=", s)
	}
	t.labels = b.Labels()
	return t, nil
}

// scrape reads t's metrics into st at now, as Prometheus with
// honor_labels false does: a scraped label that is also a target label is
// kept as exported_<name>. It adds the series up (1 or 0).
func scrape(ctx context.Context, client *http.Client, st *store, t target, now time.Time) error {
	ts := now.UnixMilli()
	up := 0.0
	defer func() {
		st.add(withName(t.labels, "up", nil), ts, up)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", t.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", t.url, err)
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, s := range expand(name, mf.GetType(), m) {
				st.add(withName(t.labels, s.name, s.labels), ts, s.value)
			}
		}
	}
	up = 1
	return nil
}

// flat is one series of a scraped metric.
type flat struct {
	name   string
	labels []*dto.LabelPair
	value  float64
}

// expand turns a metric into the series Prometheus stores for it: a
// histogram into _bucket (with le), _sum and _count, a summary into its
// quantiles, _sum and _count.
func expand(name string, typ dto.MetricType, m *dto.Metric) []flat {
	lp := m.GetLabel()
	with := func(k, v string) []*dto.LabelPair {
		out := append([]*dto.LabelPair(nil), lp...)
		return append(out, &dto.LabelPair{Name: &k, Value: &v})
	}
	switch typ {
	case dto.MetricType_COUNTER:
		return []flat{{name, lp, m.GetCounter().GetValue()}}
	case dto.MetricType_GAUGE:
		return []flat{{name, lp, m.GetGauge().GetValue()}}
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		out := []flat{{name + "_sum", lp, h.GetSampleSum()}, {name + "_count", lp, float64(h.GetSampleCount())}}
		for _, b := range h.GetBucket() {
			out = append(out, flat{name + "_bucket", with("le", formatLe(b.GetUpperBound())), float64(b.GetCumulativeCount())})
		}
		return append(out, flat{name + "_bucket", with("le", "+Inf"), float64(h.GetSampleCount())})
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		out := []flat{{name + "_sum", lp, s.GetSampleSum()}, {name + "_count", lp, float64(s.GetSampleCount())}}
		for _, q := range s.GetQuantile() {
			out = append(out, flat{name, with("quantile", formatLe(q.GetQuantile())), q.GetValue()})
		}
		return out
	default:
		return []flat{{name, lp, m.GetUntyped().GetValue()}}
	}
}

func formatLe(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// withName is the series name with its scraped labels and the target's.
func withName(target labels.Labels, name string, scraped []*dto.LabelPair) labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, l := range scraped {
		k := l.GetName()
		if target.Has(k) {
			k = model.ExportedLabelPrefix + k
		}
		if l.GetValue() != "" {
			b.Set(k, l.GetValue())
		}
	}
	target.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	b.Set(model.MetricNameLabel, name)
	return b.Labels()
}
