package logql

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// SelectParams says which entries a query needs from the store.
type SelectParams struct {
	Matchers []*labels.Matcher
	// Start and End bound entry timestamps in nanoseconds: Start <= ts < End.
	Start, End int64
	// TraceID, when set, means only entries whose structured metadata has trace_id equal to it can match; a
	// store with a trace-id index uses it to skip everything else.
	TraceID string
	// LineFilter, when set, is a pure function the store may apply to lines before handing them over (in
	// parallel, before decoding structured metadata). The engine applies its whole pipeline anyway.
	LineFilter func(line string) bool
	// Skipped, when set, is called by the store with the lines and bytes it read but dropped by LineFilter, so
	// that stats still count every line read. It may be called concurrently.
	Skipped func(lines, bytes int64)
	// Cutoff, when set (log queries with a limit), tells the store which entries can no longer make the result:
	// once ok, for Direction Backward entries older than ts, for Forward entries newer than ts. The store may
	// skip them, and with Cutoff set it may hand entries over in any order (it reads the newest chunks first for
	// Backward, the oldest first for Forward). Safe for concurrent use.
	Cutoff    func() (ts int64, ok bool)
	Direction Direction
}

// Beyond reports whether an entry at ts is past the cutoff c for direction d.
func Beyond(d Direction, ts, c int64) bool {
	if d == Forward {
		return ts > c
	}
	return ts < c
}

// LinePrefilter returns the conjunction of the line filters that open a pipeline, or nil if it opens with
// another stage. It is safe for concurrent use.
func LinePrefilter(stages []Stage) func(string) bool {
	var fns []stageFn
	for _, st := range stages {
		f, ok := st.(*LineFilter)
		if !ok {
			break
		}
		fns = append(fns, lineFilterFn(f))
	}
	if len(fns) == 0 {
		return nil
	}
	return func(line string) bool {
		for _, f := range fns {
			if _, ok := f(0, line, nil); !ok {
				return false
			}
		}
		return true
	}
}

// LineFilterer is a Querier that always applies SelectParams.LineFilter itself (to every entry it hands over):
// the engine then leaves the pipeline's leading line filters out instead of running them twice.
type LineFilterer interface {
	AppliesLineFilter() bool
}

// pipelineStages are the stages the engine runs on entries from q.
func pipelineStages(q Querier, stages []Stage) []Stage {
	lf, ok := q.(LineFilterer)
	if !ok || !lf.AppliesLineFilter() {
		return stages
	}
	n := 0
	for n < len(stages) {
		if _, ok := stages[n].(*LineFilter); !ok {
			break
		}
		n++
	}
	return stages[n:]
}

// skipCounter collects what a store read but dropped with SelectParams.LineFilter, from its workers.
type skipCounter struct{ lines, bytes atomic.Int64 }

func (c *skipCounter) add(lines, bytes int64) { c.lines.Add(lines); c.bytes.Add(bytes) }

func (c *skipCounter) into(st *Stats) {
	st.TotalLinesProcessed += c.lines.Load()
	st.TotalBytesProcessed += c.bytes.Load()
}

// Querier is what the engine needs from a store.
type Querier interface {
	// SelectLogs calls fn for each matching entry; entries of one stream come in ascending time order.
	// Returning an error from fn stops the walk and returns that error.
	SelectLogs(ctx context.Context, p SelectParams, fn func(stream labels.Labels, e Entry) error) error
}

// Counter is a Querier that can count lines instead of handing each over. The engine uses it for a counting
// range aggregation (count_over_time, rate, bytes_over_time, bytes_rate, absent_over_time, without unwrap)
// whose pipeline is empty once the store has applied the leading line filters, grouped so that no label but
// the stream's and the named structured metadata can matter: the store may then answer a whole chunk from its
// index (entry count, line bytes, time range) without decoding it, and decodes the others without building
// entries.
type Counter interface {
	// CountLogs selects what SelectLogs would (p's matchers, time range, trace id and line filter, applied the
	// same way, lines dropped by the line filter reported through p.Skipped) and calls fn with runs of lines of
	// one stream that lie between the same two of c.Bounds (k is the index of the first bound at or after
	// their timestamps, as slices.BinarySearch gives it) and carry the same values of c.MetaNames in their
	// structured metadata (meta[i] is "" where a line has none). An entry that two of a stream's sources hold
	// is counted once, as SelectLogs hands it over once. Runs of one stream come in the order SelectLogs would
	// hand their lines over; fn's error stops the walk and is returned.
	CountLogs(ctx context.Context, p SelectParams, c CountParams, fn func(stream labels.Labels, meta []string, k int, lines, bytes int64) error) error
}

// CountParams say how CountLogs groups the lines it counts.
type CountParams struct {
	Bounds    []int64  // ascending, unique
	MetaNames []string // structured metadata whose values the caller needs; none lets a store count from stats
}

// Direction of a log query.
type Direction int

// Directions.
const (
	Backward Direction = iota
	Forward
)

// Stats are the figures a query reports, a subset of Loki's `stats.summary`.
type Stats struct {
	TotalLinesProcessed  int64
	TotalBytesProcessed  int64
	TotalEntriesReturned int64
	ExecTime             time.Duration
}

// ResultEntry is a log line in a query result.
type ResultEntry struct {
	Timestamp int64
	Line      string
	// Metadata and Parsed are filled only for categorized results.
	Metadata labels.Labels
	Parsed   labels.Labels
}

// Stream is one stream of a log query result.
type Stream struct {
	Labels  labels.Labels
	Entries []ResultEntry
}

// Sample is one value of a series at one time.
type Sample struct {
	Labels labels.Labels
	T      int64 // ns
	V      float64
}

