package tracestore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// ErrNotFound is returned for an unknown trace id.
var ErrNotFound = errors.New("trace not found")

// TimeRange bounds a query; zero values are open.
type TimeRange struct{ Start, End time.Time }

func (r TimeRange) overlaps(startNs, endNs uint64) bool {
	if !r.Start.IsZero() && endNs < uint64(r.Start.UnixNano()) {
		return false
	}
	if !r.End.IsZero() && startNs > uint64(r.End.UnixNano()) {
		return false
	}
	return true
}

func (s *Store) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.Limits.QueryTimeout)
}

// skipDamaged decides what a query does with an error reading block b: a time-out or cancellation ends the
// query; anything else (a checksum mismatch, an undecodable page, a missing object) means the block is damaged,
// and the query goes on without it, so that one bad block cannot take every query down. The first failure of
// each block is logged as an error.
func (s *Store) skipDamaged(tenantID string, b *block, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	if _, seen := s.damaged.LoadOrStore(b.meta.ULID, struct{}{}); !seen {
		s.logger.Error("Trace block is unreadable; queries skip it", zap.String("tenant", tenantID),
			zap.String("block", b.meta.ULID), zap.Error(err))
	}
	return nil
}

func (s *Store) timeoutErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return refusal.New(refusal.Timeout, "query_timeout", "query did not finish within %s", s.cfg.Limits.QueryTimeout)
	}
	return err
}

// TraceByID returns every span of a trace (deduplicated), from memory and blocks.
func (s *Store) TraceByID(ctx context.Context, tenantID string, id pcommon.TraceID, tr TimeRange) (ptrace.Traces, error) {
	in := s.lookupInstance(tenantID)
	if in == nil {
		return ptrace.Traces{}, ErrNotFound
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	var mem []liveSpan
	blocks, release := in.view(func() { mem = in.memTraceLocked(id) })
	defer release()
	spans, err := decodeLive(newDecoder(), mem)
	if err != nil {
		return ptrace.Traces{}, err
	}
	for _, b := range blocks {
		if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			continue
		}
		found, err := in.findInBlock(ctx, b, id)
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return ptrace.Traces{}, s.timeoutErr(err)
			}
		}
		spans = append(spans, found...)
	}
	if len(spans) == 0 {
		return ptrace.Traces{}, ErrNotFound
	}
	return assemble(dedupe(spans)), nil
}

func dedupe(spans []traceql.Span) []traceql.Span {
	seen := make(map[pcommon.SpanID]struct{}, len(spans))
	out := spans[:0:0]
	for _, sp := range spans {
		id := sp.Span.SpanID()
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, sp)
	}
	return out
}

// assemble rebuilds OTLP from spans, grouping them by resource and scope, spans by start time.
func assemble(spans []traceql.Span) ptrace.Traces {
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Span.StartTimestamp() < spans[j].Span.StartTimestamp() })
	td := ptrace.NewTraces()
	type key struct {
		res   *traceql.Resource
		scope pcommon.InstrumentationScope
	}
	rsOf := map[*traceql.Resource]ptrace.ResourceSpans{}
	ssOf := map[key]ptrace.ScopeSpans{}
	for _, sp := range spans {
		rs, ok := rsOf[sp.Resource]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			sp.Resource.Resource.CopyTo(rs.Resource())
			rs.SetSchemaUrl(sp.Resource.SchemaURL)
			rsOf[sp.Resource] = rs
		}
		k := key{sp.Resource, sp.Scope}
		ss, ok := ssOf[k]
		if !ok {
			ss = rs.ScopeSpans().AppendEmpty()
			sp.Scope.CopyTo(ss.Scope())
			ssOf[k] = ss
		}
		sp.Span.CopyTo(ss.Spans().AppendEmpty())
	}
	return td
}

