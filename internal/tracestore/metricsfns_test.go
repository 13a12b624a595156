package tracestore

import (
	"context"
	"encoding/json"
	"math"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// seriesMap renders series as "label=value,..." → values, NaN as -1, for comparison with hand-computed answers.
func seriesMap(ss []Series) map[string][]float64 {
	out := map[string][]float64{}
	for _, s := range ss {
		var ls []string
		for _, l := range s.Labels {
			v := l.Value.String()
			if l.Value.Type == traceql.TypeString {
				v = l.Value.S
			}
			ls = append(ls, l.Name+"="+v)
		}
		vals := make([]float64, len(s.Values))
		for i, v := range s.Values {
			if math.IsNaN(v) {
				v = -1
			}
			vals[i] = v
		}
		out[strings.Join(ls, ",")] = vals
	}
	return out
}

// TestMetricsTempo3 checks histogram_over_time, compare, topk/bottomk and filters against answers worked by hand.
// Data: traces 1..3 start at baseTime+1s..+3s, each a frontend root "GET /checkout" (server, 400ms,
// http.status_code=200, cloud.region) and backend children step-1 (50ms), step-2 (100ms) and step-3 (150ms,
// status error "boom"), internal, with span.step = "1", "2", "3".
func TestMetricsTempo3(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	if err := s.Push(context.Background(), tn, batch(1, 3, 4)); err != nil {
		t.Fatal(err)
	}
	one := func(v float64) []float64 { return []float64{v} }
	win := func(from, to time.Duration) string {
		return " " + itoa(baseTime.Add(from).UnixNano()) + ", " + itoa(baseTime.Add(to).UnixNano())
	}
	cases := []struct {
		q    string
		step time.Duration
		want map[string][]float64 // nil: only check the entries of sub
		sub  map[string][]float64
		n    int // number of series when want is nil
	}{
		// buckets: the power of two (in ns) at or above each duration, in seconds: 50ms → 2^26 ns,
		// 100ms → 2^27, 150ms → 2^28, 400ms → 2^29
		{q: `{ } | histogram_over_time(duration)`, step: 10 * time.Second, want: map[string][]float64{
			"__bucket=0.067108864": one(3), "__bucket=0.134217728": one(3), "__bucket=0.268435456": one(3), "__bucket=0.536870912": one(3)}},
		{q: `{ kind = internal } | histogram_over_time(duration) by (resource.service.name) with(sample=true)`, step: 10 * time.Second, want: map[string][]float64{
			"resource.service.name=backend,__bucket=0.067108864": one(3), "resource.service.name=backend,__bucket=0.134217728": one(3),
			"resource.service.name=backend,__bucket=0.268435456": one(3)}},
		// an int attribute: 200 → 256
		{q: `{ span.http.status_code != nil } | histogram_over_time(span.http.status_code)`, step: 10 * time.Second, want: map[string][]float64{
			"__bucket=256": one(3)}},
		// compare: the selection is the three step-3 spans, the baseline the other nine. Baseline: 12
		// attributes (name, kind, status, statusMessage, rootName, rootServiceName, instrumentation:name and
		// :version (the frontend's scope only), span.http.status_code, span.step, resource.service.name,
		// resource.cloud.region) with 17 values, plus 12 totals; selection: 8 attributes, 8 values, 8 totals
		{q: `{ } | compare({ status = error })`, step: 10 * time.Second, n: 45, sub: map[string][]float64{
			"__meta_type=baseline,resource.service.name=backend":     one(6),
			"__meta_type=baseline,resource.service.name=frontend":    one(3),
			"__meta_type=baseline,kind=internal":                     one(6),
			"__meta_type=baseline,status=unset":                      one(9),
			"__meta_type=baseline,span.http.status_code=200":         one(3),
			"__meta_type=baseline_total,span.step=nil":               one(6),
			"__meta_type=baseline_total,name=nil":                    one(9),
			"__meta_type=selection,status=error":                     one(3),
			"__meta_type=selection,statusMessage=boom":               one(3),
			"__meta_type=selection,span.step=3":                      one(3),
			"__meta_type=selection_total,resource.service.name=nil":  one(3),
			"__meta_type=baseline,statusMessage=":                    one(9),
			"__meta_type=baseline,rootServiceName=frontend":          one(9),
			"__meta_type=baseline,instrumentation:name=sprout-test":  one(3),
			"__meta_type=baseline_total,instrumentation:version=nil": one(3),
		}},
		// one value per attribute: ties go to the value that sorts first; attributes with more get an error series
		{q: `{ } | compare({ status = error }, 1)`, step: 10 * time.Second, n: 44, sub: map[string][]float64{
			"__meta_type=baseline,name=GET /checkout":                    one(3),
			"__meta_type=baseline,kind=internal":                         one(6),
			"__meta_error=__too_many_values__,name=nil":                  one(-1),
			"__meta_error=__too_many_values__,kind=nil":                  one(-1),
			"__meta_error=__too_many_values__,span.step=nil":             one(-1),
			"__meta_error=__too_many_values__,resource.service.name=nil": one(-1),
		}},
		// a selection window (start, end] around trace 2 only
		{q: `{ } | compare({ status = error }, 10,` + win(2*time.Second-time.Millisecond, 2*time.Second+time.Second) + `)`, step: 10 * time.Second, sub: map[string][]float64{
			"__meta_type=selection,status=error": one(1),
			"__meta_type=baseline,status=error":  one(2),
			"__meta_type=baseline,status=unset":  one(9),
		}, n: -1},
		// per step (1s): frontend 1, backend 3 in steps 1, 2, 3; both 0 in step 0 (counts are 0, not absent,
		// where no span fell), where the tie goes to the labels that sort first
		{q: `{ } | count_over_time() by (resource.service.name) | topk(1)`, step: time.Second, want: map[string][]float64{
			"resource.service.name=backend": {0, 3, 3, 3}}},
		{q: `{ } | count_over_time() by (resource.service.name) | bottomk(1)`, step: time.Second, want: map[string][]float64{
			"resource.service.name=backend": {0, -1, -1, -1}, "resource.service.name=frontend": {-1, 1, 1, 1}}},
		{q: `{ } | count_over_time() by (resource.service.name) > 2`, step: time.Second, want: map[string][]float64{
			"resource.service.name=backend": {-1, 3, 3, 3}}},
		{q: `{ } | max_over_time(duration) by (name) | topk(2) >= 150ms`, step: 4 * time.Second, want: map[string][]float64{
			"name=GET /checkout": {0.4}, "name=step-3": {0.15}}},
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			res, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, c.q),
				Start: baseTime, End: baseTime.Add(4 * time.Second), Step: c.step})
			if c.step == 10*time.Second {
				res, err = s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, c.q),
					Start: baseTime, End: baseTime.Add(10 * time.Second), Step: c.step})
			}
			if err != nil {
				t.Fatal(err)
			}
			got := seriesMap(res.Series)
			if c.want != nil {
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got  %v\nwant %v", got, c.want)
				}
				return
			}
			if c.n >= 0 && len(got) != c.n {
				t.Errorf("%d series, want %d: %v", len(got), c.n, got)
			}
			for k, v := range c.sub {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

func itoa(n int64) string { return traceql.NewInt(n).String() }

// TestSearchMostRecent: with most_recent=true the search reads everything and returns the newest traces, even
// when older ones are found first (here: in a block, while the newest are in memory and vice versa).
func TestSearchMostRecent(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	ctx := context.Background()
	// traces 5..8 pushed first and flushed to a block; 1..4 (older start times) stay in memory
	if err := s.Push(ctx, tn, batch(5, 4, 2)); err != nil {
		t.Fatal(err)
	}
	s.CutAndFlush(ctx, true)
	if err := s.Push(ctx, tn, batch(1, 4, 2)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		want []int
	}{
		{`{ } with(most_recent=true)`, []int{8, 7}},
		{`{ name = "step-1" } | select(span.step) with(most_recent=true)`, []int{8, 7}},
		// intrinsics no block column holds: the pushdown must let the block's traces through
		{`({ nestedSetParent < 0 } &>> { nestedSetLeft = 2 && span:childCount = 0 }) with(most_recent=true)`, []int{8, 7}},
	} {
		res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, tc.q), Limit: 2, MostRecent: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, m := range res.Traces {
			got = append(got, int(m.TraceID[15]))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: traces %v, want %v", tc.q, got, tc.want)
		}
	}
}

