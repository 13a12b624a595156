package tracestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// TraceQL metrics: the spans a query's spansets hold are bucketed by start time into steps of [start, end)
// and reduced per step and by(...) group: rate() (spans per second), count_over_time(), quantile_over_time(x,
// q...), min/max/avg/sum_over_time(x). Durations are reported in seconds, as Tempo does.

// MetricsRequest is a TraceQL metrics query over a time range.
type MetricsRequest struct {
	Query *traceql.Query
	Start time.Time
	End   time.Time
	Step  time.Duration
	// Exemplars bounds the exemplars kept per series; 0 keeps none. At most two fall in each of
	// Exemplars/2 equal slices of the range, so that they spread over it, as Tempo does.
	Exemplars int
	// Progress, if set, is called after each job (memory, then each block) with what the query has read so
	// far, for streaming answers (grpc.go).
	Progress func(SearchMetrics)
}

// Exemplar is one span behind a series: its trace id (hex, leading zeros trimmed, as Tempo writes it), start
// time and value (the attribute's value, durations in seconds; for rate() and count_over_time() the value of
// the series in the exemplar's step).
type Exemplar struct {
	TraceID     string
	TimestampMs int64
	Value       float64
}

// DefaultMaxExemplars is Tempo's default and ceiling for exemplars per metrics query.
const DefaultMaxExemplars = 100

// ParseExemplars reads the exemplars parameter as Tempo does: an unsigned number; empty, 0 or unparsable gives
// DefaultMaxExemplars, and larger values are capped to it.
func ParseExemplars(s string) int {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > DefaultMaxExemplars {
		return DefaultMaxExemplars
	}
	return int(n)
}

// exemplarSlots spreads a series' exemplars over [start, end] (milliseconds): n/2 slices of equal width (at
// least one), two exemplars in each (one when n is 1). A full slice keeps its earliest exemplars (by time, then
// trace id), so the answer does not depend on the order in which traces are read.
type exemplarSlots struct {
	start, end, width int64
	per               int
	slots             [][]Exemplar
}

func newExemplarSlots(n int, start, end int64) *exemplarSlots {
	buckets := max(n/2, 1)
	return &exemplarSlots{start: start, end: end, width: max((end-start)/int64(buckets), 1),
		per: min(n, 2), slots: make([][]Exemplar, buckets)}
}

func exemplarBefore(a, b Exemplar) bool {
	if a.TimestampMs != b.TimestampMs {
		return a.TimestampMs < b.TimestampMs
	}
	return a.TraceID < b.TraceID
}

// add offers an exemplar; it is kept if its slice has room or it is earlier than the slice's latest.
func (e *exemplarSlots) add(x Exemplar) {
	if x.TimestampMs < e.start || x.TimestampMs > e.end {
		return
	}
	i := min(int((x.TimestampMs-e.start)/e.width), len(e.slots)-1)
	sl := e.slots[i]
	if len(sl) < e.per {
		e.slots[i] = append(sl, x)
		return
	}
	last := 0
	for k := range sl {
		if exemplarBefore(sl[last], sl[k]) {
			last = k
		}
	}
	if exemplarBefore(x, sl[last]) {
		sl[last] = x
	}
}

// all returns the kept exemplars, oldest first.
func (e *exemplarSlots) all() []Exemplar {
	var out []Exemplar
	for _, sl := range e.slots {
		out = append(out, sl...)
	}
	sort.SliceStable(out, func(a, b int) bool { return exemplarBefore(out[a], out[b]) })
	return out
}

// traceIDHex is the trace id in hex without leading zeros.
func traceIDHex(id pcommon.TraceID) string {
	return strings.TrimLeft(hex.EncodeToString(id[:]), "0")
}

// Series is one result series: its labels and one value per step (NaN where a step had no spans and the
// function has no value for an empty step).
type Series struct {
	Labels    []SeriesLabel
	Values    []float64
	Exemplars []Exemplar // oldest first; only in steps that have a value
}

// SeriesLabel is a by(...) value, or "p" for a quantile.
type SeriesLabel struct {
	Name  string
	Value traceql.Static
}

// MetricsResult is the answer of a metrics query.
type MetricsResult struct {
	Series  []Series
	Steps   int
	Metrics SearchMetrics
}