// SearchRequest is a TraceQL search.
type SearchRequest struct {
	Query           *traceql.Query
	Range           TimeRange
	MinDuration     time.Duration
	MaxDuration     time.Duration
	Limit           int
	SpansPerSpanSet int
	// Progress, if set, is called after each job (memory, then each block) with the result so far, for
	// streaming answers (grpc.go). Traces only grows between calls; res must not be kept past the call.
	Progress func(res *SearchResult)
	// MostRecent (the most_recent=true hint) makes the search exhaustive: every trace in the range is read and
	// the Limit newest (by start time) are returned, rather than the first Limit found.
	MostRecent bool
}

// SearchResult is the answer of a search, in Tempo's terms.
type SearchResult struct {
	Traces  []TraceMatch
	Metrics SearchMetrics
}

// TraceMatch is one trace found by a search.
type TraceMatch struct {
	TraceID         pcommon.TraceID
	RootServiceName string
	RootTraceName   string
	StartUnixNano   uint64
	DurationNanos   uint64
	SpanSets        []MatchedSpanSet
	// ServiceStats counts spans and error spans per service over the whole trace.
	ServiceStats map[string]ServiceStats
}

// ServiceStats is one service's share of a trace.
type ServiceStats struct {
	SpanCount  int
	ErrorCount int
}

// MatchedSpanSet is one spanset of a trace match, cut to spss spans.
type MatchedSpanSet struct {
	Spans      []MatchedSpan
	Matched    int
	Scalar     traceql.Static
	ScalarName string
	GroupBy    []traceql.GroupValue
}

// MatchedSpan is a span of a spanset with the attributes the query named.
type MatchedSpan struct {
	SpanID        pcommon.SpanID
	Name          string
	StartUnixNano uint64
	DurationNanos uint64
	Attributes    []MatchedAttr
}

// MatchedAttr is an attribute value shown with a matched span.
type MatchedAttr struct {
	Key   string
	Value pcommon.Value
}

// SearchMetrics counts what a search looked at.
type SearchMetrics struct {
	InspectedTraces int
	InspectedSpans  int
	InspectedBytes  int64
	TotalBlocks     int
	CompletedJobs   int
	TotalJobs       int
}

