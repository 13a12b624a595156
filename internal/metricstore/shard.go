package metricstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// Shard-parallel PromQL evaluation.
//
// Prometheus' engine evaluates a query on one goroutine. For a query whose work is an aggregation over many
// series, such as sum by (instance) (rate(m[1m])), almost all of that work is per series (reading chunks into
// the range windows, rate) and only the last, cheap part combines series. shardedEngine cuts such a query in
// two: the per-series part (the "leg", here rate(m[1m])) is evaluated N times in parallel, each time by the
// same engine over a Queryable that asks the TSDB for one shard of the series (storage.SelectHints'
// ShardIndex/ShardCount, by the stable hash of the labels, which the head and the blocks honour); the rest of
// the query (here sum by (instance) (…)) is then evaluated once, by the same engine, over a Queryable that
// serves the legs' results as series with one sample per step.
//
// Unlike Mimir, which sums partial sums, the outer aggregation sees every leg series, in the order the
// unsharded engine would have seen them (label order: every PromQL selection runs with sorted series, see
// sortedQueryable), so that the answer is the unsharded engine's to the bit, floating-point summation order
// and topk ties included. Anything unusual (a leg that fails, two leg series with the same labels) makes the
// query run unsharded instead, so that errors are the engine's own.

// shardedEngine is the promql.QueryEngine of the Prometheus API: it shards what it can and hands the rest to
// the engine, always over label-sorted series selections.
type shardedEngine struct {
	ng     *promql.Engine
	parser parser.Parser
	shards int
}

func newShardedEngine(ng *promql.Engine, shards int) *shardedEngine {
	return &shardedEngine{ng: ng, parser: parser.NewParser(parser.Options{}), shards: shards}
}

// NewInstantQuery implements promql.QueryEngine.
func (e *shardedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	if p := e.plan(qs, opts, false); p != nil {
		return &shardQuery{e: e, q: q, opts: opts, plan: p, start: ts, end: ts}, nil
	}
	return e.ng.NewInstantQuery(ctx, sortedQueryable{q}, opts, qs, ts)
}

// NewRangeQuery implements promql.QueryEngine.
func (e *shardedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if p := e.plan(qs, opts, true); p != nil && interval > 0 && !end.Before(start) {
		return &shardQuery{e: e, q: q, opts: opts, plan: p, start: start, end: end, interval: interval}, nil
	}
	return e.ng.NewRangeQuery(ctx, sortedQueryable{q}, opts, qs, start, end, interval)
}

// shardPlan is how a query splits: the leg, evaluated per shard, and the outer query, evaluated once over the
// legs' results. Both are query strings of the original's length up to the leg, so that the positions the
// engine's warnings name are those of the original query.
//
// A leg is one of two kinds. When the query is a range query over an aggregation by labels (sum by
// (instance) (rate(m[1m]))), the leg is the whole aggregation and the shards are cut by its groups: each
// shard holds every series of its groups, in the unsharded order, so that it computes each group's answer
// exactly, and the outer query only reads the groups' answers (few series). Otherwise the leg is the
// per-series expression under the aggregation, the shards are the TSDB's (by the hash of all labels), and the
// outer query aggregates every leg series.
type shardPlan struct {
	qs    string
	expr  parser.Expr
	leg   string
	outer string
	// byGroup: the leg is an aggregation whose groups (grouping, without) cut the shards.
	byGroup  bool
	grouping []string
	without  bool
}

// shardLegSelector stands for the leg in the outer query; the outer query's Queryable answers every selection
// with the legs' series, whatever the matchers.
const shardLegSelector = "sprout_shard_leg"

// groupAggregations are the aggregations with one answer per group that can be cut by group (topk and the
// like answer several series per group, in an order of their own, and go the per-series way).
var groupAggregations = map[parser.ItemType]bool{
	parser.SUM: true, parser.AVG: true, parser.COUNT: true, parser.MIN: true, parser.MAX: true,
	parser.GROUP: true, parser.STDDEV: true, parser.STDVAR: true, parser.QUANTILE: true,
}