// seriesAcc accumulates one series, step by step. Only quantile_over_time keeps every value: the other functions
// fold each span into a count and one running value, so that a count over millions of spans holds a number per
// step rather than one per span.
type seriesAcc struct {
	labels []SeriesLabel
	n      []int64     // per step: the spans counted
	agg    []float64   // per step: the running sum (sum, avg), minimum or maximum; nil for counts
	vals   [][]float64 // per step: every value (quantile_over_time only)
	slots  *exemplarSlots
}

func newSeriesAcc(fn string, labels []SeriesLabel, steps int) *seriesAcc {
	acc := &seriesAcc{labels: labels, n: make([]int64, steps)}
	switch fn {
	case "quantile_over_time":
		acc.vals = make([][]float64, steps)
	case "sum_over_time", "avg_over_time", "min_over_time", "max_over_time":
		acc.agg = make([]float64, steps)
	}
	return acc
}

// add folds a span's value into its step, in the order reduce would see it.
func (acc *seriesAcc) add(fn string, step int, v float64) {
	switch fn {
	case "quantile_over_time":
		acc.vals[step] = append(acc.vals[step], v)
	case "sum_over_time", "avg_over_time":
		acc.agg[step] += v
	case "min_over_time":
		if acc.n[step] == 0 {
			acc.agg[step] = v
		}
		acc.agg[step] = math.Min(acc.agg[step], v)
	case "max_over_time":
		if acc.n[step] == 0 {
			acc.agg[step] = v
		}
		acc.agg[step] = math.Max(acc.agg[step], v)
	}
	acc.n[step]++
}

// value is the function's value in a step (NaN where it has none).
func (acc *seriesAcc) value(fn string, step int, stepDur time.Duration) float64 {
	n := acc.n[step]
	switch fn {
	case "rate":
		return float64(n) / stepDur.Seconds()
	case "count_over_time", "histogram_over_time":
		return float64(n)
	}
	if n == 0 {
		return math.NaN()
	}
	if fn == "avg_over_time" {
		return acc.agg[step] / float64(n)
	}
	return acc.agg[step]
}

