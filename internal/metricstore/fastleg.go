package metricstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/kahansum"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// A streaming evaluator for the leg dashboards ask for most: sum|avg|count|min|max by (...) (rate|increase(m[r])).
//
// The engine evaluates such a leg in two passes: rate over every series at every step into a matrix of
// series × steps (each window copied out of a BufferedSeriesIterator), then the aggregation step by step over
// that matrix. fastLeg reads each series' samples once into one reused buffer, slides the window over it in
// step order, and adds each step's rate straight into the group's accumulator for that step: no matrix, no
// per-window copies, no per-series output slices.
//
// Its answers are the engine's to the bit: the window is the engine's (left-open, stale markers dropped), the
// rate is extrapolatedRate's arithmetic in the same order, and a group's value at a step is accumulated over
// its series in selection order with the same first-value and Kahan rules. Anything it does not do exactly as
// the engine does (a native histogram sample, @, anchored or smoothed selectors, duration expressions) gives
// the leg back to the engine (errNotExact), which then answers, or refuses, as always. max_fetched_samples is
// kept by all the streamed legs of a query together (legBudget): past it, the query is refused in the engine's
// words without the engine being asked.
//
// What a leg holds while it streams: its groups' accumulators (groups × steps), one series' samples, and 8
// bytes of label hash per series when the selection does not pin the metric name. Series are read unsorted, one
// shard value's selection at a time (shard.go's concatSet), each series released when the next is read.

// fastLeg is the plan of one streamed leg.
type fastLeg struct {
	op       parser.ItemType // SUM, AVG, COUNT, MIN or MAX
	grouping []string        // the by labels, sorted
	isRate   bool            // rate, or increase
	rng      time.Duration
	offset   time.Duration
	matchers []*labels.Matcher
	fn       string
	argPos   posrange.PositionRange // the matrix argument's position, as the engine's info names it
}

// fastLegOps are the aggregations fastLeg accumulates.
var fastLegOps = map[parser.ItemType]bool{parser.SUM: true, parser.AVG: true, parser.COUNT: true, parser.MIN: true, parser.MAX: true}

