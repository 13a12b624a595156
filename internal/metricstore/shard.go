package metricstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// Shard-parallel PromQL evaluation.
//
// Prometheus' engine evaluates a query on one goroutine. For a range query over an aggregation by labels, such
// as sum by (instance) (rate(m[1m])), almost all of the work is per series (reading chunks into the range
// windows, rate), and every group's answer depends only on that group's series. shardedEngine therefore cuts
// the series by group: it lists the values of one grouping label (instance), deals them out to N shards, and
// evaluates the aggregation N times in parallel, each time by the same engine over a Queryable that selects
// the shard's values one by one (the selection plus instance="host-1", then instance="host-3", …; the TSDB
// finds each from its postings, reading no other series). A last shard takes the series without that label. The rest of the
// query (histogram_quantile(0.9, …) around sum by (le) (…), or nothing) is then evaluated once, by the same
// engine, over a Queryable that serves the groups' answers as series with one sample per step.
//
// Each group is computed whole by one shard, over its series in the order the unsharded engine selects them
// (a shard's selection is a subsequence of the unsharded one: the head's postings order, or label order when
// blocks answer too), so every answer is the unsharded engine's to the bit, floating-point summation order
// included. Unlike Mimir's sharding, which sums partial sums, nothing is re-aggregated. Queries this cannot
// answer exactly (instant queries, whose answer lists groups in the order they were first seen; aggregations
// without grouping labels; topk and the like; anything unusual at run time) go to the engine unsharded.

// shardedEngine is the promql.QueryEngine of the Prometheus API: it shards what it can and hands the rest to
// the engine.
type shardedEngine struct {
	ng       *promql.Engine
	legs     *promql.Engine // ng with max_fetched_samples shared out among the shards
	parser   parser.Parser
	shards   int
	lookback time.Duration // the engine's lookback delta
	procs    *querylimit.Processors
	// legSamples is the legs' engine's max samples (a share of maxSamples, the whole query's); the streamed
	// legs (fastleg.go) count against maxSamples together. noFastLegs hands every leg to the engine.
	legSamples int
	maxSamples int
	noFastLegs bool
}

// legSamples is legs' max samples; the whole query's, which the streamed legs keep to together, is ng's
// (maxSamples, legSamples until set).
func newShardedEngine(ng, legs *promql.Engine, legSamples, shards int, lookback time.Duration) *shardedEngine {
	if lookback <= 0 {
		lookback = 5 * time.Minute // the engine's default
	}
	return &shardedEngine{ng: ng, legs: legs, parser: parser.NewParser(parser.Options{}), shards: shards, lookback: lookback, legSamples: legSamples, maxSamples: legSamples, procs: querylimit.Shared()}
}

// NewInstantQuery implements promql.QueryEngine.
func (e *shardedEngine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return e.ng.NewInstantQuery(ctx, q, opts, qs, ts)
}

// NewRangeQuery implements promql.QueryEngine.
func (e *shardedEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if p := e.plan(qs, opts); p != nil && interval > 0 && !end.Before(start) {
		return &shardQuery{e: e, q: q, opts: opts, plan: p, start: start, end: end, interval: interval}, nil
	}
	return e.ng.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
}

// shardPlan is how a range query splits: the leg, the aggregation evaluated per shard, and the outer query,
// evaluated once over the legs' answers. Both are query strings of the original's length up to the leg, so
// that the positions the engine's warnings name are those of the original query.
type shardPlan struct {
	qs    string
	expr  parser.Expr
	leg   string
	outer string
	// by is the grouping label whose values cut the shards; matchers are the leg's selection.
	by       string
	matchers []*labels.Matcher
	// fast streams the leg when it is of a shape fastleg.go evaluates, or is nil.
	fast *fastLeg
}

// shardLegSelector stands for the leg in the outer query; the outer query's Queryable answers every selection
// with the legs' series, whatever the matchers.
const shardLegSelector = "sprout_shard_leg"

// groupAggregations are the aggregations with one answer per group (topk and the like answer several series
// per group, in an order of their own).
var groupAggregations = map[parser.ItemType]bool{
	parser.SUM: true, parser.AVG: true, parser.COUNT: true, parser.MIN: true, parser.MAX: true,
	parser.GROUP: true, parser.STDDEV: true, parser.STDVAR: true, parser.QUANTILE: true,
}