// QueryRange evaluates a metrics query.
func (s *Store) QueryRange(ctx context.Context, tenantID string, req MetricsRequest) (*MetricsResult, error) {
	m := req.Query.Metrics
	if m == nil {
		return nil, fmt.Errorf("%w: not a metrics query: end it with | rate(), count_over_time() or quantile_over_time(...)", ErrBadData)
	}
	if !req.End.After(req.Start) || req.Step <= 0 {
		return nil, fmt.Errorf("%w: need start < end and a positive step", ErrBadData)
	}
	// The range over the step, rounded up, without overflow: Sub saturates for ranges of centuries, and adding
	// step-1 to a saturated range made the count negative (and the allocation below panic).
	span := req.End.Sub(req.Start)
	n := span / req.Step
	if span%req.Step != 0 {
		n++
	}
	if max := s.cfg.Limits.MaxPointsPerSeries; n > time.Duration(max) {
		return nil, limitError("max_points_per_series", "%d steps is more than %d; use a longer step or a shorter range", int64(n), max)
	}
	steps := int(n)
	if err := s.checkRange(TimeRange{Start: req.Start, End: req.End}); err != nil {
		return nil, err
	}
	switch m.Fn {
	case "rate", "count_over_time", "quantile_over_time", "min_over_time", "max_over_time", "avg_over_time", "sum_over_time",
		"histogram_over_time", "compare":
	default:
		return nil, fmt.Errorf("%w: metrics function %s() is not supported", ErrBadData, m.Fn)
	}
	if m.Fn != "rate" && m.Fn != "count_over_time" && m.Fn != "compare" && m.Attr == nil {
		return nil, fmt.Errorf("%w: %s() needs an attribute, such as %s(duration)", ErrBadData, m.Fn, m.Fn)
	}
	res := &MetricsResult{Steps: steps}
	in := s.lookupInstance(tenantID)
	if in == nil {
		return res, nil
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	start, end := uint64(req.Start.UnixNano()), uint64(req.End.UnixNano())
	tr := TimeRange{Start: req.Start, End: req.End}
	groups := map[string]*seriesAcc{}
	var order []string
	exStart, exEnd := req.Start.UnixMilli(), req.End.UnixMilli()
	tooMany := false
	var cmp *compareAcc
	if m.Fn == "compare" {
		cmp = newCompareAcc(m, steps, s.cfg.Limits.MaxResponseSeries)
	}
	visit := func(id pcommon.TraceID, spans []traceql.Span) {
		res.Metrics.InspectedTraces++
		res.Metrics.InspectedSpans += len(spans)
		t := traceql.NewTrace(id, spans)
		seen := map[*traceql.Span]bool{}
		for _, set := range req.Query.Eval(t) {
			for _, sp := range set.Spans {
				if seen[sp] {
					continue
				}
				seen[sp] = true
				st := sp.StartUnixNano()
				if st < start || st >= end {
					continue
				}
				step := int((st - start) / uint64(req.Step))
				if cmp != nil {
					cmp.observe(t, sp, step)
					continue
				}
				var labels []SeriesLabel
				var key strings.Builder
				for i := range m.By {
					v := traceql.Field(&m.By[i], t, sp)
					labels = append(labels, SeriesLabel{Name: m.By[i].LabelName(), Value: v})
					key.WriteString(v.String())
					key.WriteByte(0)
				}
				val := 1.0
				if m.Fn == "histogram_over_time" {
					b, ok := histogramBucket(traceql.Field(m.Attr, t, sp))
					if !ok {
						continue
					}
					labels = append(labels, SeriesLabel{Name: bucketLabel, Value: traceql.NewFloat(b)})
					key.WriteString(strconv.FormatFloat(b, 'g', -1, 64))
					key.WriteByte(0)
				} else if m.Attr != nil {
					v := traceql.Field(m.Attr, t, sp)
					if v.Type == traceql.TypeNil {
						continue
					}
					val = v.Float()
					if v.Type == traceql.TypeDuration {
						val /= 1e9
					}
					if math.IsNaN(val) {
						continue
					}
				}
				k := key.String()
				acc := groups[k]
				if acc == nil {
					if len(groups) >= s.cfg.Limits.MaxResponseSeries {
						tooMany = true
						continue
					}
					acc = newSeriesAcc(m.Fn, labels, steps)
					if req.Exemplars > 0 {
						acc.slots = newExemplarSlots(req.Exemplars, exStart, exEnd)
					}
					groups[k] = acc
					order = append(order, k)
				}
				acc.add(m.Fn, step, val)
				if acc.slots != nil {
					ev := val
					if m.Attr == nil || m.Fn == "histogram_over_time" {
						ev = math.NaN() // the step's value, filled in below
					}
					acc.slots.add(Exemplar{TraceID: traceIDHex(id), TimestampMs: int64(st / 1e6), Value: ev})
				}
			}
		}
	}
	pf := req.Query.Prefilter()
	dec := newDecoder()
	var mem []*liveTrace
	blocks, release := in.view(func() { mem = in.snapshotLocked() })
	defer release()
	// As search: a trace whose spans lie in several places (memory, blocks) is joined whole before it is
	// evaluated, so that structural operators and spanset conditions see every span, and is evaluated once.
	j := s.newPartJoiner(ctx, in, mem, blocks, tr, dec)
	seen := map[pcommon.TraceID]bool{}
	visitWhole := func(id pcommon.TraceID, spans []traceql.Span, from *block, fromMem *liveTrace) error {
		if seen[id] {
			return nil
		}
		spans, err := j.whole(id, spans, from, fromMem)
		if err != nil {
			return err
		}
		seen[id] = true
		if len(spans) > 0 {
			visit(id, spans)
		}
		return nil
	}
	for _, lt := range mem {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return nil, s.timeoutErr(err)
		}
		if tooMany {
			break
		}
		if !tr.overlaps(lt.startNs, lt.endNs) {
			continue
		}
		// The prefilter judges this part alone; a part whose trace also lies in a block is judged whole.
		if !liveMaybe(pf, lt.spans) && !in.inBlocks(ctx, j.near, lt.id) {
			continue
		}
		spans, err := decodeLive(dec, lt.spans)
		if err != nil {
			return nil, err
		}
		if err := visitWhole(lt.id, spans, nil, lt); err != nil {
			return nil, err
		}
	}
	res.Metrics.TotalBlocks = len(blocks)
	req.progress(res.Metrics, 1)
	for i, b := range blocks {
		if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			continue
		}
		if tooMany {
			break
		}
		var joinErr error
		err := in.scanCandidates(ctx, b, pf, func(id pcommon.TraceID, spans []traceql.Span) bool {
			if joinErr = visitWhole(id, dedupe(spans), b, nil); joinErr != nil {
				return false
			}
			return !tooMany && ctx.Err() == nil
		})
		if joinErr != nil {
			return nil, joinErr
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return nil, s.timeoutErr(err)
			}
		}
		res.Metrics.InspectedBytes += b.meta.Size
		req.progress(res.Metrics, i+2)
	}
	// A trace split between blocks whose parts each failed the prefilter is evaluated whole now.
	if pf != nil && !tooMany {
		for _, id := range in.splitIDs(ctx, j.near) {
			if err := querylimit.Checkpoint(ctx); err != nil {
				return nil, s.timeoutErr(err)
			}
			if err := visitWhole(id, nil, nil, nil); err != nil {
				return nil, err
			}
		}
	}
	var cmpSeries []Series
	if cmp != nil {
		if cmp.tooLarge {
			return nil, limitError("max_points_per_series",
				"compare() over %d steps needs more than %d counters; use a longer step or a shorter range", steps, maxCompareCells)
		}
		cmpSeries = cmp.series()
		tooMany = tooMany || cmp.tooMany
	}
	if tooMany {
		return nil, limitError("max_response_series",
			"the query has more than %d series; group by fewer attributes or filter the spans", s.cfg.Limits.MaxResponseSeries)
	}
	if cmp != nil {
		res.Series = cmpSeries
		res.Series = applySecondStages(req.Query.Second, res.Series, steps)
		return res, nil
	}
	sort.Strings(order)
	for _, k := range order {
		acc := groups[k]
		var ex []Exemplar
		if acc.slots != nil {
			ex = acc.slots.all()
		}
		if m.Fn == "quantile_over_time" {
			for _, q := range m.Quantiles {
				ser := Series{Labels: append(append([]SeriesLabel(nil), acc.labels...), SeriesLabel{Name: "p", Value: traceql.NewFloat(q)}),
					Values: make([]float64, steps)}
				for i, vs := range acc.vals {
					ser.Values[i] = quantile(vs, q)
				}
				// Each exemplar goes to the quantile whose value in its step is closest to its own.
				for _, e := range ex {
					step := stepOf(req, e.TimestampMs)
					if step < 0 || step >= len(acc.vals) {
						continue
					}
					best, bestDiff := -1, math.Inf(1)
					for qi, q2 := range m.Quantiles {
						if d := math.Abs(quantile(acc.vals[step], q2) - e.Value); d < bestDiff {
							best, bestDiff = qi, d
						}
					}
					if best >= 0 && m.Quantiles[best] == q {
						ser.Exemplars = append(ser.Exemplars, e)
					}
				}
				finishExemplars(req, &ser)
				res.Series = append(res.Series, ser)
			}
			continue
		}
		ser := Series{Labels: acc.labels, Values: make([]float64, steps), Exemplars: ex}
		for i := range ser.Values {
			ser.Values[i] = acc.value(m.Fn, i, req.Step) // histogram_over_time: each bucket's series counts its spans
		}
		finishExemplars(req, &ser)
		res.Series = append(res.Series, ser)
	}
	res.Series = applySecondStages(req.Query.Second, res.Series, steps)
	return res, nil
}