// planFastLeg returns the streamed plan of the leg expression (the leg's text parsed, so that positions are
// the original query's), or nil when the leg is not of a shape it streams.
func planFastLeg(leg parser.Expr) *fastLeg {
	agg, ok := leg.(*parser.AggregateExpr)
	if !ok || !fastLegOps[agg.Op] || agg.Without || agg.Param != nil {
		return nil
	}
	call, ok := agg.Expr.(*parser.Call)
	if !ok || (call.Func.Name != "rate" && call.Func.Name != "increase") || len(call.Args) != 1 {
		return nil
	}
	ms, ok := call.Args[0].(*parser.MatrixSelector)
	if !ok || ms.RangeExpr != nil || ms.Range <= 0 {
		return nil
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed || vs.OriginalOffsetExpr != nil {
		return nil
	}
	g := slices.Clone(agg.Grouping)
	slices.Sort(g)
	return &fastLeg{
		op: agg.Op, grouping: slices.Compact(g), isRate: call.Func.Name == "rate", rng: ms.Range,
		offset: vs.OriginalOffset, matchers: vs.LabelMatchers, fn: call.Func.Name, argPos: call.Args[0].PositionRange(),
	}
}

// fastGroup is one group's accumulators, one per step.
type fastGroup struct {
	metric labels.Labels
	val    []float64
	kahanC []float64 // sum and avg
	count  []float64 // count and avg
	mean   []float64 // avg, once its sum would overflow
	incr   []bool    // avg: the mean is incremental from here on
	seen   []bool
}

// fastLegResult is a streamed leg's answer: the groups, the engine's info annotations, and the samples the
// engine would have counted (stats' TotalSamples: the window's samples at every step it was not empty).
type fastLegResult struct {
	m     promql.Matrix
	annos annotations.Annotations
	total int64
	// inner and answers are the leg's rate points and its groups' points: the engine's peak for the leg is
	// about their sum (its rate matrix, then its answer beside it).
	inner, answers int64
}

// checkEvery is how many series are read between looks at the context.
const checkEvery = 64

// legBudget is a sharded query's max_fetched_samples, which its streamed legs count against together. What a
// streamed leg holds is its groups' accumulators and one series' samples, not the engine's rate matrix; but it
// answers only what the unsharded engine would answer. The engine holds every series' rate points at once
// before it aggregates them, so once the legs' rate points together pass the limit the engine would have
// refused: the query is refused there, in the engine's words, without running it again on the engine.
type legBudget struct {
	max     int64
	fetched atomic.Int64 // rate points of every streamed leg so far
}

// errTooManySamples is the engine's refusal of a query over max_fetched_samples, word for word.
var errTooManySamples error = promql.ErrTooManySamples("query execution")

// uncheckedSelecter is a querier that can select without wrapping each series for a Checkpoint: a streamed
// leg looks at its context itself, and the wrapper cost an allocation per series.
type uncheckedSelecter interface {
	selectUnchecked(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet
}

// eval streams the leg over the series q selects, at the range query's steps, counting its rate points
// against b (see legBudget).
func (f *fastLeg) eval(ctx context.Context, q storage.Queryable, start, end time.Time, interval time.Duration, b *legBudget) (*fastLegResult, error) {
	startMs, endMs, stepMs := start.UnixMilli(), end.UnixMilli(), interval.Milliseconds()
	if stepMs <= 0 || endMs < startMs {
		return nil, errNotExact
	}
	numSteps := int((endMs-startMs)/stepMs) + 1
	offsetMs := durationMs(f.offset)
	rangeMs := durationMs(f.rng)
	mint := startMs - offsetMs - rangeMs
	maxt := endMs - offsetMs
	querier, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("open querier for %s: %w", f.fn, err)
	}
	defer querier.Close()
	hints := &storage.SelectHints{Start: mint + 1, End: maxt, Step: stepMs, Range: rangeMs, Func: f.fn, Grouping: f.grouping, By: true}
	// Unsorted: the leg needs no order between groups, and a group's series come in the selection's order
	// either way (see shard.go); sorting would hold every series of the selection at once.
	var set storage.SeriesSet
	if u, ok := querier.(uncheckedSelecter); ok {
		set = u.selectUnchecked(ctx, false, hints, f.matchers...)
	} else {
		set = querier.Select(ctx, false, hints, f.matchers...)
	}

	var (
		res       = &fastLegResult{}
		groups    = map[string]*fastGroup{}
		order     []*fastGroup
		key       []byte
		pts       []promql.FPoint
		it        chunkenc.Iterator
		rangeSecs = f.rng.Seconds()
		// rate drops the metric name: two series of a selection that does not pin the name may then have
		// the same labels, which the engine refuses when both answer at a step. Such a leg is the engine's.
		// The hashes of the labels without the name are kept in a slice, 8 bytes a series, and looked at
		// for twins once every series is read (a map of them cost five times that).
		unnamed []uint64
		hbuf    []byte
		checked = map[string]bool{} // metric names looked at for the "might not be a counter" info
	)
	named := namePinned(f.matchers)
	for n := 0; set.Next(); n++ {
		if n%checkEvery == 0 {
			if err := querylimit.Checkpoint(ctx); err != nil {
				return nil, err
			}
		}
		series := set.At()
		lset := series.Labels()
		if !named {
			var h uint64
			h, hbuf = lset.HashWithoutLabels(hbuf, labels.MetricName)
			unnamed = append(unnamed, h)
		}
		pts = pts[:0]
		it = series.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				return nil, errNotExact // native histograms: the engine's
			}
			t, v := it.At()
			if t <= mint || value.IsStaleNaN(v) {
				continue
			}
			if t > maxt {
				break
			}
			pts = append(pts, promql.FPoint{T: t, F: v})
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read series %s: %w", lset, err)
		}
		if len(pts) == 0 {
			continue
		}
		var g *fastGroup
		lo, hi, outs := 0, 0, 0
		for step := range numSteps {
			ts := startMs + int64(step)*stepMs
			wmax := ts - offsetMs
			wmin := wmax - rangeMs
			for lo < len(pts) && pts[lo].T <= wmin {
				lo++
			}
			if hi < lo {
				hi = lo
			}
			for hi < len(pts) && pts[hi].T <= wmax {
				hi++
			}
			w := pts[lo:hi]
			if len(w) == 0 {
				continue
			}
			res.total += int64(len(w))
			if len(w) < 2 {
				continue
			}
			r := extrapolatedFloatRate(w, ts-durationMs(f.rng+f.offset), ts-offsetMs, rangeSecs, f.isRate)
			outs++
			if g == nil {
				key = lset.BytesWithLabels(key[:0], f.grouping...)
				if g = groups[string(key)]; g == nil {
					g = f.newGroup(lset, numSteps)
					groups[string(key)] = g
					order = append(order, g)
				}
			}
			f.add(g, step, r)
		}
		res.inner += int64(outs)
		if outs > 0 && b.fetched.Add(int64(outs)) > b.max {
			return nil, errTooManySamples
		}
		if outs > 0 {
			// The engine's info, once per name: formatting it per series cost a seventh of the query.
			if name := lset.Get(labels.MetricName); name != "" && !checked[name] {
				checked[name] = true
				if !strings.HasSuffix(name, "_total") && !strings.HasSuffix(name, "_sum") &&
					!strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_bucket") {
					res.annos.Add(annotations.NewPossibleNonCounterInfo(name, f.argPos))
				}
			}
		}
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(unnamed)
	for i := 1; i < len(unnamed); i++ {
		if unnamed[i] == unnamed[i-1] {
			return nil, errNotExact
		}
	}
	res.annos.Merge(set.Warnings())
	res.m = make(promql.Matrix, 0, len(order))
	for _, g := range order {
		ser := promql.Series{Metric: g.metric}
		for step, ok := range g.seen {
			if !ok {
				continue
			}
			v := g.val[step]
			switch f.op {
			case parser.SUM:
				v += g.kahanC[step]
			case parser.AVG:
				if g.incr[step] {
					v = g.mean[step] + g.kahanC[step]
				} else {
					v = v/g.count[step] + g.kahanC[step]/g.count[step]
				}
			case parser.COUNT:
				v = g.count[step]
			}
			ser.Floats = append(ser.Floats, promql.FPoint{T: startMs + int64(step)*stepMs, F: v})
		}
		res.answers += int64(len(ser.Floats))
		res.m = append(res.m, ser)
	}
	return res, nil
}