// TestTagsScoped: q on the tags APIs keeps the attributes of the spans that match it.
func TestTagsScoped(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	ctx := context.Background()
	if err := s.Push(ctx, tn, batch(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	s.CutAndFlush(ctx, true)
	if err := s.Push(ctx, tn, batch(3, 1, 3)); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]map[string][]string{
		`{ resource.service.name = "frontend" }`: {"span": {"http.status_code"}, "resource": {"cloud.region", "service.name"}},
		`{ resource.service.name = "backend" }`:  {"span": {"step"}, "resource": {"service.name"}},
		`{ name = "nope" }`:                      {"span": {}, "resource": {}},
		`{ }`:                                    {"span": {"http.status_code", "step"}, "resource": {"cloud.region", "service.name"}},
	} {
		got, err := s.TagsMatching(ctx, tn, TimeRange{}, mustQuery(t, q))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %v, want %v", q, got, want)
		}
	}
}

// TestCompareSeriesLimit: compare() is refused, as every metrics query, when its answer has more series than
// max_response_series; the 45 series of the fixture fit in 45 and not in 44.
func TestCompareSeriesLimit(t *testing.T) {
	for limit, wantErr := range map[int]bool{45: false, 44: true, 4: true} {
		cfg := testConfig(t.TempDir())
		cfg.Limits.MaxResponseSeries = limit
		s := openStore(t, cfg)
		if err := s.Push(context.Background(), tn, batch(1, 3, 4)); err != nil {
			t.Fatal(err)
		}
		_, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, `{ } | compare({ status = error })`),
			Start: baseTime, End: baseTime.Add(10 * time.Second), Step: 10 * time.Second})
		if got := refusal.Is(err, refusal.OverLimit); got != wantErr {
			t.Errorf("limit %d: error %v, want a limit error: %v", limit, err, wantErr)
		}
		_ = s.Close(context.Background())
	}
}

