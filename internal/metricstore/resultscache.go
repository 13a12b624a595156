package metricstore

import (
	"container/list"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// The results cache of range queries, as Mimir's query-frontend has one.
//
// A range query's value at a step depends only on the query, the step's time and the data before it (lookback,
// range windows, subqueries on a grid aligned to the epoch), never on where the range starts or ends (bar
// `@ start()` and `@ end()`, which are not cached). So the answer over [start, end] is the answers over any cut
// of that grid into pieces, series by series, concatenated. The cache keeps such pieces ("extents") per tenant,
// query, step, the grid's phase (start mod step), lookback delta and split interval, and runs the engine only
// over what it does not hold. Steps newer than now - max_cache_freshness are never kept: data still arrives for
// them. What is older is assumed final (Mimir's semantics): a sample that arrives later for a cached step, out
// of order or from a sender's backlog, is not seen until the extent expires (results_cache_ttl, or
// results_cache_ttl_for_out_of_order_time_window for steps inside out_of_order_time_window) or is evicted.

// FrontendConfig is the query-frontend part of the store: Mimir's frontend keys of the same names.
type FrontendConfig struct {
	// CacheResults turns the results cache of range queries on (Mimir's cache_results, off by default there
	// too: cached answers ignore samples that arrive later than max_cache_freshness).
	CacheResults bool `mapstructure:"cache_results"`
	// SplitQueriesByInterval cuts a range query at multiples of this interval; each piece is cached on its own,
	// so that old days age out of the cache independently (Mimir's split_queries_by_interval).
	SplitQueriesByInterval time.Duration `mapstructure:"split_queries_by_interval"`
	// AlignQueriesWithStep moves a range query's start and end down to multiples of its step (Mimir's
	// align_queries_with_step), which changes the answer's timestamps: off by default, as Grafana aligns itself.
	AlignQueriesWithStep bool `mapstructure:"align_queries_with_step"`
	// ResultsCache bounds the cache's memory.
	ResultsCache ResultsCacheConfig `mapstructure:"results_cache"`
}

// ResultsCacheConfig is the in-process results cache's size (Cortex's fifocache max_size_bytes).
type ResultsCacheConfig struct {
	// MaxSizeBytes bounds the estimated bytes of every tenant's cached extents together; the least recently
	// used queries are dropped first.
	MaxSizeBytes int64 `mapstructure:"max_size_bytes"`
}

// CacheLimits are the per-tenant limits of the results cache, under Mimir's names.
type CacheLimits struct {
	// MaxCacheFreshness: steps newer than now minus this are never cached (Mimir's max_cache_freshness).
	MaxCacheFreshness time.Duration
	// ResultsCacheTTL is how long an extent is kept (Mimir's results_cache_ttl).
	ResultsCacheTTL time.Duration
	// ResultsCacheTTLForOutOfOrderTimeWindow is how long an extent that reaches into the out-of-order window
	// is kept (Mimir's results_cache_ttl_for_out_of_order_time_window).
	ResultsCacheTTLForOutOfOrderTimeWindow time.Duration
	// OutOfOrderTimeWindow is the TSDB's: how far back samples may still arrive for an existing series.
	OutOfOrderTimeWindow time.Duration
}

// resultsCache holds the extents of every tenant's range queries, bounded in bytes, least recently used out
// first.
type resultsCache struct {
	maxBytes int64
	now      func() time.Time

	mu      sync.Mutex
	bytes   int64
	lru     list.List // of *cacheEntry, most recently used at the front
	entries map[string]*list.Element

	hits, misses prometheus.Counter // steps answered from the cache, and by the engine
	size         prometheus.GaugeFunc
}

// cacheEntry is one key's extents: sorted by start, not overlapping.
type cacheEntry struct {
	key     string
	extents []*extent
	bytes   int64
}

// extent is the answer over the grid steps from start to end (milliseconds, both included).
type extent struct {
	start, end int64
	expires    time.Time
	m          promql.Matrix // owned: copied out of the engine's pooled slices
	warns      annotations.Annotations
	bytes      int64
}

func newResultsCache(maxBytes int64, reg prometheus.Registerer) *resultsCache {
	c := &resultsCache{maxBytes: maxBytes, now: time.Now, entries: map[string]*list.Element{}}
	c.hits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sprout_metrics_results_cache_hit_steps_total",
		Help: "Range query steps answered from the results cache.",
	})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sprout_metrics_results_cache_miss_steps_total",
		Help: "Range query steps of cacheable queries that the engine evaluated.",
	})
	c.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sprout_metrics_results_cache_bytes",
		Help: "Estimated bytes of the results cache's extents.",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(c.bytes)
	})
	if reg != nil {
		for _, col := range []prometheus.Collector{c.hits, c.misses, c.size} {
			_ = reg.Register(col) // a second store in one process (tests) keeps the first one's
		}
	}
	return c
}