// plan returns how qs splits, or nil when it is not worth sharding or cannot be sharded exactly.
func (e *shardedEngine) plan(qs string, opts promql.QueryOpts, rangeQuery bool) *shardPlan {
	if e.shards < 2 || (opts != nil && opts.EnablePerStepStats()) {
		return nil // per-step statistics are the engine's own, per query
	}
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return nil // the engine answers with its own error
	}
	if t := expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
		return nil
	}
	agg, nested := findLeg(expr, false)
	if agg == nil {
		return nil
	}
	p := &shardPlan{qs: qs, expr: expr}
	var leg parser.Expr = agg.Expr
	// By group only where the unsharded answer's order cannot tell: a range query (whose answer the engine
	// sorts), no aggregation above this one (which would see the groups in their first-seen order), and
	// groups that the leg's dropping of metric names does not change.
	if rangeQuery && !nested && groupAggregations[agg.Op] && (agg.Without || len(agg.Grouping) > 0) &&
		(agg.Without || !slices.Contains(agg.Grouping, labels.MetricName)) {
		leg = agg
		p.byGroup, p.without = true, agg.Without
		p.grouping = slices.Clone(agg.Grouping)
		slices.Sort(p.grouping)
	}
	pos := leg.PositionRange()
	if pos.Start < 0 || pos.End > posrange.Pos(len(qs)) || pos.Start >= pos.End {
		return nil
	}
	p.leg = strings.Repeat(" ", int(pos.Start)) + qs[pos.Start:pos.End]
	p.outer = qs[:pos.Start] + shardLegSelector + qs[pos.End:]
	// The leg's text must be the leg, and the outer query must parse: a check against any spelling this
	// splitting did not foresee.
	le, err := e.parser.ParseExpr(p.leg)
	if err != nil || le.String() != leg.String() {
		return nil
	}
	if _, err := e.parser.ParseExpr(p.outer); err != nil {
		return nil
	}
	return p
}

// groupKey is the engine's grouping key of a series for the plan's aggregation (generateGroupingKey).
func (p *shardPlan) groupKey(l labels.Labels, buf []byte) (uint64, []byte) {
	if p.without {
		return l.HashWithoutLabels(buf, p.grouping...)
	}
	return l.HashForLabels(buf, p.grouping...)
}

// findLeg walks down the operations that combine or transform whole vectors (aggregations, functions and
// arithmetic with literals) and returns the innermost aggregation over a per-series expression, or nil;
// nested says whether another aggregation is above it.
func findLeg(e parser.Expr, nested bool) (*parser.AggregateExpr, bool) {
	switch n := e.(type) {
	case *parser.ParenExpr:
		return findLeg(n.Expr, nested)
	case *parser.UnaryExpr:
		return findLeg(n.Expr, nested)
	case *parser.AggregateExpr:
		if n.Param != nil && !isLiteral(n.Param) {
			return nil, false
		}
		if perSeries(n.Expr) {
			return n, nested
		}
		return findLeg(n.Expr, true)
	case *parser.BinaryExpr:
		switch {
		case isLiteral(n.LHS):
			return findLeg(n.RHS, nested)
		case isLiteral(n.RHS):
			return findLeg(n.LHS, nested)
		}
		return nil, false
	case *parser.Call:
		var arg parser.Expr
		for _, a := range n.Args {
			if isLiteral(a) {
				continue
			}
			if arg != nil {
				return nil, false
			}
			arg = a
		}
		if arg == nil || arg.Type() != parser.ValueTypeVector {
			return nil, false
		}
		return findLeg(arg, nested)
	}
	return nil, false
}