// plan returns how the range query qs splits, or nil when it is not worth sharding or cannot be sharded
// exactly.
func (e *shardedEngine) plan(qs string, opts promql.QueryOpts) *shardPlan {
	if opts != nil && opts.EnablePerStepStats() {
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
	// No aggregation above this one: it would see the groups in the order they were first seen, which the
	// shards do not know.
	if agg == nil || nested || !groupAggregations[agg.Op] || agg.Without {
		return nil
	}
	p := &shardPlan{qs: qs, expr: expr}
	for _, l := range agg.Grouping {
		if l == labels.MetricName {
			return nil // the leg may drop the name: its groups are not the selection's
		}
	}
	if len(agg.Grouping) > 0 && e.shards >= 2 {
		p.by = agg.Grouping[0]
	}
	parser.Inspect(agg.Expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			p.matchers = vs.LabelMatchers
		}
		return nil
	})
	pos := agg.PositionRange()
	if pos.Start < 0 || pos.End > posrange.Pos(len(qs)) || pos.Start >= pos.End {
		return nil
	}
	p.leg = strings.Repeat(" ", int(pos.Start)) + qs[pos.Start:pos.End]
	p.outer = qs[:pos.Start] + shardLegSelector + qs[pos.End:]
	// The leg's text must be the leg, and the outer query must parse: a check against any spelling this
	// splitting did not foresee.
	le, err := e.parser.ParseExpr(p.leg)
	if err != nil || le.String() != agg.String() {
		return nil
	}
	if !e.noFastLegs {
		p.fast = planFastLeg(le)
	}
	// An aggregation without grouping labels is one group, and query_shards 1 (one processor) one shard:
	// nothing to shard, but the leg may be streamed, as one shard over the whole selection.
	if p.by == "" && p.fast == nil {
		return nil
	}
	if _, err := e.parser.ParseExpr(p.outer); err != nil {
		return nil
	}
	return p
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

// shardQuery is one sharded range query: its legs, the outer query over their answers, or, when sharding had
// to be given up, the unsharded query.
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
	streamed atomic.Int32   // legs answered by the stream (fastleg.go)
	unstream atomic.Int32   // streamable legs the stream gave back to the engine
	// ratePoints are the streamed legs' rate points, counted against max_fetched_samples (see legBudget).
	ratePoints atomic.Int64
}

// errNotExact gives sharding up for a query whose sharded answer could differ from the unsharded one, or that
// sharding would not make faster.
var errNotExact = errors.New("sharded evaluation would not be exact or faster")

// errStreamedOverBudget is the streamed legs' refusal of a query over max_fetched_samples (an engine leg's
// refusal of its share is not the query's).
var errStreamedOverBudget = errors.New("streamed legs over max_fetched_samples")