// Search runs a TraceQL search over memory first (the newest traces) and then blocks, newest first.
func (s *Store) Search(ctx context.Context, tenantID string, req SearchRequest) (*SearchResult, error) {
	if err := s.checkRange(req.Range); err != nil {
		return nil, err
	}
	if req.Limit <= 0 {
		req.Limit = s.cfg.Limits.DefaultSearchLimit
	}
	if req.Limit > s.cfg.Limits.MaxSearchLimit {
		return nil, limitError("max_search_limit", "limit %d is larger than %d", req.Limit, s.cfg.Limits.MaxSearchLimit)
	}
	if req.SpansPerSpanSet <= 0 {
		req.SpansPerSpanSet = 3
	}
	if max := s.cfg.Limits.MaxSpansPerSpanSet; max > 0 && req.SpansPerSpanSet > max {
		return nil, limitError("max_spans_per_span_set", "spss %d is larger than %d", req.SpansPerSpanSet, max)
	}
	res := &SearchResult{Traces: []TraceMatch{}}
	in := s.lookupInstance(tenantID)
	if in == nil {
		return res, nil
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	seen := map[pcommon.TraceID]bool{}
	var oldestKept uint64 // with MostRecent and Limit traces kept: the start of the oldest of them
	pf := req.Query.Prefilter()
	var snap []*liveTrace
	var memOK bool
	blocks, release := in.view(func() {
		snap = in.snapshotLocked()
		memOK = memMaybe(pf, in.memDomainLocked())
	})
	defer release()
	dec := newDecoder()
	// A trace whose spans arrived on both sides of a block cut lies in several places (memory, blocks). Each
	// place is read on its own, so before a trace is evaluated its other parts are joined to it (partJoiner):
	// the query sees the trace TraceByID returns. The prefilter judges a block part alone, a memory part with a
	// part in a block whole; traces held by several blocks are evaluated whole after the blocks (splitIDs), so a
	// split trace none of whose parts passes the prefilter is still found.
	j := s.newPartJoiner(ctx, in, snap, blocks, req.Range, dec)
	near, whole := j.near, j.whole
	var visitErr error
	visit := func(id pcommon.TraceID, spans []traceql.Span, startNs, endNs uint64, from *block, fromMem *liveTrace) bool {
		if !req.Range.overlaps(startNs, endNs) || seen[id] {
			return true
		}
		spans, err := whole(id, spans, from, fromMem)
		if err != nil {
			visitErr = err
			return false
		}
		if from == nil && fromMem == nil { // a split trace gathered from scratch: its own time range
			if len(spans) == 0 {
				return true
			}
			if t := traceql.NewTrace(id, spans); !req.Range.overlaps(t.StartUnixNano, t.StartUnixNano+t.DurationNanos()) {
				return true
			}
		}
		seen[id] = true // evaluated whole: another place holding a part of it has nothing to add
		res.Metrics.InspectedTraces++
		res.Metrics.InspectedSpans += len(spans)
		t := traceql.NewTrace(id, spans)
		d := time.Duration(t.DurationNanos())
		if (req.MinDuration > 0 && d < req.MinDuration) || (req.MaxDuration > 0 && d > req.MaxDuration) {
			return true
		}
		sets := req.Query.Eval(t)
		if len(sets) == 0 {
			return true
		}
		if req.MostRecent {
			if len(res.Traces) >= req.Limit && t.StartUnixNano <= oldestKept {
				return true
			}
			res.Traces = append(res.Traces, s.match(t, sets, req))
			if len(res.Traces) >= 2*req.Limit {
				keepNewest(res, req.Limit)
			}
			if len(res.Traces) >= req.Limit {
				oldestKept = oldestStart(res.Traces)
			}
			return true
		}
		res.Traces = append(res.Traces, s.match(t, sets, req))
		return len(res.Traces) < req.Limit
	}
	res.Metrics.TotalBlocks = len(blocks)
	res.Metrics.TotalJobs = len(blocks) + 1
	mem := snap
	if !memOK && len(near) == 0 {
		mem = nil
	}
	sort.Slice(mem, func(i, j int) bool { return mem[i].startNs > mem[j].startNs })
	for _, lt := range mem {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return nil, s.timeoutErr(err)
		}
		if !req.Range.overlaps(lt.startNs, lt.endNs) {
			continue
		}
		// The prefilter judges this part alone; a trace with a part in a block is judged whole instead (its
		// block parts may hold what this part lacks).
		if (!memOK || !liveMaybe(pf, lt.spans)) && !in.inBlocks(ctx, near, lt.id) {
			continue
		}
		res.Metrics.InspectedBytes += lt.bytes
		spans, err := decodeLive(dec, lt.spans)
		if err != nil {
			return nil, err
		}
		if !visit(lt.id, spans, lt.startNs, lt.endNs, nil, lt) {
			if visitErr != nil {
				return nil, visitErr
			}
			return finish(res), nil
		}
	}
	res.Metrics.CompletedJobs = 1
	req.progress(res)
	order := make([]*block, 0, len(blocks))
	for i := len(blocks) - 1; i >= 0; i-- { // newest first
		order = append(order, blocks[i])
	}
	cands := in.prefetchCandidates(ctx, order, pf, req.Range)
	defer cands.stop()
	stopped := false
	for i, b := range order {
		c := cands.get(ctx, i)
		if c.skip {
			res.Metrics.CompletedJobs++
			req.progress(res)
			continue
		}
		more := true
		visitBlock := func(id pcommon.TraceID, spans []traceql.Span) bool {
			var st, en uint64
			for k, sp := range spans {
				if a := uint64(sp.Span.StartTimestamp()); k == 0 || a < st {
					st = a
				}
				if e := uint64(sp.Span.EndTimestamp()); e > en {
					en = e
				}
			}
			more = visit(id, dedupe(spans), st, en, b, nil)
			return more
		}
		err := c.err
		if err == nil {
			if pf == nil {
				err = in.scanBlock(ctx, b, visitBlock)
			} else {
				// Candidates arrive row group by row group: a search that reaches its limit early in a large
				// block reads no more of it.
				for {
					batch, ok := querylimit.Receive(ctx, c.batches)
					if !ok {
						break
					}
					if err = batch.err; err != nil {
						break
					}
					if err = in.readCandidates(ctx, b, batch.entries, visitBlock); err != nil || !more {
						break
					}
				}
			}
		}
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return nil, s.timeoutErr(err)
			}
		}
		if visitErr != nil {
			return nil, visitErr
		}
		res.Metrics.InspectedBytes += b.meta.Size
		res.Metrics.CompletedJobs++
		if !more {
			stopped = true
			break
		}
		req.progress(res)
	}
	// The prefilter judged each block part of a trace alone: a trace split between blocks whose parts each
	// lacked what the query needs, and that no memory part brought in whole, is evaluated whole now.
	if pf != nil && !stopped {
		for _, id := range in.splitIDs(ctx, near) {
			if seen[id] {
				continue
			}
			if !visit(id, nil, 0, math.MaxUint64, nil, nil) {
				break
			}
		}
		if visitErr != nil {
			return nil, visitErr
		}
	}
	if req.MostRecent {
		keepNewest(res, req.Limit)
	}
	return finish(res), nil
}