// perSeriesFuncs are the functions whose every output series comes from one input series, with that series'
// labels or its labels without the metric name.
var perSeriesFuncs = map[string]bool{
	"rate": true, "increase": true, "irate": true, "delta": true, "idelta": true, "deriv": true,
	"predict_linear": true, "resets": true, "changes": true,
	"avg_over_time": true, "min_over_time": true, "max_over_time": true, "sum_over_time": true,
	"count_over_time": true, "last_over_time": true, "present_over_time": true, "quantile_over_time": true,
	"stddev_over_time": true, "stdvar_over_time": true, "mad_over_time": true,
	"abs": true, "ceil": true, "floor": true, "round": true, "exp": true, "ln": true, "log2": true,
	"log10": true, "sqrt": true, "sgn": true, "clamp": true, "clamp_min": true, "clamp_max": true,
	"histogram_count": true, "histogram_sum": true, "histogram_avg": true, "histogram_fraction": true,
	"histogram_stddev": true, "histogram_stdvar": true,
}

// perSeries reports whether e is a vector expression over exactly one selector whose every output series
// depends on one input series only.
func perSeries(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return true
	case *parser.ParenExpr:
		return perSeries(n.Expr)
	case *parser.UnaryExpr:
		return perSeries(n.Expr)
	case *parser.BinaryExpr:
		if n.Op.IsSetOperator() {
			return false
		}
		switch {
		case isLiteral(n.LHS):
			return perSeries(n.RHS)
		case isLiteral(n.RHS):
			return perSeries(n.LHS)
		}
		return false
	case *parser.Call:
		if !perSeriesFuncs[n.Func.Name] {
			return false
		}
		inner := 0
		for _, a := range n.Args {
			switch {
			case isLiteral(a):
			case perSeriesRange(a):
				inner++
			case a.Type() == parser.ValueTypeVector && perSeries(a):
				inner++
			default:
				return false
			}
		}
		return inner == 1
	}
	return false
}

// perSeriesRange reports whether e is a range vector of one selector: m[5m], or a subquery of a per-series
// expression.
func perSeriesRange(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.MatrixSelector:
		_, ok := n.VectorSelector.(*parser.VectorSelector)
		return ok
	case *parser.SubqueryExpr:
		return perSeries(n.Expr)
	case *parser.ParenExpr:
		return perSeriesRange(n.Expr)
	}
	return false
}

func isLiteral(e parser.Expr) bool {
	switch n := e.(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true
	case *parser.ParenExpr:
		return isLiteral(n.Expr)
	case *parser.UnaryExpr:
		return isLiteral(n.Expr)
	}
	return false
}

// shardQuery is one sharded query: its legs, the outer query over their results, or, when sharding had to be
// given up, the unsharded query.
type shardQuery struct {
	e        *shardedEngine
	q        storage.Queryable
	opts     promql.QueryOpts
	plan     *shardPlan
	start    time.Time
	end      time.Time
	interval time.Duration

	mu       sync.Mutex
	cancel   context.CancelFunc
	canceled bool
	closers  []promql.Query // every engine query made; their results stay valid until Close
	final    promql.Query   // the outer query or the unsharded one
	samples  int64          // samples the legs loaded
	fellBack bool           // answered unsharded after all
}

func (s *shardQuery) instant() bool { return s.interval == 0 }

// errNotExact gives sharding up for a query whose sharded answer could differ from the unsharded one.
var errNotExact = errors.New("sharded evaluation would not be exact")

// Exec implements promql.Query.
func (s *shardQuery) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.canceled {
		cancel()
	}
	s.cancel = cancel
	s.mu.Unlock()
	defer cancel()

	series, warns, err := s.runLegs(ctx)
	if err == nil {
		var outer promql.Query
		if outer, err = s.newQuery(ctx, &legQueryable{series: series}, s.plan.outer); err == nil {
			res := outer.Exec(ctx)
			if res.Err == nil {
				s.setFinal(outer)
				res.Warnings = warns.Merge(res.Warnings)
				return res
			}
			err = res.Err
		}
	}
	// Anything but a clean sharded answer (a leg's error, errNotExact, a cancelled or late query): the
	// unsharded engine answers, with its own errors and warnings; a cancelled context ends it at once.
	fb, ferr := s.newQuery(ctx, sortedQueryable{s.q}, s.plan.qs)
	if ferr != nil {
		return &promql.Result{Err: ferr}
	}
	s.setFinal(fb)
	s.samples = 0
	s.fellBack = true
	return fb.Exec(ctx)
}