// Point is one value of a series.
type Point struct {
	T int64 // ns
	V float64
}

// Series is a metric series of a range query result.
type Series struct {
	Labels labels.Labels
	Points []Point
}

// Limits bound what one query may do.
type Limits struct {
	MaxSeries int // default 500, as Loki's max_query_series
	MaxPoints int // per query: steps × series; default 11000 steps as in Prometheus
	// MaxBytesRead stops a query once it has read this many bytes of lines (Loki's max_query_bytes_read); 0
	// does not limit.
	MaxBytesRead int64
	// MaxSamples bounds the samples (one per matching line) a metric query holds in memory at once, over all its
	// range aggregations (as Prometheus' query.max-samples); 0 does not limit.
	MaxSamples int64
}

// checkEvery is how many lines a scan reads between two looks at its context.
const checkEvery = 1024

// Engine evaluates LogQL over a Querier.
type Engine struct {
	Limits Limits
}

// ErrLimit is wrapped by errors caused by query limits.
var ErrLimit = errors.New("query limit")

// ErrPipeline is wrapped by the error of a metric query whose samples kept an __error__ label: the client's
// query is at fault (it must filter the error out), so the API answers 400 with Loki's text.
var ErrPipeline = errors.New("pipeline error")

const preserveErrorLabel = "__preserve_error__"

func pipelineError(series labels.Labels) error {
	kind := series.Get(ErrorLabel)
	return fmt.Errorf("%w: '%s' for series: '%s'.\n"+
		"Use a label filter to intentionally skip this error. (e.g | __error__!=\"%s\").\n"+
		"To skip all potential errors you can match empty errors.(e.g __error__=\"\")\n"+
		"The label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n",
		ErrPipeline, kind, series.String(), kind)
}

// TraceIDHint returns the trace id a log selector filters on when the filter runs before any stage that could
// create a trace_id label, so a store may answer from its trace-id index; "" otherwise.
func TraceIDHint(sel *LogSelectorExpr) string {
	for _, st := range sel.Stages {
		switch s := st.(type) {
		case *LineFilter:
			continue
		case *LabelFilterStage:
			if v := traceIDInFilter(s.Filter); v != "" {
				return v
			}
			continue
		}
		return ""
	}
	return ""
}

func traceIDInFilter(f LabelFilter) string {
	switch f := f.(type) {
	case *StringLabelFilter:
		if f.M.Name == "trace_id" && f.M.Type == labels.MatchEqual && f.M.Value != "" {
			return f.M.Value
		}
	case *BinaryLabelFilter:
		if f.And {
			if v := traceIDInFilter(f.Left); v != "" {
				return v
			}
			return traceIDInFilter(f.Right)
		}
	}
	return ""
}

// LogQuery is a log query's parameters.
type LogQuery struct {
	Expr       *LogSelectorExpr
	Start, End int64 // ns, [start, end)
	Limit      int
	Direction  Direction
	// Categorize returns stream labels only as stream keys, and structured metadata and parsed labels per entry.
	Categorize bool
}

type resEntry struct {
	ts           int64
	line         string
	key          labels.Labels
	meta, parsed labels.Labels
}