// partJoiner joins the parts of a trace that lie in several places (memory, blocks) before a query evaluates
// it, so that search and TraceQL metrics see the trace TraceByID returns. Memory parts are found by id; block
// parts through the id range, bloom filter and index of each block that overlaps the query's range (near).
type partJoiner struct {
	ctx      context.Context
	s        *Store
	in       *instance
	dec      *decoder
	memParts map[pcommon.TraceID][]*liveTrace
	near     []*block
}

func (s *Store) newPartJoiner(ctx context.Context, in *instance, snap []*liveTrace, blocks []*block, tr TimeRange, dec *decoder) *partJoiner {
	j := &partJoiner{ctx: ctx, s: s, in: in, dec: dec, memParts: make(map[pcommon.TraceID][]*liveTrace, len(snap))}
	for _, lt := range snap {
		j.memParts[lt.id] = append(j.memParts[lt.id], lt)
	}
	for _, b := range blocks {
		if tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			j.near = append(j.near, b)
		}
	}
	return j
}

// whole returns spans (the part read from block from, or from memory part fromMem; both nil when gathering
// from scratch) with every other part of the trace appended, de-duplicated when anything was added.
func (j *partJoiner) whole(id pcommon.TraceID, spans []traceql.Span, from *block, fromMem *liveTrace) ([]traceql.Span, error) {
	n := len(spans)
	for _, lt := range j.memParts[id] {
		if lt != fromMem {
			part, err := decodeLive(j.dec, lt.spans)
			if err != nil {
				return nil, err
			}
			spans = append(spans, part...)
		}
	}
	for _, b := range j.near {
		if b == from {
			continue
		}
		part, err := j.in.findInBlock(j.ctx, b, id)
		if err != nil {
			if err = j.s.skipDamaged(j.in.tenant, b, err); err != nil {
				return nil, j.s.timeoutErr(err)
			}
		}
		spans = append(spans, part...)
	}
	if len(spans) == n {
		return spans, nil
	}
	return dedupe(spans), nil
}

// blockCands is the first phase of searching one block: skipped entirely, or the traces that passed the
// prefilter, in batches as each row group is decided (closed once the block is done).
type blockCands struct {
	skip    bool
	batches <-chan candBatch
	err     error
	held    bool // computed by a worker that holds a place in the window
}

type candBatch struct {
	entries []indexEntry
	err     error
}

// candPrefetch computes the candidates of blocks ahead of the search that consumes them in order, on up to
// GOMAXPROCS blocks at once and never more than that many blocks ahead of the consumer.
type candPrefetch struct {
	results []chan blockCands
	window  chan struct{}
	cancel  context.CancelFunc
}

