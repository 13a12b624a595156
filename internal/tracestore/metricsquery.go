package tracestore

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

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
}

// Series is one result series: its labels and one value per step (NaN where a step had no spans and the
// function has no value for an empty step).
type Series struct {
	Labels []SeriesLabel
	Values []float64
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

type seriesAcc struct {
	labels []SeriesLabel
	vals   [][]float64 // per step: the values (or one count per span)
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
	steps := int((req.End.Sub(req.Start) + req.Step - 1) / req.Step)
	if steps > 11000 {
		return nil, &LimitError{Limit: "max_metrics_steps", Msg: fmt.Sprintf("%d steps is more than 11000; use a longer step", steps)}
	}
	if err := s.checkRange(TimeRange{Start: req.Start, End: req.End}); err != nil {
		return nil, err
	}
	switch m.Fn {
	case "rate", "count_over_time", "quantile_over_time", "min_over_time", "max_over_time", "avg_over_time", "sum_over_time":
	default:
		return nil, fmt.Errorf("%w: metrics function %s() is not supported", ErrBadData, m.Fn)
	}
	if m.Fn != "rate" && m.Fn != "count_over_time" && m.Attr == nil {
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
				var labels []SeriesLabel
				var key strings.Builder
				for i := range m.By {
					v := traceql.Field(&m.By[i], t, sp)
					labels = append(labels, SeriesLabel{Name: m.By[i].Text, Value: v})
					key.WriteString(v.String())
					key.WriteByte(0)
				}
				val := 1.0
				if m.Attr != nil {
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
					acc = &seriesAcc{labels: labels, vals: make([][]float64, steps)}
					groups[k] = acc
					order = append(order, k)
				}
				acc.vals[step] = append(acc.vals[step], val)
			}
		}
	}
	pf := req.Query.Prefilter()
	dec := newDecoder()
	for _, lt := range in.snapshot() {
		if !tr.overlaps(lt.startNs, lt.endNs) || !liveMaybe(pf, lt.spans) {
			continue
		}
		spans, err := decodeLive(dec, lt.spans)
		if err != nil {
			return nil, err
		}
		visit(lt.id, spans)
	}
	blocks := in.blockList()
	res.Metrics.TotalBlocks = len(blocks)
	seenTrace := map[pcommon.TraceID]bool{}
	for _, b := range blocks {
		if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			continue
		}
		err := in.scanCandidates(ctx, b, pf, func(id pcommon.TraceID, spans []traceql.Span) bool {
			visit(id, dedupe(spans))
			seenTrace[id] = true
			return true
		})
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return nil, s.timeoutErr(err)
			}
		}
		res.Metrics.InspectedBytes += b.meta.Size
	}
	sort.Strings(order)
	for _, k := range order {
		acc := groups[k]
		if m.Fn == "quantile_over_time" {
			for _, q := range m.Quantiles {
				ser := Series{Labels: append(append([]SeriesLabel(nil), acc.labels...), SeriesLabel{Name: "p", Value: traceql.NewFloat(q)}),
					Values: make([]float64, steps)}
				for i, vs := range acc.vals {
					ser.Values[i] = quantile(vs, q)
				}
				res.Series = append(res.Series, ser)
			}
			continue
		}
		ser := Series{Labels: acc.labels, Values: make([]float64, steps)}
		for i, vs := range acc.vals {
			ser.Values[i] = reduce(m.Fn, vs, req.Step)
		}
		res.Series = append(res.Series, ser)
	}
	return res, nil
}

func reduce(fn string, vs []float64, step time.Duration) float64 {
	switch fn {
	case "rate":
		return float64(len(vs)) / step.Seconds()
	case "count_over_time":
		return float64(len(vs))
	}
	if len(vs) == 0 {
		return math.NaN()
	}
	out := vs[0]
	sum := 0.0
	for _, v := range vs {
		sum += v
		switch fn {
		case "min_over_time":
			out = math.Min(out, v)
		case "max_over_time":
			out = math.Max(out, v)
		}
	}
	switch fn {
	case "sum_over_time":
		return sum
	case "avg_over_time":
		return sum / float64(len(vs))
	}
	return out
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
}

type seriesJSON struct {
	Labels  []kvJSON     `json:"labels"`
	Samples []sampleJSON `json:"samples,omitempty"`
	Value   *float64     `json:"value,omitempty"`
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
		req.Step = tr.End.Sub(tr.Start)
	} else if req.Step, err = parseStep(r.FormValue("step"), tr.End.Sub(tr.Start)); err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return "", MetricsRequest{}, false
	}
	// Steps are aligned to the step, as Tempo does, so that successive requests give the same buckets.
	if !instant {
		req.Start = req.Start.Truncate(req.Step)
	}
	return tenantID, req, true
}

func (a *API) queryRange(w http.ResponseWriter, r *http.Request) {
	tenantID, req, ok := a.metricsRequest(w, r, false)
	if !ok {
		return
	}
	res, err := a.Store.QueryRange(r.Context(), tenantID, req)
	if err != nil {
		storeError(w, err)
		return
	}
	out := metricsRangeJSON{Series: []seriesJSON{}, Metrics: metricsOf(res.Metrics)}
	for _, s := range res.Series {
		sj := seriesJSON{Labels: seriesLabels(req, s.Labels), Samples: []sampleJSON{}}
		for i, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			// As Tempo, a sample is stamped with the end of its step: the value at T covers [T-step, T).
			end := req.Start.Add(time.Duration(i+1) * req.Step)
			if end.After(req.End) {
				continue
			}
			ts := end.UnixMilli()
			sj.Samples = append(sj.Samples, sampleJSON{TimestampMs: strconv.FormatInt(ts, 10), Value: v})
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
	res, err := a.Store.QueryRange(r.Context(), tenantID, req)
	if err != nil {
		storeError(w, err)
		return
	}
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
