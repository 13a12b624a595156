package tracestore

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/traceql"
	"github.com/sprout-otel/sprout/internal/wal"
)

// liveTrace is a trace whose spans are still arriving (or waiting for their block) in memory.
type liveTrace struct {
	id       pcommon.TraceID
	spans    []liveSpan
	bytes    int64
	firstIn  time.Time // wall time of the first span's arrival
	lastIn   time.Time // wall time of the latest span's arrival
	startNs  uint64
	endNs    uint64
	segments []uint64 // WAL segments holding this trace's records
}

// traceOverhead is what a trace holds in memory beside its spans: the struct, its entry in the live map and its
// segment list. It counts towards max_live_bytes so that the bound is the memory held, not only the span bytes.
const traceOverhead = int64(unsafe.Sizeof(liveTrace{})) + 48 + 8

// held is what the trace holds in memory.
func (lt *liveTrace) held() int64 { return lt.bytes + traceOverhead }

// instance is one tenant's store.
type instance struct {
	s      *Store
	tenant string
	wal    *wal.Log

	mu           sync.RWMutex
	live         map[pcommon.TraceID]*liveTrace
	pending      []*liveTrace // complete, waiting for the next block
	pendingBytes int64
	pendingSince time.Time
	liveBytes    int64          // bytes of the traces in live
	segRefs      map[uint64]int // traces in live or pending with records in each WAL segment
	blocks       []*block       // sorted by end time, newest last
	retired      []*block       // out of blocks, files kept until no view holds them (see view.go)
	// memStats summarises every span that entered live since live and pending were last both empty, so that a
	// search can rule out all traces in memory at once, as a block's summary does for the block.
	memStats *statsBuilder
	rate     *rate.Limiter // limits.ingestion_rate_limit_bytes; nil when unlimited
}

func openInstance(ctx context.Context, s *Store, id string) (*instance, error) {
	in := &instance{s: s, tenant: id, live: map[pcommon.TraceID]*liveTrace{}, segRefs: map[uint64]int{}, memStats: newStatsBuilder(),
		rate: ingestionRate(s.cfg.Limits)}
	if err := in.loadBlocks(ctx); err != nil {
		return nil, fmt.Errorf("tenant %s: load blocks: %w", id, err)
	}
	dir := filepath.Join(s.tenantDir(id), "wal")
	opts := s.cfg.WAL.Options()
	opts.SegmentBytes, opts.Logger = s.cfg.WAL.SegmentBytes, s.logger.With(zap.String("tenant", id))
	w, err := wal.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: open WAL: %w", id, err)
	}
	in.wal = w
	var spans int
	now := s.now()
	res, err := w.Replay(func(pos wal.Position, payload []byte) error {
		rec, err := parseRecord(payload)
		if err != nil {
			return nil // a record that passed its CRC but does not decode: skip it, keep the rest
		}
		spans += len(rec.spans)
		in.apply(rec, pos.Segment, now)
		return nil
	})
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("tenant %s: replay WAL: %w", id, err)
	}
	records := res.Records
	for _, d := range res.Corrupt {
		s.logger.Error("WAL segment is corrupt: a record fails its checksum; the records after it in this segment are not replayed",
			zap.String("tenant", id), zap.String("segment", d.File), zap.Int64("offset", d.Offset), zap.Int64("bytes_not_replayed", d.Lost),
			zap.Int("records_replayed", d.Replayed))
	}
	for _, d := range res.Torn {
		s.logger.Warn("WAL segment ended in a partial record (the write in progress when the process stopped); it was never acknowledged and is cut off",
			zap.String("tenant", id), zap.String("segment", d.File), zap.Int64("offset", d.Offset))
	}
	// Segments whose traces are all in blocks (or that held none) are not needed any more.
	in.removeUnreferencedSegments()
	if records > 0 {
		s.logger.Info("Replayed trace WAL", zap.String("tenant", id), zap.Int("records", records), zap.Int("spans", spans), zap.Int("traces", len(in.live)))
	}
	return in, nil
}

// recordSpan is one span of a parsed WAL record.
type recordSpan struct {
	tid pcommon.TraceID
	sp  liveSpan
}