func (in *instance) prefetchCandidates(ctx context.Context, order []*block, pf *traceql.Prefilter, tr TimeRange) *candPrefetch {
	ctx, cancel := context.WithCancel(ctx)
	workers := runtime.GOMAXPROCS(0)
	p := &candPrefetch{results: make([]chan blockCands, len(order)), window: make(chan struct{}, workers), cancel: cancel}
	for i := range p.results {
		p.results[i] = make(chan blockCands, 1)
	}
	go func() {
		for i, b := range order {
			if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
				p.results[i] <- blockCands{skip: true}
				continue
			}
			if !blockMaybe(pf, b) {
				in.s.m.searchBlocksSkipped.Inc()
				p.results[i] <- blockCands{skip: true}
				continue
			}
			if pf == nil {
				p.results[i] <- blockCands{} // scanned whole by the consumer
				continue
			}
			select {
			case p.window <- struct{}{}:
			case <-ctx.Done():
				for ; i < len(order); i++ {
					p.results[i] <- blockCands{err: ctx.Err()}
				}
				return
			}
			go func(i int, b *block) {
				// The block's scan computes on its own processor of the queries' share.
				ctx, done, err := querylimit.Enter(ctx, in.s.queries.Processors())
				if err != nil {
					p.results[i] <- blockCands{err: err, held: true}
					return
				}
				defer done()
				if err := in.open(ctx, b); err != nil {
					p.results[i] <- blockCands{err: err, held: true}
					return
				}
				// Room for every batch of the block: the worker never waits for the consumer, so the blocks
				// ahead are still computed in parallel; it stops at the next row group once the search ends.
				ch := make(chan candBatch, len(b.file.RowGroups())+2)
				p.results[i] <- blockCands{batches: ch, held: true}
				defer close(ch)
				err = in.candidatesEach(ctx, b, pf, func(es []indexEntry) bool {
					if ctx.Err() != nil {
						return false
					}
					ch <- candBatch{entries: slices.Clone(es)}
					return true
				})
				if err != nil {
					ch <- candBatch{err: err}
				}
			}(i, b)
		}
	}()
	return p
}

// get waits for the candidates of block i and frees its place in the window.
func (p *candPrefetch) get(ctx context.Context, i int) blockCands {
	c, _ := querylimit.Receive(ctx, p.results[i])
	if c.held {
		<-p.window
	}
	return c
}

func (p *candPrefetch) stop() { p.cancel() }

func finish(res *SearchResult) *SearchResult {
	sort.SliceStable(res.Traces, func(i, j int) bool { return res.Traces[i].StartUnixNano > res.Traces[j].StartUnixNano })
	return res
}

// keepNewest keeps the limit traces that started last.
func keepNewest(res *SearchResult, limit int) {
	finish(res)
	if len(res.Traces) > limit {
		res.Traces = res.Traces[:limit]
	}
}

func oldestStart(ts []TraceMatch) uint64 {
	o := ts[0].StartUnixNano
	for _, t := range ts[1:] {
		o = min(o, t.StartUnixNano)
	}
	return o
}

func (s *Store) checkRange(r TimeRange) error {
	if max := s.cfg.Limits.MaxSearchDuration; max > 0 && !r.Start.IsZero() && !r.End.IsZero() && r.End.Sub(r.Start) > max {
		return limitError("max_search_duration", "search window %s is longer than %s", r.End.Sub(r.Start), max)
	}
	return nil
}