func (s *shardQuery) setFinal(q promql.Query) {
	s.mu.Lock()
	s.final = q
	s.mu.Unlock()
}

func (s *shardQuery) newQuery(ctx context.Context, q storage.Queryable, qs string) (promql.Query, error) {
	var (
		qry promql.Query
		err error
	)
	if s.instant() {
		qry, err = s.e.ng.NewInstantQuery(ctx, q, s.opts, qs, s.start)
	} else {
		qry, err = s.e.ng.NewRangeQuery(ctx, q, s.opts, qs, s.start, s.end, s.interval)
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.closers = append(s.closers, qry)
	s.mu.Unlock()
	return qry, nil
}

// runLegs evaluates the leg on every shard at once and returns the leg's series in the order the unsharded
// engine would have selected them, as series with one sample per step (stale markers where a series has no
// value).
func (s *shardQuery) runLegs(ctx context.Context) ([]storage.Series, annotations.Annotations, error) {
	n := s.e.shards
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type legOut struct {
		series []legSeries
		warns  annotations.Annotations
		err    error
		total  int64
	}
	outs := make([]legOut, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outs[i]
			sq := &shardQueryable{q: s.q, index: uint64(i), count: uint64(n)}
			if s.plan.byGroup {
				sq.group = s.plan.groupKey
			}
			qry, err := s.newQuery(ctx, sq, s.plan.leg)
			if err != nil {
				o.err = err
				cancel()
				return
			}
			res := qry.Exec(ctx)
			o.warns = res.Warnings
			if st := qry.Stats(); st != nil && st.Samples != nil {
				o.total = st.Samples.TotalSamples
			}
			if res.Err != nil {
				o.err = res.Err
				cancel()
				return
			}
			order := inputOrder
			if s.plan.byGroup {
				order = s.plan.groupOrder
			}
			if o.series, o.err = order(res.Value, sq.inputs); o.err != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	var warns annotations.Annotations
	var total int64
	for _, o := range outs {
		if o.err != nil {
			return nil, nil, o.err
		}
		warns.Merge(o.warns)
		total += o.total
	}
	s.samples = total
	merged, err := mergeShards(outs, func(o legOut) []legSeries { return o.series })
	if err != nil {
		return nil, nil, err
	}
	step := s.interval.Milliseconds()
	end := s.end.UnixMilli()
	res := make([]storage.Series, len(merged))
	for i, ls := range merged {
		res[i] = ls.storageSeries(step, end, s.instant())
	}
	return res, warns, nil
}

// legSeries is one output series of a leg, with the labels of the input series it came from.
type legSeries struct {
	in     labels.Labels
	metric labels.Labels
	floats []promql.FPoint
	hists  []promql.HPoint
}

// inputOrder puts a leg's result in the order of its shard's input series (which the shard selected sorted
// by labels), matching each output series to the input series it came from: same labels, or same labels
// but the metric name.
func inputOrder(v parser.Value, inputs []labels.Labels) ([]legSeries, error) {
	var out []legSeries
	switch r := v.(type) {
	case promql.Matrix:
		out = make([]legSeries, len(r))
		for i, ser := range r {
			out[i] = legSeries{metric: ser.Metric, floats: ser.Floats, hists: ser.Histograms}
		}
	case promql.Vector:
		out = make([]legSeries, len(r))
		for i, smp := range r {
			ls := legSeries{metric: smp.Metric}
			if smp.H != nil {
				ls.hists = []promql.HPoint{{T: smp.T, H: smp.H}}
			} else {
				ls.floats = []promql.FPoint{{T: smp.T, F: smp.F}}
			}
			out[i] = ls
		}
	default:
		return nil, errNotExact
	}
	byHash := make(map[uint64][]int, 2*len(inputs))
	for i, in := range inputs {
		byHash[in.Hash()] = append(byHash[in.Hash()], i)
		if in.Has(labels.MetricName) {
			h := in.DropMetricName().Hash()
			byHash[h] = append(byHash[h], i)
		}
	}
	rank := make([]int, len(out))
	for i := range out {
		m := out[i].metric
		found := -1
		for _, c := range byHash[m.Hash()] {
			if labels.Equal(m, inputs[c]) || labels.Equal(m, inputs[c].DropMetricName()) {
				if found >= 0 && found != c {
					return nil, errNotExact // two inputs could have made this series
				}
				found = c
			}
		}
		if found < 0 {
			return nil, errNotExact
		}
		out[i].in = inputs[found]
		rank[i] = found
	}
	return sortByRank(out, rank)
}

// sortByRank orders series by their rank; two of the same rank give sharding up.
func sortByRank(out []legSeries, rank []int) ([]legSeries, error) {
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return rank[a] - rank[b] })
	sorted := make([]legSeries, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	for i := 1; i < len(sorted); i++ {
		if rank[idx[i]] == rank[idx[i-1]] {
			return nil, errNotExact
		}
	}
	return sorted, nil
}

// groupOrder puts a by-group leg's answer (one series per group) in the order of each group's first input
// series, which the shard selected sorted by labels.
func (p *shardPlan) groupOrder(v parser.Value, inputs []labels.Labels) ([]legSeries, error) {
	m, ok := v.(promql.Matrix)
	if !ok {
		return nil, errNotExact
	}
	first := make(map[uint64]int, len(m))
	var buf []byte
	var k uint64
	for i, in := range inputs {
		k, buf = p.groupKey(in, buf)
		if _, ok := first[k]; !ok {
			first[k] = i
		}
	}
	out := make([]legSeries, len(m))
	rank := make([]int, len(m))
	for i, ser := range m {
		k, buf = p.groupKey(ser.Metric, buf)
		r, ok := first[k]
		if !ok {
			return nil, errNotExact
		}
		out[i] = legSeries{in: inputs[r], metric: ser.Metric, floats: ser.Floats, hists: ser.Histograms}
		rank[i] = r
	}
	return sortByRank(out, rank)
}

// mergeShards merges the shards' series, each list in input label order, into one list in input label order;
// two series with the same labels (which the unsharded engine refuses) give sharding up.
func mergeShards[T any](outs []T, list func(T) []legSeries) ([]legSeries, error) {
	heads := make([][]legSeries, len(outs))
	total := 0
	for i, o := range outs {
		heads[i] = list(o)
		total += len(heads[i])
	}
	merged := make([]legSeries, 0, total)
	seen := make(map[uint64]struct{}, total)
	for len(merged) < total {
		best := -1
		for i, h := range heads {
			if len(h) == 0 {
				continue
			}
			if best < 0 || labels.Compare(h[0].in, heads[best][0].in) < 0 {
				best = i
			}
		}
		ls := heads[best][0]
		heads[best] = heads[best][1:]
		h := ls.metric.Hash()
		if _, dup := seen[h]; dup {
			return nil, errNotExact // same labels from two shards, or a hash collision: let the engine judge
		}
		seen[h] = struct{}{}
		merged = append(merged, ls)
	}
	return merged, nil
}

// storageSeries is the series the outer query selects in place of the leg: its values at the steps, and a
// stale marker at each step the leg had no value for after one it had, so that the outer query's lookback
// never carries a value over to a step the leg left empty. A series of floats only with a value at every step
// from its first on (the usual case) is read in place.
func (ls legSeries) storageSeries(step, end int64, instant bool) storage.Series {
	if len(ls.hists) == 0 && (instant || len(ls.floats) == 0 || (ls.floats[len(ls.floats)-1].T+step > end &&
		ls.floats[len(ls.floats)-1].T-ls.floats[0].T == int64(len(ls.floats)-1)*step)) {
		return &legStorageSeries{lset: ls.metric, floats: ls.floats}
	}
	pts := make([]legPoint, 0, len(ls.floats)+len(ls.hists)+1)
	stale := math.Float64frombits(value.StaleNaN)
	fi, hi := 0, 0
	for fi < len(ls.floats) || hi < len(ls.hists) {
		var next legPoint
		if hi >= len(ls.hists) || (fi < len(ls.floats) && ls.floats[fi].T < ls.hists[hi].T) {
			next = legPoint{t: ls.floats[fi].T, f: ls.floats[fi].F}
			fi++
		} else {
			next = legPoint{t: ls.hists[hi].T, fh: ls.hists[hi].H}
			hi++
		}
		if !instant && len(pts) > 0 {
			if prev := pts[len(pts)-1].t; next.t-prev > step {
				pts = append(pts, legPoint{t: prev + step, f: stale})
			}
		}
		pts = append(pts, next)
	}
	if !instant && len(pts) > 0 {
		if last := pts[len(pts)-1].t; last+step <= end {
			pts = append(pts, legPoint{t: last + step, f: stale})
		}
	}
	return &legStorageSeries{lset: ls.metric, points: pts}
}

// legPoint is one value of a leg series: a float, or a float histogram.
type legPoint struct {
	t  int64
	f  float64
	fh *histogram.FloatHistogram
}

// legStorageSeries is a leg series as storage: floats read in place, or points.
type legStorageSeries struct {
	lset   labels.Labels
	floats []promql.FPoint
	points []legPoint
}

func (s *legStorageSeries) Labels() labels.Labels { return s.lset }

func (s *legStorageSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	if s.points != nil {
		return storage.NewListSeriesIterator(legPoints(s.points))
	}
	return storage.NewListSeriesIterator(legFloats(s.floats))
}

// legPoints and legFloats hand out pointers into the leg's own slices, so that reading a sample allocates
// nothing.
type (
	legPoints []legPoint
	legFloats []promql.FPoint
	legFloat  struct{ p promql.FPoint } // the layout of an FPoint: a pointer to one is a pointer to the other
)

func (p legPoints) Get(i int) chunks.Sample { return &p[i] }
func (p legPoints) Len() int                { return len(p) }
func (p legFloats) Get(i int) chunks.Sample { return (*legFloat)(unsafe.Pointer(&p[i])) }
func (p legFloats) Len() int                { return len(p) }

func (p *legPoint) T() int64                      { return p.t }
func (p *legPoint) ST() int64                     { return 0 }
func (p *legPoint) F() float64                    { return p.f }
func (p *legPoint) H() *histogram.Histogram       { return nil }
func (p *legPoint) FH() *histogram.FloatHistogram { return p.fh }
func (p *legPoint) Copy() chunks.Sample           { c := *p; return &c }
func (p *legPoint) Type() chunkenc.ValueType {
	if p.fh != nil {
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

func (p *legFloat) T() int64                      { return p.p.T }
func (p *legFloat) ST() int64                     { return 0 }
func (p *legFloat) F() float64                    { return p.p.F }
func (p *legFloat) H() *histogram.Histogram       { return nil }
func (p *legFloat) FH() *histogram.FloatHistogram { return nil }
func (p *legFloat) Copy() chunks.Sample           { c := *p; return &c }
func (p *legFloat) Type() chunkenc.ValueType      { return chunkenc.ValFloat }

// Close implements promql.Query: the legs' results are released only now, as the outer query's series point
// into them.
func (s *shardQuery) Close() {
	s.mu.Lock()
	qs := s.closers
	s.closers = nil
	s.mu.Unlock()
	for _, q := range qs {
		q.Close()
	}
}

// Statement implements promql.Query.
func (s *shardQuery) Statement() parser.Statement {
	lookback := time.Duration(0)
	if s.opts != nil {
		lookback = s.opts.LookbackDelta()
	}
	return &parser.EvalStmt{Expr: s.plan.expr, Start: s.start, End: s.end, Interval: s.interval, LookbackDelta: lookback}
}

// Stats implements promql.Query: the timings of the query that answered; the samples the legs loaded from
// storage (the outer query's samples are the legs' results, not storage).
func (s *shardQuery) Stats() *stats.Statistics {
	s.mu.Lock()
	final := s.final
	s.mu.Unlock()
	if final == nil {
		return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: stats.NewQuerySamples(false)}
	}
	st := final.Stats()
	if s.samples > 0 && st != nil && st.Samples != nil {
		c := *st.Samples
		c.TotalSamples = s.samples
		c.SamplesRead = s.samples
		st = &stats.Statistics{Timers: st.Timers, Samples: &c}
	}
	return st
}

// Cancel implements promql.Query.
func (s *shardQuery) Cancel() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.canceled = true
	if s.cancel != nil {
		s.cancel()
	}
}

// String implements promql.Query.
func (s *shardQuery) String() string { return s.plan.qs }

// sortedQueryable selects series sorted by labels. The TSDB does so whenever more than the head answers; the
// head alone answers in the order series were created. Sorting always makes a query's answer independent of
// whether its data has been compacted yet, and is what lets a sharded query reproduce the unsharded order.
type sortedQueryable struct{ q storage.Queryable }

func (s sortedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return sortedQuerier{q}, nil
}

type sortedQuerier struct{ storage.Querier }

func (s sortedQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return s.Querier.Select(ctx, true, hints, ms...)
}

// shardQueryable selects one shard of the series, sorted by labels, and records the labels of what it
// selected (in order) for inputOrder. The shards are the TSDB's, or, with group, those of the series'
// grouping keys. One shard's query runs on one goroutine.
type shardQueryable struct {
	q      storage.Queryable
	index  uint64
	count  uint64
	group  func(labels.Labels, []byte) (uint64, []byte)
	inputs []labels.Labels
	buf    []byte
}

func (s *shardQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("open querier for shard %d of %d: %w", s.index, s.count, err)
	}
	return &shardQuerier{Querier: q, s: s}, nil
}

