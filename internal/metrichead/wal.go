package metrichead

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"github.com/prometheus/prometheus/tsdb/wlog"
	"github.com/prometheus/prometheus/util/compression"
)

// The write-ahead log is Prometheus' own format (tsdb/wlog segments and checkpoints of tsdb/record records), in
// the directory Prometheus' DB keeps it in. So Prometheus' remote-write watcher forwards from it unchanged, and
// a WAL that Prometheus' DB wrote before is replayed on the first start with this head.

// WALOptions shape the log.
type WALOptions struct {
	SegmentSize int              // bytes per segment; wlog.DefaultSegmentSize (128 MiB) when 0
	Compression compression.Type // compression.None or compression.Snappy (Prometheus' default)
	// OOODir is the write-behind log of out-of-order samples (ooo.go), Prometheus' "wbl" beside "wal"; needed
	// with an out-of-order window, and read whenever it holds segments.
	OOODir string
}

// ReplayStats says what opening a head read from its log.
type ReplayStats struct {
	Series, Samples  int
	UnknownRefs      int // samples of series the log never named (Prometheus' replay drops them too)
	Invalid          int // samples the head refused: before minValid, out of order, duplicate
	OtherRecords     int // records this head does not hold (mmap markers, unknown types)
	OOOSamples       int // out-of-order samples read from the write-behind log
	Repaired         bool
	RewroteRefs      bool // the log's series refs were not the head's: it was checkpointed with the head's
	CheckpointedFrom int
}

// Open makes a head that logs to dir, after replaying what dir holds. Samples before minValid (the end of the
// newest block) are not kept. A torn or corrupt tail is cut off as Prometheus' DB does (wlog Repair) and what
// was before it is kept.
func Open(dir string, o Options, wo WALOptions, minValid int64, logger *slog.Logger, reg prometheus.Registerer) (*Head, ReplayStats, error) {
	var st ReplayStats
	h, err := New(o)
	if err != nil {
		return nil, st, err
	}
	if logger != nil {
		h.logger = logger
	}
	h.minValid.Store(minValid)
	if o.OutOfOrderTimeWindow > 0 && wo.OOODir == "" {
		return nil, st, errors.New("metric head: an out-of-order window needs a write-behind log directory")
	}
	size := wo.SegmentSize
	if size == 0 {
		size = wlog.DefaultSegmentSize
	}
	if err := wlog.DeleteTempCheckpoints(h.logger, dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, st, fmt.Errorf("metric head: remove temporary checkpoints: %w", err)
	}
	w, err := wlog.NewSize(h.logger, reg, dir, size, wo.Compression)
	if err != nil {
		return nil, st, fmt.Errorf("metric head: open write-ahead log: %w", err)
	}
	refs := map[chunks.HeadSeriesRef]uint32{}
	if err := h.replay(dir, refs, &st); err != nil {
		var cerr *wlog.CorruptionErr
		if !errors.As(err, &cerr) {
			w.Close()
			return nil, st, fmt.Errorf("metric head: replay write-ahead log: %w", err)
		}
		h.logger.Warn("write-ahead log corrupt; cutting it at the corruption", "segment", cerr.Segment, "offset", cerr.Offset, "err", err)
		if err := w.Repair(err); err != nil {
			w.Close()
			return nil, st, fmt.Errorf("metric head: repair write-ahead log: %w", err)
		}
		st.Repaired = true
	}
	h.wal = w
	if wo.OOODir != "" {
		if _, err := os.Stat(wo.OOODir); err == nil || o.OutOfOrderTimeWindow > 0 {
			if err := h.openWBL(wo.OOODir, wo, refs, &st, reg); err != nil {
				w.Close()
				return nil, st, err
			}
		}
	}
	h.collect() // series the log named whose samples are all before minValid, or none
	for wref, ref := range refs {
		if uint32(wref) != ref {
			st.RewroteRefs = true
			break
		}
	}
	for ref := uint32(1); ref <= h.count.Load(); ref++ {
		if s := h.seriesAt(ref); s != nil && s.labels != deadLabels {
			s.st.logged = !st.RewroteRefs
		}
	}
	if st.RewroteRefs {
		// Later records use the head's refs; the log's earlier ones are replaced by a checkpoint in the head's.
		_, last, err := wlog.Segments(dir)
		if err != nil {
			w.Close()
			return nil, st, fmt.Errorf("metric head: list write-ahead log: %w", err)
		}
		if err := h.checkpointAll(dir, last-1, wo.Compression); err != nil {
			h.Close()
			return nil, st, err
		}
		if err := h.rewriteWBL(); err != nil {
			h.Close()
			return nil, st, err
		}
		st.CheckpointedFrom = last - 1
	}
	return h, st, nil
}