func (s *Store) match(t *traceql.Trace, sets []traceql.Spanset, req SearchRequest) TraceMatch {
	m := TraceMatch{TraceID: t.ID, RootServiceName: t.RootServiceName, RootTraceName: t.RootName,
		StartUnixNano: t.StartUnixNano, DurationNanos: t.DurationNanos()}
	m.ServiceStats = map[string]ServiceStats{}
	for i := range t.Spans {
		sp := &t.Spans[i]
		st := m.ServiceStats[sp.Resource.ServiceName]
		st.SpanCount++
		if sp.Span.Status().Code() == ptrace.StatusCodeError {
			st.ErrorCount++
		}
		m.ServiceStats[sp.Resource.ServiceName] = st
	}
	if m.RootServiceName == "" && t.Root == nil {
		m.RootServiceName = "<root span not yet received>"
	}
	attrs := req.Query.Attributes()
	for _, set := range sets {
		ms := MatchedSpanSet{Matched: len(set.Spans), Scalar: set.Scalar, ScalarName: set.ScalarName, GroupBy: set.GroupBy}
		want := append(append([]traceql.Attribute(nil), attrs...), set.Select...)
		for i, sp := range set.Spans {
			if i >= req.SpansPerSpanSet {
				break
			}
			mspan := MatchedSpan{SpanID: sp.Span.SpanID(), Name: sp.Span.Name(), StartUnixNano: sp.StartUnixNano(), DurationNanos: sp.DurationNanos()}
			done := map[string]bool{}
			for _, a := range append(want, req.Query.ShownIntrinsics(t, sp)...) {
				if done[a.Text] {
					continue
				}
				done[a.Text] = true
				if v, ok := attrValue(&a, t, sp); ok {
					mspan.Attributes = append(mspan.Attributes, MatchedAttr{Key: a.AttributeName(), Value: v})
				}
			}
			ms.Spans = append(ms.Spans, mspan)
		}
		m.SpanSets = append(m.SpanSets, ms)
	}
	return m
}

// attrValue is the raw pdata value of an attribute (keeping its type), or an intrinsic rendered as a value.
func attrValue(a *traceql.Attribute, t *traceql.Trace, sp *traceql.Span) (pcommon.Value, bool) {
	if a.Intrinsic == traceql.IntrinsicNone {
		var maps []pcommon.Map
		switch a.Scope {
		case traceql.ScopeSpan:
			maps = []pcommon.Map{sp.Span.Attributes()}
		case traceql.ScopeResource:
			maps = []pcommon.Map{sp.Resource.Attrs}
		case traceql.ScopeAny:
			maps = []pcommon.Map{sp.Span.Attributes(), sp.Resource.Attrs}
		case traceql.ScopeInstrumentation:
			maps = []pcommon.Map{sp.Scope.Attributes()}
		case traceql.ScopeEvent:
			// the first event that has it (select(event.exception.message) of the Exceptions tab)
			for i := 0; i < sp.Span.Events().Len(); i++ {
				maps = append(maps, sp.Span.Events().At(i).Attributes())
			}
		case traceql.ScopeLink:
			for i := 0; i < sp.Span.Links().Len(); i++ {
				maps = append(maps, sp.Span.Links().At(i).Attributes())
			}
		}
		for _, m := range maps {
			if v, ok := m.Get(a.Name); ok {
				return v, true
			}
		}
		return pcommon.Value{}, false
	}
	st := traceql.Field(a, t, sp)
	v := pcommon.NewValueEmpty()
	switch st.Type {
	case traceql.TypeNil:
		return v, false
	case traceql.TypeInt, traceql.TypeDuration:
		v.SetInt(st.N)
	case traceql.TypeFloat:
		v.SetDouble(st.F)
	case traceql.TypeBool:
		v.SetBool(st.B)
	case traceql.TypeString:
		v.SetStr(st.S)
	default:
		v.SetStr(st.String())
	}
	return v, true
}

// Tags returns attribute keys by scope ("span", "resource") seen in the time range.
func (s *Store) Tags(ctx context.Context, tenantID string, tr TimeRange) (map[string][]string, error) {
	return s.TagsMatching(ctx, tenantID, tr, nil)
}

