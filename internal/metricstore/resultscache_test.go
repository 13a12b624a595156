package metricstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"
)

func testCachingEngine(inner promql.QueryEngine, c *resultsCache, tenant string, split time.Duration) *cachingEngine {
	return &cachingEngine{QueryEngine: inner, cache: c, tenant: tenant,
		cfg:    FrontendConfig{CacheResults: true, SplitQueriesByInterval: split, ResultsCache: ResultsCacheConfig{MaxSizeBytes: 64 << 20}},
		limits: CacheLimits{MaxCacheFreshness: 10 * time.Minute, ResultsCacheTTL: 7 * 24 * time.Hour, ResultsCacheTTLForOutOfOrderTimeWindow: 10 * time.Minute},
		parser: parser.NewParser(parser.Options{})}
}

// cacheRanges are the ranges each query is asked over, in this order, against one cache: cold, partly
// overlapping on either side, inside a cached run, across the freshness boundary, the same again (all cached
// but the fresh steps), and on another phase of the grid (its own extents).
func cacheRanges(step int64) [][2]int64 {
	t := func(min int64) int64 { return shardT0 + min*60_000 }
	return [][2]int64{
		{t(5), t(25)},
		{t(0), t(15)},
		{t(20), t(45)},
		{t(7), t(12)},
		{t(0), t(55)},
		{t(0), t(55)},
		{t(3) + step/3, t(33) + step/3},
	}
}

// TestResultsCacheEqualsEngine asks every query of the sharding table over overlapping ranges through the
// results cache (in front of the sharded engine, split every 10 minutes so that runs cross splits) and
// compares every answer with the engine's uncached one: values to the bit, warnings and errors.
func TestResultsCacheEqualsEngine(t *testing.T) {
	for _, compact := range []bool{false, true} {
		t.Run(fmt.Sprintf("compacted=%v", compact), func(t *testing.T) {
			db := openShardFixture(t, compact)
			ng := testEngine()
			se := newShardedEngine(ng, ng, testMaxSamples, 3, 0)
			c := newResultsCache(256<<20, nil)
			// Now is 45 minutes into the data: the last 10 minutes of data and what follows are never cached.
			c.now = func() time.Time { return time.UnixMilli(shardT0 + 45*60_000) }
			ce := testCachingEngine(se, c, "t1", 10*time.Minute)
			ctx := context.Background()
			for _, tc := range shardQueries {
				for _, step := range []time.Duration{15 * time.Second, time.Minute, 7 * time.Minute} {
					for _, r := range cacheRanges(step.Milliseconds()) {
						start, end := time.UnixMilli(r[0]), time.UnixMilli(r[1])
						want, wErr := ng.NewRangeQuery(ctx, db, nil, tc.q, start, end, step)
						got, gErr := ce.NewRangeQuery(ctx, db, nil, tc.q, start, end, step)
						if !sameCreate(t, tc.q, wErr, gErr) {
							continue
						}
						// Floats summed over several series (sum, avg, stddev) may differ in their last bits: the
						// engine adds a group's series in the order the querier hands them over, the head's
						// order or label order once a block is in the queried range, so its own answer at a
						// step varies with the range around it. Everything else must be equal to the bit.
						within := mapOrdered(se, tc.q) || summing(tc.q)
						sameResult(t, fmt.Sprintf("%s range %d..%d step %s", tc.q, r[0], r[1], step), want.Exec(ctx), got.Exec(ctx), within, false)
						want.Close()
						got.Close()
					}
				}
			}
			if h := testutil.ToFloat64(c.hits); h == 0 {
				t.Error("no step answered from the cache")
			}
			if c.bytes <= 0 || c.bytes > c.maxBytes {
				t.Errorf("cache holds %d bytes, bound %d", c.bytes, c.maxBytes)
			}
		})
	}
}

// summing reports whether q sums floats over several series, whose order the engine takes from the querier.
func summing(q string) bool {
	for _, op := range []string{"sum", "avg", "stddev", "stdvar"} {
		if strings.Contains(q, op+" by") || strings.Contains(q, op+"(") {
			return true
		}
	}
	return false
}

