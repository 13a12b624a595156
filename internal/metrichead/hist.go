package metrichead

import (
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// Native histograms. Few series carry them, so their state is kept beside the series (a map by ref) rather than
// in every series, and their chunks are Prometheus' own histogram chunk types: its appender decides when a
// counter reset or a change of buckets needs a new chunk or a recoded one. A series may hold floats and
// histograms over time; its timestamps increase across both.

const (
	histChunkRef           = uint64(1) << 62 // a chunk ref of histogram chunks: its page record starts with the encoding
	histTargetBytes        = chunkenc.TargetBytesPerHistogramChunk
	histMaxSamplesPerChunk = 120 * 4 // a bound besides the bytes target, for histograms that barely change
)

// histSeries is one series' histograms; the series' stripe lock guards it.
type histSeries struct {
	chunk  chunkenc.Chunk // open chunk, nil when none
	app    chunkenc.Appender
	minT   int64
	lastT  int64
	lastH  *histogram.Histogram
	lastFH *histogram.FloatHistogram
	closed []chunkRef
}

// histograms maps series refs to their histogram state.
type histograms struct {
	mu sync.RWMutex
	m  map[uint32]*histSeries
}

func (hs *histograms) get(ref uint32) *histSeries {
	hs.mu.RLock()
	defer hs.mu.RUnlock()
	return hs.m[ref]
}

func (hs *histograms) getOrCreate(ref uint32) *histSeries {
	if s := hs.get(ref); s != nil {
		return s
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[uint32]*histSeries{}
	}
	s := hs.m[ref]
	if s == nil {
		s = &histSeries{}
		hs.m[ref] = s
	}
	return s
}

// lastT is the newest timestamp of a series over floats and histograms; ok is false when it holds none. The
// caller holds the series' lock.
func (h *Head) lastT(ref uint32, s *series) (t int64, ok bool) {
	if s.chunk != nil || len(s.closed) > 0 {
		t, ok = s.st.t, true
	}
	if s.st.hasHist {
		if hs := h.hists.get(ref); hs != nil && (hs.chunk != nil || len(hs.closed) > 0) && (!ok || hs.lastT > t) {
			t, ok = hs.lastT, true
		}
	}
	return t, ok
}

// histAppendable checks a histogram sample against a series; the caller holds its lock. dup reports the same
// sample again (accepted, not stored).
func (h *Head) histAppendable(ref uint32, s *series, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) (dup bool, err error) {
	last, ok := h.lastT(ref, s)
	if !ok || t > last {
		return false, nil
	}
	if t < last {
		return false, storage.ErrOutOfOrderSample
	}
	if s.st.hasHist {
		if hs := h.hists.get(ref); hs != nil && hs.lastT == t {
			switch {
			case hv != nil && hs.lastH != nil && hv.Equals(hs.lastH):
				return true, nil
			case fh != nil && hs.lastFH != nil && fh.Equals(hs.lastFH):
				return true, nil
			}
		}
	}
	return false, storage.ErrDuplicateSampleForTimestamp
}

// AppendHistogram adds a histogram sample (hv or fh, not both) to series ref.
func (h *Head) AppendHistogram(ref uint32, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram) error {
	_, err := h.appendHistogram(ref, t, hv, fh, replayInOrder)
	return err
}

// appendHistogram is AppendHistogram as p says; ooo reports a sample that went to the out-of-order samples.
func (h *Head) appendHistogram(ref uint32, t int64, hv *histogram.Histogram, fh *histogram.FloatHistogram, p placement) (ooo bool, err error) {
	if (hv == nil) == (fh == nil) {
		return false, fmt.Errorf("metric head: a histogram sample needs one of an integer and a float histogram")
	}
	s := h.get(ref)
	if s == nil {
		return false, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
	}
	lock := &h.locks[ref%lockStripes]
	lock.Lock()
	defer lock.Unlock()
	if p != replayInOrder && s.st.pending > 0 {
		s.st.pending--
	}
	if s.labels == deadLabels {
		return false, fmt.Errorf("metric head: series %d: %w", ref, storage.ErrNotFound)
	}
	if p == commitOOO {
		err := h.insertOOO(ref, oooHistogram(t, hv, fh))
		return err == nil, err
	}
	var dup bool
	if t < h.minValid.Load() {
		err = storage.ErrOutOfBounds
	} else {
		dup, err = h.histAppendable(ref, s, t, hv, fh)
	}
	if err != nil && p == commitInOrder && h.oooAllowed(t, err) {
		err = h.insertOOO(ref, oooHistogram(t, hv, fh))
		return err == nil, err
	}
	if dup || err != nil {
		return false, err
	}
	if s.chunk != nil { // a histogram after floats: their chunk ends, so the series' chunks do not overlap
		h.closeChunk(s)
	}
	s.st.hasHist = true
	hs := h.hists.getOrCreate(ref)
	enc := chunkenc.EncHistogram
	if fh != nil {
		enc = chunkenc.EncFloatHistogram
	}
	if hs.chunk != nil && (hs.chunk.Encoding() != enc || len(hs.chunk.Bytes()) >= histTargetBytes ||
		hs.chunk.NumSamples() >= histMaxSamplesPerChunk || t >= h.rangeEnd(hs.minT)) {
		h.closeHistChunk(hs)
	}
	var prev chunkenc.Appender
	if hs.chunk == nil {
		c, err := chunkenc.NewEmptyChunk(enc)
		if err != nil {
			return false, err
		}
		app, err := c.Appender()
		if err != nil {
			return false, err
		}
		prev, hs.chunk, hs.app, hs.minT = hs.app, c, app, t
	}
	var (
		newChunk chunkenc.Chunk
		recoded  bool
	)
	if hv != nil {
		newChunk, recoded, hs.app, err = hs.app.AppendHistogram(prev, 0, t, hv, false)
		hs.lastH, hs.lastFH = hv, nil
	} else {
		newChunk, recoded, hs.app, err = hs.app.AppendFloatHistogram(prev, 0, t, fh, false)
		hs.lastH, hs.lastFH = nil, fh
	}
	if err != nil {
		return false, fmt.Errorf("metric head: append histogram: %w", err)
	}
	switch {
	case newChunk == nil:
	case recoded:
		hs.chunk = newChunk
	default: // a counter reset or a new layout: the appender cut a new chunk holding this sample
		h.closeHistChunk(hs)
		hs.chunk, hs.minT = newChunk, t
	}
	hs.lastT = t
	h.samples.Add(1)
	for mt := h.minT.Load(); t < mt && !h.minT.CompareAndSwap(mt, t); mt = h.minT.Load() {
	}
	for mt := h.maxT.Load(); t > mt && !h.maxT.CompareAndSwap(mt, t); mt = h.maxT.Load() {
	}
	return false, nil
}

// closeHistChunk moves a histogram series' open chunk to the pages, its encoding first.
func (h *Head) closeHistChunk(hs *histSeries) {
	if hs.chunk == nil || hs.chunk.NumSamples() == 0 {
		hs.chunk = nil
		return
	}
	b := append([]byte{byte(hs.chunk.Encoding())}, hs.chunk.Bytes()...)
	addr := h.chunks.put(b, hs.lastT)
	hs.closed = append(hs.closed, chunkRef{minT: hs.minT, maxT: hs.lastT, addr: addr})
	hs.chunk = nil
}

// histMetas appends the metas of a histogram series' chunks that overlap [mint, maxt]; the caller holds the
// series' lock.
func (hs *histSeries) metas(ref uint32, mint, maxt int64, out []chunks.Meta) []chunks.Meta {
	for _, c := range hs.closed {
		if c.maxT >= mint && c.minT <= maxt {
			out = append(out, chunks.Meta{Ref: chunks.ChunkRef(c.addr | histChunkRef), MinTime: c.minT, MaxTime: c.maxT})
		}
	}
	if hs.chunk != nil && hs.lastT >= mint && hs.minT <= maxt {
		out = append(out, chunks.Meta{Ref: chunks.ChunkRef(openChunkRef | histChunkRef | uint64(ref)), MinTime: hs.minT, MaxTime: hs.lastT})
	}
	return out
}

// histChunk returns the chunk a histogram chunk ref names, bounded to meta.MaxTime when samples came after it.
func (h *Head) histChunk(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	ref := uint64(meta.Ref) &^ histChunkRef
	if ref&openChunkRef == 0 {
		b, ok := h.chunks.get(ref)
		if !ok || len(b) == 0 {
			return nil, nil, fmt.Errorf("metric head chunk %d: %w", ref, storage.ErrNotFound)
		}
		c, err := chunkenc.FromData(chunkenc.Encoding(b[0]), b[1:])
		return c, nil, err
	}
	sref := uint32(ref &^ openChunkRef)
	lock := &h.locks[sref%lockStripes]
	lock.Lock()
	hs := h.hists.get(sref)
	if hs == nil {
		lock.Unlock()
		return nil, nil, fmt.Errorf("metric head series %d: %w", sref, storage.ErrNotFound)
	}
	var (
		enc   chunkenc.Encoding
		b     []byte
		lastT int64
	)
	if hs.chunk != nil && hs.minT == meta.MinTime {
		enc, b, lastT = hs.chunk.Encoding(), slices.Clone(hs.chunk.Bytes()), hs.lastT
	} else {
		for _, c := range hs.closed {
			if c.minT == meta.MinTime {
				lock.Unlock()
				pb, ok := h.chunks.get(c.addr)
				if !ok || len(pb) == 0 {
					return nil, nil, fmt.Errorf("metric head chunk %d: %w", c.addr, storage.ErrNotFound)
				}
				return boundChunk(chunkenc.Encoding(pb[0]), pb[1:], meta.MaxTime, c.maxT)
			}
		}
	}
	lock.Unlock()
	if b == nil {
		return nil, nil, fmt.Errorf("metric head series %d histogram chunk at %d: %w", sref, meta.MinTime, storage.ErrNotFound)
	}
	return boundChunk(enc, b, meta.MaxTime, lastT)
}

// boundChunk returns the chunk, re-encoded without the samples after maxt when it holds some.
func boundChunk(enc chunkenc.Encoding, b []byte, maxt, lastT int64) (chunkenc.Chunk, chunkenc.Iterable, error) {
	c, err := chunkenc.FromData(enc, b)
	if err != nil || lastT <= maxt {
		return c, nil, err
	}
	out, err := chunkenc.NewEmptyChunk(enc)
	if err != nil {
		return nil, nil, err
	}
	app, err := out.Appender()
	if err != nil {
		return nil, nil, err
	}
	it := c.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone && it.AtT() <= maxt; vt = it.Next() {
		switch vt {
		case chunkenc.ValHistogram:
			t, hv := it.AtHistogram(nil)
			_, _, app, err = app.AppendHistogram(nil, 0, t, hv, true)
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(nil)
			_, _, app, err = app.AppendFloatHistogram(nil, 0, t, fh, true)
		default:
			err = fmt.Errorf("a %s sample in a %s chunk", vt, enc)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("metric head: cut histogram chunk at %d: %w", maxt, err)
		}
	}
	return out, nil, it.Err()
}

// truncate drops the histogram chunks that end before mint; the caller holds the series' lock. It returns the
// oldest timestamp left, and whether any is.
func (hs *histSeries) truncate(mint int64) (int64, bool) {
	i := 0
	for i < len(hs.closed) && hs.closed[i].maxT < mint {
		i++
	}
	if i > 0 {
		hs.closed = append(hs.closed[:0:0], hs.closed[i:]...)
	}
	if hs.chunk != nil && hs.lastT < mint {
		hs.chunk = nil
	}
	switch {
	case len(hs.closed) > 0:
		return hs.closed[0].minT, true
	case hs.chunk != nil:
		return hs.minT, true
	}
	return 0, false
}