// TagsMatching is Tags scoped by a query, as Tempo's tags APIs take q: with a query that filters, only the
// attributes of spans that match it count, and every trace in the range is read (memory and blocks, as a
// search does); without one the names come from memory and the blocks' summaries.
func (s *Store) TagsMatching(ctx context.Context, tenantID string, tr TimeRange, q *traceql.Query) (map[string][]string, error) {
	if q != nil && !isMatchAll(q) {
		return s.tagsOfMatches(ctx, tenantID, tr, q)
	}
	out := map[string]map[string]bool{"span": {}, "resource": {}}
	in := s.lookupInstance(tenantID)
	if in != nil {
		var mem []*liveTrace
		blocks, release := in.view(func() { mem = in.snapshotLocked() })
		defer release()
		for _, lt := range mem {
			if !tr.overlaps(lt.startNs, lt.endNs) {
				continue
			}
			for i := range lt.spans {
				sp := &lt.spans[i]
				_ = eachAttr(sp.rawBytes(), 9, func(k, _ []byte, _ int, _ uint64) error {
					if !out["span"][string(k)] {
						out["span"][string(k)] = true
					}
					return nil
				})
				_ = eachAttr(sp.res().attrs, 1, func(k, _ []byte, _ int, _ uint64) error {
					if !out["resource"][string(k)] {
						out["resource"][string(k)] = true
					}
					return nil
				})
			}
		}
		for _, b := range blocks {
			if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
				continue
			}
			for scope, keys := range b.meta.Tags {
				if out[scope] == nil {
					out[scope] = map[string]bool{}
				}
				for k := range keys {
					out[scope][k] = true
				}
			}
		}
	}
	res := map[string][]string{}
	for scope, keys := range out {
		list := make([]string, 0, len(keys))
		for k := range keys {
			list = append(list, k)
		}
		sort.Strings(list)
		res[scope] = list
	}
	return res, nil
}

// TagValue is a value of a tag with its TraceQL type name.
type TagValue struct {
	Type  string
	Value string
}

// TagValues returns the values of a tag. The tag is a TraceQL attribute or intrinsic (resource.service.name,
// span.http.method, .foo, name, status, kind); a bare name without a dot scope is looked up in both scopes. With
// a query, only spans matching it count.
func (s *Store) TagValues(ctx context.Context, tenantID, tag string, q *traceql.Query, tr TimeRange, limit int) ([]TagValue, error) {
	attr, err := parseTag(tag)
	if err != nil {
		return nil, err
	}
	if err := s.checkRange(tr); err != nil {
		return nil, err
	}
	vals := map[TagValue]bool{}
	add := func(v TagValue) bool {
		vals[v] = true
		return limit <= 0 || len(vals) < limit
	}
	in := s.lookupInstance(tenantID)
	if in == nil {
		return []TagValue{}, nil
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	filtered := q != nil && !isMatchAll(q)
	visit := func(id pcommon.TraceID, spans []traceql.Span) bool {
		t := traceql.NewTrace(id, spans)
		var candidates []*traceql.Span
		if filtered {
			for _, set := range q.Eval(t) {
				candidates = append(candidates, set.Spans...)
			}
		} else {
			for i := range t.Spans {
				candidates = append(candidates, &t.Spans[i])
			}
		}
		for _, sp := range candidates {
			v := traceql.Field(&attr, t, sp)
			if v.Type == traceql.TypeNil {
				continue
			}
			tv := TagValue{Type: v.Type.String(), Value: v.String()}
			if v.Type == traceql.TypeString {
				tv.Value = v.S
			}
			if v.Type == traceql.TypeStatus || v.Type == traceql.TypeKind {
				tv.Type = "keyword"
			}
			if !add(tv) {
				return false
			}
		}
		return true
	}
	dec := newDecoder()
	var mem []*liveTrace
	blocks, release := in.view(func() { mem = in.snapshotLocked() })
	defer release()
	for _, lt := range mem {
		if !tr.overlaps(lt.startNs, lt.endNs) {
			continue
		}
		spans, err := decodeLive(dec, lt.spans)
		if err != nil {
			return nil, err
		}
		if !visit(lt.id, spans) {
			return sortValues(vals), nil
		}
	}
	for i := len(blocks) - 1; i >= 0; i-- {
		b := blocks[i]
		if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			continue
		}
		if !filtered && attr.Intrinsic == traceql.IntrinsicNone && attr.Scope != traceql.ScopeAny {
			// attribute values are summarised in meta.json; no need to read the block
			scope := "span"
			if attr.Scope == traceql.ScopeResource {
				scope = "resource"
			}
			for _, v := range b.meta.Tags[scope][attr.Name] {
				if !add(TagValue{Type: "string", Value: v}) {
					return sortValues(vals), nil
				}
			}
			continue
		}
		more := true
		err := in.scanBlock(ctx, b, func(id pcommon.TraceID, spans []traceql.Span) bool {
			more = visit(id, spans)
			return more
		})
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return nil, s.timeoutErr(err)
			}
		}
		if !more {
			break
		}
	}
	return sortValues(vals), nil
}

