package metrichead

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/tombstones"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Out-of-order samples, as Prometheus' head takes them with out_of_order_time_window: a sample that cannot go in
// order (older than its series' newest, or than the head accepts in order) but is at most the window older than
// the head's newest sample is kept beside the series, sorted by time, until the DB flushes them out as blocks
// of their own (marked out of order, compacted with the others as overlapping blocks).
//
// Durability follows Prometheus: such a sample is in the write-ahead log like any other (so remote write
// forwards it), where replay refuses it as out of order, and in a write-behind log (dir "wbl", the same record
// format) that replay reads after the write-ahead log, back into the out-of-order samples. A flush starts a new
// write-behind segment and sets the samples so far aside; once their blocks are loaded the earlier segments are
// removed. A crash between the two replays samples a block also holds; queries and compaction merge the
// duplicates away.
//
// Out-of-order samples are few (late senders, backfills), so each series that has any keeps them in a slice
// in a map beside the series, guarded by the series' lock.

// placement says how the head applies a sample.
type placement uint8

const (
	replayInOrder placement = iota // write-ahead log replay: in order only
	commitInOrder                  // an appender's sample placed in order: out of order when a concurrent commit made it so
	commitOOO                      // an appender's sample placed out of order at Append
)

type oooSample struct {
	t  int64
	v  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

// oooHistogram is a histogram sample to keep out of order: a copy, its counter reset unknown unless a gauge (the
// samples around it are not the ones it was appended after), as Prometheus' out-of-order head marks them.
func oooHistogram(t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) oooSample {
	if hv != nil {
		hv = hv.Copy()
		if hv.CounterResetHint != histogram.GaugeType {
			hv.CounterResetHint = histogram.UnknownCounterReset
		}
		return oooSample{t: t, h: hv}
	}
	fh = fh.Copy()
	if fh.CounterResetHint != histogram.GaugeType {
		fh.CounterResetHint = histogram.UnknownCounterReset
	}
	return oooSample{t: t, fh: fh}
}

// oooSeries is one series' out-of-order samples by time: cur takes new ones; old holds those a flush is writing
// out.
type oooSeries struct{ cur, old []oooSample }

// oooState is the head's out-of-order samples and write-behind log.
type oooState struct {
	// mu is held to read by commits that may add out-of-order samples, from applying them to logging them, and
	// to write by the start of a flush, so that a commit's samples fall wholly before or after it.
	mu       sync.RWMutex
	series   [lockStripes]map[uint32]*oooSeries // by stripe of the series ref; guarded by the stripe's lock
	n        atomic.Int64                       // samples in cur and old
	wbl      *wlog.WL                           // nil without a log
	flushSeg int                                // the segment the last flush began; guarded by the DB's flush
	readers  map[*oooRange]int                  // open readers; guarded by Head.readMu
}

// OOOSamples is how many out-of-order samples the head holds.
func (h *Head) OOOSamples() int64 { return h.ooo.n.Load() }

// oooBounds is the time range of the out-of-order samples; mint > maxt when there are none.
func (h *Head) oooBounds() (mint, maxt int64) {
	mint, maxt = math.MaxInt64, math.MinInt64
	if h.ooo.n.Load() == 0 {
		return mint, maxt
	}
	for i := range h.ooo.series {
		h.locks[i].Lock()
		for _, o := range h.ooo.series[i] {
			for _, l := range [][]oooSample{o.old, o.cur} {
				if len(l) > 0 {
					mint, maxt = min(mint, l[0].t), max(maxt, l[len(l)-1].t)
				}
			}
		}
		h.locks[i].Unlock()
	}
	return mint, maxt
}

// inWindowOOO reports t within the out-of-order window behind the head's newest sample.
func (h *Head) inWindowOOO(t int64) bool {
	w := h.opts.OutOfOrderTimeWindow
	mt := h.maxT.Load()
	return w > 0 && mt != math.MinInt64 && t >= mt-w
}

// oooAllowed reports a sample refused in order (out of order or out of bounds, not a duplicate) that may go out
// of order instead.
func (h *Head) oooAllowed(t int64, err error) bool {
	return (errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds)) && h.inWindowOOO(t)
}