// record is a parsed WAL record: its spans point into the record's bytes.
type record struct {
	spans []recordSpan
}

func parseRecord(payload []byte) (*record, error) {
	rec := &record{spans: make([]recordSpan, 0, countRecordSpans(payload))}
	err := walkRecord(payload, func(tid pcommon.TraceID, sp *liveSpan) {
		rec.spans = append(rec.spans, recordSpan{tid: tid, sp: *sp})
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// ingestionRate returns the tenant's write-rate limiter, nil when unlimited.
func ingestionRate(l Limits) *rate.Limiter {
	if l.IngestionRateLimitBytes <= 0 {
		return nil
	}
	burst := l.IngestionBurstSizeBytes
	if burst <= 0 {
		burst = l.IngestionRateLimitBytes
	}
	return rate.NewLimiter(rate.Limit(l.IngestionRateLimitBytes), int(min(burst, math.MaxInt32)))
}

// allowRate takes n bytes (a batch of spans spans) from the tenant's rate bucket, or says why not.
func (in *instance) allowRate(n, spans int) error {
	if in.rate == nil {
		return nil
	}
	l := in.s.cfg.Limits
	if n > in.rate.Burst() {
		in.s.m.refused.WithLabelValues("ingestion_burst_size_bytes").Add(float64(spans))
		return limitError("ingestion_burst_size_bytes", "a batch of %d bytes is larger than the tenant's burst of %d bytes and can never be accepted; send smaller batches", n, in.rate.Burst())
	}
	if !in.rate.AllowN(time.Now(), n) {
		in.s.m.refused.WithLabelValues("ingestion_rate_limit_bytes").Add(float64(spans))
		// Retryable: the tenant's bucket refills within a second.
		return refusal.New(refusal.RateLimited, "ingestion_rate_limit_bytes",
			"tenant %s is over its ingestion rate of %d bytes/s (burst %d bytes); this batch had %d bytes, retry later",
			in.tenant, l.IngestionRateLimitBytes, in.rate.Burst(), n)
	}
	return nil
}

func (in *instance) push(td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	if max := in.s.cfg.MaxLiveBytes; max > 0 {
		in.mu.RLock()
		held := in.liveBytes + in.pendingBytes
		in.mu.RUnlock()
		if held >= max {
			in.s.m.refused.WithLabelValues("max_live_bytes").Add(float64(td.SpanCount()))
			in.s.kick()
			// Retryable: the next block written frees it.
			return refusal.New(refusal.RateLimited, "max_live_bytes", "tenant %s holds %d bytes of traces not yet in a block; retry later", in.tenant, held)
		}
	}
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return fmt.Errorf("%w: encode batch: %v", ErrBadData, err)
	}
	if err := in.allowRate(len(payload), td.SpanCount()); err != nil {
		return err
	}
	rec, err := parseRecord(payload)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadData, err)
	}
	var limitErr error
	if max := in.s.cfg.Limits.MaxBytesPerTrace; max > 0 {
		var over map[pcommon.TraceID]bool
		if over, limitErr = in.overLimit(rec, max); len(over) > 0 {
			td = dropTraces(td, over)
			if td.SpanCount() == 0 {
				return limitErr
			}
			if payload, err = (&ptrace.ProtoMarshaler{}).MarshalTraces(td); err != nil {
				return fmt.Errorf("%w: encode batch: %v", ErrBadData, err)
			}
			if rec, err = parseRecord(payload); err != nil {
				return fmt.Errorf("%w: %v", ErrBadData, err)
			}
		}
	}
	seq, err := in.wal.Append(payload)
	if err != nil {
		in.s.m.walErrors.Inc()
		return fmt.Errorf("tenant %s: %w", in.tenant, err)
	}
	in.s.m.walBytes.Add(float64(len(payload)))
	// The live spans point into payload, which the store owns: the pipeline's batch may be reused once we return.
	in.apply(rec, seq, in.s.now())
	in.s.m.spansIn.Add(float64(len(rec.spans)))
	return limitErr
}