// get returns the key's extents that have not expired and overlap [start, end], in order.
func (c *resultsCache) get(key string, start, end int64) []*extent {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	now := c.now()
	var out []*extent
	kept := e.extents[:0]
	for _, x := range e.extents {
		if now.After(x.expires) {
			e.bytes -= x.bytes
			c.bytes -= x.bytes
			continue
		}
		kept = append(kept, x)
		if x.end >= start && x.start <= end {
			out = append(out, x)
		}
	}
	clear(e.extents[len(kept):])
	e.extents = kept
	if len(kept) == 0 {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil
	}
	c.lru.MoveToFront(el)
	return out
}

// put adds an extent to the key's, dropping those it overlaps and joining it with the one that ends a step
// before it (so that a dashboard refreshed every few seconds leaves one extent, not one per refresh), then
// evicts the least recently used keys until the cache fits its bound. An extent larger than the whole bound is
// not kept.
func (c *resultsCache) put(key string, x *extent, step int64) {
	if x.bytes > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		el = c.lru.PushFront(&cacheEntry{key: key})
		c.entries[key] = el
	}
	e := el.Value.(*cacheEntry)
	kept := e.extents[:0]
	for _, o := range e.extents {
		if o.end >= x.start && o.start <= x.end {
			e.bytes -= o.bytes
			c.bytes -= o.bytes
			continue
		}
		kept = append(kept, o)
	}
	clear(e.extents[len(kept):])
	e.extents = kept
	i, _ := slices.BinarySearchFunc(e.extents, x.start, func(o *extent, t int64) int { return cmpInt(o.start, t) })
	if i > 0 && e.extents[i-1].end+step == x.start {
		prev := e.extents[i-1]
		j := joinExtents(prev, x, int64(len(key)))
		e.bytes += j.bytes - prev.bytes
		c.bytes += j.bytes - prev.bytes
		e.extents[i-1] = j
		if j.bytes > c.maxBytes {
			c.dropEntry(el)
			return
		}
	} else {
		e.extents = slices.Insert(e.extents, i, x)
		e.bytes += x.bytes
		c.bytes += x.bytes
	}
	c.lru.MoveToFront(el)
	for c.bytes > c.maxBytes {
		c.dropEntry(c.lru.Back())
	}
}

func (c *resultsCache) dropEntry(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.bytes -= e.bytes
	c.lru.Remove(el)
	delete(c.entries, e.key)
}

// joinExtents is a followed by b (b starting a step after a ends), expiring when the first of them would.
// Their matrices are read only, so the joined one may share their slices.
func joinExtents(a, b *extent, keyBytes int64) *extent {
	j := &extent{start: a.start, end: b.end, expires: a.expires, m: mergeMatrices([]promql.Matrix{a.m, b.m})}
	if b.expires.Before(j.expires) {
		j.expires = b.expires
	}
	if len(a.warns)+len(b.warns) > 0 {
		w := annotations.New()
		w.Merge(a.warns)
		w.Merge(b.warns)
		j.warns = *w
	}
	j.bytes = keyBytes + matrixBytes(j.m)
	return j
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cachingEngine is one tenant's promql.QueryEngine: range queries through the results cache (when on) and
// step alignment (when on), everything else straight to the engine below.
type cachingEngine struct {
	promql.QueryEngine
	cache  *resultsCache // nil: no caching
	tenant string
	cfg    FrontendConfig
	limits CacheLimits
	parser parser.Parser
}

// NewRangeQuery implements promql.QueryEngine.
func (e *cachingEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if e.cfg.AlignQueriesWithStep && interval > 0 {
		start, end = alignToStep(start, interval), alignToStep(end, interval)
	}
	whole, err := e.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	if err != nil || e.cache == nil || interval < time.Millisecond || interval%time.Millisecond != 0 ||
		(opts != nil && opts.EnablePerStepStats()) || !e.cacheable(qs) {
		return whole, err
	}
	lookback := time.Duration(0)
	if opts != nil {
		lookback = opts.LookbackDelta()
	}
	return &cachedQuery{e: e, q: q, opts: opts, qs: qs, whole: whole, start: start.UnixMilli(), end: end.UnixMilli(),
		step: interval.Milliseconds(), lookback: lookback}, nil
}

// alignToStep moves t down to a multiple of step since the epoch.
func alignToStep(t time.Time, step time.Duration) time.Time {
	ms, s := t.UnixMilli(), step.Milliseconds()
	if s <= 0 {
		return t
	}
	ms -= ((ms % s) + s) % s
	return time.UnixMilli(ms)
}

// cacheable reports whether qs's answer at a step is independent of the range: no `@ start()` or `@ end()`.
func (e *cachingEngine) cacheable(qs string) bool {
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return false
	}
	ok := true
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			ok = ok && n.StartOrEnd == 0
		case *parser.SubqueryExpr:
			ok = ok && n.StartOrEnd == 0
		}
		return nil
	})
	return ok
}