// maxShardValues bounds the values of the grouping label a query is sharded by: each shard's selection is a
// set of values, which the TSDB looks up one by one.
const maxShardValues = 20_000

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
	if errors.Is(err, errStreamedOverBudget) {
		// The streamed legs counted more rate points than the unsharded engine may hold: it would refuse
		// too, so it is not asked (see legBudget).
		return &promql.Result{Err: errTooManySamples}
	}
	if err == nil {
		var outer promql.Query
		if outer, err = s.newQuery(ctx, s.e.ng, &legQueryable{series: series}, s.plan.outer); err == nil {
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
	fb, ferr := s.newQuery(ctx, s.e.ng, s.q, s.plan.qs)
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

func (s *shardQuery) newQuery(ctx context.Context, ng *promql.Engine, q storage.Queryable, qs string) (promql.Query, error) {
	qry, err := ng.NewRangeQuery(ctx, q, s.opts, qs, s.start, s.end, s.interval)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.closers = append(s.closers, qry)
	s.mu.Unlock()
	return qry, nil
}

// shardMatchers deals the values of the grouping label out to the shards, as one equality matcher per value,
// and adds the shard of the series without that label. (A regular expression of the values would cost more to
// compile than the query: some 90 ms for a thousand values.)
func (s *shardQuery) shardMatchers(ctx context.Context) ([][]*labels.Matcher, error) {
	if s.plan.by == "" {
		return [][]*labels.Matcher{nil}, nil // one group: one shard, the whole selection
	}
	lookback := time.Duration(0)
	if s.opts != nil {
		lookback = s.opts.LookbackDelta()
	}
	if lookback <= 0 {
		lookback = s.e.lookback
	}
	pe, err := promql.PreprocessExpr(s.plan.expr, s.start, s.end, s.interval)
	if err != nil {
		return nil, err
	}
	mint, maxt := promql.FindMinMaxTime(&parser.EvalStmt{Expr: pe, Start: s.start, End: s.end, Interval: s.interval, LookbackDelta: lookback})
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	values, _, err := q.LabelValues(ctx, s.plan.by, nil, s.plan.matchers...)
	if err != nil {
		return nil, err
	}
	if len(values) < 2 || len(values) > maxShardValues {
		return nil, errNotExact
	}
	n := min(s.e.shards, len(values))
	sets := make([][]*labels.Matcher, n, n+1)
	for i, v := range values {
		sets[i%n] = append(sets[i%n], labels.MustNewMatcher(labels.MatchEqual, s.plan.by, v))
	}
	return append(sets, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, s.plan.by, "")}), nil
}

// runLegs evaluates the aggregation on every shard at once and returns the groups' answers as series with one
// sample per step (stale markers where a group has no value).
func (s *shardQuery) runLegs(ctx context.Context) ([]storage.Series, annotations.Annotations, error) {
	shardMs, err := s.shardMatchers(ctx)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type legOut struct {
		m              promql.Matrix
		warns          annotations.Annotations
		err            error
		total          int64
		streamed       bool
		inner, answers int64
	}
	budget := &legBudget{max: int64(s.e.maxSamples)}
	outs := make([]legOut, len(shardMs))
	var wg sync.WaitGroup
	for i, ms := range shardMs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outs[i]
			// Each leg computes on its own processor of the queries' share.
			ctx, done, err := querylimit.Enter(ctx, s.e.procs)
			if err != nil {
				o.err = err
				return
			}
			defer done()
			sq := &shardQueryable{q: s.q, values: ms}
			if s.plan.fast != nil {
				r, err := s.plan.fast.eval(ctx, sq, s.start, s.end, s.interval, budget)
				switch {
				case err == nil:
					o.m, o.warns, o.total = r.m, r.annos, r.total
					o.streamed, o.inner, o.answers = true, r.inner, r.answers
					s.streamed.Add(1)
					return
				case !errors.Is(err, errNotExact):
					o.err, o.streamed = err, true
					cancel()
					return
				}
				// Not a leg the stream answers exactly: the engine's.
				s.unstream.Add(1)
			}
			qry, err := s.newQuery(ctx, s.e.legs, sq, s.plan.leg)
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
			if res.Err == nil {
				o.m, res.Err = res.Matrix()
			}
			if res.Err != nil {
				o.err = res.Err
				cancel()
			}
		}()
	}
	querylimit.Pause(ctx) // the legs need processors to make progress
	wg.Wait()
	s.ratePoints.Store(budget.fetched.Load())
	var warns annotations.Annotations
	var total, streamedPeak int64
	var all promql.Matrix
	// A streamed leg's refusal first: the other legs' errors are the cancellation it caused.
	for _, o := range outs {
		if errors.Is(o.err, errTooManySamples) && o.streamed {
			return nil, nil, errStreamedOverBudget
		}
	}
	for _, o := range outs {
		if o.err != nil {
			return nil, nil, o.err
		}
		warns.Merge(o.warns)
		total += o.total
		if o.streamed {
			streamedPeak += o.inner + o.answers
		}
		all = append(all, o.m...)
	}
	// Under the limit by the rate points alone, but the engine's peak is about the rate points and the answer
	// together: near the limit, the engine judges.
	if streamedPeak > int64(s.e.maxSamples) {
		return nil, nil, errNotExact
	}
	s.samples = total
	slices.SortFunc(all, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	step := s.interval.Milliseconds()
	end := s.end.UnixMilli()
	res := make([]storage.Series, len(all))
	for i, ser := range all {
		if i > 0 && labels.Equal(ser.Metric, all[i-1].Metric) {
			return nil, nil, errNotExact // one group in two shards: cannot happen; let the engine judge
		}
		res[i] = legSeries{metric: ser.Metric, floats: ser.Floats, hists: ser.Histograms}.storageSeries(step, end)
	}
	return res, warns, nil
}