func (f *fastLeg) newGroup(lset labels.Labels, numSteps int) *fastGroup {
	g := &fastGroup{metric: lset.MatchLabels(true, f.grouping...), val: make([]float64, numSteps), seen: make([]bool, numSteps)}
	switch f.op {
	case parser.SUM:
		g.kahanC = make([]float64, numSteps)
	case parser.AVG:
		g.kahanC, g.count, g.mean, g.incr = make([]float64, numSteps), make([]float64, numSteps), make([]float64, numSteps), make([]bool, numSteps)
	case parser.COUNT:
		g.count = make([]float64, numSteps)
	}
	return g
}

// add accumulates one series' value at a step as the engine's aggregation does: the first value as it is,
// the next ones by the operation's rule.
func (f *fastLeg) add(g *fastGroup, step int, v float64) {
	if !g.seen[step] {
		g.seen[step] = true
		g.val[step] = v
		switch f.op {
		case parser.COUNT:
			g.count[step] = 1
		case parser.AVG:
			g.count[step], g.mean[step] = 1, v
		}
		return
	}
	switch f.op {
	case parser.SUM:
		g.val[step], g.kahanC[step] = kahansum.Inc(v, g.val[step], g.kahanC[step])
	case parser.AVG:
		// The direct mean while the sum does not overflow, then the incremental one.
		g.count[step]++
		n := g.count[step]
		if !g.incr[step] {
			sum, c := kahansum.Inc(v, g.val[step], g.kahanC[step])
			if !math.IsInf(sum, 0) {
				g.val[step], g.kahanC[step] = sum, c
				return
			}
			g.incr[step] = true
			g.mean[step] = g.val[step] / (n - 1)
			g.kahanC[step] /= n - 1
		}
		q := (n - 1) / n
		g.mean[step], g.kahanC[step] = kahansum.Inc(v/n, q*g.mean[step], q*g.kahanC[step])
	case parser.COUNT:
		g.count[step]++
	case parser.MIN:
		if g.val[step] > v || math.IsNaN(g.val[step]) {
			g.val[step] = v
		}
	case parser.MAX:
		if g.val[step] < v || math.IsNaN(g.val[step]) {
			g.val[step] = v
		}
	}
}

// extrapolatedFloatRate is the engine's extrapolatedRate for a counter of two or more floats, in the same
// order of operations, so that its answer is the engine's to the bit.
func extrapolatedFloatRate(w []promql.FPoint, rangeStart, rangeEnd int64, rangeSecs float64, isRate bool) float64 {
	n1 := len(w) - 1
	firstT, lastT := w[0].T, w[n1].T
	result := w[n1].F - w[0].F
	for i := 1; i < len(w); i++ {
		if w[i].F < w[i-1].F {
			result += w[i-1].F
		}
	}
	durationToStart := float64(firstT-rangeStart) / 1000
	durationToEnd := float64(rangeEnd-lastT) / 1000
	sampledInterval := float64(lastT-firstT) / 1000
	averageDurationBetweenSamples := sampledInterval / float64(n1)
	extrapolationThreshold := averageDurationBetweenSamples * 1.1
	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	durationToZero := durationToStart
	if result > 0 && w[0].F >= 0 {
		durationToZero = sampledInterval * (w[0].F / result)
	}
	if durationToZero < durationToStart {
		durationToStart = durationToZero
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}
	factor := (sampledInterval + durationToStart + durationToEnd) / sampledInterval
	if isRate {
		factor /= rangeSecs
	}
	return result * factor
}

// namePinned reports whether matchers select one metric name only.
func namePinned(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual && m.Value != "" {
			return true
		}
	}
	return false
}

// durationMs is the engine's conversion of a duration to milliseconds.
func durationMs(d time.Duration) int64 { return int64(d / (time.Millisecond / time.Nanosecond)) }