func isMatchAll(q *traceql.Query) bool {
	if len(q.Root.Stages) != 1 {
		return false
	}
	st, ok := q.Root.Stages[0].(*traceql.SpansetStage)
	if !ok {
		return false
	}
	f, ok := st.E.(*traceql.SpansetFilter)
	return ok && f.Expr == nil
}

func sortValues(m map[TagValue]bool) []TagValue {
	out := make([]TagValue, 0, len(m))
	for v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value < out[j].Value
		}
		return out[i].Type < out[j].Type
	})
	return out
}

// parseTag reads a tag name as the tag values API receives it.
func parseTag(tag string) (traceql.Attribute, error) {
	if tag == "" {
		return traceql.Attribute{}, fmt.Errorf("%w: empty tag name", ErrBadData)
	}
	if in, ok := traceql.LookupIntrinsic(tag); ok {
		return traceql.Attribute{Intrinsic: in, Name: tag, Text: tag}, nil
	}
	for prefix, scope := range map[string]traceql.AttrScope{"span.": traceql.ScopeSpan, "resource.": traceql.ScopeResource, ".": traceql.ScopeAny} {
		if rest, ok := strings.CutPrefix(tag, prefix); ok && rest != "" {
			return traceql.Attribute{Scope: scope, Name: rest, Text: tag}, nil
		}
	}
	// v1 API: a bare attribute name, looked up on spans and resources
	return traceql.Attribute{Scope: traceql.ScopeAny, Name: tag, Text: tag}, nil
}

// tagsOfMatches collects the span and resource attribute names of the spans q matches.
func (s *Store) tagsOfMatches(ctx context.Context, tenantID string, tr TimeRange, q *traceql.Query) (map[string][]string, error) {
	if err := s.checkRange(tr); err != nil {
		return nil, err
	}
	out := map[string]map[string]bool{"span": {}, "resource": {}}
	in := s.lookupInstance(tenantID)
	if in == nil {
		return map[string][]string{"span": {}, "resource": {}}, nil
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	visit := func(id pcommon.TraceID, spans []traceql.Span) {
		t := traceql.NewTrace(id, spans)
		for _, set := range q.Eval(t) {
			for _, sp := range set.Spans {
				sp.Span.Attributes().Range(func(k string, _ pcommon.Value) bool {
					out["span"][k] = true
					return true
				})
				sp.Resource.Attrs.Range(func(k string, _ pcommon.Value) bool {
					out["resource"][k] = true
					return true
				})
			}
		}
	}
	pf := q.Prefilter()
	dec := newDecoder()
	var mem []*liveTrace
	blocks, release := in.view(func() { mem = in.snapshotLocked() })
	defer release()
	for _, lt := range mem {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return nil, s.timeoutErr(err)
		}
		if !tr.overlaps(lt.startNs, lt.endNs) || !liveMaybe(pf, lt.spans) {
			continue
		}
		spans, err := decodeLive(dec, lt.spans)
		if err != nil {
			return nil, err
		}
		visit(lt.id, spans)
	}
	for _, b := range blocks {
		if !tr.overlaps(b.meta.StartUnixNano, b.meta.EndUnixNano) {
			continue
		}
		err := in.scanCandidates(ctx, b, pf, func(id pcommon.TraceID, spans []traceql.Span) bool {
			visit(id, dedupe(spans))
			return ctx.Err() == nil
		})
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if err = s.skipDamaged(in.tenant, b, err); err != nil {
				return nil, s.timeoutErr(err)
			}
		}
	}
	res := map[string][]string{}
	for scope, keys := range out {
		list := make([]string, 0, len(keys))
		for k := range keys {
			list = append(list, k)
		}
		sort.Strings(list)
		res[scope] = list
	}
	return res, nil
}