// overLimit finds the traces that would grow beyond max bytes with this record.
func (in *instance) overLimit(rec *record, max int64) (map[pcommon.TraceID]bool, error) {
	add := map[pcommon.TraceID]int64{}
	for i := range rec.spans {
		add[rec.spans[i].tid] += rec.spans[i].sp.size()
	}
	var over map[pcommon.TraceID]bool
	in.mu.RLock()
	for id, n := range add {
		cur := int64(0)
		if lt := in.live[id]; lt != nil {
			cur = lt.bytes
		}
		if cur+n > max {
			if over == nil {
				over = map[pcommon.TraceID]bool{}
			}
			over[id] = true
		}
	}
	in.mu.RUnlock()
	if len(over) == 0 {
		return nil, nil
	}
	refused := 0
	for i := range rec.spans {
		if over[rec.spans[i].tid] {
			refused++
		}
	}
	in.s.m.refused.WithLabelValues("max_bytes_per_trace").Add(float64(refused))
	return over, limitError("max_bytes_per_trace",
		"refused %d spans of %d traces: a trace may hold at most %d bytes", refused, len(over), max)
}

// dropTraces returns a copy of td without the spans of the given traces.
func dropTraces(td ptrace.Traces, over map[pcommon.TraceID]bool) ptrace.Traces {
	kept := ptrace.NewTraces()
	td.CopyTo(kept)
	kept.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool { return over[sp.TraceID()] })
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return kept
}