// TestSearchSelectEventsAndBadHint: select(event.x) returns the event attribute with the span (the Exceptions tab), and a
// malformed hint is Tempo's 400 with the position.
func TestSearchSelectEventsAndBadHint(t *testing.T) {
	s, srv := newAPI(t)
	now := time.Now().Truncate(time.Second)
	if err := s.Push(context.Background(), tn, corpusFixture(now)); err != nil {
		t.Fatal(err)
	}
	code, _, body := get(t, srv.URL+"/api/search?limit=1&q="+url.QueryEscape(`{ nestedSetParent < 0 && status = error } | select(event.exception.message, event.exception.type) with(most_recent=true)`))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var res struct {
		Traces []struct {
			TraceID  string
			SpanSets []struct {
				Spans []struct {
					Attributes []struct {
						Key   string
						Value map[string]any
					}
				}
			}
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || len(res.Traces) != 1 {
		t.Fatalf("%v: %s", err, body)
	}
	// the newest failed root is trace 12's
	if res.Traces[0].TraceID != traceIDString(tid(12)) {
		t.Errorf("trace %s, want the newest failed root's, %s", res.Traces[0].TraceID, traceIDString(tid(12)))
	}
	got := map[string]any{}
	for _, a := range res.Traces[0].SpanSets[0].Spans[0].Attributes {
		got[a.Key] = a.Value["stringValue"]
	}
	want := map[string]any{"exception.message": "card declined", "exception.type": "CheckoutError", "status": "error"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	if _, ok := got["nestedSetParent"]; !ok {
		t.Errorf("nestedSetParent not shown: %v", got)
	}
	code, _, body = get(t, srv.URL+"/api/metrics/query_range?q="+url.QueryEscape(`{ } | rate() with(sample)`))
	if code != 400 || !strings.Contains(string(body), "parse error at line 1, col 25: expected '='") {
		t.Fatalf("malformed hint: %d %s", code, body)
	}
}

// TestCompareCells: compare() keeps at most maxCompareCells counters: past it new values are capped (their
// attribute reported with __too_many_values__) and attributes whose totals do not fit make the query too large.
func TestCompareCells(t *testing.T) {
	m := mustQuery(t, `{ } | compare({ status = error })`).Metrics
	tr := traceql.NewTrace(tid(1), traceqlSpans(batch(1, 1, 2)))
	// The root has 11 attributes (name, kind, status, statusMessage, rootName, rootServiceName,
	// instrumentation:name and :version, span.http.status_code, resource.service.name, resource.cloud.region),
	// each one value: 22 counters of steps each, exactly the budget.
	c := newCompareAcc(m, maxCompareCells/22, 1000)
	c.observe(tr, &tr.Spans[0], 0)
	if c.tooLarge || len(c.capped) != 0 {
		t.Fatalf("the root alone: tooLarge %v, capped %v", c.tooLarge, c.capped)
	}
	// step-1 brings new values (name step-1: capped) and a new attribute (span.step: too large)
	c.observe(tr, &tr.Spans[1], 0)
	if !c.capped["name"] || !c.tooLarge {
		t.Fatalf("after step-1: capped %v, tooLarge %v, cells %d", c.capped, c.tooLarge, c.cells)
	}
}

// traceqlSpans turns pdata into the evaluator's spans.
func traceqlSpans(td ptrace.Traces) []traceql.Span {
	var out []traceql.Span
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		res := traceql.NewResource(rs.Resource())
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				out = append(out, traceql.Span{Span: ss.Spans().At(k), Resource: res, Scope: ss.Scope()})
			}
		}
	}
	return out
}