// stepOf is the step index of a time in milliseconds.
func stepOf(req MetricsRequest, ms int64) int {
	return int((ms*1e6 - req.Start.UnixNano()) / int64(req.Step))
}

// finishExemplars drops exemplars in steps without a value, gives NaN exemplars (rate, count) their step's
// value and sorts them oldest first.
func finishExemplars(req MetricsRequest, ser *Series) {
	out := ser.Exemplars[:0:0]
	for _, e := range ser.Exemplars {
		i := stepOf(req, e.TimestampMs)
		if i < 0 || i >= len(ser.Values) || math.IsNaN(ser.Values[i]) {
			continue
		}
		if math.IsNaN(e.Value) {
			e.Value = ser.Values[i]
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].TimestampMs < out[b].TimestampMs })
	ser.Exemplars = out
}

// quantile is the q-quantile of vs with linear interpolation between closest ranks; NaN when empty.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	if q <= 0 {
		return s[0]
	}
	if q >= 1 {
		return s[len(s)-1]
	}
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// JSON shapes of Tempo's metrics API.
type metricsRangeJSON struct {
	Series  []seriesJSON `json:"series"`
	Metrics metricsJSON  `json:"metrics"`
	// Message is QueryRangeResponse's message: Sprout says there when a hint asked for sampling.
	Message string `json:"message,omitempty"`
}