// placeFloat decides at Append where a float sample goes: in order (ooo false), out of order, or refused;
// minValid is the oldest in-order timestamp the appender accepts. The caller holds the series' lock.
func (h *Head) placeFloat(ref uint32, s *series, t int64, v float64, minValid int64, allowOOO bool) (ooo, dup bool, err error) {
	if t >= minValid {
		if dup, err = h.appendable(ref, s, t, v); err == nil || !errors.Is(err, storage.ErrOutOfOrderSample) {
			return false, dup, err
		}
	} else {
		err = storage.ErrOutOfBounds
	}
	return h.placeOOO(ref, oooSample{t: t, v: v}, err, allowOOO)
}

// placeHistogram is placeFloat for a histogram sample.
func (h *Head) placeHistogram(ref uint32, s *series, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram, minValid int64, allowOOO bool) (ooo, dup bool, err error) {
	if t >= minValid {
		if dup, err = h.histAppendable(ref, s, t, hv, fh); err == nil || !errors.Is(err, storage.ErrOutOfOrderSample) {
			return false, dup, err
		}
	} else {
		err = storage.ErrOutOfBounds
	}
	return h.placeOOO(ref, oooSample{t: t, h: hv, fh: fh}, err, allowOOO)
}

// placeOOO decides on a sample that cannot go in order, with Prometheus' answers: without a window the in-order
// refusal; beyond it too old; a start-time zero sample (allowOOO false) out of order. A timestamp an
// out-of-order sample already holds is accepted and not stored, whatever its value, as Prometheus' out-of-order
// head does (the first sample stays).
func (h *Head) placeOOO(ref uint32, smp oooSample, inOrderErr error, allowOOO bool) (ooo, dup bool, err error) {
	switch {
	case h.opts.OutOfOrderTimeWindow <= 0:
		return false, false, inOrderErr
	case !h.inWindowOOO(smp.t):
		return false, false, storage.ErrTooOldSample
	case !allowOOO:
		return false, false, storage.ErrOutOfOrderST
	}
	if o := h.ooo.series[ref%lockStripes][ref]; o != nil {
		for _, l := range [][]oooSample{o.cur, o.old} {
			if _, ok := findOOO(l, smp.t); ok {
				return true, true, nil
			}
		}
	}
	return true, false, nil
}

func findOOO(l []oooSample, t int64) (int, bool) {
	return slices.BinarySearchFunc(l, t, func(s oooSample, t int64) int {
		switch {
		case s.t < t:
			return -1
		case s.t > t:
			return 1
		}
		return 0
	})
}

// insertOOO adds an out-of-order sample to series ref; a timestamp held already keeps its sample (placeOOO).
// The caller holds the series' lock.
func (h *Head) insertOOO(ref uint32, smp oooSample) error {
	m := &h.ooo.series[ref%lockStripes]
	if *m == nil {
		*m = map[uint32]*oooSeries{}
	}
	o := (*m)[ref]
	if o == nil {
		o = &oooSeries{}
		(*m)[ref] = o
	}
	if _, ok := findOOO(o.old, smp.t); ok {
		return nil
	}
	i, ok := findOOO(o.cur, smp.t)
	if ok {
		return nil
	}
	o.cur = slices.Insert(o.cur, i, smp)
	h.ooo.n.Add(1)
	return nil
}

// hasOOO reports out-of-order samples of series ref; the caller holds its lock.
func (h *Head) hasOOO(ref uint32) bool {
	o := h.ooo.series[ref%lockStripes][ref]
	return o != nil && len(o.cur)+len(o.old) > 0
}

// oooRecords are a commit's samples that landed out of order.
type oooRecords struct {
	floats []record.RefSample
	hists  []record.RefHistogramSample
	fhists []record.RefFloatHistogramSample
	buf    []byte
}

func (r *oooRecords) reset() {
	r.floats = r.floats[:0]
	clear(r.hists)
	r.hists = r.hists[:0]
	clear(r.fhists)
	r.fhists = r.fhists[:0]
}

// logOOO writes the commit's out-of-order samples to the write-behind log.
func (a *Appender) logOOO() error {
	r := &a.oooRec
	w := a.h.ooo.wbl
	if w == nil || len(r.floats)+len(r.hists)+len(r.fhists) == 0 {
		return nil
	}
	var (
		enc  record.Encoder
		recs [][]byte
	)
	if len(r.floats) > 0 {
		r.buf = enc.Samples(r.floats, r.buf[:0])
		recs = append(recs, r.buf)
	}
	recs = appendHistogramRecords(&enc, recs, r.hists, r.fhists)
	if err := w.Log(recs...); err != nil {
		return fmt.Errorf("metric head: write-behind log: %w", err)
	}
	return nil
}