// legSeries is one group's answer from a leg.
type legSeries struct {
	metric labels.Labels
	floats []promql.FPoint
	hists  []promql.HPoint
}

// storageSeries is the series the outer query selects in place of the leg: its values at the steps, and a
// stale marker at each step the leg had no value for after one it had, so that the outer query's lookback
// never carries a value over to a step the leg left empty. A series of floats only with a value at every step
// from its first on (the usual case) is read in place.
func (ls legSeries) storageSeries(step, end int64) storage.Series {
	if len(ls.hists) == 0 && (len(ls.floats) == 0 || (ls.floats[len(ls.floats)-1].T+step > end &&
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
		if len(pts) > 0 {
			if prev := pts[len(pts)-1].t; next.t-prev > step {
				pts = append(pts, legPoint{t: prev + step, f: stale})
			}
		}
		pts = append(pts, next)
	}
	if len(pts) > 0 {
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

// shardQueryable selects one shard's series: for each of the shard's values of the grouping label, the
// selection with that value, one after the other. A group's series all have the same value, so each group comes
// from one selection, in the unsharded order; the order between groups does not change their answers.
type shardQueryable struct {
	q      storage.Queryable
	values []*labels.Matcher
}

func (s *shardQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("open querier for a shard: %w", err)
	}
	return &shardQuerier{Querier: q, values: s.values}, nil
}

type shardQuerier struct {
	storage.Querier
	values []*labels.Matcher
}

func (q *shardQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if len(q.values) == 0 {
		return q.Querier.Select(ctx, sortSeries, hints, ms...) // the one shard of an aggregation without grouping
	}
	return q.selectValues(ctx, q.Querier.Select, sortSeries, hints, ms...)
}

// selectUnchecked is Select without the per-series Checkpoint (see uncheckedSelecter), when the querier
// under it offers that.
func (q *shardQuerier) selectUnchecked(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var sel selectFunc = q.Querier.Select
	if u, ok := q.Querier.(uncheckedSelecter); ok {
		sel = u.selectUnchecked
	}
	if len(q.values) == 0 {
		return sel(ctx, sortSeries, hints, ms...)
	}
	return q.selectValues(ctx, sel, sortSeries, hints, ms...)
}

func (q *shardQuerier) selectValues(ctx context.Context, sel selectFunc, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if sortSeries {
		sets := make([]storage.SeriesSet, len(q.values))
		for i, v := range q.values {
			sets[i] = sel(ctx, sortSeries, hints, append(slices.Clip(ms), v)...)
		}
		return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	}
	// One value's selection at a time: a shard has thousands of values, and a selection holds its postings
	// and buffers until it is read.
	return &concatSet{n: len(q.values), open: func(i int) storage.SeriesSet {
		return sel(ctx, false, hints, append(slices.Clip(ms), q.values[i])...)
	}}
}

type selectFunc func(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet

// concatSet is its series sets one after the other, each opened when the one before it is done.
type concatSet struct {
	n     int
	open  func(i int) storage.SeriesSet
	cur   storage.SeriesSet
	i     int
	warns annotations.Annotations
}

func (c *concatSet) Next() bool {
	for c.i < c.n {
		if c.cur == nil {
			c.cur = c.open(c.i)
		}
		if c.cur.Next() {
			return true
		}
		if c.cur.Err() != nil {
			return false
		}
		c.warns.Merge(c.cur.Warnings())
		c.cur = nil
		c.i++
	}
	return false
}

func (c *concatSet) At() storage.Series { return c.cur.At() }

func (c *concatSet) Err() error {
	if c.cur != nil {
		return c.cur.Err()
	}
	return nil
}

func (c *concatSet) Warnings() annotations.Annotations {
	if c.cur != nil {
		return c.warns.Merge(c.cur.Warnings())
	}
	return c.warns
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
