package generator

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

func TestNativeScaleFor(t *testing.T) {
	for _, tc := range []struct {
		factor float64
		want   int32
	}{
		{1.1, 3}, {1.0906, 3}, {1.09, 4}, {1.2, 2}, {2, 0}, {4, -1}, {1.0001, 8}, {1e9, -4},
	} {
		if got := nativeScaleFor(tc.factor); got != tc.want {
			t.Errorf("nativeScaleFor(%v) = %d, want %d", tc.factor, got, tc.want)
		}
	}
}

// TestNativeIndex checks the bucket layout: at scale s, index i holds (base^i, base^(i+1)], base = 2^(2^-s).
func TestNativeIndex(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		scale int32
		want  int32
	}{
		{1, 0, -1}, {2, 0, 0}, {3, 0, 1}, {4, 0, 1}, {4.0001, 0, 2}, {0.5, 0, -2},
		{1, 3, -1}, {2, 3, 7}, {1.0905, 3, 0}, {1.0906, 3, 1},
		{16, -2, 0}, {17, -2, 1}, {1, -2, -1}, {0.001, 3, -80},
	} {
		if got := nativeIndex(tc.v, tc.scale); got != tc.want {
			t.Errorf("nativeIndex(%v, %d) = %d, want %d", tc.v, tc.scale, got, tc.want)
		}
	}
	for _, scale := range []int32{-4, -1, 0, 1, 3, 8} {
		base := math.Pow(2, math.Pow(2, -float64(scale)))
		for v := 1e-4; v < 1e4; v *= 1.37 {
			i := nativeIndex(v, scale)
			lo, hi := math.Pow(base, float64(i)), math.Pow(base, float64(i+1))
			if !(v > lo*(1-1e-12) && v <= hi*(1+1e-12)) {
				t.Fatalf("scale %d: %v in bucket %d = (%v, %v]", scale, v, i, lo, hi)
			}
		}
	}
}

func TestNativeDownscaleKeepsCounts(t *testing.T) {
	s := &series{nScale: 3}
	n := 0
	for v := 0.001; v < 100; v *= 1.5 {
		s.observeNative(v, 1, 10)
		n++
	}
	s.observeNative(0, 1, 10)
	if len(s.nCounts) > 10 {
		t.Errorf("%d buckets, want at most 10", len(s.nCounts))
	}
	if s.nScale >= 3 {
		t.Errorf("scale %d: the resolution was not reduced", s.nScale)
	}
	total := s.nZero
	for _, c := range s.nCounts {
		total += c
	}
	if total != float64(n+1) {
		t.Errorf("count after downscaling = %v, want %d", total, n+1)
	}
}

func TestRoundCounts(t *testing.T) {
	dst := make([]uint64, 3)
	if total := roundCounts(dst, []float64{3.4, 3.4, 3.4}); total != 10 || dst[0]+dst[1]+dst[2] != 10 {
		t.Errorf("roundCounts = %v total %d, want buckets adding up to 10", dst, total)
	}
}

// TestNativeHistogramModes: "native" emits only the native histogram, "both" both forms under one name.
func TestNativeHistogramModes(t *testing.T) {
	sp := span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: 1, dur: 10 * time.Millisecond}
	base := []string{"service", "api", "span_name", "GET", "span_kind", "SPAN_KIND_SERVER", "status_code", "STATUS_CODE_UNSET"}
	for _, tc := range []struct {
		mode             string
		native, classic  bool
		nativeExemplars  int
		classicExemplars int
	}{
		{HistogramClassic, false, true, 0, 1},
		{HistogramNative, true, false, 1, 0},
		{HistogramBoth, true, true, 0, 1},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			got := run(t, func(c *Config) {
				c.Processors = []string{ProcessorSpanMetrics}
				c.GenerateNativeHistograms = tc.mode
			}, sp)
			nk := ser("traces_spanmetrics_latency", base...)
			ns, hasNative := got[nk]
			if hasNative != tc.native {
				t.Fatalf("native series present = %v, want %v", hasNative, tc.native)
			}
			if hasNative {
				h := ns.h
				if h == nil || h.Schema != 3 || h.Count != 1 || math.Abs(h.Sum-0.01) > 1e-12 || ns.points != 2 {
					t.Errorf("native histogram = %v (points %d), want schema 3, count 1, sum 0.01 after a zero point", h, ns.points)
				}
				if len(ns.exemplars) != tc.nativeExemplars {
					t.Errorf("native exemplars = %d, want %d", len(ns.exemplars), tc.nativeExemplars)
				}
			}
			ck := ser("traces_spanmetrics_latency_bucket", append(base, "le", "0.016")...)
			cs, hasClassic := got[ck]
			if hasClassic != tc.classic {
				t.Fatalf("classic series present = %v, want %v", hasClassic, tc.classic)
			}
			if hasClassic && len(cs.exemplars) != tc.classicExemplars {
				t.Errorf("classic exemplars = %d, want %d", len(cs.exemplars), tc.classicExemplars)
			}
		})
	}
}

// TestNativeHistogramPromQL stores native histograms in a Prometheus TSDB through Prometheus' OTLP translation
// and reads them with histogram_quantile and histogram_count, as a Grafana latency panel would.
func TestNativeHistogramPromQL(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := testConfig()
	cfg.GenerateNativeHistograms = HistogramNative
	g := mustNew(t, cfg)
	ctx := context.Background()
	trace := byte(1)
	for step := 0; step <= 4; step++ {
		now := t0.Add(time.Duration(step) * 15 * time.Second)
		// 100 server spans per step, 1 ms to 100 ms: the median is about 50 ms.
		var spans []span
		for i := 1; i <= 100; i++ {
			spans = append(spans, span{svc: "api", name: "GET", kind: ptrace.SpanKindServer, id: byte(i), dur: time.Duration(i) * time.Millisecond})
		}
		if err := g.Consume(tenantA, now, buildTraces(trace, spans...)); err != nil {
			t.Fatal(err)
		}
		trace++
		for _, tm := range g.Collect(now) {
			app := db.AppenderV2(ctx)
			c := prometheusremotewrite.NewPrometheusConverter(app)
			if _, err := c.FromMetrics(ctx, tm.Metrics, promSettings(true)); err != nil {
				t.Fatal(err)
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	at := t0.Add(60 * time.Second)
	for _, tc := range []struct {
		query    string
		want     float64
		relError float64
	}{
		{`histogram_quantile(0.5, sum by (span_name) (rate(traces_spanmetrics_latency{span_kind="SPAN_KIND_SERVER"}[1m])))`, 0.050, 0.1},
		{`histogram_count(sum(increase(traces_spanmetrics_latency{span_kind="SPAN_KIND_SERVER"}[1m])))`, 400, 0.01},
		{`histogram_quantile(0.99, sum(rate(traces_service_graph_request_server_seconds{client="user"}[1m])))`, 0.099, 0.1},
	} {
		q, err := engine.NewInstantQuery(ctx, db, nil, tc.query, at)
		if err != nil {
			t.Fatal(err)
		}
		res := q.Exec(ctx)
		if res.Err != nil {
			t.Fatalf("%s: %v", tc.query, res.Err)
		}
		vec, err := res.Vector()
		if err != nil || len(vec) != 1 {
			t.Fatalf("%s: %v, %v; want one sample", tc.query, vec, err)
		}
		if got := vec[0].F; math.Abs(got-tc.want) > tc.want*tc.relError {
			t.Errorf("%s = %v, want %v ± %v%%", tc.query, got, tc.want, tc.relError*100)
		}
	}
}