// openWBL opens the write-behind log in dir and reads its samples back, with the write-ahead log's refs mapped by
// refs. It runs in Open, after the write-ahead log's replay.
func (h *Head) openWBL(dir string, wo WALOptions, refs map[chunks.HeadSeriesRef]uint32, st *ReplayStats, reg prometheus.Registerer) error {
	size := wo.SegmentSize
	if size == 0 {
		size = wlog.DefaultSegmentSize
	}
	w, err := wlog.NewSize(h.logger, reg, dir, size, wo.Compression)
	if err != nil {
		return fmt.Errorf("metric head: open write-behind log: %w", err)
	}
	if err := h.replayWBL(dir, refs, st); err != nil {
		var cerr *wlog.CorruptionErr
		if !errors.As(err, &cerr) {
			w.Close()
			return fmt.Errorf("metric head: replay write-behind log: %w", err)
		}
		h.logger.Warn("write-behind log corrupt; cutting it at the corruption", "segment", cerr.Segment, "offset", cerr.Offset, "err", err)
		if err := w.Repair(err); err != nil {
			w.Close()
			return fmt.Errorf("metric head: repair write-behind log: %w", err)
		}
		st.Repaired = true
	}
	h.ooo.wbl = w
	return nil
}

func (h *Head) replayWBL(dir string, refs map[chunks.HeadSeriesRef]uint32, st *ReplayStats) error {
	first, last, err := wlog.Segments(dir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	if last < 0 {
		return nil
	}
	rd, err := wlog.NewSegmentsRangeReader(wlog.SegmentRange{Dir: dir, First: first, Last: last})
	if err != nil {
		return fmt.Errorf("open segments: %w", err)
	}
	defer rd.Close()
	r := wlog.NewReader(rd)
	dec := record.NewDecoder(nil, h.logger)
	var (
		samples []record.RefSample
		hists   []record.RefHistogramSample
		fhists  []record.RefFloatHistogramSample
	)
	add := func(wref chunks.HeadSeriesRef, smp oooSample) {
		ref, ok := refs[wref]
		if !ok || h.get(ref) == nil {
			st.UnknownRefs++
			return
		}
		lock := &h.locks[ref%lockStripes]
		lock.Lock()
		err := h.insertOOO(ref, smp)
		lock.Unlock()
		if err != nil {
			st.Invalid++
			return
		}
		st.OOOSamples++
	}
	for r.Next() {
		rec := r.Record()
		switch dec.Type(rec) {
		case record.Samples, record.SamplesV2:
			if samples, err = dec.Samples(rec, samples[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode samples: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range samples {
				add(s.Ref, oooSample{t: s.T, v: s.V})
			}
		case record.HistogramSamples, record.HistogramSamplesV2, record.CustomBucketsHistogramSamples:
			if hists, err = dec.HistogramSamples(rec, hists[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode histograms: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range hists {
				add(s.Ref, oooHistogram(s.T, s.H, nil))
			}
		case record.FloatHistogramSamples, record.FloatHistogramSamplesV2, record.CustomBucketsFloatHistogramSamples:
			if fhists, err = dec.FloatHistogramSamples(rec, fhists[:0]); err != nil {
				return &wlog.CorruptionErr{Err: fmt.Errorf("decode float histograms: %w", err), Segment: r.Segment(), Offset: r.Offset()}
			}
			for _, s := range fhists {
				add(s.Ref, oooHistogram(s.T, nil, s.FH))
			}
		default:
			st.OtherRecords++ // Prometheus' m-map markers
		}
	}
	return r.Err()
}

// rewriteWBL logs every out-of-order sample anew, in the head's refs, in a new segment and removes the segments
// before it: after replay found the write-ahead log's refs were not the head's.
func (h *Head) rewriteWBL() error {
	w := h.ooo.wbl
	if w == nil {
		return nil
	}
	seg, err := w.NextSegment()
	if err != nil {
		return fmt.Errorf("metric head: rewrite write-behind log: %w", err)
	}
	var rec oooRecords
	n := h.count.Load()
	flush := func() error {
		if len(rec.floats)+len(rec.hists)+len(rec.fhists) == 0 {
			return nil
		}
		a := &Appender{h: h, oooRec: rec}
		err := a.logOOO()
		rec.reset()
		return err
	}
	for ref := uint32(1); ref <= n; ref++ {
		lock := &h.locks[ref%lockStripes]
		lock.Lock()
		if o := h.ooo.series[ref%lockStripes][ref]; o != nil {
			for _, l := range [][]oooSample{o.old, o.cur} {
				for _, s := range l {
					r := chunks.HeadSeriesRef(ref)
					switch {
					case s.h != nil:
						rec.hists = append(rec.hists, record.RefHistogramSample{Ref: r, T: s.t, H: s.h})
					case s.fh != nil:
						rec.fhists = append(rec.fhists, record.RefFloatHistogramSample{Ref: r, T: s.t, FH: s.fh})
					default:
						rec.floats = append(rec.floats, record.RefSample{Ref: r, T: s.t, V: s.v})
					}
				}
			}
		}
		lock.Unlock()
		if len(rec.floats)+len(rec.hists)+len(rec.fhists) >= 10000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := w.Truncate(seg); err != nil {
		return fmt.Errorf("metric head: rewrite write-behind log: %w", err)
	}
	return nil
}

// BeginOOOFlush sets the out-of-order samples held so far aside to be written out (with those of an earlier
// flush that did not end), and starts a new write-behind segment for the ones that come after. It returns the
// time range of the samples set aside; ok is false when there are none. The DB runs one flush at a time.
func (h *Head) BeginOOOFlush() (mint, maxt int64, ok bool, err error) {
	h.ooo.mu.Lock()
	defer h.ooo.mu.Unlock()
	mint, maxt = math.MaxInt64, math.MinInt64
	for i := range h.ooo.series {
		h.locks[i].Lock()
		for _, o := range h.ooo.series[i] {
			if len(o.cur) > 0 {
				o.old = mergeOOO(o.old, o.cur, math.MinInt64, math.MaxInt64)
				o.cur = nil
			}
			if len(o.old) > 0 {
				mint, maxt = min(mint, o.old[0].t), max(maxt, o.old[len(o.old)-1].t)
			}
		}
		h.locks[i].Unlock()
	}
	if mint > maxt {
		return 0, 0, false, nil
	}
	if h.ooo.wbl != nil {
		if h.ooo.flushSeg, err = h.ooo.wbl.NextSegment(); err != nil {
			return 0, 0, false, fmt.Errorf("metric head: start a write-behind segment: %w", err)
		}
	}
	return mint, maxt, true, nil
}

// OOOFlushRange reads the samples BeginOOOFlush set aside, in [mint, maxt], for the compactor.
func (h *Head) OOOFlushRange(mint, maxt int64) tsdb.BlockReader { return h.oooRange(mint, maxt, true) }

// EndOOOFlush drops the samples set aside, now that blocks hold them and are loaded, and the write-behind
// segments before the flush began. It waits for the out-of-order readers open before it, which may still read
// them.
func (h *Head) EndOOOFlush() error {
	h.readMu.Lock()
	open := make([]*oooRange, 0, len(h.ooo.readers))
	for r := range h.ooo.readers {
		open = append(open, r)
	}
	for {
		waiting := false
		for _, r := range open {
			if h.ooo.readers[r] > 0 {
				waiting = true
				break
			}
		}
		if !waiting {
			break
		}
		h.readEnd.Wait()
	}
	h.readMu.Unlock()
	for i := range h.ooo.series {
		h.locks[i].Lock()
		for ref, o := range h.ooo.series[i] {
			h.ooo.n.Add(-int64(len(o.old)))
			o.old = nil
			if len(o.cur) == 0 {
				delete(h.ooo.series[i], ref)
			}
		}
		h.locks[i].Unlock()
	}
	if h.ooo.wbl != nil {
		if err := h.ooo.wbl.Truncate(h.ooo.flushSeg); err != nil {
			return fmt.Errorf("metric head: remove flushed write-behind segments: %w", err)
		}
	}
	return nil
}

// mergeOOO returns the samples of a and b (each by time) in [mint, maxt], by time, a's first at a timestamp
// both hold.
func mergeOOO(a, b []oooSample, mint, maxt int64) []oooSample {
	out := make([]oooSample, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var s oooSample
		switch {
		case j == len(b) || (i < len(a) && a[i].t <= b[j].t):
			s = a[i]
			if j < len(b) && b[j].t == s.t {
				j++
			}
			i++
		default:
			s = b[j]
			j++
		}
		if s.t >= mint && s.t <= maxt {
			out = append(out, s)
		}
	}
	return out
}

// OOOQuerier is a storage.Querier over the out-of-order samples in [mint, maxt]; the DB merges it with the
// head's and the blocks' queriers.
func (h *Head) OOOQuerier(mint, maxt int64) (storage.Querier, error) {
	return tsdb.NewBlockQuerier(h.oooRange(mint, maxt, false), mint, maxt)
}

// OOOChunkQuerier is OOOQuerier's chunk form.
func (h *Head) OOOChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return tsdb.NewBlockChunkQuerier(h.oooRange(mint, maxt, false), mint, maxt)
}

// oooRange is the out-of-order samples in [mint, maxt] as a tsdb.BlockReader: of the series that hold any
// there, one chunk each, read as an iterable over a copy of its samples.
type oooRange struct {
	h          *Head
	mint, maxt int64
	flushing   bool // only the samples a flush set aside
	id         ulid.ULID
	refs       []storage.SeriesRef // series with samples in the range, ascending
}

func (h *Head) oooRange(mint, maxt int64, flushing bool) *oooRange {
	r := &oooRange{h: h, mint: mint, maxt: maxt, flushing: flushing, id: ulid.MustNew(ulid.Now(), nil)}
	for i := range h.ooo.series {
		h.locks[i].Lock()
		for ref, o := range h.ooo.series[i] {
			if _, _, ok := r.bounds(o); ok {
				r.refs = append(r.refs, storage.SeriesRef(ref))
			}
		}
		h.locks[i].Unlock()
	}
	slices.Sort(r.refs)
	return r
}

// bounds is the time range of o's samples in the range; the caller holds the series' lock.
func (r *oooRange) bounds(o *oooSeries) (mint, maxt int64, ok bool) {
	mint, maxt = math.MaxInt64, math.MinInt64
	lists := [][]oooSample{o.old, o.cur}
	if r.flushing {
		lists = lists[:1]
	}
	for _, l := range lists {
		i := sort.Search(len(l), func(i int) bool { return l[i].t >= r.mint })
		j := sort.Search(len(l), func(i int) bool { return l[i].t > r.maxt })
		if i < j {
			mint, maxt = min(mint, l[i].t), max(maxt, l[j-1].t)
		}
	}
	return mint, maxt, mint <= maxt
}

func (r *oooRange) register(delta int) {
	h := r.h
	h.readMu.Lock()
	if h.ooo.readers == nil {
		h.ooo.readers = map[*oooRange]int{}
	}
	if h.ooo.readers[r] += delta; h.ooo.readers[r] <= 0 {
		delete(h.ooo.readers, r)
		h.readEnd.Broadcast()
	}
	h.readMu.Unlock()
}

func (r *oooRange) Index() (tsdb.IndexReader, error) {
	r.register(1)
	return &oooIndex{indexReader: &indexReader{r: &RangeHead{h: r.h, mint: r.mint, maxt: r.maxt}}, o: r}, nil
}

func (r *oooRange) Chunks() (tsdb.ChunkReader, error) {
	r.register(1)
	return &oooChunks{o: r}, nil
}

func (r *oooRange) Tombstones() (tombstones.Reader, error) { return r.h.tombstones(), nil }
func (r *oooRange) Size() int64                            { return 0 }
func (r *oooRange) Meta() tsdb.BlockMeta {
	return tsdb.BlockMeta{ULID: r.id, MinTime: r.mint, MaxTime: r.maxt, Stats: tsdb.BlockStats{NumSeries: uint64(len(r.refs))}}
}

// oooIndex is the head's index narrowed to the series with out-of-order samples in the range.
type oooIndex struct {
	*indexReader
	o      *oooRange
	closed sync.Once
}

func (ix *oooIndex) Close() error {
	ix.closed.Do(func() { ix.o.register(-1) })
	return nil
}

func (ix *oooIndex) narrow(p index.Postings) index.Postings {
	return index.Intersect(p, index.NewListPostings(ix.o.refs))
}

func (ix *oooIndex) Postings(ctx context.Context, name string, values ...string) (index.Postings, error) {
	p, err := ix.indexReader.Postings(ctx, name, values...)
	if err != nil {
		return nil, err
	}
	return ix.narrow(p), nil
}

func (ix *oooIndex) PostingsForLabelMatching(ctx context.Context, name string, match func(string) bool) index.Postings {
	return ix.narrow(ix.indexReader.PostingsForLabelMatching(ctx, name, match))
}

func (ix *oooIndex) PostingsForAllLabelValues(ctx context.Context, name string) index.Postings {
	return ix.narrow(ix.indexReader.PostingsForAllLabelValues(ctx, name))
}

// Symbols are the names and values of the series listed, sorted.
func (ix *oooIndex) Symbols() index.StringIter {
	seen := map[string]struct{}{}
	for _, ref := range ix.o.refs {
		if b, ok := ix.o.h.labelsOf(ref); ok {
			rangeLabels(b, func(n, v string) bool { seen[n], seen[v] = struct{}{}, struct{}{}; return true })
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return index.NewStringListIter(out)
}

func (ix *oooIndex) selected(ctx context.Context, ms []*labels.Matcher) (index.Postings, error) {
	if len(ms) == 0 {
		return index.NewListPostings(ix.o.refs), nil
	}
	return tsdb.PostingsForMatchers(ctx, ix, ms...)
}

func (ix *oooIndex) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	p, err := ix.selected(ctx, ms)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var out []string
	for p.Next() {
		if b, ok := ix.o.h.labelsOf(p.At()); ok {
			if v, ok := labelValue(b, name); ok {
				if _, dup := seen[v]; !dup {
					seen[v] = struct{}{}
					out = append(out, v)
				}
			}
		}
	}
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out, p.Err()
}

func (ix *oooIndex) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	vs, err := ix.LabelValues(ctx, name, nil, ms...)
	slices.Sort(vs)
	if err == nil && hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		vs = vs[:hints.Limit]
	}
	return vs, err
}

func (ix *oooIndex) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	p, err := ix.selected(ctx, ms)
	if err != nil {
		return nil, err
	}
	return ix.LabelNamesFor(ctx, p)
}

// Series gives ref's labels and one chunk meta spanning its out-of-order samples in the range.
func (ix *oooIndex) Series(ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	h := ix.o.h
	if err := ix.indexReader.Series(ref, builder, nil); err != nil || chks == nil {
		return err
	}
	*chks = (*chks)[:0]
	r := uint32(ref)
	lock := &h.locks[r%lockStripes]
	lock.Lock()
	defer lock.Unlock()
	if o := h.ooo.series[r%lockStripes][r]; o != nil {
		if mint, maxt, ok := ix.o.bounds(o); ok {
			*chks = append(*chks, chunks.Meta{Ref: chunks.ChunkRef(r), MinTime: mint, MaxTime: maxt})
		}
	}
	return nil
}

// oooChunks hands out a series' out-of-order samples in a meta's range as an iterable over a copy.
type oooChunks struct {
	o      *oooRange
	closed sync.Once
}

func (c *oooChunks) Close() error {
	c.closed.Do(func() { c.o.register(-1) })
	return nil
}

func (c *oooChunks) ChunkOrIterable(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	h := c.o.h
	ref := uint32(meta.Ref)
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	var samples []oooSample
	if o := h.ooo.series[ref%lockStripes][ref]; o != nil {
		cur := o.cur
		if c.o.flushing {
			cur = nil
		}
		samples = mergeOOO(o.old, cur, meta.MinTime, meta.MaxTime)
	}
	lock.Unlock()
	return nil, oooIterable(samples), nil
}

// oooIterable iterates over out-of-order samples, with storage's list iterator.
type oooIterable []oooSample

func (s oooIterable) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIteratorWithCopy(s)
}

func (s oooIterable) Get(i int) chunks.Sample { return s[i] }
func (s oooIterable) Len() int                { return len(s) }

// oooSample is a chunks.Sample.
func (s oooSample) T() int64                { return s.t }
func (s oooSample) ST() int64               { return 0 } // the head keeps no start timestamps
func (s oooSample) F() float64              { return s.v }
func (s oooSample) H() *histogram.Histogram { return s.h }
func (s oooSample) Copy() chunks.Sample     { return oooHistogramCopy(s) }
func (s oooSample) Type() chunkenc.ValueType {
	switch {
	case s.h != nil:
		return chunkenc.ValHistogram
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	}
	return chunkenc.ValFloat
}

// FH is the sample's float histogram, an integer one converted, as readers of a histogram sample may ask.
func (s oooSample) FH() *histogram.FloatHistogram {
	if s.h != nil {
		return s.h.ToFloat(nil)
	}
	return s.fh
}

func oooHistogramCopy(s oooSample) oooSample {
	if s.h != nil {
		s.h = s.h.Copy()
	}
	if s.fh != nil {
		s.fh = s.fh.Copy()
	}
	return s
}