type shardQuerier struct {
	storage.Querier
	s *shardQueryable
}

func (q *shardQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.s.group != nil {
		return &recordingSet{SeriesSet: q.Querier.Select(ctx, true, hints, ms...), s: q.s}
	}
	var h storage.SelectHints
	if hints != nil {
		h = *hints
	}
	h.ShardIndex, h.ShardCount = q.s.index, q.s.count
	return &recordingSet{SeriesSet: q.Querier.Select(ctx, true, &h, ms...), s: q.s}
}

type recordingSet struct {
	storage.SeriesSet
	s *shardQueryable
}

func (r *recordingSet) Next() bool {
	for r.SeriesSet.Next() {
		l := r.SeriesSet.At().Labels()
		if r.s.group != nil {
			var k uint64
			k, r.s.buf = r.s.group(l, r.s.buf)
			if k%r.s.count != r.s.index {
				continue
			}
		}
		r.s.inputs = append(r.s.inputs, l)
		return true
	}
	return false
}

// legQueryable serves the legs' series to the outer query, in order, for any selection.
type legQueryable struct{ series []storage.Series }

func (l *legQueryable) Querier(int64, int64) (storage.Querier, error) { return legQuerier{l}, nil }

type legQuerier struct{ l *legQueryable }

func (q legQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return &listSet{series: q.l.series, i: -1}
}

func (legQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (legQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (legQuerier) Close() error { return nil }

type listSet struct {
	series []storage.Series
	i      int
}

func (s *listSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSet) At() storage.Series                { return s.series[s.i] }
func (s *listSet) Err() error                        { return nil }
func (s *listSet) Warnings() annotations.Annotations { return nil }
