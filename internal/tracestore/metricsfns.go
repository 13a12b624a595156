package tracestore

import (
	"math"
	"math/bits"
	"sort"
	"strings"

	"github.com/sprout-otel/sprout/internal/traceql"
)

// The TraceQL metrics functions that do not reduce one value per span and group: histogram_over_time's
// buckets, compare()'s breakdown of every attribute, and the second stages (topk, bottomk, filters) applied to
// the finished series.

// bucketLabel names the bucket of a histogram_over_time series, as Tempo does.
const bucketLabel = "__bucket"

// histogramBucket is the power-of-two bucket holding v: its upper bound, the smallest power of two not below v
// (in seconds for durations, whose values are nanoseconds). Values below 2 and non-numbers have no bucket, as in
// Tempo.
func histogramBucket(v traceql.Static) (float64, bool) {
	var n uint64
	switch v.Type {
	case traceql.TypeInt, traceql.TypeDuration:
		if v.N < 2 {
			return 0, false
		}
		n = uint64(v.N)
	case traceql.TypeFloat:
		if !(v.F >= 2) || v.F > math.MaxInt64 {
			return 0, false
		}
		n = uint64(math.Ceil(v.F))
	default:
		return 0, false
	}
	b := float64(uint64(1) << (64 - bits.LeadingZeros64(n-1)))
	if v.Type == traceql.TypeDuration {
		b /= 1e9
	}
	return b, true
}

// The values of compare()'s __meta_type label.
const (
	metaTypeLabel  = "__meta_type"
	metaErrorLabel = "__meta_error"
)

// compareAcc counts, per step, the spans of the baseline and of the selection under every value of every
// attribute, and the spans that carry each attribute at all (the _total series).
type compareAcc struct {
	m       *traceql.MetricsStage
	steps   int
	limit   int // series at most; past it tooMany
	nseries int
	tooMany bool
	values  [2]map[string]map[string]*valueCounts // [baseline, selection] → attribute → value key → counts
	totals  [2]map[string][]float64
	capped  map[string]bool // attributes with more than maxCompareValues values
	cells   int             // counters allocated, against maxCompareCells
	// tooLarge: the totals of the attributes seen do not fit in maxCompareCells
	tooLarge bool
}

// maxCompareValues bounds the values of one attribute that compare() counts, so that an attribute unique per
// span (an id, a URL) costs a bounded amount of memory; such an attribute gets the __too_many_values__ series.
const maxCompareValues = 1000

// maxCompareCells bounds the counters (one per value and step) that one compare() keeps: 32 MiB. Past it new
// values are not counted one by one (their attribute gets the __too_many_values__ series), and an attribute
// whose totals would not fit makes the query too large.
const maxCompareCells = 1 << 22

type valueCounts struct {
	v      traceql.Static
	counts []float64
}

func newCompareAcc(m *traceql.MetricsStage, steps, limit int) *compareAcc {
	c := &compareAcc{m: m, steps: steps, limit: limit, capped: map[string]bool{}}
	for i := range c.values {
		c.values[i] = map[string]map[string]*valueCounts{}
		c.totals[i] = map[string][]float64{}
	}
	return c
}

// observe counts one span in step.
func (c *compareAcc) observe(t *traceql.Trace, sp *traceql.Span, step int) {
	sel := 0
	st := int64(sp.StartUnixNano())
	inWindow := c.m.CompareStart <= 0 || c.m.CompareEnd <= 0 || (st > c.m.CompareStart && st <= c.m.CompareEnd)
	if inWindow && c.m.Compare.Matches(t, sp) {
		sel = 1
	}
	traceql.EachAttribute(t, sp, func(name string, v traceql.Static) {
		vals := c.values[sel][name]
		if vals == nil {
			// every attribute gives at least a value series and a _total series per side
			if c.cells+c.steps > maxCompareCells {
				c.tooLarge = true
				return
			}
			if c.nseries += 2; c.nseries > c.limit {
				c.tooMany = true
				return
			}
			c.cells += c.steps
			vals = map[string]*valueCounts{}
			c.values[sel][name] = vals
			c.totals[sel][name] = make([]float64, c.steps)
		}
		k := v.Type.String() + ":" + v.String()
		vc := vals[k]
		if vc == nil {
			if len(vals) >= maxCompareValues || c.cells+c.steps > maxCompareCells {
				// an id-like attribute: its values are not counted one by one, its total still is
				c.capped[name] = true
				c.totals[sel][name][step]++
				return
			}
			c.cells += c.steps
			vc = &valueCounts{v: v, counts: make([]float64, c.steps)}
			vals[k] = vc
		}
		vc.counts[step]++
		c.totals[sel][name][step]++
	})
}