// cachedQuery is a range query answered from extents and engine queries over what they lack.
type cachedQuery struct {
	e                *cachingEngine
	q                storage.Queryable
	opts             promql.QueryOpts
	qs               string
	whole            promql.Query // the query over the whole range: the fallback, and the Statement
	start, end, step int64
	lookback         time.Duration

	mu       sync.Mutex
	cancel   context.CancelFunc
	canceled bool
	ranWhole bool
	samples  int64
}

// piece is one run of grid steps [start, end] to answer, from an extent or from the engine.
type piece struct {
	start, end int64
	x          *extent // nil: evaluate
}

// Exec implements promql.Query.
func (c *cachedQuery) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	if c.canceled {
		cancel()
	}
	c.cancel = cancel
	c.mu.Unlock()
	defer cancel()

	cache := c.e.cache
	now := cache.now()
	// The newest step that may be cached: older than now - max_cache_freshness.
	fresh := now.Add(-c.e.limits.MaxCacheFreshness).UnixMilli()
	var parts []promql.Matrix
	var warns annotations.Annotations
	hits, misses := 0, 0
	for _, sp := range c.splits() {
		key := c.key(sp.start)
		pieces := c.plan(key, sp.start, sp.end)
		for _, p := range pieces {
			steps := int((p.end-p.start)/c.step) + 1
			if p.x != nil {
				parts = append(parts, sliceMatrix(p.x.m, p.start, p.end))
				warns.Merge(p.x.warns)
				hits += steps
				continue
			}
			misses += steps
			m, w, err := c.eval(ctx, p.start, p.end)
			if err != nil {
				// The engine's own answer over the whole range: its errors are then exactly the uncached ones.
				return c.execWhole(ctx)
			}
			parts = append(parts, m)
			warns.Merge(w)
			// Keep the steps that are old enough, as one extent.
			last := min(p.end, c.lastStepAtOrBefore(fresh))
			if last >= p.start {
				c.store(key, p.start, last, m, w, now)
			}
		}
	}
	cache.hits.Add(float64(hits))
	cache.misses.Add(float64(misses))
	return &promql.Result{Value: mergeMatrices(parts), Warnings: warns}
}

func (c *cachedQuery) execWhole(ctx context.Context) *promql.Result {
	c.mu.Lock()
	c.ranWhole = true
	c.mu.Unlock()
	return c.whole.Exec(ctx)
}

// splits cuts [start, end] at multiples of split_queries_by_interval, each split a run of grid steps.
func (c *cachedQuery) splits() []piece {
	iv := c.e.cfg.SplitQueriesByInterval.Milliseconds()
	if iv <= 0 {
		return []piece{{start: c.start, end: c.end}}
	}
	var out []piece
	for s := c.start; s <= c.end; {
		boundary := (floorDiv(s, iv) + 1) * iv
		e := min(c.end, c.lastStepBefore(boundary))
		out = append(out, piece{start: s, end: e})
		s = e + c.step
	}
	return out
}

// lastStepAtOrBefore is the query's last grid step at or before t (which may be before start).
func (c *cachedQuery) lastStepAtOrBefore(t int64) int64 {
	return c.start + floorDiv(t-c.start, c.step)*c.step
}