// apply adds a parsed record (owned by the store) to the live traces; seq is the WAL segment it is in.
func (in *instance) apply(rec *record, seq uint64, now time.Time) {
	// Spans per trace in this record, so that each trace's span slice grows once.
	per := make(map[pcommon.TraceID]int, len(rec.spans)/4+1)
	for i := range rec.spans {
		per[rec.spans[i].tid]++
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for i := range rec.spans {
		rs := &rec.spans[i]
		sp := &rs.sp
		lt := in.live[rs.tid]
		if lt == nil {
			lt = &liveTrace{id: rs.tid, firstIn: now, startNs: uint64(sp.start)}
			in.live[rs.tid] = lt
			in.liveBytes += traceOverhead
		}
		if n := per[rs.tid]; n > 0 {
			lt.spans = slices.Grow(lt.spans, n)
			per[rs.tid] = 0
		}
		lt.spans = append(lt.spans, *sp)
		in.memStats.addCols(sp.name(), sp.res().service, sp.kind, sp.status, sp.duration())
		sz := sp.size()
		lt.bytes += sz
		in.liveBytes += sz
		lt.lastIn = now
		if st := uint64(sp.start); st < lt.startNs {
			lt.startNs = st
		}
		if en := uint64(sp.end); en > lt.endNs {
			lt.endNs = en
		}
		if n := len(lt.segments); n == 0 || lt.segments[n-1] != seq {
			lt.segments = append(lt.segments, seq)
			in.segRefs[seq]++
		}
	}
	in.s.m.liveTraces.Set(float64(len(in.live)))
	in.s.m.liveBytes.Set(float64(in.liveBytes + in.pendingBytes))
	if p := in.pressure(); p > 0 && in.liveBytes > p {
		// Past the pressure point the cut loop need not wait for its next tick (up to a second, in which 100k
		// spans/s add about 19 MB).
		in.s.kick()
	}
}

// pressure is what the traces in memory may hold before the store stops waiting for traces to go idle and for
// blocks to fill: half a block (max_block_bytes/2), or a quarter of max_live_bytes if that is less; 0 without a
// bound. At a high rate the live set would otherwise grow to half of max_live_bytes before anything is written,
// and the Go heap to twice that. Half a block is what a block written under pressure holds, so past it nothing
// is gained by waiting: at 100k spans/s a pressure point of 48 MiB (a quarter of the default max_live_bytes)
// kept about 80 MB of live heap, one of 16 MiB keeps about 45 MB, for blocks written about twice as often.
// max_live_bytes stays the refusal bound, so that bursts faster than blocks are written still have room.
func (in *instance) pressure() int64 {
	return pressurePoint(in.s.cfg.MaxLiveBytes, in.s.cfg.MaxBlockBytes)
}

func pressurePoint(maxLive, maxBlock int64) int64 {
	if maxLive <= 0 {
		return 0
	}
	return min(maxLive/4, maxBlock/2)
}

// cut moves complete traces (idle, or live for longer than max_block_duration) to the pending block. When the
// live traces alone hold more than pressure(), or all traces in memory more than half of max_live_bytes, every
// live trace is cut: a trace still receiving spans then spans more than one block, which queries merge.
func (in *instance) cut(now time.Time, all bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if max := in.s.cfg.MaxLiveBytes; max > 0 && (in.liveBytes > in.pressure() || in.liveBytes+in.pendingBytes > max/2) {
		all = true
	}
	n := len(in.pending)
	for id, lt := range in.live {
		if all || now.Sub(lt.lastIn) >= in.s.cfg.TraceIdlePeriod || now.Sub(lt.firstIn) >= in.s.cfg.MaxBlockDuration {
			delete(in.live, id)
			in.pending = append(in.pending, lt)
			in.pendingBytes += lt.held()
			in.liveBytes -= lt.held()
		}
	}
	if n == 0 && len(in.pending) > 0 {
		in.pendingSince = now
	}
	// In order of arrival, not of the map: a block takes pending traces from the front, and a WAL record stays in
	// memory until the last trace whose spans point into it is written, so the traces of one record go together.
	cut := in.pending[n:]
	sort.SliceStable(cut, func(i, j int) bool { return cut[i].firstIn.Before(cut[j].firstIn) })
	in.s.m.liveTraces.Set(float64(len(in.live)))
}

// flushDue says whether the pending traces should be written now. Past pressure() pending traces do not wait
// for a full block: half a block is written (complete traces gain nothing by staying in memory).
func (in *instance) flushDue(force bool) bool {
	in.mu.RLock()
	defer in.mu.RUnlock()
	if len(in.pending) == 0 {
		return false
	}
	held, max := in.liveBytes+in.pendingBytes, in.s.cfg.MaxLiveBytes
	return force || in.pendingBytes >= in.s.cfg.MaxBlockBytes || in.s.now().Sub(in.pendingSince) >= in.s.cfg.FlushInterval ||
		(max > 0 && held > max/2) ||
		(max > 0 && held > in.pressure() && in.pendingBytes >= in.s.cfg.MaxBlockBytes/2)
}

// flush writes the pending traces to blocks when due (or when force), then drops the WAL segments that hold
// nothing else. Blocks are cut at max_block_bytes of span data.
func (in *instance) flush(ctx context.Context, force bool) error {
	in.s.flushMu.Lock()
	defer in.s.flushMu.Unlock()
	for in.flushDue(force) {
		if err := in.flushOnce(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (in *instance) flushOnce(ctx context.Context) error {
	in.mu.RLock()
	// Under pressure a block takes half of max_block_bytes: its traces leave memory only once it is written,
	// and a smaller block is written sooner.
	limit := in.s.cfg.MaxBlockBytes
	if p := in.pressure(); p > 0 && in.liveBytes+in.pendingBytes > p {
		limit = max(limit/2, 1)
	}
	var batch []*liveTrace
	var size int64
	for _, lt := range in.pending {
		batch = append(batch, lt)
		size += lt.bytes
		if size >= limit {
			break
		}
	}
	in.mu.RUnlock()
	// A new segment for what comes next, so that the segments behind this block can be deleted.
	if _, err := in.wal.Rotate(); err != nil {
		return err
	}
	b, err := in.writeLiveBlock(ctx, batch)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.addBlockLocked(b)
	done := make(map[*liveTrace]bool, len(batch))
	for _, lt := range batch {
		done[lt] = true
		in.pendingBytes -= lt.held()
		for _, seq := range lt.segments {
			in.segRefs[seq]--
		}
	}
	rest := in.pending[:0]
	for _, lt := range in.pending {
		if !done[lt] {
			rest = append(rest, lt)
		}
	}
	for i := len(rest); i < len(in.pending); i++ {
		in.pending[i] = nil
	}
	in.pending = rest
	if len(in.pending) > 0 {
		in.pendingSince = in.s.now()
	}
	in.resetMemStatsLocked()
	in.s.m.liveBytes.Set(float64(in.liveBytes + in.pendingBytes))
	cur := in.wal.Current()
	var free []uint64
	for seq, n := range in.segRefs {
		if n <= 0 && seq != cur {
			free = append(free, seq)
			delete(in.segRefs, seq)
		}
	}
	in.mu.Unlock()
	sort.Slice(free, func(i, j int) bool { return free[i] < free[j] })
	for _, seq := range free {
		if err := in.wal.Remove(seq); err != nil {
			in.s.logger.Warn("Removing WAL segment failed", zap.String("tenant", in.tenant), zap.Uint64("segment", seq), zap.Error(err))
		}
	}
	// Segments that never held a trace (rotated while empty of new traces) are unreferenced: remove them too.
	in.removeUnreferencedSegments()
	return nil
}

// removeUnreferencedSegments removes the WAL segments, other than the current one, that no live or pending
// trace has records in.
func (in *instance) removeUnreferencedSegments() {
	seqs, err := in.wal.Segments()
	if err != nil {
		in.s.logger.Warn("Listing WAL segments failed", zap.String("tenant", in.tenant), zap.Error(err))
		return
	}
	cur := in.wal.Current()
	in.mu.RLock()
	defer in.mu.RUnlock()
	for _, seq := range seqs {
		if seq != cur && in.segRefs[seq] == 0 {
			if err := in.wal.Remove(seq); err != nil {
				in.s.logger.Warn("Removing WAL segment failed", zap.String("tenant", in.tenant), zap.Uint64("segment", seq), zap.Error(err))
			}
		}
	}
}

func (in *instance) addBlockLocked(b *block) {
	in.blocks = append(in.blocks, b)
	sort.Slice(in.blocks, func(i, j int) bool { return in.blocks[i].meta.EndUnixNano < in.blocks[j].meta.EndUnixNano })
	in.s.m.blocks.Set(float64(len(in.blocks)))
}

// resetMemStatsLocked starts the memory summary afresh once nothing is in memory.
func (in *instance) resetMemStatsLocked() {
	if len(in.live) == 0 && len(in.pending) == 0 && in.memStats.n > 0 {
		in.memStats = newStatsBuilder()
	}
}

// memDomain is the column domain of the traces in memory (see memStats); nil when nothing can be ruled out.
func (in *instance) memDomain() *traceql.Domain {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.memDomainLocked()
}

func (in *instance) memDomainLocked() *traceql.Domain {
	st := in.memStats.result()
	if st == nil {
		return nil
	}
	return st.domain()
}

// snapshot returns the traces in memory (live and pending) as copies safe to read without the lock.
func (in *instance) snapshot() []*liveTrace {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.snapshotLocked()
}

func (in *instance) snapshotLocked() []*liveTrace {
	out := make([]*liveTrace, 0, len(in.live)+len(in.pending))
	for _, lt := range in.live {
		c := *lt
		c.spans = lt.spans[:len(lt.spans):len(lt.spans)]
		out = append(out, &c)
	}
	for _, lt := range in.pending {
		c := *lt
		c.spans = lt.spans[:len(lt.spans):len(lt.spans)]
		out = append(out, &c)
	}
	return out
}

// memTrace returns the spans in memory for one trace id.
func (in *instance) memTrace(id pcommon.TraceID) []liveSpan {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.memTraceLocked(id)
}

func (in *instance) memTraceLocked(id pcommon.TraceID) []liveSpan {
	var out []liveSpan
	if lt := in.live[id]; lt != nil {
		out = append(out, lt.spans...)
	}
	for _, lt := range in.pending {
		if lt.id == id {
			out = append(out, lt.spans...)
		}
	}
	return out
}

// decodeLive turns live spans into the evaluator's spans.
func decodeLive(dec *decoder, spans []liveSpan) ([]traceql.Span, error) {
	out := make([]traceql.Span, 0, len(spans))
	for i := range spans {
		ls := &spans[i]
		s, err := dec.decodeParts(ls.scope.res.enc, ls.scope.enc, wrapSpan(nil, ls.rawBytes()))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