// sampleNote is the message of a metrics answer to a query with a sampling hint.
const sampleNote = "sampling hints are accepted and ignored: Sprout reads every span, the values are exact"

// hintNote is the response message for q's hints that Sprout accepts without acting on.
func hintNote(q *traceql.Query) string {
	for _, h := range []string{"sample", "trace_sample", "span_sample"} {
		if _, ok := q.Hint(h); ok {
			return sampleNote
		}
	}
	return ""
}

type seriesJSON struct {
	Labels    []kvJSON       `json:"labels"`
	Samples   []sampleJSON   `json:"samples,omitempty"`
	Value     *float64       `json:"value,omitempty"`
	Exemplars []exemplarJSON `json:"exemplars,omitempty"`
}

type exemplarJSON struct {
	Labels      []kvJSON `json:"labels"`
	Value       float64  `json:"value"`
	TimestampMs string   `json:"timestampMs"`
}

type sampleJSON struct {
	TimestampMs string  `json:"timestampMs"`
	Value       float64 `json:"value"`
}

func labelsJSON(ls []SeriesLabel) []kvJSON {
	out := []kvJSON{}
	for _, l := range ls {
		out = append(out, kvJSON{Key: l.Name, Value: staticValue(l.Value)})
	}
	return out
}

// parseStep reads step as a duration (30s) or seconds (30, 1.5); empty gives about 100 steps over the range.
func parseStep(s string, rng time.Duration) (time.Duration, error) {
	if s == "" {
		step := (rng / 100).Truncate(time.Second)
		if step < time.Second {
			step = time.Second
		}
		return step, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 && !math.IsInf(f, 0) {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid step: %q is not a positive duration such as 30s", s)
	}
	return d, nil
}

func (a *API) metricsRequest(w http.ResponseWriter, r *http.Request, instant bool) (string, MetricsRequest, bool) {
	tenantID, ok := a.Tenant(w, r)
	if !ok {
		return "", MetricsRequest{}, false
	}
	q, err := traceql.Parse(r.FormValue("q"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid TraceQL query: "+err.Error())
		return "", MetricsRequest{}, false
	}
	if q.Metrics == nil {
		httpError(w, http.StatusBadRequest, "invalid TraceQL query: a metrics query ends in | rate(), count_over_time() or quantile_over_time(...)")
		return "", MetricsRequest{}, false
	}
	tr, err := parseRange(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return "", MetricsRequest{}, false
	}
	if tr.End.IsZero() {
		tr.End = time.Now()
	}
	if tr.Start.IsZero() {
		tr.Start = tr.End.Add(-time.Hour)
	}
	if !tr.End.After(tr.Start) {
		httpError(w, http.StatusBadRequest, "invalid range: end must be after start")
		return "", MetricsRequest{}, false
	}
	req := MetricsRequest{Query: q, Start: tr.Start, End: tr.End}
	if instant {
		req.Step = tr.End.Sub(tr.Start) // Tempo's instant queries carry no exemplars
	} else if req.Step, err = parseStep(r.FormValue("step"), tr.End.Sub(tr.Start)); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return "", MetricsRequest{}, false
	}
	if !instant {
		alignRange(&req, r.FormValue("exemplars"))
	}
	return tenantID, req, true
}

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) {
	tenantID, req, ok := a.metricsRequest(w, r, false)
	if !ok {
		return
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return
	}
	defer release()
	res, err := a.Store.QueryRange(r.Context(), tenantID, req)
	if err != nil {
		storeError(w, err)
		return
	}
	out := metricsRangeJSON{Series: []seriesJSON{}, Metrics: metricsOf(res.Metrics), Message: hintNote(req.Query)}
	for _, s := range res.Series {
		sj := seriesJSON{Labels: seriesLabels(req, s.Labels), Samples: []sampleJSON{}}
		shown := map[int]bool{}
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			// As Tempo, a sample is stamped with the end of its step: the value at T covers [T-step, T).
			end := req.Start.Add(time.Duration(i+1) * req.Step)
			if end.After(req.End) {
				continue
			}
			shown[i] = true
			ts := end.UnixMilli()
			sj.Samples = append(sj.Samples, sampleJSON{TimestampMs: strconv.FormatInt(ts, 10), Value: v})
		}
		for _, e := range s.Exemplars {
			if !shown[stepOf(req, e.TimestampMs)] {
				continue
			}
			sj.Exemplars = append(sj.Exemplars, exemplarJSON{
				Labels: []kvJSON{{Key: "trace:id", Value: map[string]any{"stringValue": e.TraceID}}},
				Value:  e.Value, TimestampMs: strconv.FormatInt(e.TimestampMs, 10)})
		}
		out.Series = append(out.Series, sj)
	}
	writeJSON(w, out)
}