// TestResultsCacheNotCached: queries whose steps depend on the range (@ start(), @ end()) and queries asking
// for per-step statistics go to the engine without the cache.
func TestResultsCacheNotCached(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	c := newResultsCache(64<<20, nil)
	c.now = func() time.Time { return time.UnixMilli(shardT0 + 3*3600_000) }
	ce := testCachingEngine(ng, c, "t1", time.Hour)
	ctx := context.Background()
	start, end := time.UnixMilli(shardT0), time.UnixMilli(shardT0+30*60_000)
	for _, tc := range []struct {
		q    string
		opts promql.QueryOpts
	}{
		{q: `sum by (instance) (rate(http_requests_total[1m] @ end()))`},
		{q: `sum by (instance) (rate(http_requests_total[1m] @ start()))`},
		{q: `max_over_time(temp[5m:1m] @ end())`},
		{q: `sum by (instance) (rate(http_requests_total[1m]))`, opts: promql.NewPrometheusQueryOpts(true, 0)},
	} {
		qry, err := ce.NewRangeQuery(ctx, db, tc.opts, tc.q, start, end, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := qry.(*cachedQuery); ok {
			t.Errorf("%q: cached", tc.q)
		}
		qry.Close()
	}
	qry, err := ce.NewRangeQuery(ctx, db, nil, `sum by (instance) (rate(http_requests_total[1m] @ 1700001200))`, start, end, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := qry.(*cachedQuery); !ok {
		t.Error("@ with a fixed time: not cached")
	}
	qry.Close()
}

// TestResultsCacheLateSamples shows what a cached answer is when samples arrive late (Mimir's semantics): steps
// older than now - max_cache_freshness are assumed final, so a late sample for them is not seen until the
// extent expires; steps inside the freshness window are evaluated every time and see it at once. With
// out_of_order_time_window set, extents reaching into that window live results_cache_ttl_for_out_of_order_time_window.
func TestResultsCacheLateSamples(t *testing.T) {
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = time.Hour.Milliseconds()
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	lset := labels.FromStrings("__name__", "g", "job", "a")
	// A fixed hour within one day: the cache splits extents at day boundaries, and an hour that crosses
	// midnight would keep the older day's extent past the out-of-order TTL (the cache's clock is the test's).
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	appendAt := func(ts int64, v float64) {
		t.Helper()
		app := db.Appender(ctx)
		if _, err := app.Append(0, lset, ts, v); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// One sample a minute for 60 minutes, every other minute missing: 1, _, 1, _, ...
	for m := int64(0); m < 60; m += 2 {
		appendAt(t0+m*60_000, 1)
	}
	now := t0 + 60*60_000
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 30 * time.Second})
	c := newResultsCache(64<<20, nil)
	clock := time.UnixMilli(now)
	c.now = func() time.Time { return clock }
	ce := testCachingEngine(ng, c, "t1", 24*time.Hour)
	ce.limits.OutOfOrderTimeWindow = 20 * time.Minute
	q := `sum by (job) (g)`
	valueAt := func(e promql.QueryEngine, minute int64) (float64, bool) {
		t.Helper()
		qry, err := e.NewRangeQuery(ctx, db, nil, q, time.UnixMilli(t0), time.UnixMilli(now), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer qry.Close()
		m, err := qry.Exec(ctx).Matrix()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m {
			for _, p := range s.Floats {
				if p.T == t0+minute*60_000 {
					return p.F, true
				}
			}
		}
		return 0, false
	}
	valueAt(ce, 0) // fills the cache up to now - 10m
	// Late samples at minute 5 (older than the freshness window and than the out-of-order window), minute 45
	// (inside the out-of-order window, outside freshness) and minute 55 (inside freshness).
	for _, m := range []int64{5, 45, 55} {
		appendAt(t0+m*60_000, 7)
	}
	for _, tc := range []struct {
		minute    int64
		wantFound bool
		want      float64
	}{
		{5, false, 0},  // cached before the sample came: still no value
		{45, false, 0}, // cached, until the out-of-order TTL
		{55, true, 7},  // fresh: evaluated again
	} {
		if v, ok := valueAt(ce, tc.minute); ok != tc.wantFound || v != tc.want {
			t.Errorf("cached, minute %d: %v %v, want %v %v", tc.minute, v, ok, tc.want, tc.wantFound)
		}
		if v, ok := valueAt(ng, tc.minute); !ok || v != 7 {
			t.Errorf("engine, minute %d: %v %v, want 7", tc.minute, v, ok)
		}
	}
	// 11 minutes later the extents that reached into the out-of-order window have expired; the older one,
	// written in the same run, has too (an extent expires whole). Queried again, every late sample shows.
	clock = clock.Add(11 * time.Minute)
	for _, m := range []int64{5, 45, 55} {
		if v, ok := valueAt(ce, m); !ok || v != 7 {
			t.Errorf("after the out-of-order TTL, minute %d: %v %v, want 7", m, v, ok)
		}
	}
	// Without an out-of-order window the extents live results_cache_ttl: a sample that comes later (a new
	// series backfilled into the head's range) is not seen until then.
	ce.limits.OutOfOrderTimeWindow = 0
	c2 := newResultsCache(64<<20, nil)
	c2.now = c.now
	ce.cache = c2
	valueAt(ce, 0)
	appendAt(t0+9*60_000, 3)
	if v, ok := valueAt(ce, 9); ok {
		t.Errorf("no out-of-order window, minute 9: %v, want the cached answer (no value)", v)
	}
	clock = clock.Add(7*24*time.Hour + time.Second)
	if v, ok := valueAt(ce, 9); !ok || v != 3 {
		t.Errorf("after results_cache_ttl, minute 9: %v %v, want 3", v, ok)
	}
}

// TestResultsCacheTenants: the same query over two tenants' data, through one cache, answers each tenant
// from its own data.
func TestResultsCacheTenants(t *testing.T) {
	ctx := context.Background()
	var dbs []*tsdb.DB
	for i := range 2 {
		db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		app := db.Appender(ctx)
		for k := range 60 {
			if _, err := app.Append(0, labels.FromStrings("__name__", "m", "tenant", fmt.Sprint(i)), shardT0+int64(k)*60_000, float64(i*100+k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
	}
	ng := testEngine()
	c := newResultsCache(64<<20, nil)
	c.now = func() time.Time { return time.UnixMilli(shardT0 + 24*3600_000) }
	for round := range 2 {
		for i, db := range dbs {
			ce := testCachingEngine(ng, c, fmt.Sprint("tenant-", i), 24*time.Hour)
			qry, err := ce.NewRangeQuery(ctx, db, nil, `sum(m)`, time.UnixMilli(shardT0), time.UnixMilli(shardT0+59*60_000), time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			m, err := qry.Exec(ctx).Matrix()
			if err != nil || len(m) != 1 || len(m[0].Floats) != 60 || m[0].Floats[10].F != float64(i*100+10) {
				t.Errorf("round %d tenant %d: %v %v", round, i, m, err)
			}
			qry.Close()
		}
	}
	if n := len(c.entries); n != 2 {
		t.Errorf("%d cache entries, want one per tenant", n)
	}
}

// TestResultsCacheBounded: the cache never holds more than its bound; the least recently used queries go
// first, and an answer larger than the bound is not kept.
func TestResultsCacheBounded(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	ctx := context.Background()
	run := func(ce *cachingEngine, q string) {
		t.Helper()
		qry, err := ce.NewRangeQuery(ctx, db, nil, q, time.UnixMilli(shardT0), time.UnixMilli(shardT0+30*60_000), 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res := qry.Exec(ctx); res.Err != nil {
			t.Fatal(res.Err)
		}
		qry.Close()
	}
	probe := newResultsCache(1<<30, nil)
	probe.now = func() time.Time { return time.UnixMilli(shardT0 + 3*3600_000) }
	run(testCachingEngine(ng, probe, "t", time.Hour), `rate(http_requests_total[1m])`)
	one := probe.bytes
	if one <= 0 {
		t.Fatal("nothing cached")
	}
	c := newResultsCache(2*one+one/2, nil)
	c.now = probe.now
	ce := testCachingEngine(ng, c, "t", time.Hour)
	for _, q := range []string{`rate(http_requests_total[1m])`, `rate(http_requests_total[2m])`, `rate(http_requests_total[3m])`} {
		run(ce, q)
		if c.bytes > c.maxBytes {
			t.Fatalf("%d bytes cached, bound %d", c.bytes, c.maxBytes)
		}
	}
	if len(c.entries) != 2 {
		t.Errorf("%d entries, want 2", len(c.entries))
	}
	for k := range c.entries {
		if strings.HasSuffix(k, "[1m])") {
			t.Error("the least recently used query was kept")
		}
	}
	small := newResultsCache(one/2, nil)
	small.now = probe.now
	run(testCachingEngine(ng, small, "t", time.Hour), `rate(http_requests_total[1m])`)
	if small.bytes != 0 || len(small.entries) != 0 {
		t.Errorf("an answer larger than the bound was kept: %d bytes", small.bytes)
	}
}

// TestResultsCacheCancel: a cancelled query ends with the context's error, not a partial answer.
func TestResultsCacheCancel(t *testing.T) {
	db := openShardFixture(t, false)
	c := newResultsCache(64<<20, prometheus.NewRegistry())
	c.now = func() time.Time { return time.UnixMilli(shardT0 + 3*3600_000) }
	ce := testCachingEngine(testEngine(), c, "t", 10*time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	qry, err := ce.NewRangeQuery(ctx, db, nil, `sum by (job) (rate(http_requests_total[1m]))`, time.UnixMilli(shardT0), time.UnixMilli(shardT0+30*60_000), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	if res := qry.Exec(ctx); res.Err == nil {
		t.Error("cancelled query answered")
	}
	if c.bytes != 0 {
		t.Error("a cancelled query's answer was cached")
	}
}

// TestResultsCacheAPI runs the same pushes into a store with the results cache on and one with it off: the
// API's answers to range queries, asked twice (the second answered mostly from the cache) and over an
// overlapping range, are byte for byte the same, errors included.
func TestResultsCacheAPI(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Minute)
	var req prompb.WriteRequest
	for i := range 30 {
		ts := prompb.TimeSeries{Labels: series(fmt.Sprint("api_metric_", i%3, "_total"), "instance", fmt.Sprint("host-", i%7), "series", fmt.Sprint(i))}
		for k := range 240 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: base.Add(time.Duration(k) * 15 * time.Second).UnixMilli(), Value: float64(k*(i%5+1)) + float64(i)/7})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	body := encodeV1(t, &req)
	var srvs []string
	var stores []*Store
	for _, cache := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.Frontend.CacheResults = cache
		s, srv := openTestStore(t, cfg)
		if code, msg := post(t, srv.URL+"/api/v1/write", contentTypeV1, body); code != http.StatusNoContent {
			t.Fatalf("push: %d %s", code, msg)
		}
		srvs, stores = append(srvs, srv.URL), append(stores, s)
	}
	if stores[0].resultsCache == nil || stores[1].resultsCache != nil {
		t.Fatal("cache_results not applied")
	}
	for _, tc := range []struct{ q, step string }{
		{`max by (instance) (rate({__name__=~"api_metric_.+"}[1m]))`, "15"},
		{`rate(api_metric_1_total[5m])`, "60"},
		{`count by (instance) (api_metric_2_total > 100)`, "30"},
		{`sum by (instance) (rate(api_metric_0_total[1m]))`, "0.001"}, // over max_points_per_series
		{`sum by (instance) (rate(api_metric_0_total[1m])`, "15"},     // parse error
	} {
		for _, r := range [][2]time.Duration{{0, 50 * time.Minute}, {0, 50 * time.Minute}, {10 * time.Minute, 65 * time.Minute}} {
			var answers []string
			for _, u := range srvs {
				v := url.Values{"query": {tc.q}, "start": {fmt.Sprint(base.Add(r[0]).Unix())}, "end": {fmt.Sprint(base.Add(r[1]).Unix())}, "step": {tc.step}}
				resp, err := http.Get(u + "/api/v1/query_range?" + v.Encode())
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answers = append(answers, fmt.Sprintf("%d %s", resp.StatusCode, b))
			}
			if answers[0] != answers[1] {
				t.Errorf("%s %v: cached answer\n%.600s\nuncached\n%.600s", tc.q, r, answers[0], answers[1])
			}
		}
	}
	if h := testutil.ToFloat64(stores[0].resultsCache.hits); h == 0 {
		t.Error("no step answered from the cache")
	}
}

// TestResultsCacheRefresh: a dashboard asking for the last 30 minutes every minute leaves one extent per key
// (each newly aged run joins the one before it), and every answer is the engine's.
func TestResultsCacheRefresh(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	c := newResultsCache(64<<20, nil)
	clock := time.UnixMilli(shardT0 + 30*60_000)
	c.now = func() time.Time { return clock }
	ce := testCachingEngine(ng, c, "t", 24*time.Hour)
	ctx := context.Background()
	q := `max by (instance) (rate(http_requests_total[1m]))`
	for i := range 15 {
		end := clock
		start := end.Add(-30 * time.Minute)
		want, _ := ng.NewRangeQuery(ctx, db, nil, q, start, end, time.Minute)
		got, err := ce.NewRangeQuery(ctx, db, nil, q, start, end, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, fmt.Sprintf("refresh %d", i), want.Exec(ctx), got.Exec(ctx), false, false)
		want.Close()
		got.Close()
		clock = clock.Add(time.Minute)
	}
	if len(c.entries) != 1 {
		t.Fatalf("%d entries, want 1", len(c.entries))
	}
	for _, el := range c.entries {
		if e := el.Value.(*cacheEntry); len(e.extents) != 1 {
			t.Errorf("%d extents, want 1", len(e.extents))
		}
	}
}

// TestAlignQueriesWithStep: with align_queries_with_step, start and end move down to multiples of the step,
// with the cache or without it, and the answer is the engine's over the aligned range.
func TestAlignQueriesWithStep(t *testing.T) {
	db := openShardFixture(t, false)
	ng := testEngine()
	ctx := context.Background()
	q := `max by (instance) (rate(http_requests_total[1m]))`
	start, end := time.UnixMilli(shardT0+7_000), time.UnixMilli(shardT0+20*60_000+59_000)
	down := func(ms int64) int64 { return ms - ms%60_000 } // shardT0 is 20 s past a minute
	want, _ := ng.NewRangeQuery(ctx, db, nil, q, time.UnixMilli(down(start.UnixMilli())), time.UnixMilli(down(end.UnixMilli())), time.Minute)
	defer want.Close()
	wr := want.Exec(ctx)
	for _, cache := range []bool{true, false} {
		c := newResultsCache(64<<20, nil)
		c.now = func() time.Time { return time.UnixMilli(shardT0 + 3*3600_000) }
		ce := testCachingEngine(ng, c, "t", 24*time.Hour)
		ce.cfg.AlignQueriesWithStep = true
		if !cache {
			ce.cache = nil
		}
		got, err := ce.NewRangeQuery(ctx, db, nil, q, start, end, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, fmt.Sprintf("aligned, cache %v", cache), wr, got.Exec(ctx), false, false)
		got.Close()
	}
	if got := alignToStep(time.UnixMilli(-61_000), time.Minute).UnixMilli(); got != -120_000 {
		t.Errorf("before the epoch: aligned to %d, want -120000", got)
	}
}