// replay reads the last checkpoint and the segments after it into the head; refs maps the log's series refs
// to the head's.
func (h *Head) replay(dir string, refs map[chunks.HeadSeriesRef]uint32, st *ReplayStats) error {
	var ranges []wlog.SegmentRange
	cpDir, cpIdx, err := wlog.LastCheckpoint(dir)
	switch {
	case err == nil:
		ranges = append(ranges, wlog.SegmentRange{Dir: cpDir, First: 0, Last: math.MaxInt32})
	case errors.Is(err, record.ErrNotFound):
		cpIdx = -1
	default:
		return fmt.Errorf("find checkpoint: %w", err)
	}
	first, last, err := wlog.Segments(dir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	if last >= 0 {
		ranges = append(ranges, wlog.SegmentRange{Dir: dir, First: max(first, cpIdx+1), Last: last})
	}
	if len(ranges) == 0 {
		return nil
	}
	rd, err := wlog.NewSegmentsRangeReader(ranges...)
	if err != nil {
		return fmt.Errorf("open segments: %w", err)
	}
	defer rd.Close()
	r := wlog.NewReader(rd)
	dec := record.NewDecoder(nil, h.logger)
	var (
		series  []record.RefSeries
		samples []record.RefSample
		hists   []record.RefHistogramSample
		fhists  []record.RefFloatHistogramSample
		stones  []tombstones.Stone
		metas   []record.RefMetadata
		exs     []record.RefExemplar
	)
	apply := func(wref chunks.HeadSeriesRef, add func(uint32) error) {
		ref, ok := refs[wref]
		switch {
		case !ok:
			st.UnknownRefs++
		case add(ref) != nil:
			st.Invalid++
		default:
			st.Samples++
		}
	}
	for r.Next() {
		rec := r.Record()
		switch dec.Type(rec) {
		case record.Series:
			if series, err = dec.Series(rec, series[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode series: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range series {
				ref, _, err := h.GetOrCreate(s.Labels)
				if err != nil {
					return err
				}
				refs[s.Ref] = ref
				st.Series++
			}
		case record.Samples, record.SamplesV2:
			if samples, err = dec.Samples(rec, samples[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode samples: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range samples {
				apply(s.Ref, func(ref uint32) error { return h.Append(ref, s.T, s.V) })
			}
		case record.HistogramSamples, record.HistogramSamplesV2, record.CustomBucketsHistogramSamples:
			if hists, err = dec.HistogramSamples(rec, hists[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode histograms: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range hists {
				apply(s.Ref, func(ref uint32) error { return h.AppendHistogram(ref, s.T, s.H, nil) })
			}
		case record.FloatHistogramSamples, record.FloatHistogramSamplesV2, record.CustomBucketsFloatHistogramSamples:
			if fhists, err = dec.FloatHistogramSamples(rec, fhists[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode float histograms: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range fhists {
				apply(s.Ref, func(ref uint32) error { return h.AppendHistogram(ref, s.T, nil, s.FH) })
			}
		case record.Metadata:
			if metas, err = dec.Metadata(rec, metas[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode metadata: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, m := range metas {
				if ref, ok := refs[m.Ref]; ok {
					h.setMetaID(ref, h.meta.intern(metadata.Metadata{Type: record.ToMetricType(m.Type), Unit: m.Unit, Help: m.Help}))
				}
			}
		case record.Exemplars:
			if exs, err = dec.Exemplars(rec, exs[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode exemplars: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			if h.exemplars == nil {
				continue
			}
			for _, e := range exs {
				ref, ok := refs[e.Ref]
				if !ok {
					continue
				}
				if series, ok := h.seriesLabels(ref); ok {
					// Refusals (duplicates, older than the ring holds) are expected on replay.
					_ = h.exemplars.AddExemplar(series, exemplar.Exemplar{Labels: e.Labels, Value: e.V, Ts: e.T, HasTs: true})
				}
			}
		case record.Tombstones:
			if stones, err = dec.Tombstones(rec, stones[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode tombstones: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range stones {
				if ref, ok := refs[chunks.HeadSeriesRef(s.Ref)]; ok {
					h.tombs.AddInterval(storage.SeriesRef(ref), s.Intervals...)
				}
			}
		default:
			st.OtherRecords++
		}
	}
	return r.Err()
}

// checkpointAll writes every series and sample of the head as checkpoint idx, in the head's refs, and removes
// the segments and checkpoints up to idx.
func (h *Head) checkpointAll(dir string, idx int, c compression.Type) error {
	cpdir := wlog.CheckpointDir(dir, idx)
	tmp := cpdir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("metric head: checkpoint: %w", err)
	}
	cp, err := wlog.New(h.logger, nil, tmp, c)
	if err != nil {
		return fmt.Errorf("metric head: checkpoint: %w", err)
	}
	err = h.writeAll(cp)
	if cerr := cp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.RemoveAll(cpdir)
	}
	if err == nil {
		err = os.Rename(tmp, cpdir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("metric head: checkpoint: %w", err)
	}
	if err := h.wal.Truncate(idx + 1); err != nil {
		return fmt.Errorf("metric head: remove segments after checkpoint: %w", err)
	}
	if err := wlog.DeleteCheckpoints(dir, idx); err != nil {
		return fmt.Errorf("metric head: remove old checkpoints: %w", err)
	}
	h.eachSeries(func(_ uint32, s *series) { s.st.logged = true })
	return nil
}

// writeAll logs the head's series and samples to w, a few thousand series a record pair.
func (h *Head) writeAll(w *wlog.WL) error {
	var (
		enc     record.Encoder
		series  []record.RefSeries
		samples []record.RefSample
		hists   []record.RefHistogramSample
		fhists  []record.RefFloatHistogramSample
		sb      labels.ScratchBuilder
		it      chunkenc.Iterator
		sbuf    []byte
		smbuf   []byte
	)
	flush := func() error {
		var recs [][]byte
		if len(series) > 0 {
			sbuf = enc.Series(series, sbuf[:0])
			recs = append(recs, sbuf)
		}
		if len(samples) > 0 {
			smbuf = enc.Samples(samples, smbuf[:0])
			recs = append(recs, smbuf)
		}
		recs = appendHistogramRecords(&enc, recs, hists, fhists)
		series, samples, hists, fhists = series[:0], samples[:0], hists[:0], fhists[:0]
		if len(recs) == 0 {
			return nil
		}
		return w.Log(recs...)
	}
	n := h.count.Load()
	cr := &chunkReader{h: h}
	for ref := uint32(1); ref <= n; ref++ {
		h.mu.RLock()
		s := h.seriesAt(ref)
		if s == nil || s.labels == deadLabels {
			h.mu.RUnlock()
			continue
		}
		l := toLabels(h.lbls.get(s.labels), &sb)
		h.mu.RUnlock()
		series = append(series, record.RefSeries{Ref: chunks.HeadSeriesRef(ref), Labels: l})
		var metas []chunks.Meta
		lock := &h.locks[ref%lockStripes]
		lock.Lock()
		for _, c := range s.closed {
			metas = append(metas, chunks.Meta{Ref: chunks.ChunkRef(c.addr), MinTime: c.minT, MaxTime: c.maxT})
		}
		if s.chunk != nil {
			metas = append(metas, chunks.Meta{Ref: chunks.ChunkRef(openChunkRef | uint64(ref)), MinTime: s.chunkMinT, MaxTime: s.st.t})
		}
		if s.st.hasHist {
			if hs := h.hists.get(ref); hs != nil {
				metas = hs.metas(ref, math.MinInt64, math.MaxInt64, metas)
			}
		}
		lock.Unlock()
		if len(metas) > 1 && s.st.hasHist {
			slices.SortFunc(metas, func(a, b chunks.Meta) int { return cmp.Compare(a.MinTime, b.MinTime) })
		}
		for i, m := range metas {
			if i > 0 && s.st.hasHist { // chunks of a series with histograms go out one by one, in time order
				if err := flush(); err != nil {
					return err
				}
			}
			c, _, err := cr.ChunkOrIterable(m)
			if err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue // truncated meanwhile
				}
				return err
			}
			it = c.Iterator(it)
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				r := chunks.HeadSeriesRef(ref)
				switch vt {
				case chunkenc.ValFloat:
					t, v := it.At()
					samples = append(samples, record.RefSample{Ref: r, T: t, V: v})
				case chunkenc.ValHistogram:
					t, hv := it.AtHistogram(nil)
					hists = append(hists, record.RefHistogramSample{Ref: r, T: t, H: hv})
				case chunkenc.ValFloatHistogram:
					t, fh := it.AtFloatHistogram(nil)
					fhists = append(fhists, record.RefFloatHistogramSample{Ref: r, T: t, FH: fh})
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		if len(series) >= 5000 || len(samples) >= 50000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	var ms []record.RefMetadata
	for ref := uint32(1); ref <= n; ref++ {
		if m, ok := h.Metadata(ref); ok {
			ms = append(ms, record.RefMetadata{Ref: chunks.HeadSeriesRef(ref), Type: record.GetMetricType(m.Type), Unit: m.Unit, Help: m.Help})
		}
	}
	if len(ms) > 0 {
		if err := w.Log(enc.Metadata(ms, nil)); err != nil {
			return err
		}
	}
	if h.exemplars != nil {
		var es []record.RefExemplar
		if err := h.exemplars.IterateExemplars(func(series labels.Labels, e exemplar.Exemplar) error {
			if ref := h.Lookup(series); ref != 0 {
				es = append(es, record.RefExemplar{Ref: chunks.HeadSeriesRef(ref), T: e.Ts, V: e.Value, Labels: e.Labels})
			}
			return nil
		}); err != nil {
			return err
		}
		if len(es) > 0 {
			if err := w.Log(enc.Exemplars(es, nil)); err != nil {
				return err
			}
		}
	}
	var stones []tombstones.Stone
	if err := h.tombs.Iter(func(ref storage.SeriesRef, ivs tombstones.Intervals) error {
		stones = append(stones, tombstones.Stone{Ref: ref, Intervals: ivs})
		return nil
	}); err != nil {
		return err
	}
	if len(stones) == 0 {
		return nil
	}
	return w.Log(enc.Tombstones(stones, nil))
}

// truncateWAL checkpoints the older two thirds of the segments, keeping every series and the samples from mint
// on, as Prometheus' head does after writing a block.
func (h *Head) truncateWAL(mint int64) error {
	dir := h.wal.Dir()
	first, last, err := wlog.Segments(dir)
	if err != nil {
		return err
	}
	if _, err := h.wal.NextSegment(); err != nil {
		return err
	}
	last-- // the segment being written is not checkpointed
	if last < 0 {
		return nil
	}
	last = first + (last-first)*2/3
	if last <= first {
		return nil
	}
	keep := func(id chunks.HeadSeriesRef) bool { return id <= math.MaxUint32 && h.get(uint32(id)) != nil }
	if _, err := wlog.Checkpoint(h.logger, h.wal, first, last, keep, mint, false); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := h.wal.Truncate(last + 1); err != nil {
		return err
	}
	return wlog.DeleteCheckpoints(dir, last)
}

// Close closes the log and releases the mapped chunk pages; the head is not read after it.
func (h *Head) Close() error {
	h.chunks.close()
	var errs []error
	if h.wal != nil {
		errs = append(errs, h.wal.Close())
	}
	if h.ooo.wbl != nil {
		errs = append(errs, h.ooo.wbl.Close())
	}
	return errors.Join(errs...)
}

// Dropped is how many samples commits dropped because a concurrent commit made them invalid.
func (h *Head) Dropped() uint64 { return h.dropped.Load() }