// lastStepBefore is the query's last grid step strictly before t.
func (c *cachedQuery) lastStepBefore(t int64) int64 { return c.lastStepAtOrBefore(t - 1) }

// key names one split's extents: the tenant, the grid (step and phase), the lookback, the split and the query.
func (c *cachedQuery) key(splitStart int64) string {
	phase := ((c.start % c.step) + c.step) % c.step
	split := int64(0)
	if iv := c.e.cfg.SplitQueriesByInterval.Milliseconds(); iv > 0 {
		split = floorDiv(splitStart, iv)
	}
	return c.e.tenant + "\x00" + strconv.FormatInt(c.step, 10) + ":" + strconv.FormatInt(phase, 10) + ":" +
		strconv.FormatInt(int64(c.lookback), 10) + ":" + strconv.FormatInt(split, 10) + "\x00" + c.qs
}

// plan cuts [start, end] into runs answered by cached extents and runs to evaluate.
func (c *cachedQuery) plan(key string, start, end int64) []piece {
	var out []piece
	next := start
	for _, x := range c.e.cache.get(key, start, end) {
		xs, xe := max(x.start, start), min(x.end, end)
		if xs > next {
			out = append(out, piece{start: next, end: xs - c.step})
		}
		if xe >= xs {
			out = append(out, piece{start: xs, end: xe, x: x})
		}
		next = max(next, xe+c.step)
	}
	if next <= end {
		out = append(out, piece{start: next, end: end})
	}
	return out
}

// eval runs the query over the steps [start, end] and returns its answer in slices of its own.
func (c *cachedQuery) eval(ctx context.Context, start, end int64) (promql.Matrix, annotations.Annotations, error) {
	qry, err := c.e.QueryEngine.NewRangeQuery(ctx, c.q, c.opts, c.qs, time.UnixMilli(start), time.UnixMilli(end), time.Duration(c.step)*time.Millisecond)
	if err != nil {
		return nil, nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, nil, res.Err
	}
	m, err := res.Matrix()
	if err != nil {
		return nil, nil, fmt.Errorf("range query %q: %w", c.qs, err)
	}
	if st := qry.Stats(); st != nil && st.Samples != nil {
		c.mu.Lock()
		c.samples += st.Samples.TotalSamples
		c.mu.Unlock()
	}
	return copyMatrix(m), res.Warnings, nil
}

// store keeps the steps [start, last] of an evaluated run as an extent.
func (c *cachedQuery) store(key string, start, last int64, m promql.Matrix, w annotations.Annotations, now time.Time) {
	x := &extent{start: start, end: last, m: sliceMatrix(m, start, last)}
	if len(w) > 0 {
		x.warns = annotations.New().Merge(w)
	}
	ttl := c.e.limits.ResultsCacheTTL
	if ooo := c.e.limits.OutOfOrderTimeWindow; ooo > 0 && last > now.Add(-ooo).UnixMilli() {
		ttl = c.e.limits.ResultsCacheTTLForOutOfOrderTimeWindow
	}
	if ttl <= 0 {
		return
	}
	x.expires = now.Add(ttl)
	x.bytes = int64(len(key)) + matrixBytes(x.m)
	c.e.cache.put(key, x, c.step)
}

// copyMatrix copies a matrix out of the engine's pooled point slices (returned to the pool by Close).
func copyMatrix(m promql.Matrix) promql.Matrix {
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats), DropName: s.DropName}
		if len(s.Histograms) > 0 {
			hs := make([]promql.HPoint, len(s.Histograms))
			for j, h := range s.Histograms {
				hs[j] = promql.HPoint{T: h.T, H: h.H.Copy()}
			}
			out[i].Histograms = hs
		}
	}
	return out
}

// sliceMatrix is m's points at steps in [start, end], sharing m's slices; series left with no point are
// dropped, as the engine drops them.
func sliceMatrix(m promql.Matrix, start, end int64) promql.Matrix {
	out := make(promql.Matrix, 0, len(m))
	for _, s := range m {
		fi := sortSearchF(s.Floats, start)
		fj := sortSearchF(s.Floats, end+1)
		hi := sortSearchH(s.Histograms, start)
		hj := sortSearchH(s.Histograms, end+1)
		if fi == fj && hi == hj {
			continue
		}
		ns := promql.Series{Metric: s.Metric, DropName: s.DropName}
		if fj > fi {
			ns.Floats = s.Floats[fi:fj:fj]
		}
		if hj > hi {
			ns.Histograms = s.Histograms[hi:hj:hj]
		}
		out = append(out, ns)
	}
	return out
}

