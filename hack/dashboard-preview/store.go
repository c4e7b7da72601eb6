package main

import (
	"context"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// sample is one float sample.
type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// store holds scraped float samples in memory and serves them to the
// PromQL engine as a storage.Queryable.
type store struct {
	mu     sync.Mutex
	series map[string]*memSeries
}

type memSeries struct {
	lset    labels.Labels
	samples []sample
}

func newStore() *store { return &store{series: map[string]*memSeries{}} }

// add appends a sample at t (milliseconds) to the series lset.
func (s *store) add(lset labels.Labels, t int64, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := lset.String()
	ms := s.series[key]
	if ms == nil {
		ms = &memSeries{lset: lset}
		s.series[key] = ms
	}
	if n := len(ms.samples); n > 0 && ms.samples[n-1].t >= t {
		return
	}
	ms.samples = append(ms.samples, sample{t, v})
}

// Querier implements storage.Queryable.
func (s *store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *store
	mint, maxt int64
}

// Select returns the series matching every matcher, with their samples
// between mint and maxt, sorted by labels.
func (q *querier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	var out []storage.Series
	for _, ser := range q.s.series {
		if !matches(ser.lset, ms) {
			continue
		}
		var in chunks.SampleSlice
		for _, smp := range ser.samples {
			if smp.t >= q.mint && smp.t <= q.maxt {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, storage.NewListSeries(ser.lset, in))
		}
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels(), out[j].Labels()) < 0 })
	return &seriesSet{series: out, i: -1}
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// LabelValues implements storage.LabelQuerier.
func (q *querier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	seen := map[string]bool{}
	for _, ser := range q.s.series {
		if v := ser.lset.Get(name); v != "" && matches(ser.lset, ms) {
			seen[v] = true
		}
	}
	return sortedKeys(seen), nil, nil
}

// LabelNames implements storage.LabelQuerier.
func (q *querier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.s.mu.Lock()
	defer q.s.mu.Unlock()
	seen := map[string]bool{}
	for _, ser := range q.s.series {
		if matches(ser.lset, ms) {
			ser.lset.Range(func(l labels.Label) { seen[l.Name] = true })
		}
	}
	return sortedKeys(seen), nil, nil
}

func (q *querier) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
