package diff

import (
	"fmt"
	"math"
	"math/rand"
	"net/url"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
)

// The generated metrics span metricSpan after base at a 15 s interval.
const metricSpan = 40 * time.Minute

// genMetrics builds the data set from seed: counters (with one reset), gauges (with a NaN, a +Inf and a -Inf
// sample, a staleness marker in the middle of a series and a unicode label value), a classic histogram and a
// sparse series whose gaps exceed the 5 m lookback.
func genMetrics(seed int64, base time.Time) []prompb.TimeSeries {
	r := rand.New(rand.NewSource(seed))
	var out []prompb.TimeSeries
	steps := int(metricSpan / (15 * time.Second))
	// Samples sit 7.5 s off the minute grid of the queries: Prometheus 2 (the apt peer) closes a range on the
	// left ([t-r, t]) and Prometheus 3 (Sprout's engine) opens it ((t-r, t]), so a sample exactly on a window's
	// edge would be counted by one and not the other; that version difference is not what this test is after.
	ts := func(i int) int64 {
		return base.Add(7500*time.Millisecond + time.Duration(i)*15*time.Second).UnixMilli()
	}
	mk := func(lbs ...string) prompb.TimeSeries {
		var l []prompb.Label
		for i := 0; i+1 < len(lbs); i += 2 {
			l = append(l, prompb.Label{Name: lbs[i], Value: lbs[i+1]})
		}
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
		return prompb.TimeSeries{Labels: l}
	}
	for _, svc := range []string{"api", "web", "db"} {
		for _, code := range []string{"200", "500"} {
			for _, method := range []string{"GET", "POST"} {
				s := mk("__name__", "http_requests_total", "job", "diff", "service", svc, "code", code, "method", method)
				v := 0.0
				for i := 0; i < steps; i++ {
					v += float64(r.Intn(20))
					if svc == "web" && code == "500" && method == "GET" && i == steps/2 {
						v = float64(r.Intn(5)) // a counter reset
					}
					s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts(i), Value: v})
				}
				out = append(out, s)
			}
		}
	}
	for _, room := range []string{"kitchen", "hall", "ünïcode 🚀"} {
		s := mk("__name__", "temperature_celsius", "job", "diff", "room", room)
		v := 20.0
		for i := 0; i < steps; i++ {
			v += r.NormFloat64()
			x := v
			switch {
			case room == "hall" && i == steps/3:
				x = math.NaN()
			case room == "hall" && i == steps/3+1:
				x = math.Inf(1)
			case room == "hall" && i == steps/3+2:
				x = math.Inf(-1)
			case room == "kitchen" && i == steps/2:
				x = math.Float64frombits(value.StaleNaN)
			case room == "kitchen" && i > steps/2 && i < steps/2+30:
				continue // stale, then back after 7.5 m
			}
			s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts(i), Value: x})
		}
		out = append(out, s)
	}
	les := []string{"0.1", "0.5", "1", "+Inf"}
	for _, svc := range []string{"api", "web"} {
		counts := make([]float64, len(les))
		sum := 0.0
		series := make([]prompb.TimeSeries, len(les)+2)
		for j, le := range les {
			series[j] = mk("__name__", "request_duration_seconds_bucket", "job", "diff", "service", svc, "le", le)
		}
		series[len(les)] = mk("__name__", "request_duration_seconds_sum", "job", "diff", "service", svc)
		series[len(les)+1] = mk("__name__", "request_duration_seconds_count", "job", "diff", "service", svc)
		for i := 0; i < steps; i++ {
			for n := r.Intn(10); n > 0; n-- {
				d := r.ExpFloat64() * 0.3
				sum += d
				for j, le := range []float64{0.1, 0.5, 1, math.Inf(1)} {
					if d <= le {
						counts[j]++
					}
				}
			}
			for j := range les {
				series[j].Samples = append(series[j].Samples, prompb.Sample{Timestamp: ts(i), Value: counts[j]})
			}
			series[len(les)].Samples = append(series[len(les)].Samples, prompb.Sample{Timestamp: ts(i), Value: sum})
			series[len(les)+1].Samples = append(series[len(les)+1].Samples, prompb.Sample{Timestamp: ts(i), Value: counts[len(les)-1]})
		}
		out = append(out, series...)
	}
	s := mk("__name__", "sparse_gauge", "job", "diff")
	for i := 0; i < steps; i += 28 { // every 7 m: gaps beyond the lookback
		s.Samples = append(s.Samples, prompb.Sample{Timestamp: ts(i), Value: float64(i)})
	}
	out = append(out, s)
	return out
}

