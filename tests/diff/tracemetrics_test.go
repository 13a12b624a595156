package diff

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// tmCase is one TraceQL metrics query of Tempo's metrics documentation, written against the generated traces.
// When filter is set, the data's own answer of the instant query is computed (fn over the matching spans, per
// by-value) and Sprout's must equal it; every query is also compared with Tempo.
type tmCase struct {
	q      string
	filter sexpr  // nil: no expected answer from the data (sampling, compare, quantiles)
	fn     string // rate, count_over_time, {min,max,avg,sum}_over_time, histogram_over_time
	field  string
	by     string
	topk   int // > 0 topk, < 0 bottomk
	gt     float64
	qs     []float64 // quantile_over_time's quantiles
}

func traceqlMetricsCorpus() []tmCase {
	get := S(F("span:name", "=", `"GET /api/products/{id}"`))
	errS := S(F("span:status", "=", "error"))
	fe := S(F("resource.service.name", "=", `"frontend"`))
	return []tmCase{
		{q: `{ } | rate()`, filter: all(), fn: "rate"},
		{q: `{ span:status = error } | rate()`, filter: errS, fn: "rate"},
		{q: `{ resource.service.name = "frontend" && span:status = error } | rate()`, filter: S(and(F("resource.service.name", "=", `"frontend"`), F("span:status", "=", "error"))), fn: "rate"},
		{q: `{ span:status = error } | rate() by (resource.service.name)`, filter: errS, fn: "rate", by: "resource.service.name"},
		{q: `{ resource.service.name = "frontend" } | rate() by (span.http.url)`, filter: fe, fn: "rate", by: "span.http.url"},
		{q: `{ resource.service.name = "frontend" } | rate() by (status)`},
		{q: `{ resource.service.name = "frontend" } | rate() by (instrumentation:name)`},
		{q: `{ span:status = error } | rate() by (resource.service.name, span:name)`},
		{q: `{ span:name = "GET /api/products/{id}" } | count_over_time()`, filter: get, fn: "count_over_time"},
		{q: `{ span:name = "GET /api/products/{id}" } | count_over_time() by (span.http.status_code)`, filter: get, fn: "count_over_time", by: "span.http.status_code"},
		{q: `{ } | count_over_time() by (resource.service.name)`, filter: all(), fn: "count_over_time", by: "resource.service.name"},
		{q: `{ span:name = "GET /api/products/{id}" } | avg_over_time(span:duration)`, filter: get, fn: "avg_over_time", field: "duration"},
		{q: `{ span:name = "GET /api/products/{id}" } | avg_over_time(span:duration) by (span.http.status_code)`, filter: get, fn: "avg_over_time", field: "duration", by: "span.http.status_code"},
		{q: `{ span:name = "GET /api/products/{id}" } | min_over_time(span:duration) by (span.http.url)`, filter: get, fn: "min_over_time", field: "duration", by: "span.http.url"},
		{q: `{ span:name = "GET /api/products/{id}" } | max_over_time(span:duration) by (span.http.url)`, filter: get, fn: "max_over_time", field: "duration", by: "span.http.url"},
		{q: `{ span:name = "GET /api/products/{id}" } | min_over_time(span.http.status_code)`, filter: get, fn: "min_over_time", field: "span.http.status_code"},
		{q: `{ } | max_over_time(span.bytesProcessed)`, filter: all(), fn: "max_over_time", field: "span.bytesProcessed"},
		{q: `{ } | sum_over_time(span.bytesProcessed)`, filter: all(), fn: "sum_over_time", field: "span.bytesProcessed"},
		{q: `{ } | avg_over_time(span.ratio) by (resource.service.name)`, filter: all(), fn: "avg_over_time", field: "span.ratio", by: "resource.service.name"},
		{q: `{ span:name = "GET /api/products/{id}" } | quantile_over_time(span:duration, .99, .9, .5)`, filter: get, fn: "quantile_over_time", field: "duration", qs: []float64{.99, .9, .5}},
		{q: `{ span:name = "GET /api/products/{id}" } | quantile_over_time(span:duration, .99) by (span.http.url)`, filter: get, fn: "quantile_over_time", field: "duration", by: "span.http.url", qs: []float64{.99}},
		{q: `{ span:name = "GET /api/products/{id}" } | quantile_over_time(span.http.status_code, .99, .9, .5)`, filter: get, fn: "quantile_over_time", field: "span.http.status_code", qs: []float64{.99, .9, .5}},
		{q: `{ } | quantile_over_time(duration, 0, 1, .25)`, filter: all(), fn: "quantile_over_time", field: "duration", qs: []float64{0, 1, .25}},
		{q: `{ } | histogram_over_time(span:duration)`, filter: all(), fn: "histogram_over_time"},
		{q: `{ } | histogram_over_time(span:duration) by (span.http.url)`, filter: all(), fn: "histogram_over_time", by: "span.http.url"},
		{q: `{ resource.service.name = "frontend" } | compare({ span:status = error })`},
		{q: `{ } | rate() by (resource.service.name) | topk(2)`, filter: all(), fn: "rate", by: "resource.service.name", topk: 2},
		{q: `{ } | rate() by (resource.service.name) | bottomk(2)`, filter: all(), fn: "rate", by: "resource.service.name", topk: -2},
		{q: `{ span:duration < 5ms } | count_over_time() by (resource.service.name) | topk(10)`, filter: S(F("span:duration", "<", "5ms")), fn: "count_over_time", by: "resource.service.name", topk: 10},
		{q: `{ } | rate() by (resource.service.name) > 0.05`, filter: all(), fn: "rate", by: "resource.service.name", gt: 0.05},
		{q: `{ } | count_over_time() by (span.http.url) > 20`, filter: all(), fn: "count_over_time", by: "span.http.url", gt: 20},
		{q: `{ } | rate() by (span.http.url) > 0 | topk(2)`},
		// Sampling hints: Sprout answers exactly (its answer's message says so), Tempo estimates.
		{q: `{ resource.service.name = "frontend" } | rate() with(sample=true)`, filter: fe, fn: "rate"},
		{q: `{ span:status = error } | count_over_time() with(span_sample=0.1)`, filter: errS, fn: "count_over_time"},
		{q: `{ } | count_over_time() by (resource.service.name) with(trace_sample=0.05)`, filter: all(), fn: "count_over_time", by: "resource.service.name"},
		{q: `{ span:name = "GET /api/products/{id}" } | quantile_over_time(span:duration, .99) by (span.http.url) with (exemplars=true)`},
	}
}