func sortSearchF(ps []promql.FPoint, t int64) int {
	i, _ := slices.BinarySearchFunc(ps, t, func(p promql.FPoint, t int64) int { return cmpInt(p.T, t) })
	return i
}

func sortSearchH(ps []promql.HPoint, t int64) int {
	i, _ := slices.BinarySearchFunc(ps, t, func(p promql.HPoint, t int64) int { return cmpInt(p.T, t) })
	return i
}

// mergeMatrices joins answers over consecutive runs of steps, in time order, into one: series in label order
// (the engine's order for a range query), each series' points from every run one after the other.
func mergeMatrices(parts []promql.Matrix) promql.Matrix {
	if len(parts) == 1 {
		return parts[0]
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	all := make([]promql.Series, 0, n)
	for _, p := range parts {
		all = append(all, p...)
	}
	// Stable: a series' runs stay in time order.
	slices.SortStableFunc(all, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	out := make(promql.Matrix, 0, len(parts[0]))
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && labels.Equal(all[j].Metric, all[i].Metric) {
			j++
		}
		if j == i+1 {
			out = append(out, all[i])
			i = j
			continue
		}
		s := promql.Series{Metric: all[i].Metric, DropName: all[i].DropName}
		nf, nh := 0, 0
		for _, r := range all[i:j] {
			nf += len(r.Floats)
			nh += len(r.Histograms)
		}
		if nf > 0 {
			s.Floats = make([]promql.FPoint, 0, nf)
		}
		if nh > 0 {
			s.Histograms = make([]promql.HPoint, 0, nh)
		}
		for _, r := range all[i:j] {
			s.Floats = append(s.Floats, r.Floats...)
			s.Histograms = append(s.Histograms, r.Histograms...)
		}
		out = append(out, s)
		i = j
	}
	return out
}

// matrixBytes estimates what a matrix holds in memory: labels, 16 bytes a float point, histograms by their
// buckets.
func matrixBytes(m promql.Matrix) int64 {
	n := int64(24 * len(m))
	for _, s := range m {
		n += int64(s.Metric.ByteSize()) + 48 + 16*int64(len(s.Floats)) + 16*int64(len(s.Histograms))
		for _, h := range s.Histograms {
			n += 112 + 8*int64(len(h.H.PositiveBuckets)+len(h.H.NegativeBuckets)) +
				8*int64(len(h.H.PositiveSpans)+len(h.H.NegativeSpans)+len(h.H.CustomValues))
		}
	}
	return n
}

// Close implements promql.Query: the answer's slices are the cache's or the query's own, not pooled.
func (c *cachedQuery) Close() { c.whole.Close() }

// Statement implements promql.Query.
func (c *cachedQuery) Statement() parser.Statement { return c.whole.Statement() }

// Stats implements promql.Query: the samples the engine loaded for the steps not in the cache.
func (c *cachedQuery) Stats() *stats.Statistics {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ranWhole {
		return c.whole.Stats()
	}
	s := stats.NewQuerySamples(false)
	s.TotalSamples = c.samples
	return &stats.Statistics{Timers: stats.NewQueryTimers(), Samples: s}
}

// Cancel implements promql.Query.
func (c *cachedQuery) Cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.canceled = true
	if c.cancel != nil {
		c.cancel()
	}
	c.whole.Cancel()
}

// String implements promql.Query.
func (c *cachedQuery) String() string { return c.qs }

// tenantEngine is the query engine of one tenant's Prometheus API: the sharded engine, behind the results
// cache and step alignment when they are on.
func (s *Store) tenantEngine(tenant string) promql.QueryEngine {
	f := s.cfg.Frontend
	if s.resultsCache == nil && !f.AlignQueriesWithStep {
		return s.queryEngine
	}
	return &cachingEngine{QueryEngine: s.queryEngine, cache: s.resultsCache, tenant: tenant, cfg: f,
		limits: s.cfg.cacheLimits(), parser: parser.NewParser(parser.Options{})}
}