// series renders the counts as Tempo does: for each side and attribute, the TopN values with the most spans
// ({__meta_type="baseline", attr=value}), a {__meta_error="__too_many_values__", attr=nil} series when an
// attribute had more values than that, and {__meta_type="baseline_total", attr=nil} with every span that
// carried the attribute.
func (c *compareAcc) series() []Series {
	var out []Series
	sides := [2]string{"baseline", "selection"}
	erred := c.capped
	for side, byAttr := range c.values {
		for name, vals := range byAttr {
			list := make([]*valueCounts, 0, len(vals))
			for _, vc := range vals {
				list = append(list, vc)
			}
			sum := func(x []float64) (s float64) {
				for _, v := range x {
					s += v
				}
				return s
			}
			sort.Slice(list, func(i, j int) bool {
				si, sj := sum(list[i].counts), sum(list[j].counts)
				if si != sj {
					return si > sj
				}
				return list[i].v.String() < list[j].v.String()
			})
			if len(list) > c.m.TopN {
				list = list[:c.m.TopN]
				erred[name] = true
			}
			for _, vc := range list {
				out = append(out, Series{Labels: []SeriesLabel{{Name: metaTypeLabel, Value: traceql.NewString(sides[side])},
					{Name: name, Value: vc.v}}, Values: vc.counts})
			}
		}
		for name, counts := range c.totals[side] {
			out = append(out, Series{Labels: []SeriesLabel{{Name: metaTypeLabel, Value: traceql.NewString(sides[side] + "_total")},
				{Name: name}}, Values: counts})
		}
	}
	for name := range erred {
		nan := make([]float64, c.steps)
		for i := range nan {
			nan[i] = math.NaN()
		}
		out = append(out, Series{Labels: []SeriesLabel{{Name: metaErrorLabel, Value: traceql.NewString("__too_many_values__")},
			{Name: name}}, Values: nan})
	}
	sort.SliceStable(out, func(i, j int) bool { return seriesKey(out[i].Labels) < seriesKey(out[j].Labels) })
	if len(out) > c.limit {
		c.tooMany = true
	}
	return out
}

func seriesKey(ls []SeriesLabel) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte(0)
		b.WriteString(l.Value.String())
		b.WriteByte(0)
	}
	return b.String()
}

// applySecondStages runs topk, bottomk and filters over the series, in the order written. topk(k) and
// bottomk(k) work per step, as Tempo and PromQL do: at each step only the k series with the largest (smallest)
// values keep that step's value (ties go to the series whose labels sort first); a series kept at no step is
// dropped. A filter keeps the samples for which the comparison holds.
func applySecondStages(stages []traceql.SecondStage, in []Series, steps int) []Series {
	for _, st := range stages {
		switch st.Fn {
		case "topk", "bottomk":
			if len(in) <= st.K {
				continue
			}
			keep := make([][]bool, len(in))
			for i := range keep {
				keep[i] = make([]bool, steps)
			}
			idx := make([]int, 0, len(in))
			for step := 0; step < steps; step++ {
				idx = idx[:0]
				for i := range in {
					if step < len(in[i].Values) && !math.IsNaN(in[i].Values[step]) {
						idx = append(idx, i)
					}
				}
				sort.SliceStable(idx, func(a, b int) bool {
					va, vb := in[idx[a]].Values[step], in[idx[b]].Values[step]
					if va != vb {
						if st.Fn == "topk" {
							return va > vb
						}
						return va < vb
					}
					return seriesKey(in[idx[a]].Labels) < seriesKey(in[idx[b]].Labels)
				})
				for _, i := range idx[:min(st.K, len(idx))] {
					keep[i][step] = true
				}
			}
			out := in[:0:0]
			for i, s := range in {
				any := false
				vals := make([]float64, len(s.Values))
				for step := range vals {
					if step < steps && keep[i][step] {
						vals[step] = s.Values[step]
						any = true
					} else {
						vals[step] = math.NaN()
					}
				}
				if any {
					s.Values = vals
					out = append(out, s)
				}
			}
			in = out
		case "filter":
			out := in[:0:0]
			for _, s := range in {
				vals := make([]float64, len(s.Values))
				any := false
				for step, v := range s.Values {
					if filterHolds(st.Op, v, st.Value) {
						vals[step] = v
						any = true
					} else {
						vals[step] = math.NaN()
					}
				}
				if any { // a series without a sample left is dropped
					s.Values = vals
					out = append(out, s)
				}
			}
			in = out
		}
	}
	return in
}

func filterHolds(op traceql.Op, v, x float64) bool {
	switch op {
	case traceql.OpEq:
		return v == x
	case traceql.OpNeq:
		return v != x
	case traceql.OpGt:
		return v > x
	case traceql.OpGte:
		return v >= x
	case traceql.OpLt:
		return v < x
	case traceql.OpLte:
		return v <= x
	}
	return false
}
