package tracestore

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/traceql"
)

// liveTrace is a trace whose spans are still arriving (or waiting for their block) in memory.
type liveTrace struct {
	id       pcommon.TraceID
	spans    []traceql.Span
	bytes    int64
	firstIn  time.Time // wall time of the first span's arrival
	lastIn   time.Time // wall time of the latest span's arrival
	startNs  uint64
	endNs    uint64
	segments []uint64 // WAL segments holding this trace's records
}

// instance is one tenant's store.
type instance struct {
	s      *Store
	tenant string
	wal    *wal

	mu           sync.RWMutex
	live         map[pcommon.TraceID]*liveTrace
	pending      []*liveTrace // complete, waiting for the next block
	pendingBytes int64
	pendingSince time.Time
	segRefs      map[uint64]int // traces in live or pending with records in each WAL segment
	blocks       []*block       // sorted by end time, newest last
}

func openInstance(ctx context.Context, s *Store, id string) (*instance, error) {
	in := &instance{s: s, tenant: id, live: map[pcommon.TraceID]*liveTrace{}, segRefs: map[uint64]int{}}
	if err := in.loadBlocks(ctx); err != nil {
		return nil, fmt.Errorf("tenant %s: load blocks: %w", id, err)
	}
	dir := filepath.Join(s.cfg.DataDir, id, "wal")
	seqs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: list WAL: %w", id, err)
	}
	var records, spans int
	now := s.now()
	for _, seq := range seqs {
		n, torn, err := replaySegment(filepath.Join(dir, segName(seq)), func(payload []byte) error {
			td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(payload)
			if err != nil {
				return nil // a record that passed its CRC but does not decode: skip it, keep the rest
			}
			spans += td.SpanCount()
			in.apply(td, seq, now)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("tenant %s: replay WAL segment %d: %w", id, seq, err)
		}
		records += n
		if torn {
			s.logger.Warn("WAL segment ends in a partial record (the write in progress when the process stopped); it was never acknowledged",
				zap.String("tenant", id), zap.Uint64("segment", seq))
		}
		if in.segRefs[seq] == 0 {
			_ = (&wal{dir: dir}).Remove(seq)
		}
	}
	next := uint64(1)
	if len(seqs) > 0 {
		next = seqs[len(seqs)-1] + 1
	}
	in.wal, err = openWAL(dir, s.cfg.WAL.Sync, s.cfg.WAL.SegmentBytes, next)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", id, err)
	}
	if records > 0 {
		s.logger.Info("Replayed trace WAL", zap.String("tenant", id), zap.Int("records", records), zap.Int("spans", spans), zap.Int("traces", len(in.live)))
	}
	return in, nil
}

// spanSize estimates the encoded size of a span, for the per-trace byte limit.
func spanSize(sp ptrace.Span) int64 {
	n := int64(64 + len(sp.Name()) + len(sp.Status().Message()))
	sp.Attributes().Range(func(k string, v pcommon.Value) bool {
		n += int64(len(k) + 10)
		if v.Type() == pcommon.ValueTypeStr {
			n += int64(len(v.Str()))
		} else if v.Type() == pcommon.ValueTypeBytes || v.Type() == pcommon.ValueTypeSlice || v.Type() == pcommon.ValueTypeMap {
			n += int64(len(v.AsString()))
		}
		return true
	})
	evs := sp.Events()
	for i := 0; i < evs.Len(); i++ {
		n += int64(32 + len(evs.At(i).Name()) + 32*evs.At(i).Attributes().Len())
	}
	n += int64(48 * sp.Links().Len())
	return n
}

func (in *instance) push(td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	var limitErr error
	if max := in.s.cfg.Limits.MaxBytesPerTrace; max > 0 {
		td, limitErr = in.enforceTraceSize(td, max)
		if td.SpanCount() == 0 {
			return limitErr
		}
	}
	payload, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return fmt.Errorf("%w: encode batch: %v", ErrBadData, err)
	}
	seq, err := in.wal.Append(payload)
	if err != nil {
		in.s.m.walErrors.Inc()
		return fmt.Errorf("tenant %s: %w", in.tenant, err)
	}
	in.s.m.walBytes.Add(float64(len(payload)))
	// Keep a private copy: the pipeline's batch may be reused once we return.
	own, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(payload)
	if err != nil {
		return fmt.Errorf("decode own WAL record: %w", err)
	}
	in.apply(own, seq, in.s.now())
	in.s.m.spansIn.Add(float64(own.SpanCount()))
	return limitErr
}

// enforceTraceSize drops the spans of traces that would grow beyond max bytes and reports them.
func (in *instance) enforceTraceSize(td ptrace.Traces, max int64) (ptrace.Traces, error) {
	add := map[pcommon.TraceID]int64{}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			sps := sss.At(j).Spans()
			for k := 0; k < sps.Len(); k++ {
				add[sps.At(k).TraceID()] += spanSize(sps.At(k))
			}
		}
	}
	over := map[pcommon.TraceID]bool{}
	in.mu.RLock()
	for id, n := range add {
		cur := int64(0)
		if lt := in.live[id]; lt != nil {
			cur = lt.bytes
		}
		if cur+n > max {
			over[id] = true
		}
	}
	in.mu.RUnlock()
	if len(over) == 0 {
		return td, nil
	}
	kept := ptrace.NewTraces()
	td.CopyTo(kept)
	refused := 0
	kept.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
				if over[sp.TraceID()] {
					refused++
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	in.s.m.refused.WithLabelValues("max_bytes_per_trace").Add(float64(refused))
	return kept, &LimitError{Limit: "max_bytes_per_trace",
		Msg: fmt.Sprintf("refused %d spans of %d traces: a trace may hold at most %d bytes", refused, len(over), max)}
}