// SelectLogs runs a log query.
func (e *Engine) SelectLogs(ctx context.Context, q Querier, lq LogQuery, st *Stats) ([]Stream, error) {
	begin := time.Now()
	if lq.Limit <= 0 {
		lq.Limit = 100
	}
	p := NewPipeline(pipelineStages(q, lq.Expr.Stages))
	var kept []resEntry
	before := func(a, b resEntry) bool {
		if lq.Direction == Forward {
			return a.ts < b.ts
		}
		return a.ts > b.ts
	}
	// cut is the timestamp of the limit-th entry kept so far: nothing beyond it can enter the result, so the
	// store may stop reading there.
	var cut atomic.Int64
	var haveCut atomic.Bool
	trim := func() {
		sort.SliceStable(kept, func(i, j int) bool { return before(kept[i], kept[j]) })
		kept = dropDuplicates(kept)
		if len(kept) >= lq.Limit {
			kept = kept[:lq.Limit]
			cut.Store(kept[lq.Limit-1].ts)
			haveCut.Store(true)
		}
	}
	sp := SelectParams{Matchers: lq.Expr.Matchers, Start: lq.Start, End: lq.End, TraceID: TraceIDHint(lq.Expr),
		LineFilter: LinePrefilter(lq.Expr.Stages), Direction: lq.Direction,
		Cutoff: func() (int64, bool) { return cut.Load(), haveCut.Load() }}
	var sc skipCounter
	sp.Skipped = sc.add
	defer sc.into(st)
	err := q.SelectLogs(ctx, sp, func(stream labels.Labels, en Entry) error {
		st.TotalLinesProcessed++
		st.TotalBytesProcessed += int64(len(en.Line))
		if st.TotalLinesProcessed%checkEvery == 0 {
			if err := querylimit.Checkpoint(ctx); err != nil {
				return err
			}
		}
		line, ok := p.Process(en.Timestamp, en.Line, stream, en.Metadata)
		if !ok {
			return nil
		}
		re := resEntry{ts: en.Timestamp, line: line}
		if lq.Categorize {
			re.key, re.meta, re.parsed = p.Builder().Categorized()
		} else {
			re.key = p.Builder().Labels()
		}
		kept = append(kept, re)
		if len(kept) >= 2*lq.Limit+64 || (len(kept) == lq.Limit && !haveCut.Load()) {
			trim()
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	trim()
	byKey := map[string]*Stream{}
	var out []*Stream
	for _, re := range kept {
		k := re.key.String()
		s := byKey[k]
		if s == nil {
			s = &Stream{Labels: re.key}
			byKey[k] = s
			out = append(out, s)
		}
		s.Entries = append(s.Entries, ResultEntry{Timestamp: re.ts, Line: re.line, Metadata: re.meta, Parsed: re.parsed})
	}
	res := make([]Stream, len(out))
	for i, s := range out {
		res[i] = *s
	}
	sort.Slice(res, func(i, j int) bool { return labels.Compare(res[i].Labels, res[j].Labels) < 0 })
	st.TotalEntriesReturned = int64(len(kept))
	st.ExecTime = time.Since(begin)
	return res, nil
}

// dropDuplicates removes from kept (sorted by timestamp) every entry equal to an earlier one in timestamp,
// stream, labels and line: Loki's merge of entry iterators returns such entries once, also when a pipeline made
// them equal (two lines of one nanosecond that line_format writes the same).
func dropDuplicates(kept []resEntry) []resEntry {
	out := kept[:0]
	for i := 0; i < len(kept); {
		j := i + 1
		for j < len(kept) && kept[j].ts == kept[i].ts {
			j++
		}
		if j-i == 1 {
			out = append(out, kept[i])
		} else {
			seen := make(map[string]bool, j-i)
			for _, re := range kept[i:j] {
				id := re.key.String() + "\xff" + re.meta.String() + "\xff" + re.parsed.String() + "\xff" + re.line
				if !seen[id] {
					seen[id] = true
					out = append(out, re)
				}
			}
		}
		i = j
	}
	return out
}

// vectorResult is a sample expression evaluated at every step.
type vectorResult struct {
	scalar bool
	vecs   [][]Sample // per step
}

type evaluator struct {
	e          *Engine
	q          Querier
	ctx        context.Context
	start, end int64
	step       int64
	steps      int
	st         *Stats
	samples    int64 // held by range aggregations so far (Limits.MaxSamples)
	// pushed is a range aggregation that evalVectorAgg grouped while reading. Loki does not group a line
	// that failed a stage (it keeps all its labels, __error__ among them), so a failed line in a grouped
	// range aggregation fails the query there, as its series would.
	pushed *RangeAggregation
}

// EvalRange evaluates a metric query at every step from start to end inclusive (all in ns). A step of 0
// evaluates once, at start (an instant query). The result is a matrix; for an instant query callers take each
// series' single point. isScalar reports a result that is a plain number.
func (e *Engine) EvalRange(ctx context.Context, q Querier, expr SampleExpr, start, end, step int64, st *Stats) (res []Series, isScalar bool, err error) {
	begin := time.Now()
	defer func() { st.ExecTime = time.Since(begin) }()
	steps := 1
	if step > 0 {
		if end < start {
			return nil, false, fmt.Errorf("invalid query, end (%d) is before start (%d)", end, start)
		}
		steps = int((end-start)/step) + 1
	}
	maxPoints := e.Limits.MaxPoints
	if maxPoints <= 0 {
		maxPoints = 11000
	}
	if steps > maxPoints {
		return nil, false, fmt.Errorf("%w: exceeded maximum resolution of %d points per timeseries; try decreasing the query resolution (?step=XX)", ErrLimit, maxPoints)
	}
	ev := &evaluator{e: e, q: q, ctx: ctx, start: start, end: end, step: step, steps: steps, st: st}
	vr, err := ev.eval(expr)
	if err != nil {
		return nil, false, err
	}
	bySeries := map[string]*Series{}
	var order []*Series
	for i, vec := range vr.vecs {
		t := start + int64(i)*step
		for _, s := range vec {
			k := s.Labels.String()
			se := bySeries[k]
			if se == nil {
				se = &Series{Labels: s.Labels}
				bySeries[k] = se
				order = append(order, se)
			}
			se.Points = append(se.Points, Point{T: t, V: s.V})
		}
	}
	maxSeries := e.Limits.MaxSeries
	if maxSeries <= 0 {
		maxSeries = 500
	}
	if len(order) > maxSeries {
		return nil, false, fmt.Errorf("%w: maximum number of series (%d) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with a sum by (...)", ErrLimit, maxSeries)
	}
	res = make([]Series, len(order))
	for i, s := range order {
		res[i] = *s
	}
	sort.Slice(res, func(i, j int) bool { return labels.Compare(res[i].Labels, res[j].Labels) < 0 })
	return res, vr.scalar, nil
}

func (ev *evaluator) stepTime(i int) int64 { return ev.start + int64(i)*ev.step }

func (ev *evaluator) eval(expr SampleExpr) (*vectorResult, error) {
	if err := querylimit.Checkpoint(ev.ctx); err != nil {
		return nil, err
	}
	switch x := expr.(type) {
	case *LiteralExpr:
		vr := &vectorResult{scalar: true, vecs: make([][]Sample, ev.steps)}
		for i := range vr.vecs {
			vr.vecs[i] = []Sample{{Labels: labels.EmptyLabels(), V: x.Val}}
		}
		return vr, nil
	case *VectorExpr:
		vr := &vectorResult{vecs: make([][]Sample, ev.steps)}
		for i := range vr.vecs {
			vr.vecs[i] = []Sample{{Labels: labels.EmptyLabels(), V: x.Val}}
		}
		return vr, nil
	case *RangeAggregation:
		return ev.evalRange(x)
	case *VectorAggregation:
		return ev.evalVectorAgg(x)
	case *LabelReplaceExpr:
		return ev.evalLabelReplace(x)
	case *BinaryExpr:
		return ev.evalBinary(x)
	}
	return nil, fmt.Errorf("unsupported expression %s", expr.String())
}

type seriesAcc struct {
	labels labels.Labels
	pts    []Point
	lastK  int // the fold interval of the last point (see foldable)
}

// foldable ops depend only on how many lines (or bytes) each step's window holds, counted exactly: lines that
// fall between the same two window bounds are folded into one point carrying their sum, so counting 10M lines
// holds a point per stream and interval, not one per line.
func foldable(ra *RangeAggregation) bool {
	if ra.Unwrap != nil {
		return false
	}
	switch ra.Op {
	case "count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time":
		return true
	}
	return false
}

// foldBounds are every step's window bounds (t-range and t), ascending and unique: two lines between the same
// neighbouring bounds are in exactly the same windows.
func (ev *evaluator) foldBounds(rng, off int64) []int64 {
	b := make([]int64, 0, 2*ev.steps)
	for i := 0; i < ev.steps; i++ {
		t := ev.stepTime(i) - off
		b = append(b, t-rng, t)
	}
	slices.Sort(b)
	return slices.Compact(b)
}

func (ev *evaluator) evalRange(ra *RangeAggregation) (*vectorResult, error) {
	rng, off := int64(ra.Range), int64(ra.Offset)
	selStart := ev.start - off - rng
	selEnd := ev.end - off + 1
	stages := metricStages(ra, pipelineStages(ev.q, ra.Selector.Stages))
	p := NewPipeline(stages)
	series := map[uint64]*seriesAcc{}
	sp := SelectParams{Matchers: ra.Selector.Matchers, Start: selStart, End: selEnd, TraceID: TraceIDHint(ra.Selector),
		LineFilter: LinePrefilter(ra.Selector.Stages)}
	var sc skipCounter
	sp.Skipped = sc.add
	defer sc.into(ev.st)
	maxSeries := ev.e.Limits.MaxSeries
	if maxSeries <= 0 {
		maxSeries = 500
	}
	var byNames []string
	if ra.Grouping != nil && !ra.Grouping.Without {
		byNames = append([]string(nil), ra.Grouping.Names...)
		sort.Strings(byNames)
		byNames = slices.Compact(byNames)
	}
	fold := foldable(ra)
	var bounds []int64
	if fold {
		bounds = ev.foldBounds(rng, off)
	}
	var err error
	if cq, ok := ev.q.(Counter); ok && fold && countNeutral(stages, byNames) && ra.Grouping != nil && !ra.Grouping.Without {
		err = ev.countRange(cq, ra, sp, bounds, byNames, series, maxSeries)
	} else {
		err = ev.selectRange(ra, sp, p, fold, bounds, byNames, series, maxSeries)
	}
	if err != nil {
		return nil, err
	}
	return ev.windows(ra, series, fold)
}

// countNeutral reports whether stages leave a grouped count as it is without them: none, or only drops of
// labels the grouping does not name (Grafana's log volume query ends in `| drop __error__`). With no other
// stage nothing can set an error label, and a drop never removes a line.
func countNeutral(stages []Stage, byNames []string) bool {
	for _, st := range stages {
		d, ok := st.(*DropKeepStage)
		if !ok || d.Keep {
			return false
		}
		for _, n := range d.Names {
			if slices.Contains(byNames, n) {
				return false
			}
		}
		for _, m := range d.Ms {
			if slices.Contains(byNames, m.Name) {
				return false
			}
		}
	}
	return true
}

// countRange fills series from a Counter: the lines of a counting range aggregation with an empty pipeline,
// grouped by byNames (stream labels, or the structured metadata of the same name, which wins as it does in
// LabelsBuilder.Get), folded per interval between two window bounds as selectRange folds them. The budget is
// the same as selectRange's: every line counted is a line processed and its bytes are bytes read, checked
// against max_query_bytes_read after each run; each new point counts against max_fetched_samples.
func (ev *evaluator) countRange(cq Counter, ra *RangeAggregation, sp SelectParams, bounds []int64, byNames []string,
	series map[uint64]*seriesAcc, maxSeries int) error {
	bytesOp := ra.Op == "bytes_over_time" || ra.Op == "bytes_rate"
	gh := xxhash.New()
	sep := []byte{0xff}
	var sb labels.ScratchBuilder
	vals := make([]string, len(byNames))
	return cq.CountLogs(ev.ctx, sp, CountParams{Bounds: bounds, MetaNames: byNames}, func(stream labels.Labels, meta []string, k int, lines, bytes int64) error {
		ev.st.TotalLinesProcessed += lines
		ev.st.TotalBytesProcessed += bytes
		if err := ev.ctx.Err(); err != nil {
			return err
		}
		if m := ev.e.Limits.MaxBytesRead; m > 0 && ev.st.TotalBytesProcessed > m {
			return fmt.Errorf("%w: the query read more than %d bytes of log lines (limit: max_query_bytes_read); narrow the selector or the time range", ErrLimit, m)
		}
		gh.Reset()
		for i, n := range byNames {
			v := meta[i]
			if v == "" {
				v = stream.Get(n)
			}
			vals[i] = v
			if v != "" {
				_, _ = gh.WriteString(n)
				_, _ = gh.Write(sep)
				_, _ = gh.WriteString(v)
				_, _ = gh.Write(sep)
			}
		}
		h := gh.Sum64()
		acc := series[h]
		if acc == nil {
			if len(series) >= 10*maxSeries+1000 {
				return fmt.Errorf("%w: maximum number of series (%d) reached for a single query", ErrLimit, maxSeries)
			}
			sb.Reset()
			for i, n := range byNames {
				if vals[i] != "" {
					sb.Add(n, strings.Clone(vals[i])) // values may share a chunk's payload
				}
			}
			acc = &seriesAcc{labels: sb.Labels()}
			series[h] = acc
		}
		v := float64(lines)
		if bytesOp {
			v = float64(bytes)
		}
		return ev.point(acc, k, foldTime(bounds, k), v)
	})
}

// point adds v at t to acc: into its last point when both lie in fold interval k (k < 0: no folding), else as
// a new point, which counts against max_fetched_samples.
func (ev *evaluator) point(acc *seriesAcc, k int, t int64, v float64) error {
	if k >= 0 {
		if n := len(acc.pts); n > 0 && acc.lastK == k {
			acc.pts[n-1].V += v
			return nil
		}
		acc.lastK = k
	}
	if m := ev.e.Limits.MaxSamples; m > 0 {
		if ev.samples++; ev.samples > m {
			return fmt.Errorf("%w: the query would hold more than %d samples in memory (limit: max_fetched_samples); narrow the selector, the range or the time range", ErrLimit, m)
		}
	}
	acc.pts = append(acc.pts, Point{T: t, V: v})
	return nil
}

// foldTime is a timestamp in the interval k of bounds (after bounds[k-1], at or before bounds[k]): every window
// holds it exactly when it holds the interval's lines.
func foldTime(bounds []int64, k int) int64 {
	if k < len(bounds) {
		return bounds[k]
	}
	return bounds[len(bounds)-1] + 1
}

// selectRange fills series with the lines SelectLogs hands over, run through the pipeline p.
func (ev *evaluator) selectRange(ra *RangeAggregation, sp SelectParams, p *Pipeline, fold bool, bounds []int64, byNames []string,
	series map[uint64]*seriesAcc, maxSeries int) error {
	gh := xxhash.New()
	sep := []byte{0xff}
	return ev.q.SelectLogs(ev.ctx, sp, func(stream labels.Labels, en Entry) error {
		ev.st.TotalLinesProcessed++
		ev.st.TotalBytesProcessed += int64(len(en.Line))
		if ev.st.TotalLinesProcessed%checkEvery == 0 {
			if err := querylimit.Checkpoint(ev.ctx); err != nil {
				return err
			}
		}
		if m := ev.e.Limits.MaxBytesRead; m > 0 && ev.st.TotalBytesProcessed > m {
			return fmt.Errorf("%w: the query read more than %d bytes of log lines (limit: max_query_bytes_read); narrow the selector or the time range", ErrLimit, m)
		}
		line, ok := p.Process(en.Timestamp, en.Line, stream, en.Metadata)
		if !ok {
			return nil
		}
		b := p.Builder()
		var v float64
		switch {
		case ra.Unwrap != nil:
			raw, ok := b.Get(ra.Unwrap.Label)
			if !ok || raw == "" {
				// A line without the label gives no sample (Loki does the same), rather than a zero.
				return nil
			}
			var err error
			v, err = unwrapValue(raw, ra.Unwrap.Conv)
			b.Del(ra.Unwrap.Label)
			if err != nil {
				b.setErr(errSample, err.Error())
			}
		case ra.Op == "bytes_over_time" || ra.Op == "bytes_rate":
			v = float64(len(line))
		default:
			v = 1
		}
		if (ra == ev.pushed || ra.Grouping != nil) && b.HasErr() {
			if l := b.Labels(); l.Get(preserveErrorLabel) != "true" {
				return pipelineError(l)
			}
		}
		var lbs labels.Labels
		var h uint64
		switch {
		case ra.Grouping != nil && !ra.Grouping.Without:
			// by (...): hash the few grouped values without building the line's whole label set; labels are
			// built only for a new group.
			gh.Reset()
			for _, n := range byNames {
				if v, ok := b.Get(n); ok {
					_, _ = gh.WriteString(n)
					_, _ = gh.Write(sep)
					_, _ = gh.WriteString(v)
					_, _ = gh.Write(sep)
				}
			}
			h = gh.Sum64()
			if series[h] == nil {
				lbs = applyGrouping(b.Labels(), ra.Grouping)
			}
		case ra.Grouping != nil:
			lbs = applyGrouping(b.Labels(), ra.Grouping)
			h = lbs.Hash()
		default:
			lbs = b.Labels()
			h = lbs.Hash()
		}
		acc := series[h]
		if acc == nil {
			if len(series) >= 10*maxSeries+1000 {
				return fmt.Errorf("%w: maximum number of series (%d) reached for a single query", ErrLimit, maxSeries)
			}
			acc = &seriesAcc{labels: lbs}
			series[h] = acc
		}
		k := -1
		if fold {
			// Window (lo, hi] holds the line iff its bounds enclose the line's interval: k is the first bound
			// at or after the timestamp.
			k, _ = slices.BinarySearch(bounds, en.Timestamp)
		}
		return ev.point(acc, k, en.Timestamp, v)
	})
}

// windows evaluates a range aggregation at every step from its series' points.
func (ev *evaluator) windows(ra *RangeAggregation, series map[uint64]*seriesAcc, fold bool) (*vectorResult, error) {
	rng, off := int64(ra.Range), int64(ra.Offset)
	vr := &vectorResult{vecs: make([][]Sample, ev.steps)}
	accs := make([]*seriesAcc, 0, len(series))
	for _, a := range series {
		sort.SliceStable(a.pts, func(i, j int) bool { return a.pts[i].T < a.pts[j].T })
		accs = append(accs, a)
	}
	// A fixed series order keeps ties (topk, sort) the same from run to run.
	sort.Slice(accs, func(i, j int) bool { return labels.Compare(accs[i].labels, accs[j].labels) < 0 })
	// Steps ascend, so each series' window (lo, hi] only moves forward: its bounds advance from where the
	// previous step left them, and quantile_over_time keeps the window's order statistics up to date instead
	// of copying and sorting the window at every step.
	wins := make([]window, len(accs))
	for k, a := range accs {
		if ra.Op == "quantile_over_time" {
			wins[k].q = newSlidingQuantile(a.pts)
		}
	}
	for i := 0; i < ev.steps; i++ {
		if err := querylimit.Checkpoint(ev.ctx); err != nil {
			return nil, err
		}
		t := ev.stepTime(i) - off
		lo, hi := t-rng, t // window (lo, hi]
		for k, a := range accs {
			w := &wins[k]
			for w.from < len(a.pts) && a.pts[w.from].T <= lo {
				w.from++
			}
			for w.to < len(a.pts) && a.pts[w.to].T <= hi {
				w.to++
			}
			from, to := w.from, max(w.from, w.to)
			if from >= to {
				continue
			}
			var v float64
			if w.q != nil {
				w.q.moveTo(from, to)
				v = w.q.quantile(ra.Param)
			} else if fold {
				v = foldedFn(ra, a.pts[from:to])
			} else {
				v = rangeFn(ra, a.pts[from:to])
			}
			if a.labels.Has(ErrorLabel) && a.labels.Get(preserveErrorLabel) != "true" {
				// As Loki: a metric query fails on a sample that kept a parse error, rather than counting it
				// (absent_over_time too; it usually runs no parser: see skipsParsers).
				return nil, pipelineError(a.labels)
			}
			vr.vecs[i] = append(vr.vecs[i], Sample{Labels: a.labels, V: v})
		}
		if ra.Op == "absent_over_time" {
			if len(vr.vecs[i]) == 0 {
				vr.vecs[i] = []Sample{{Labels: absentLabels(ra.Selector), V: 1}}
			} else {
				vr.vecs[i] = nil
			}
		}
	}
	return vr, nil
}

func absentLabels(sel *LogSelectorExpr) labels.Labels {
	b := labels.NewScratchBuilder(len(sel.Matchers))
	for _, m := range sel.Matchers {
		if m.Type == labels.MatchEqual {
			b.Add(m.Name, m.Value)
		}
	}
	b.Sort()
	return b.Labels()
}

func unwrapValue(raw, conv string) (float64, error) {
	switch conv {
	case "bytes":
		n, err := parseBytes(raw)
		if err != nil {
			if f, err2 := strconv.ParseFloat(raw, 64); err2 == nil {
				return f, nil
			}
		}
		return float64(n), err
	case "duration", "duration_seconds":
		d, err := parseDuration(raw)
		return d.Seconds(), err
	}
	return strconv.ParseFloat(raw, 64)
}

func rangeFn(ra *RangeAggregation, pts []Point) float64 {
	secs := ra.Range.Seconds()
	switch ra.Op {
	case "count_over_time", "absent_over_time":
		return float64(len(pts))
	case "rate":
		if ra.Unwrap != nil {
			return sumPts(pts) / secs
		}
		return float64(len(pts)) / secs
	case "bytes_over_time", "sum_over_time":
		return sumPts(pts)
	case "bytes_rate":
		return sumPts(pts) / secs
	case "avg_over_time":
		return sumPts(pts) / float64(len(pts))
	case "min_over_time":
		m := math.Inf(1)
		for _, p := range pts {
			m = math.Min(m, p.V)
		}
		return m
	case "max_over_time":
		m := math.Inf(-1)
		for _, p := range pts {
			m = math.Max(m, p.V)
		}
		return m
	case "first_over_time":
		return pts[0].V
	case "last_over_time":
		return pts[len(pts)-1].V
	case "stddev_over_time", "stdvar_over_time":
		mean := sumPts(pts) / float64(len(pts))
		var sq float64
		for _, p := range pts {
			sq += (p.V - mean) * (p.V - mean)
		}
		v := sq / float64(len(pts))
		if ra.Op == "stddev_over_time" {
			return math.Sqrt(v)
		}
		return v
	case "quantile_over_time":
		vals := make([]float64, len(pts))
		for i, p := range pts {
			vals[i] = p.V
		}
		return quantile(ra.Param, vals)
	case "rate_counter":
		var inc float64
		for i := 1; i < len(pts); i++ {
			d := pts[i].V - pts[i-1].V
			if d < 0 {
				d = pts[i].V
			}
			inc += d
		}
		return inc / secs
	}
	return 0
}

// foldedFn is rangeFn over folded points, whose values are counts (or byte sums) of lines.
func foldedFn(ra *RangeAggregation, pts []Point) float64 {
	switch ra.Op {
	case "rate", "bytes_rate":
		return sumPts(pts) / ra.Range.Seconds()
	}
	return sumPts(pts) // count_over_time, absent_over_time (only whether any), bytes_over_time
}

func sumPts(pts []Point) float64 {
	var s float64
	for _, p := range pts {
		s += p.V
	}
	return s
}

// quantile is Prometheus' linear-interpolation quantile.
func quantile(q float64, vals []float64) float64 {
	if len(vals) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	sort.Float64s(vals)
	n := float64(len(vals))
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	w := rank - lo
	return vals[int(lo)]*(1-w) + vals[int(hi)]*w
}

func applyGrouping(lbs labels.Labels, g *Grouping) labels.Labels {
	if g == nil {
		return labels.EmptyLabels()
	}
	b := labels.NewBuilder(lbs)
	if g.Without {
		b.Del(g.Names...)
		b.Del(ErrorLabel, ErrorDetailsLabel)
	} else {
		b.Keep(g.Names...)
	}
	return b.Labels()
}

// additiveRange are the range aggregations whose sum over series equals the aggregation of the union: a sum
// over them can group while the lines are read.
var additiveRange = map[string]bool{"count_over_time": true, "bytes_over_time": true, "rate": true, "bytes_rate": true, "sum_over_time": true}

func (ev *evaluator) evalVectorAgg(va *VectorAggregation) (*vectorResult, error) {
	inner := va.Inner
	if ra, ok := inner.(*RangeAggregation); ok && va.Op == "sum" && ra.Grouping == nil && additiveRange[ra.Op] {
		// sum by (x) (count_over_time(...)) is count_over_time(...) by (x): group per line instead of keeping a
		// series per stream and structured-metadata label set (a trace_id per line would make one series each).
		pushed := *ra
		pushed.Grouping = &Grouping{}
		if va.Grouping != nil {
			pushed.Grouping = va.Grouping
		}
		inner = &pushed
		ev.pushed = &pushed
	}
	in, err := ev.eval(inner)
	if err != nil {
		return nil, err
	}
	out := &vectorResult{vecs: make([][]Sample, ev.steps)}
	for i, vec := range in.vecs {
		if va.Op == "sort" || va.Op == "sort_desc" {
			v := append([]Sample(nil), vec...)
			sort.SliceStable(v, func(a, b int) bool {
				if va.Op == "sort" {
					return v[a].V < v[b].V
				}
				return v[a].V > v[b].V
			})
			out.vecs[i] = v
			continue
		}
		type group struct {
			lbs           labels.Labels
			sum, cnt, min float64
			max, m2, mean float64
			members       []Sample
		}
		groups := map[uint64]*group{}
		var order []*group
		for _, s := range vec {
			gl := applyGrouping(s.Labels, va.Grouping)
			if va.Grouping == nil {
				gl = labels.EmptyLabels()
			}
			h := gl.Hash()
			g := groups[h]
			if g == nil {
				g = &group{lbs: gl, min: math.Inf(1), max: math.Inf(-1)}
				groups[h] = g
				order = append(order, g)
			}
			g.sum += s.V
			g.cnt++
			g.min = math.Min(g.min, s.V)
			g.max = math.Max(g.max, s.V)
			d := s.V - g.mean
			g.mean += d / g.cnt
			g.m2 += d * (s.V - g.mean)
			if va.Op == "topk" || va.Op == "bottomk" {
				g.members = append(g.members, s)
			}
		}
		for _, g := range order {
			var v float64
			switch va.Op {
			case "sum":
				v = g.sum
			case "avg":
				v = g.sum / g.cnt
			case "min":
				v = g.min
			case "max":
				v = g.max
			case "count":
				v = g.cnt
			case "stdvar":
				v = g.m2 / g.cnt
			case "stddev":
				v = math.Sqrt(g.m2 / g.cnt)
			case "topk", "bottomk":
				m := g.members
				sort.SliceStable(m, func(a, b int) bool {
					if va.Op == "topk" {
						return m[a].V > m[b].V
					}
					return m[a].V < m[b].V
				})
				if len(m) > va.Param {
					m = m[:va.Param]
				}
				out.vecs[i] = append(out.vecs[i], m...)
				continue
			}
			out.vecs[i] = append(out.vecs[i], Sample{Labels: g.lbs, V: v})
		}
	}
	return out, nil
}

// scalarOp applies op as Loki's binary operators do; for comparisons without bool, keep reports whether the left value survives.
func scalarOp(op string, a, b float64, returnBool bool) (float64, bool) {
	cmp := func(c bool) (float64, bool) {
		if returnBool {
			if c {
				return 1, true
			}
			return 0, true
		}
		return a, c
	}
	switch op {
	case "+":
		return a + b, true
	case "-":
		return a - b, true
	case "*":
		return a * b, true
	case "/":
		if b == 0 {
			// Loki guards division by zero with NaN (PromQL would give ±Inf).
			return math.NaN(), true
		}
		return a / b, true
	case "%":
		if b == 0 {
			return math.NaN(), true
		}
		return math.Mod(a, b), true
	case "^":
		return math.Pow(a, b), true
	case "==":
		return cmp(a == b)
	case "!=":
		return cmp(a != b)
	case ">":
		return cmp(a > b)
	case ">=":
		return cmp(a >= b)
	case "<":
		return cmp(a < b)
	case "<=":
		return cmp(a <= b)
	}
	return 0, false
}

func matchSignature(lbs labels.Labels, be *BinaryExpr) string {
	switch {
	case be.On:
		return labels.NewBuilder(lbs).Keep(be.MatchLabels...).Labels().String()
	case be.Ignoring:
		return labels.NewBuilder(lbs).Del(be.MatchLabels...).Labels().String()
	}
	return lbs.String()
}

func (ev *evaluator) evalBinary(be *BinaryExpr) (*vectorResult, error) {
	l, err := ev.eval(be.LHS)
	if err != nil {
		return nil, err
	}
	r, err := ev.eval(be.RHS)
	if err != nil {
		return nil, err
	}
	out := &vectorResult{scalar: l.scalar && r.scalar, vecs: make([][]Sample, ev.steps)}
	isSet := be.Op == "and" || be.Op == "or" || be.Op == "unless"
	if isSet && (l.scalar || r.scalar) {
		return nil, fmt.Errorf("set operator %q not allowed in binary scalar expression", be.Op)
	}
	for i := 0; i < ev.steps; i++ {
		lv, rv := l.vecs[i], r.vecs[i]
		switch {
		case l.scalar && r.scalar:
			v, _ := scalarOp(be.Op, lv[0].V, rv[0].V, true)
			out.vecs[i] = []Sample{{Labels: labels.EmptyLabels(), V: v}}
		case r.scalar:
			for _, s := range lv {
				if v, keep := scalarOp(be.Op, s.V, rv[0].V, be.ReturnBool); keep {
					out.vecs[i] = append(out.vecs[i], Sample{Labels: s.Labels, V: v})
				}
			}
		case l.scalar:
			for _, s := range rv {
				v, keep := scalarOp(be.Op, lv[0].V, s.V, be.ReturnBool)
				if keep {
					if !be.ReturnBool && isComparison(be.Op) {
						v = s.V
					}
					out.vecs[i] = append(out.vecs[i], Sample{Labels: s.Labels, V: v})
				}
			}
		case isSet:
			rsig := map[string]bool{}
			for _, s := range rv {
				rsig[matchSignature(s.Labels, be)] = true
			}
			switch be.Op {
			case "and":
				for _, s := range lv {
					if rsig[matchSignature(s.Labels, be)] {
						out.vecs[i] = append(out.vecs[i], s)
					}
				}
			case "unless":
				for _, s := range lv {
					if !rsig[matchSignature(s.Labels, be)] {
						out.vecs[i] = append(out.vecs[i], s)
					}
				}
			case "or":
				out.vecs[i] = append(out.vecs[i], lv...)
				lsig := map[string]bool{}
				for _, s := range lv {
					lsig[matchSignature(s.Labels, be)] = true
				}
				for _, s := range rv {
					if !lsig[matchSignature(s.Labels, be)] {
						out.vecs[i] = append(out.vecs[i], s)
					}
				}
			}
		default:
			vs, err := vectorBinop(be, lv, rv)
			if err != nil {
				return nil, err
			}
			out.vecs[i] = vs
		}
	}
	return out, nil
}

// vectorBinop matches two vectors as Loki (and PromQL) do: one-to-one, or many-to-one / one-to-many with
// group_left / group_right, whose "one" side may lend labels (Include) to the result.
func vectorBinop(be *BinaryExpr, lhs, rhs []Sample) ([]Sample, error) {
	if be.GroupRight {
		lhs, rhs = rhs, lhs // lhs is now the "many" side
	}
	oneToOne := !be.GroupLeft && !be.GroupRight
	one := map[string]Sample{}
	for _, s := range rhs {
		sig := matchSignature(s.Labels, be)
		if _, dup := one[sig]; dup {
			side := "right"
			if be.GroupRight {
				side = "left"
			}
			return nil, fmt.Errorf("found duplicate series on the %s hand-side;many-to-many matching not allowed: matching labels must be unique on one side", side)
		}
		one[sig] = s
	}
	matched := map[string]map[uint64]struct{}{}
	var out []Sample
	for _, s := range lhs {
		sig := matchSignature(s.Labels, be)
		o, ok := one[sig]
		if !ok {
			continue
		}
		lbs := resultLabels(s.Labels, o.Labels, be, oneToOne)
		inserted, seen := matched[sig]
		if oneToOne {
			if seen {
				return nil, errors.New("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
			}
			matched[sig] = nil
		} else {
			h := lbs.Hash()
			if !seen {
				inserted = map[uint64]struct{}{}
				matched[sig] = inserted
			} else if _, dup := inserted[h]; dup {
				return nil, errors.New("multiple matches for labels: grouping labels must ensure unique matches")
			}
			inserted[h] = struct{}{}
		}
		l, r := s.V, o.V
		if be.GroupRight {
			l, r = r, l // the operands in the query's order
		}
		v, keep := scalarOp(be.Op, l, r, be.ReturnBool)
		if !keep {
			continue
		}
		out = append(out, Sample{Labels: lbs, V: v})
	}
	return out, nil
}

// resultLabels are the labels of a matched pair's result: the "many" (or left) side's, narrowed by on / ignoring
// for one-to-one matching, with the Include labels taken from the "one" side.
func resultLabels(many, one labels.Labels, be *BinaryExpr, oneToOne bool) labels.Labels {
	if !oneToOne || !be.On && !be.Ignoring {
		if len(be.Include) == 0 {
			return many
		}
	}
	b := labels.NewBuilder(many)
	if oneToOne {
		switch {
		case be.On:
			b.Keep(be.MatchLabels...)
		case be.Ignoring:
			b.Del(be.MatchLabels...)
		}
	}
	for _, n := range be.Include {
		if v := one.Get(n); v != "" {
			b.Set(n, v)
		} else {
			b.Del(n)
		}
	}
	return b.Labels()
}

func (ev *evaluator) evalLabelReplace(lr *LabelReplaceExpr) (*vectorResult, error) {
	vr, err := ev.eval(lr.Inner)
	if err != nil {
		return nil, err
	}
	if vr.scalar {
		return vr, nil
	}
	for i, vec := range vr.vecs {
		for k, smp := range vec {
			src := smp.Labels.Get(lr.Src)
			idx := lr.re.FindStringSubmatchIndex(src)
			if idx == nil {
				continue
			}
			v := string(lr.re.ExpandString(nil, lr.Replacement, src, idx))
			vr.vecs[i][k].Labels = labels.NewBuilder(smp.Labels).Set(lr.Dst, v).Labels()
		}
	}
	return vr, nil
}

func isComparison(op string) bool {
	switch op {
	case "==", "!=", ">", ">=", "<", "<=":
		return true
	}
	return false
}

// Lookback is how far before a query's start its range selectors read: the longest range plus its offset
// (0 for a log query). A query reads lines over [start-Lookback, end], which is what a query-length limit
// bounds.
func Lookback(e Expr) time.Duration {
	switch x := e.(type) {
	case *RangeAggregation:
		return x.Range + max(x.Offset, 0)
	case *VectorAggregation:
		return Lookback(x.Inner)
	case *LabelReplaceExpr:
		return Lookback(x.Inner)
	case *BinaryExpr:
		return max(Lookback(x.LHS), Lookback(x.RHS))
	}
	return 0
}