var (
	genPromSelectors = []string{`http_requests_total`, `http_requests_total{service="api"}`, `http_requests_total{code=~"5.."}`,
		`http_requests_total{method!="GET"}`, `temperature_celsius`, `temperature_celsius{room=~"k.*|ü.*"}`, `sparse_gauge`,
		`request_duration_seconds_count`, `request_duration_seconds_sum`, `nope_metric`, `{__name__=~"http_.*", service="db"}`}
	genPromRanges    = []string{"1m", "5m", "90s", "10m"}
	genPromRangeFns  = []string{"rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time", "absent_over_time"}
	genPromInstFns   = []string{"abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "timestamp", "round"}
	genPromAggs      = []string{"sum", "avg", "min", "max", "count", "stddev", "stdvar", "group"}
	genPromGroupings = []string{"service", "code", "room", "job", "service, code", "nope"}
	genPromBinOps    = []string{"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "> bool", "and", "or", "unless"}
)

func genPromExpr(r *rand.Rand, depth int) string {
	sel := pick(r, genPromSelectors)
	var q string
	switch r.Intn(5) {
	case 0:
		q = sel
	case 1:
		q = fmt.Sprintf("%s(%s)", pick(r, genPromInstFns), sel)
	default:
		f := pick(r, genPromRangeFns)
		rng := pick(r, genPromRanges)
		if r.Intn(8) == 0 {
			q = fmt.Sprintf("%s(%s[%s:%s])", f, sel, rng, pick(r, []string{"30s", "1m"}))
		} else {
			q = fmt.Sprintf("%s(%s[%s]%s)", f, sel, rng, pick(r, []string{"", "", "", " offset 5m", " offset -1m"}))
		}
		if f == "quantile_over_time" {
			q = "0.9, " + q
		}
	}
	switch r.Intn(6) {
	case 0, 1:
		q = fmt.Sprintf("%s by (%s) (%s)", pick(r, genPromAggs), pick(r, genPromGroupings), q)
	case 2:
		q = fmt.Sprintf("%s(%d, %s)", pick(r, []string{"topk", "bottomk"}), 1+r.Intn(3), q)
	case 3:
		q = fmt.Sprintf("%s without (%s) (%s)", pick(r, genPromAggs), pick(r, genPromGroupings), q)
	}
	if depth == 0 && r.Intn(3) == 0 {
		if r.Intn(2) == 0 {
			q = fmt.Sprintf("%s %s %s", q, pick(r, genPromBinOps[:13]), pick(r, []string{"2", "0", "0.5", "-1"}))
		} else {
			q = fmt.Sprintf("%s %s %s", q, pick(r, genPromBinOps), genPromExpr(r, 1))
		}
	}
	return q
}

const promqlGenSeed, promqlGenCount = 23, 1500

func genPromQLCorpus() []string {
	r := rand.New(rand.NewSource(promqlGenSeed))
	seen := map[string]bool{}
	var qs []string
	for len(qs) < promqlGenCount {
		q := genPromExpr(r, 0)
		if !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	return qs
}

// TestPromQLCorpusGenerated keeps testdata/promql_generated.txt equal to what the seeded generator writes.
func TestPromQLCorpusGenerated(t *testing.T) {
	checkGenerated(t, "promql_generated.txt", fmt.Sprintf("# Generated by genPromQLCorpus (seed %d); rewrite with: go test ./tests/diff -run Corpus -update\n", promqlGenSeed), genPromQLCorpus())
}

// TestPromQLDiff remote-writes the generated metrics to Prometheus and to Sprout and runs both PromQL corpora
// on both (range queries at a 60 s step and instant queries, one inside the data and one past its end).
func TestPromQLDiff(t *testing.T) {
	prom := startPrometheus(t)
	sprout := startSprout(t)
	base := time.Now().Add(-metricSpan - 5*time.Minute).Truncate(time.Minute)
	series := genMetrics(1, base)
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	hdr := map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	for _, u := range []string{prom, sprout} {
		post(t, u+"/api/v1/write", "application/x-protobuf", body, hdr)
	}
	t.Logf("wrote %d series (base %s)", len(series), base.Format(time.RFC3339))
	start, end := base, base.Add(metricSpan)
	strict := os.Getenv("SPROUT_DIFF_STRICT") != ""
	var out strings.Builder
	for _, c := range []struct{ name, file string }{{"PromQL docs", "promql_docs.txt"}, {"PromQL generated", "promql_generated.txt"}} {
		tl := &tally{name: c.name}
		for _, q := range readCorpus(t, c.file) {
			for _, r := range []struct {
				path string
				p    url.Values
			}{
				{"/api/v1/query_range", url.Values{"query": {q}, "start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}},
				{"/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(base.Add(20*time.Minute + 30*time.Second).Unix())}}},
				{"/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(end.Add(3 * time.Minute).Unix())}}},
			} {
				pc, pb := get(prom+r.path, r.p)
				sc, sb := get(sprout+r.path, r.p)
				tl.add(r.path, r.p, canonical(pc, pb), canonical(sc, sb))
			}
		}
		fmt.Fprintf(&out, "%s\n", tl.summary())
		for _, r := range tl.reports {
			t.Log(r)
		}
		tl.checkFloor(t)
		if strict && tl.counts[different] > 0 {
			t.Errorf("%s: %d answers differ", c.name, tl.counts[different])
		}
	}
	t.Log("\n" + out.String())
}