// TestSeriesAccFolds: each function's running value per step equals the value computed from all the step's
// values at once; an empty step is 0 for counts and NaN for the rest.
func TestSeriesAccFolds(t *testing.T) {
	vals := [][]float64{{3, -1.5, 7, 0.25}, nil, {2}}
	step := 2 * time.Second
	for _, tc := range []struct {
		fn   string
		want []float64
	}{
		{"rate", []float64{2, 0, 0.5}},
		{"count_over_time", []float64{4, 0, 1}},
		{"histogram_over_time", []float64{4, 0, 1}},
		{"sum_over_time", []float64{8.75, math.NaN(), 2}},
		{"avg_over_time", []float64{8.75 / 4, math.NaN(), 2}},
		{"min_over_time", []float64{-1.5, math.NaN(), 2}},
		{"max_over_time", []float64{7, math.NaN(), 2}},
	} {
		acc := newSeriesAcc(tc.fn, nil, len(vals))
		for i, vs := range vals {
			for _, v := range vs {
				acc.add(tc.fn, i, v)
			}
		}
		for i, w := range tc.want {
			got := acc.value(tc.fn, i, step)
			if got != w && !(math.IsNaN(got) && math.IsNaN(w)) {
				t.Errorf("%s step %d = %v, want %v", tc.fn, i, got, w)
			}
		}
	}
	acc := newSeriesAcc("quantile_over_time", nil, len(vals))
	for i, vs := range vals {
		for _, v := range vs {
			acc.add("quantile_over_time", i, v)
		}
	}
	if got := quantile(acc.vals[0], 0.5); got != 1.625 {
		t.Errorf("quantile_over_time p50 of step 0 = %v, want 1.625", got)
	}
}
