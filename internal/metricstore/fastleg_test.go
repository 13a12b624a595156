package metricstore

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// openRandomCounters opens a TSDB of counters with random resets, jittered scrape times, gaps, stale markers
// and the odd NaN, under two names and a gauge-like name (for the engine's "might not be a counter" info).
func openRandomCounters(t testing.TB, seed uint64, compact bool) (*tsdb.DB, int64, int64) {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = 20 * 60 * 1000
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	rng := rand.New(rand.NewPCG(seed, 99))
	const t0, n = int64(1_700_000_000_000), 240
	type ser struct {
		lset     labels.Labels
		v        float64
		scale    float64 // huge_total's increments are near float64's top, so that avg's sum overflows
		interval int64
		next     int64
	}
	var all []*ser
	for i := range 60 {
		name := []string{"req_total", "bytes_total", "queue_depth", "huge_total"}[i%4]
		lb := labels.NewBuilder(labels.FromStrings("__name__", name, "job", []string{"api", "db", "web"}[i%3],
			"instance", fmt.Sprintf("h%d", rng.IntN(9)), "uniq", fmt.Sprint(i)))
		if rng.IntN(4) > 0 {
			lb.Set("code", []string{"200", "500"}[rng.IntN(2)])
		}
		iv := []int64{10_000, 15_000, 30_000, 7_000}[rng.IntN(4)]
		scale := 1.0
		if name == "huge_total" {
			scale = 1e305
		}
		all = append(all, &ser{lset: lb.Labels(), scale: scale, interval: iv, next: t0 + rng.Int64N(iv/1000)*1000})
	}
	end := t0 + n*15_000
	ctx := context.Background()
	for ts := t0; ts < end; ts += 1000 {
		app := db.Appender(ctx)
		for _, s := range all {
			if s.next != ts {
				continue
			}
			s.next = ts + s.interval + rng.Int64N(3)*1000 // jitter
			v := s.v
			switch r := rng.IntN(200); {
			case r < 4:
				s.v = rng.Float64() * 10 * s.scale // reset
				v = s.v
			case r < 6:
				v = math.Float64frombits(value.StaleNaN)
			case r == 6:
				v = math.NaN()
			case r < 10:
				s.next += 5 * 60_000 // a gap
				continue
			default:
				s.v += (float64(rng.IntN(50)) + rng.Float64()) * s.scale
				if s.v > 1e308 {
					s.v = rng.Float64() * s.scale
				}
				v = s.v
			}
			if _, err := app.Append(0, s.lset, ts, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if compact {
		if err := db.CompactHead(tsdb.NewRangeHead(db.Head(), t0, t0+n/2*15_000)); err != nil {
			t.Fatal(err)
		}
	}
	return db, t0, end
}

// TestFastLegEqualsEngine: generated leg-shaped range queries over random counters answer, streamed, as the
// unsharded engine does (bit for bit but sum and avg, within 1e-12), with its annotations and its count of
// samples.
func TestFastLegEqualsEngine(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			db, t0, end := openRandomCounters(t, 7, compact)
			ng := testEngine()
			se := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
			oneShard := newShardedEngine(ng, ng, testMaxSamples, 1, 0) // query_shards 1: streamed, not sharded
			engineLegs := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
			engineLegs.noFastLegs = true
			rng := rand.New(rand.NewPCG(2026, 7))
			pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
			streamed, streamedOne, answered := 0, 0, 0
			for i := range 300 {
				q := fmt.Sprintf("%s by (%s) (%s(%s[%s]%s))",
					pick("sum", "sum", "avg", "count", "min", "max"),
					pick("instance", "job", "instance, code", "code", "job, nothere", "uniq", ""),
					pick("rate", "increase"),
					pick("req_total", "bytes_total", "queue_depth", "huge_total", `{__name__=~".+_total"}`, `req_total{code="500"}`, `{job="api"}`),
					pick("30s", "1m", "90s", "2m", "5m", "10s", "1m7s"),
					pick("", "", " offset 1m", " offset -45s", " offset 7s"))
				step := time.Duration([]int64{1, 5, 15, 30, 60, 300, 17}[rng.IntN(7)]) * time.Second
				start := time.UnixMilli(t0 - 120_000 + rng.Int64N(end-t0))
				stop := start.Add(time.Duration(rng.Int64N(end+300_000-start.UnixMilli())) * time.Millisecond)
				what := fmt.Sprintf("#%d %s [%d, %d] step %s", i, q, start.UnixMilli(), stop.UnixMilli(), step)
				ctx := context.Background()
				want, err := ng.NewRangeQuery(ctx, db, nil, q, start, stop, step)
				if err != nil {
					t.Fatal(err)
				}
				got, err := se.NewRangeQuery(ctx, db, nil, q, start, stop, step)
				if err != nil {
					t.Fatal(err)
				}
				viaEngine, err := engineLegs.NewRangeQuery(ctx, db, nil, q, start, stop, step)
				if err != nil {
					t.Fatal(err)
				}
				one, err := oneShard.NewRangeQuery(ctx, db, nil, q, start, stop, step)
				if err != nil {
					t.Fatal(err)
				}
				gr := got.Exec(ctx)
				if m, err := gr.Matrix(); err == nil && len(m) > 0 {
					answered++
				}
				// sum and avg within 1e-12, as the sharding tests compare them: the unsharded engine's own
				// last bits move now and then between runs of the same query (see metrics.md).
				wr := want.Exec(ctx)
				sameResult(t, what, wr, gr, sumsFloats(q), false)
				sameResult(t, what+" (one shard)", wr, one.Exec(ctx), sumsFloats(q), false)
				if sq, ok := one.(*shardQuery); ok && sq.streamed.Load() > 0 {
					streamedOne++
				}
				one.Close()
				if er := viaEngine.Exec(ctx); er.Err == nil && gr.Err == nil {
					if g, w := got.Stats().Samples.TotalSamples, viaEngine.Stats().Samples.TotalSamples; g != w {
						t.Errorf("%s: total samples %d, the engine's legs %d", what, g, w)
					}
				}
				if sq, ok := got.(*shardQuery); ok && sq.streamed.Load() > 0 {
					streamed++
				}
				want.Close()
				got.Close()
				viaEngine.Close()
			}
			if streamed < 150 || answered < 150 || streamedOne < 150 {
				t.Errorf("only %d of 300 queries streamed (%d with one shard), %d answered with series", streamed, streamedOne, answered)
			}
			t.Logf("%d of 300 queries streamed (%d with one shard), %d answered with series", streamed, streamedOne, answered)
		})
	}
}