// tmSeries is one answer's series: labels (rendered k=v, sorted) -> timestamp ms -> value (0 for an instant
// answer).
type tmSeries map[string]map[int64]float64

func metricsQuery(base, path string, p url.Values) (tmSeries, int, string) {
	code, body := get(base+path, p)
	if code != 200 {
		return nil, code, strings.TrimSpace(string(body))
	}
	var r struct {
		Series []struct {
			Labels []struct {
				Key   string         `json:"key"`
				Value map[string]any `json:"value"`
			} `json:"labels"`
			Samples []struct {
				TimestampMs string  `json:"timestampMs"`
				Value       float64 `json:"value"`
			} `json:"samples"`
			Value *float64 `json:"value"`
		} `json:"series"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, code, err.Error()
	}
	out := tmSeries{}
	for _, s := range r.Series {
		var ls []string
		for _, l := range s.Labels {
			var v any
			for _, x := range l.Value {
				v = x
			}
			ls = append(ls, fmt.Sprintf("%s=%v", l.Key, v))
		}
		sort.Strings(ls)
		k := strings.Join(ls, ",")
		m := map[int64]float64{}
		for _, p := range s.Samples {
			ts, _ := strconv.ParseInt(p.TimestampMs, 10, 64)
			m[ts] = p.Value
		}
		if s.Value != nil {
			m[0] = *s.Value
		}
		out[k] = m
	}
	return out, 200, ""
}

// expectMetrics is the data's own instant answer of c over [from, to): series key -> value.
func expectMetrics(c tmCase, traces []*rTrace, from, to time.Time) map[string]float64 {
	vals := map[string][]float64{}
	for _, tr := range traces {
		for _, i := range flat(c.filter.eval(tr)) {
			s := tr.spans[i]
			if s.start.Before(from) || !s.start.Before(to) {
				continue
			}
			var key []string
			if c.by != "" {
				vs := fieldValues(tr, s, c.by)
				if len(vs) == 0 {
					vs = []any{"nil"} // spans without the attribute make a series of their own
				}
				key = append(key, fmt.Sprintf("%s=%v", c.by, vs[0]))
			}
			v := 1.0
			if c.field != "" {
				vs := fieldValues(tr, s, c.field)
				if len(vs) == 0 {
					continue
				}
				if d, ok := vs[0].(durV); ok {
					v = time.Duration(d).Seconds()
				} else {
					v, _ = num(vs[0])
				}
			}
			if c.fn == "histogram_over_time" {
				b := float64(uint64(1)<<(64-bits.LeadingZeros64(uint64(s.dur)-1))) / 1e9
				key = append(key, "__bucket="+strconv.FormatFloat(b, 'g', -1, 64))
			}
			sort.Strings(key)
			k := strings.Join(key, ",")
			vals[k] = append(vals[k], v)
		}
	}
	out := map[string]float64{}
	for k, xs := range vals {
		if c.fn == "quantile_over_time" {
			for _, q := range c.qs {
				kq := "p=" + strconv.FormatFloat(q, 'g', -1, 64)
				if k != "" {
					kq = k + "," + kq
				}
				parts := strings.Split(kq, ",")
				sort.Strings(parts)
				out[strings.Join(parts, ",")] = exactQuantile(xs, q)
			}
			continue
		}
		var f float64
		switch c.fn {
		case "rate":
			f = float64(len(xs)) / to.Sub(from).Seconds()
		case "count_over_time", "histogram_over_time":
			f = float64(len(xs))
		case "min_over_time":
			f = math.Inf(1)
			for _, x := range xs {
				f = math.Min(f, x)
			}
		case "max_over_time":
			f = math.Inf(-1)
			for _, x := range xs {
				f = math.Max(f, x)
			}
		case "sum_over_time", "avg_over_time":
			for _, x := range xs {
				f += x
			}
			if c.fn == "avg_over_time" {
				f /= float64(len(xs))
			}
		}
		if c.gt != 0 || strings.Contains(c.q, "> 0") {
			if !(f > c.gt) {
				continue
			}
		}
		out[k] = f
	}
	if c.topk != 0 {
		type kv struct {
			k string
			v float64
		}
		var all []kv
		for k, v := range out {
			all = append(all, kv{k, v})
		}
		sort.Slice(all, func(i, j int) bool {
			if c.topk > 0 {
				return all[i].v > all[j].v
			}
			return all[i].v < all[j].v
		})
		n := c.topk
		if n < 0 {
			n = -n
		}
		out = map[string]float64{}
		for i := 0; i < n && i < len(all); i++ {
			out[all[i].k] = all[i].v
		}
	}
	return out
}

// compareAttrs are the attributes whose compare() series are checked: few values each, so that compare's top 10
// is every value, none of them one of Tempo's dedicated columns (Tempo counts those also as nil for spans
// without them, and resource.service.name twice: see docs/traces.md).
var compareAttrs = map[string]bool{"resource.deployment.environment": true, "resource.cloud.region": true, "name": true,
	"kind": true, "status": true, "span.http.method": true, "span.db.system": true, "instrumentation.language": true,
	"instrumentation:name": true, "span.retry": true, "resource.canary": true}

// comparable keeps the series of compareAttrs from a compare() answer.
func comparable(in tmSeries) tmSeries {
	out := tmSeries{}
	for k, v := range in {
		for _, l := range strings.Split(k, ",") {
			name, _, _ := strings.Cut(l, "=")
			if compareAttrs[name] && !strings.HasSuffix(l, "=<nil>") && !strings.HasSuffix(l, "=nil") {
				out[k] = v
			}
		}
	}
	return out
}

// expectCompare is the data's answer of { resource.service.name = "frontend" } | compare({ span:status = error })
// for compareAttrs: per side, spans by attribute value.
func expectCompare(traces []*rTrace, from, to time.Time) tmSeries {
	counts := map[string]float64{}
	for _, tr := range traces {
		for _, s := range tr.spans {
			if s.res["service.name"] != "frontend" || s.start.Before(from) || !s.start.Before(to) {
				continue
			}
			side := "baseline"
			if s.status == "error" {
				side = "selection"
			}
			for name := range compareAttrs {
				vs := fieldValues(tr, s, name)
				if len(vs) == 0 {
					continue
				}
				v := fmt.Sprint(vs[0])
				if name == "status" || name == "kind" { // intrinsics are labelled by their enum name
					v = fmt.Sprint(vs[0])
				}
				counts["__meta_type="+side+","+name+"="+v]++
			}
		}
	}
	out := tmSeries{}
	for k, n := range counts {
		parts := strings.Split(k, ",")
		sort.Strings(parts)
		out[strings.Join(parts, ",")] = map[int64]float64{0: n}
	}
	return out
}

// exactQuantile is the q-quantile of xs, linear between the closest ranks (rank q·(n-1)).
func exactQuantile(xs []float64, q float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo, hi := int(math.Floor(pos)), int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// sameSeries compares two answers' series: the same label sets, and at every timestamp either side has a
// non-zero value, the same value (relative 1e-6: the engines sum in different orders).
func sameSeries(a, b tmSeries) string {
	var d []string
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		x, y := a[k], b[k]
		if x == nil || y == nil {
			if !allZero(x) || !allZero(y) {
				d = append(d, fmt.Sprintf("series {%s} only in %s", k, map[bool]string{true: "the second", false: "the first"}[x == nil]))
			}
			continue
		}
		ts := map[int64]bool{}
		for t := range x {
			ts[t] = true
		}
		for t := range y {
			ts[t] = true
		}
		var tss []int64
		for t := range ts {
			tss = append(tss, t)
		}
		sort.Slice(tss, func(i, j int) bool { return tss[i] < tss[j] })
		for _, t := range tss {
			if !near(x[t], y[t]) {
				d = append(d, fmt.Sprintf("{%s} at %d: %v vs %v", k, t, x[t], y[t]))
				break
			}
		}
	}
	if len(d) > 4 {
		d = append(d[:4], fmt.Sprintf("… %d more", len(d)-4))
	}
	return strings.Join(d, "; ")
}

func allZero(m map[int64]float64) bool {
	for _, v := range m {
		if v != 0 && !math.IsNaN(v) {
			return false
		}
	}
	return true
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-6*math.Max(math.Abs(a), math.Abs(b))
}

// TestTraceQLMetricsDiff sends the model's traces to Tempo and Sprout and runs the metrics corpus as instant
// (/api/metrics/query) and range (/api/metrics/query_range) queries: Sprout's instant answer must equal the
// data's own where the corpus computes it; both answers are compared with Tempo's.
func TestTraceQLMetricsDiff(t *testing.T) {
	tempo, tempoOTLP := startTempo(t)
	sprout, sproutOTLP := startSproutOTLP(t)
	base := time.Now().Add(-60 * time.Second).Truncate(15 * time.Second)
	td, traces := genTraceModel(traceModelSeed, base)
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{tempoOTLP, sproutOTLP} {
		post(t, u, "application/x-protobuf", body, nil)
	}
	from, to := base.Add(-15*time.Second), base.Add(90*time.Second)
	for time.Now().Before(to.Add(time.Second)) {
		time.Sleep(time.Until(to.Add(time.Second))) // the window must be past for Tempo's query_end_cutoff
	}
	total := 0
	for _, tr := range traces {
		total += len(tr.spans)
	}
	instant := url.Values{"start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}
	for name, u := range map[string]string{"tempo": tempo, "sprout": sprout} {
		testutil.Eventually(t, 120*time.Second, func() error {
			p := url.Values{"q": {`{ } | count_over_time()`}}
			for k, v := range instant {
				p[k] = v
			}
			got, code, msg := metricsQuery(u, "/api/metrics/query", p)
			for _, s := range got {
				if s[0] == float64(total) {
					return nil
				}
			}
			return fmt.Errorf("%s: %d %v %s (want %d spans)", name, code, got, msg, total)
		})
	}
	var equalData, diffData, withData, equalTempoInst, equalTempoRange, run, tempoQuantileOff int
	for _, c := range traceqlMetricsCorpus() {
		run++
		p := url.Values{"q": {c.q}}
		for k, v := range instant {
			p[k] = v
		}
		sI, sc, smsg := metricsQuery(sprout, "/api/metrics/query", p)
		tI, tc, tmsg := metricsQuery(tempo, "/api/metrics/query", p)
		if sc != 200 {
			t.Errorf("%s: Sprout %d %s (Tempo %d)", c.q, sc, smsg, tc)
			continue
		}
		if c.filter != nil {
			withData++
			want := tmSeries{}
			for k, v := range expectMetrics(c, traces, from, to) {
				if k == "" {
					k = "__name__=" + c.fn
				}
				want[k] = map[int64]float64{0: v}
			}
			if d := sameSeries(want, sI); d != "" {
				diffData++
				t.Errorf("%s: Sprout's instant answer is not the data's: %s", c.q, d)
			} else {
				equalData++
			}
		}
		if c.fn == "quantile_over_time" && tc == 200 {
			// Tempo answers from power-of-two buckets: report how far its value is from the data's.
			for k, want := range expectMetrics(c, traces, from, to) {
				if tv, ok := tI[k][0]; ok && !near(tv, want) {
					tempoQuantileOff++
					t.Logf("quantile %s {%s}: data %.6g, Sprout %.6g, Tempo %.6g (×%.2f)", c.q, k, want, sI[k][0], tv, tv/want)
				}
			}
		}
		if strings.Contains(c.q, "compare(") {
			withData++
			if d := sameSeries(expectCompare(traces, from, to), comparable(sI)); d != "" {
				diffData++
				t.Errorf("%s: Sprout's instant answer is not the data's: %s", c.q, d)
			} else {
				equalData++
			}
			tI, sI = comparable(tI), comparable(sI)
		}
		if tc != 200 {
			t.Logf("%s: Tempo %d %s", c.q, tc, tmsg)
		} else if d := sameSeries(tI, sI); d != "" {
			t.Logf("instant %s: Tempo vs Sprout: %s", c.q, d)
			if os.Getenv("SPROUT_DIFF_VERBOSE") != "" {
				t.Logf("  tempo:  %v\n  sprout: %v", tI, sI)
			}
		} else {
			equalTempoInst++
		}
		p.Set("step", "15s")
		sR, sc, smsg := metricsQuery(sprout, "/api/metrics/query_range", p)
		tR, tc, tmsg := metricsQuery(tempo, "/api/metrics/query_range", p)
		switch {
		case sc != 200:
			t.Errorf("range %s: Sprout %d %s", c.q, sc, smsg)
		case tc != 200:
			t.Logf("range %s: Tempo %d %s", c.q, tc, tmsg)
		default:
			if strings.Contains(c.q, "compare(") {
				tR, sR = comparable(tR), comparable(sR)
			}
			if d := sameSeries(tR, sR); d != "" {
				t.Logf("range %s: Tempo vs Sprout: %s", c.q, d)
			} else {
				equalTempoRange++
			}
		}
	}
	t.Logf("TraceQL metrics: run %d; with the data's answer %d: Sprout equal %d, different %d; equal to Tempo: instant %d, range %d; Tempo's quantiles off the data's: %d",
		run, withData, equalData, diffData, equalTempoInst, equalTempoRange, tempoQuantileOff)
}