// apply adds a decoded batch (owned by the store) to the live traces; seq is the WAL segment it is in.
func (in *instance) apply(td ptrace.Traces, seq uint64, now time.Time) {
	in.mu.Lock()
	defer in.mu.Unlock()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		res := traceql.NewResource(rs.Resource())
		res.SchemaURL = rs.SchemaUrl()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			ss := sss.At(j)
			sps := ss.Spans()
			for k := 0; k < sps.Len(); k++ {
				sp := sps.At(k)
				id := sp.TraceID()
				lt := in.live[id]
				if lt == nil {
					lt = &liveTrace{id: id, firstIn: now, startNs: uint64(sp.StartTimestamp())}
					in.live[id] = lt
				}
				lt.spans = append(lt.spans, traceql.Span{Span: sp, Resource: res, Scope: ss.Scope()})
				lt.bytes += spanSize(sp)
				lt.lastIn = now
				if st := uint64(sp.StartTimestamp()); st < lt.startNs {
					lt.startNs = st
				}
				if en := uint64(sp.EndTimestamp()); en > lt.endNs {
					lt.endNs = en
				}
				if n := len(lt.segments); n == 0 || lt.segments[n-1] != seq {
					lt.segments = append(lt.segments, seq)
					in.segRefs[seq]++
				}
			}
		}
	}
	in.s.m.liveTraces.Set(float64(len(in.live)))
}

// cut moves complete traces (idle, or live for longer than max_block_duration) to the pending block.
func (in *instance) cut(now time.Time, all bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for id, lt := range in.live {
		if all || now.Sub(lt.lastIn) >= in.s.cfg.TraceIdlePeriod || now.Sub(lt.firstIn) >= in.s.cfg.MaxBlockDuration {
			delete(in.live, id)
			if len(in.pending) == 0 {
				in.pendingSince = now
			}
			in.pending = append(in.pending, lt)
			in.pendingBytes += lt.bytes
		}
	}
	in.s.m.liveTraces.Set(float64(len(in.live)))
}

// flush writes the pending traces to a block when due (or when force), then drops the WAL segments that hold
// nothing else.
func (in *instance) flush(ctx context.Context, force bool) error {
	in.s.flushMu.Lock()
	defer in.s.flushMu.Unlock()
	in.mu.RLock()
	due := len(in.pending) > 0 && (force || in.pendingBytes >= in.s.cfg.MaxBlockBytes ||
		in.s.now().Sub(in.pendingSince) >= in.s.cfg.MaxBlockDuration-in.s.cfg.TraceIdlePeriod)
	batch := append([]*liveTrace(nil), in.pending...)
	in.mu.RUnlock()
	if !due {
		return nil
	}
	// A new segment for what comes next, so that the segments behind this block can be deleted.
	if _, err := in.wal.Rotate(); err != nil {
		return err
	}
	b, err := in.writeBlock(ctx, spansOf(batch), 0)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.addBlockLocked(b)
	done := make(map[*liveTrace]bool, len(batch))
	for _, lt := range batch {
		done[lt] = true
		in.pendingBytes -= lt.bytes
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
	cur := in.wal.Current()
	var free []uint64
	for seq, n := range in.segRefs {
		if n <= 0 && seq != cur {
			free = append(free, seq)
			delete(in.segRefs, seq)
		}
	}
	in.mu.Unlock()
	// Segments without references older than every referenced one may go; others too, since each record's
	// traces are all in blocks now.
	sort.Slice(free, func(i, j int) bool { return free[i] < free[j] })
	for _, seq := range free {
		if err := in.wal.Remove(seq); err != nil {
			in.s.logger.Warn("Removing WAL segment failed", zap.String("tenant", in.tenant), zap.Uint64("segment", seq), zap.Error(err))
		}
	}
	// Segments that never held a trace (rotated while empty of new traces) are unreferenced: remove them too.
	seqs, _ := listSegments(in.wal.dir)
	in.mu.RLock()
	for _, seq := range seqs {
		if seq != cur && in.segRefs[seq] == 0 {
			_ = in.wal.Remove(seq)
		}
	}
	in.mu.RUnlock()
	return nil
}

func (in *instance) addBlockLocked(b *block) {
	in.blocks = append(in.blocks, b)
	sort.Slice(in.blocks, func(i, j int) bool { return in.blocks[i].meta.EndUnixNano < in.blocks[j].meta.EndUnixNano })
	in.s.m.blocks.Set(float64(len(in.blocks)))
}

// snapshot returns the traces in memory (live and pending) as copies safe to read without the lock.
func (in *instance) snapshot() []*liveTrace {
	in.mu.RLock()
	defer in.mu.RUnlock()
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
func (in *instance) memTrace(id pcommon.TraceID) []traceql.Span {
	in.mu.RLock()
	defer in.mu.RUnlock()
	var out []traceql.Span
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

func (in *instance) blockList() []*block {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return append([]*block(nil), in.blocks...)
}