// TestFastLegFallsBack: legs the stream does not answer exactly go to the engine.
func TestFastLegFallsBack(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	start, end := time.UnixMilli(shardT0), time.UnixMilli(shardT0+shardN*shardStep)
	for _, tc := range []struct {
		q        string
		streamed bool
	}{
		{`sum by (instance) (rate(http_requests_total[1m]))`, true},
		{`max by (job) (increase({__name__=~".+_total"}[5m] offset 2m))`, true},
		{`sum by (job) (rate(native_hist[1m]))`, false},                           // native histograms
		{`sum by (x) (rate({__name__=~"dup_.+"}[1m]))`, false},                    // equal but for the name
		{`sum by (instance) (rate(http_requests_total[1m] @ 1700001200))`, false}, // @
		{`avg by (instance) (rate(http_requests_total[1m]))`, true},
		{`stddev by (instance) (rate(http_requests_total[1m]))`, false}, // not a streamed aggregation
		{`sum by (instance) (irate(http_requests_total[1m]))`, false},
	} {
		se := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
		qry, err := se.NewRangeQuery(context.Background(), db, nil, tc.q, start, end, 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		qry.Exec(context.Background())
		sq := qry.(*shardQuery)
		if got := sq.streamed.Load() > 0 && sq.unstream.Load() == 0; got != tc.streamed {
			t.Errorf("%s: streamed %v, want %v", tc.q, got, tc.streamed)
		}
		qry.Close()
	}
}

// BenchmarkFastLeg is the runner's query over 10k series × 40 minutes, two shards, the legs streamed or the
// engine's.
func BenchmarkFastLeg(b *testing.B) {
	db := openMetricloadFixture(b, 10_000, 160)
	start, end := time.UnixMilli(shardT0), time.UnixMilli(shardT0+160*shardStep)
	q := `sum by (instance) (rate({job="metricload"}[1m]))`
	ng := testEngine()
	for _, fast := range []bool{false, true} {
		b.Run(fmt.Sprintf("streamed=%v", fast), func(b *testing.B) {
			se := newShardedEngine(ng, ng, testMaxSamples, 2, 0)
			se.noFastLegs = !fast
			cpu0 := processCPU()
			for b.Loop() {
				qry, err := se.NewRangeQuery(context.Background(), db, nil, q, start, end, 15*time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if res := qry.Exec(context.Background()); res.Err != nil {
					b.Fatal(res.Err)
				}
				qry.Close()
			}
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}

// TestFastLegAvgOverflow: where a group's sum overflows, avg turns to the incremental mean, as the engine does.
func TestFastLegAvgOverflow(t *testing.T) {
	db, t0, end := openRandomCounters(t, 7, false)
	ng := testEngine()
	se := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
	start, stop := time.UnixMilli(t0), time.UnixMilli(end)
	ctx := context.Background()
	var last promql.Query
	run := func(e promql.QueryEngine, q string) *promql.Result {
		qry, err := e.NewRangeQuery(ctx, db, nil, q, start, stop, 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(qry.Close)
		last = qry
		return qry.Exec(ctx)
	}
	sums, err := run(ng, `sum by (job) (increase(huge_total[5m]))`).Matrix()
	if err != nil {
		t.Fatal(err)
	}
	overflowed := 0
	for _, s := range sums {
		for _, p := range s.Floats {
			if math.IsInf(p.F, 1) {
				overflowed++
			}
		}
	}
	if overflowed == 0 {
		t.Fatal("no group's sum overflows: the fixture does not test avg's incremental mean")
	}
	q := `avg by (job) (increase(huge_total[5m]))`
	got := run(se, q)
	if sq := last.(*shardQuery); sq.streamed.Load() == 0 || sq.unstream.Load() > 0 {
		t.Fatal("avg was not streamed")
	}
	sameResult(t, q, run(ng, q), got, false, false)
	m, _ := got.Matrix()
	for _, s := range m {
		for _, p := range s.Floats {
			if math.IsInf(p.F, 0) {
				t.Fatalf("avg %s at %d is %v", s.Metric, p.T, p.F)
			}
		}
	}
}

// legBytesPerSeries runs the runner's aggregation over the metricload fixture (after one run to warm pools)
// and returns the bytes and allocations per series it allocated.
func legBytesPerSeries(t testing.TB, se *shardedEngine, db storage.Queryable, series, samples int) (bytes, allocs float64) {
	q := `sum by (instance) (rate({job="metricload"}[1m]))`
	end := time.UnixMilli(shardT0 + int64(samples)*shardStep)
	start := end.Add(-time.Duration(samples) * time.Duration(shardStep) * time.Millisecond)
	run := func() {
		qry, err := se.NewRangeQuery(context.Background(), db, nil, q, start, end, 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res := qry.Exec(context.Background()); res.Err != nil {
			t.Fatal(res.Err)
		}
		qry.Close()
	}
	run()
	// The least of three runs: MemStats counts the whole process, and another test's TSDB still closing, or
	// the runtime, may allocate beside a run, never take from it.
	bytes, allocs = math.Inf(1), math.Inf(1)
	for range 3 {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		run()
		runtime.ReadMemStats(&m1)
		bytes = min(bytes, float64(m1.TotalAlloc-m0.TotalAlloc)/float64(series))
		allocs = min(allocs, float64(m1.Mallocs-m0.Mallocs)/float64(series))
	}
	return bytes, allocs
}

// TestFastLegMemoryPerSeries bounds what a streamed aggregation allocates per series selected: the TSDB's own
// per-series objects (the series set's entry, its chunk list, the head chunk's reader) and nothing of the leg's
// but 8 bytes of label hash. A leg that held every series (their labels, a sorted selection, a rate matrix, a
// map per series) passes the bound several times over, as the engine's legs show.
func TestFastLegMemoryPerSeries(t *testing.T) {
	const series, samples = 20_000, 10
	db := checkpointQueryable{openMetricloadFixture(t, series, samples)} // as a tenant's Querier wraps it
	ng := testEngine()
	se := newShardedEngine(ng, ng, testMaxSamples, 2, 0)
	streamedBytes, streamedAllocs := legBytesPerSeries(t, se, db, series, samples)
	se = newShardedEngine(ng, ng, testMaxSamples, 2, 0)
	se.noFastLegs = true
	engineBytes, engineAllocs := legBytesPerSeries(t, se, db, series, samples)
	t.Logf("per series: streamed %.0f B in %.1f allocations, engine legs %.0f B in %.1f allocations", streamedBytes, streamedAllocs, engineBytes, engineAllocs)
	// 275 B in 4.4 allocations at this writing, all but 34 B of them the TSDB's (the series set's entry, its
	// chunk list and trimming interval, the head chunk); a map of label hashes in place of the slice took it
	// to 299 B, a checkpoint wrapper per series to one allocation more.
	const maxBytes, maxAllocs = 300, 5
	if streamedBytes > maxBytes || streamedAllocs > maxAllocs {
		t.Errorf("streamed legs allocate %.0f B in %.1f allocations per series, want at most %d B in %d", streamedBytes, streamedAllocs, maxBytes, maxAllocs)
	}
	if engineBytes <= maxBytes || engineAllocs <= maxAllocs {
		t.Errorf("the engine's legs allocate %.0f B in %.1f allocations per series: the bound no longer tells a materialising leg apart", engineBytes, engineAllocs)
	}
}

// checkpointQueryable wraps a Queryable's queriers as Tenant.Querier does.
type checkpointQueryable struct{ storage.Queryable }

func (c checkpointQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := c.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return checkpointQuerier{q}, nil
}