func (a *API) queryInstant(w http.ResponseWriter, r *http.Request) {
	tenantID, req, ok := a.metricsRequest(w, r, true)
	if !ok {
		return
	}
	r, release, ok := a.admit(w, r, tenantID)
	if !ok {
		return
	}
	defer release()
	res, err := a.Store.QueryRange(r.Context(), tenantID, req)
	if err != nil {
		storeError(w, err)
		return
	}
	// No message here: Grafana decodes instant answers strictly, and versions built on an older Tempo API do not
	// know QueryInstantResponse.message.
	out := metricsRangeJSON{Series: []seriesJSON{}, Metrics: metricsOf(res.Metrics)}
	for _, s := range res.Series {
		if len(s.Values) == 0 || math.IsNaN(s.Values[0]) {
			continue
		}
		v := s.Values[0]
		out.Series = append(out.Series, seriesJSON{Labels: seriesLabels(req, s.Labels), Value: &v})
	}
	writeJSON(w, out)
}

func metricsOf(m SearchMetrics) metricsJSON {
	// one job for memory and one per block, all done, as the search API counts them
	return metricsJSON{InspectedTraces: m.InspectedTraces, InspectedBytes: strconv.FormatInt(m.InspectedBytes, 10),
		InspectedSpans: strconv.Itoa(m.InspectedSpans), TotalBlocks: m.TotalBlocks,
		CompletedJobs: m.TotalBlocks + 1, TotalJobs: m.TotalBlocks + 1}
}

// seriesLabels renders a series' labels; a series without any is named by its function (__name__), as Tempo
// does.
func seriesLabels(req MetricsRequest, ls []SeriesLabel) []kvJSON {
	if len(ls) == 0 && req.Query != nil && req.Query.Metrics != nil {
		return []kvJSON{{Key: "__name__", Value: map[string]any{"stringValue": req.Query.Metrics.Fn}}}
	}
	return labelsJSON(ls)
}

// alignRange aligns a range query to its step, as Tempo does, so that successive requests give the same buckets:
// the start down, the end up (the last step, cut by the end, still counts: a comparison over the whole range with
// step = range would otherwise lose its only full step). It also sets the exemplars asked for (the request's
// parameter, then a with(exemplars=N) hint asking for fewer; Tempo's ceiling holds). HTTP and gRPC share it.
func alignRange(req *MetricsRequest, exemplars string) {
	if e := req.End.Truncate(req.Step); e.Before(req.End) {
		req.End = e.Add(req.Step)
	}
	req.Start = req.Start.Truncate(req.Step)
	req.Exemplars = ParseExemplars(exemplars)
	if n, ok := req.Query.HintInt("exemplars"); ok {
		req.Exemplars = int(max(0, min(n, DefaultMaxExemplars)))
	}
}
