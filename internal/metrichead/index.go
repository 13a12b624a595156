package metrichead

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"
)

// openChunkRef marks a chunk ref as a series' open chunk (the low bits are the series ref); other chunk refs are
// chunk page addresses.
const openChunkRef = uint64(1) << 63

// RangeHead is the head's samples in [mint, maxt] as a tsdb.BlockReader, for tsdb.NewBlockQuerier and for the
// compactor that writes a block.
type RangeHead struct {
	h          *Head
	mint, maxt int64
	id         ulid.ULID
}

var _ tsdb.BlockReader = (*RangeHead)(nil)

// Range returns a reader of the head's samples between mint and maxt inclusive; samples before the last
// truncation point are not read (a block holds them).
func (h *Head) Range(mint, maxt int64) *RangeHead {
	mint = max(mint, h.minValid.Load())
	return &RangeHead{h: h, mint: mint, maxt: maxt, id: ulid.MustNew(ulid.Now(), nil)}
}

// Querier is a storage.Querier over the head's samples in [mint, maxt].
func (h *Head) Querier(mint, maxt int64) (storage.Querier, error) {
	r := h.Range(mint, maxt)
	return tsdb.NewBlockQuerier(r, r.mint, r.maxt)
}

// ChunkQuerier is a storage.ChunkQuerier over the head's samples in [mint, maxt].
func (h *Head) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	r := h.Range(mint, maxt)
	return tsdb.NewBlockChunkQuerier(r, r.mint, r.maxt)
}

// Index and Chunks register a reader of the range that truncation waits for; closing the reader releases it.
func (r *RangeHead) Index() (tsdb.IndexReader, error) {
	r.h.acquire(r)
	return &indexReader{r: r}, nil
}

func (r *RangeHead) Chunks() (tsdb.ChunkReader, error) {
	r.h.acquire(r)
	return &chunkReader{h: r.h, r: r}, nil
}

func (r *RangeHead) Tombstones() (tombstones.Reader, error) { return r.h.tombstones(), nil }

func (r *RangeHead) Size() int64 { return 0 }
func (r *RangeHead) Meta() tsdb.BlockMeta {
	return tsdb.BlockMeta{ULID: r.id, MinTime: max(r.mint, r.h.MinTime()), MaxTime: min(r.maxt, r.h.MaxTime()),
		Stats: tsdb.BlockStats{NumSeries: r.h.NumSeries()}}
}

// indexReader answers the TSDB's index questions from the head's registry and postings. Series with no chunk in
// the range are still listed by postings; Series gives them no chunks and the querier skips them.
type indexReader struct {
	r      *RangeHead
	closed sync.Once
}

var _ tsdb.IndexReader = (*indexReader)(nil)

func (ir *indexReader) Close() error {
	ir.closed.Do(func() { ir.r.h.release(ir.r) })
	return nil
}

// Symbols is every name and value, sorted: the block writer's symbol table.
func (ir *indexReader) Symbols() index.StringIter {
	h := ir.r.h
	h.mu.RLock()
	seen := map[string]struct{}{}
	for n := range h.post.names {
		seen[n] = struct{}{}
		h.post.values(n, func(v string) { seen[v] = struct{}{} })
	}
	h.mu.RUnlock()
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return index.NewStringListIter(out)
}

func (ir *indexReader) SortedLabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	vs, err := ir.labelValues(ctx, name, ms)
	slices.Sort(vs)
	if err == nil && hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		vs = vs[:hints.Limit]
	}
	return vs, err
}

func (ir *indexReader) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, error) {
	vs, err := ir.labelValues(ctx, name, ms)
	if err == nil && hints != nil && hints.Limit > 0 && len(vs) > hints.Limit {
		vs = vs[:hints.Limit]
	}
	return vs, err
}

// outside reports a range that the head's samples do not reach: its names and values are then none, as for
// Prometheus' head.
func (ir *indexReader) outside() bool {
	h := ir.r.h
	return h.MaxTime() < ir.r.mint || h.MinTime() > ir.r.maxt
}

func (ir *indexReader) labelValues(ctx context.Context, name string, ms []*labels.Matcher) ([]string, error) {
	h := ir.r.h
	if ir.outside() {
		return nil, nil
	}
	if len(ms) == 0 {
		h.mu.RLock()
		defer h.mu.RUnlock()
		var out []string
		h.post.values(name, func(v string) { out = append(out, v) })
		return out, nil
	}
	p, err := tsdb.PostingsForMatchers(ctx, ir, ms...)
	if err != nil {
		return nil, err
	}
	seen := map[string]struct{}{}
	var out []string
	for n := 0; p.Next(); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b, ok := h.labelsOf(p.At())
		if !ok {
			continue
		}
		if v, ok := labelValue(b, name); ok {
			if _, dup := seen[v]; !dup {
				seen[v] = struct{}{}
				out = append(out, v)
			}
		}
	}
	return out, p.Err()
}

// labelsOf returns a series' encoded labels.
func (h *Head) labelsOf(ref storage.SeriesRef) ([]byte, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ref == 0 || ref > storage.SeriesRef(h.count.Load()) {
		return nil, false
	}
	s := h.seriesAt(uint32(ref))
	if s == nil || s.labels == deadLabels {
		return nil, false
	}
	return h.lbls.get(s.labels), true
}

func (ir *indexReader) Postings(ctx context.Context, name string, values ...string) (index.Postings, error) {
	h := ir.r.h
	h.mu.RLock()
	defer h.mu.RUnlock()
	if k, v := index.AllPostingsKey(); name == k && len(values) == 1 && values[0] == v {
		n := h.count.Load()
		if n == 0 {
			return index.EmptyPostings(), nil
		}
		return &rangePostings{cur: 1, last: storage.SeriesRef(n)}, nil
	}
	var its []index.Postings
	for _, v := range values {
		if l := h.post.list(name, v); len(l) > 0 {
			its = append(its, newListPostings(l))
		}
	}
	return index.Merge(ctx, its...), nil
}

func (ir *indexReader) PostingsForLabelMatching(ctx context.Context, name string, match func(string) bool) index.Postings {
	h := ir.r.h
	h.mu.RLock()
	defer h.mu.RUnlock()
	var its []index.Postings
	h.post.values(name, func(v string) {
		if match(v) {
			its = append(its, newListPostings(h.post.list(name, v)))
		}
	})
	return index.Merge(ctx, its...)
}

func (ir *indexReader) PostingsForAllLabelValues(ctx context.Context, name string) index.Postings {
	return ir.PostingsForLabelMatching(ctx, name, func(string) bool { return true })
}

// SortedPostings orders refs by their series' labels.
func (ir *indexReader) SortedPostings(p index.Postings) index.Postings {
	refs, err := index.ExpandPostings(p)
	if err != nil {
		return index.ErrPostings(fmt.Errorf("expand postings: %w", err))
	}
	h := ir.r.h
	h.mu.RLock()
	enc := make([][]byte, len(refs))
	for i, r := range refs {
		if r > 0 && r <= storage.SeriesRef(h.count.Load()) {
			if s := h.seriesAt(uint32(r)); s != nil && s.labels != deadLabels {
				enc[i] = h.lbls.get(s.labels)
			}
		}
	}
	h.mu.RUnlock()
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return compareLabels(enc[idx[a]], enc[idx[b]]) < 0 })
	out := make([]storage.SeriesRef, len(refs))
	for i, j := range idx {
		out[i] = refs[j]
	}
	return index.NewListPostings(out)
}

// ShardedPostings keeps the refs whose labels' stable hash falls in shard shardIndex of shardCount.
func (ir *indexReader) ShardedPostings(p index.Postings, shardIndex, shardCount uint64) index.Postings {
	var out []storage.SeriesRef
	var sb labels.ScratchBuilder
	for p.Next() {
		b, ok := ir.r.h.labelsOf(p.At())
		if !ok {
			continue
		}
		if labels.StableHash(toLabels(b, &sb))%shardCount == shardIndex {
			out = append(out, p.At())
		}
	}
	if err := p.Err(); err != nil {
		return index.ErrPostings(err)
	}
	return index.NewListPostings(out)
}

// Series gives ref's labels and the metas of its chunks that overlap the range.
func (ir *indexReader) Series(ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	h := ir.r.h
	b, ok := h.labelsOf(ref)
	if !ok {
		return storage.ErrNotFound
	}
	builder.Reset()
	rangeLabels(b, func(n, v string) bool { builder.Add(n, v); return true })
	if chks == nil { // labels only, as Prometheus' readers allow
		return nil
	}
	*chks = (*chks)[:0]
	s := h.get(uint32(ref))
	if s == nil {
		return storage.ErrNotFound
	}
	lock := &h.locks[uint32(ref)%lockStripes]
	lock.Lock()
	defer lock.Unlock()
	for _, c := range s.closed {
		if c.maxT >= ir.r.mint && c.minT <= ir.r.maxt {
			*chks = append(*chks, chunks.Meta{Ref: chunks.ChunkRef(c.addr), MinTime: c.minT, MaxTime: c.maxT})
		}
	}
	if s.chunk != nil && s.st.t >= ir.r.mint && s.chunkMinT <= ir.r.maxt {
		*chks = append(*chks, chunks.Meta{Ref: chunks.ChunkRef(openChunkRef | uint64(ref)), MinTime: s.chunkMinT, MaxTime: s.st.t})
	}
	if s.st.hasHist {
		if hs := h.hists.get(uint32(ref)); hs != nil {
			n := len(*chks)
			*chks = hs.metas(uint32(ref), ir.r.mint, ir.r.maxt, *chks)
			if n > 0 && len(*chks) > n {
				slices.SortFunc(*chks, func(a, b chunks.Meta) int { return cmp.Compare(a.MinTime, b.MinTime) })
			}
		}
	}
	return nil
}

func (ir *indexReader) LabelNames(ctx context.Context, ms ...*labels.Matcher) ([]string, error) {
	h := ir.r.h
	if ir.outside() {
		return nil, nil
	}
	if len(ms) == 0 {
		h.mu.RLock()
		defer h.mu.RUnlock()
		return h.post.sortedNames(), nil
	}
	p, err := tsdb.PostingsForMatchers(ctx, ir, ms...)
	if err != nil {
		return nil, err
	}
	return ir.LabelNamesFor(ctx, p)
}

func (ir *indexReader) LabelNamesFor(ctx context.Context, p index.Postings) ([]string, error) {
	seen := map[string]struct{}{}
	for n := 0; p.Next(); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b, ok := ir.r.h.labelsOf(p.At())
		if !ok {
			continue
		}
		rangeLabels(b, func(name, _ string) bool {
			if _, ok := seen[name]; !ok {
				seen[name] = struct{}{}
			}
			return true
		})
	}
	if err := p.Err(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// chunkReader hands out closed chunks from the pages as they are and a copy of an open chunk, cut back to the
// samples its meta promised when samples arrived after Series read it.
type chunkReader struct {
	h      *Head
	r      *RangeHead
	closed sync.Once
}

func (cr *chunkReader) Close() error {
	cr.closed.Do(func() { cr.h.release(cr.r) })
	return nil
}

func (cr *chunkReader) ChunkOrIterable(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	h := cr.h
	ref := uint64(meta.Ref)
	if ref&histChunkRef != 0 {
		return h.histChunk(meta)
	}
	if ref&openChunkRef == 0 {
		b, ok := h.chunks.get(ref)
		if !ok {
			return nil, nil, fmt.Errorf("metric head chunk %d: %w", ref, storage.ErrNotFound)
		}
		c, err := chunkenc.FromData(chunkenc.EncXOR, b)
		return c, nil, err
	}
	sref := uint32(ref &^ openChunkRef)
	s := h.get(sref)
	if s == nil {
		return nil, nil, fmt.Errorf("metric head series %d: %w", sref, storage.ErrNotFound)
	}
	lock := &h.locks[sref%lockStripes]
	lock.Lock()
	var b []byte
	trim := false
	switch {
	case s.chunk != nil && s.chunkMinT == meta.MinTime:
		b, trim = slices.Clone(s.chunk), s.st.t > meta.MaxTime
	default: // closed since Series read it
		for _, c := range s.closed {
			if c.minT == meta.MinTime {
				lock.Unlock()
				cb, ok := h.chunks.get(c.addr)
				if !ok {
					return nil, nil, fmt.Errorf("metric head chunk %d: %w", c.addr, storage.ErrNotFound)
				}
				return trimChunk(cb, meta.MaxTime, c.maxT > meta.MaxTime)
			}
		}
	}
	lock.Unlock()
	if b == nil {
		return nil, nil, fmt.Errorf("metric head series %d chunk at %d: %w", sref, meta.MinTime, storage.ErrNotFound)
	}
	return trimChunk(b, meta.MaxTime, trim)
}

// trimChunk returns b as a chunk; with trim, of its samples up to maxt only.
func trimChunk(b []byte, maxt int64, trim bool) (chunkenc.Chunk, chunkenc.Iterable, error) {
	c, err := chunkenc.FromData(chunkenc.EncXOR, b)
	if err != nil || !trim {
		return c, nil, err
	}
	it := c.Iterator(nil)
	var st xorState
	out := newChunk(len(b))
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		if t > maxt {
			break
		}
		out = xorAppend(out, &st, t, v)
	}
	if err := it.Err(); err != nil {
		return nil, nil, err
	}
	c, err = chunkenc.FromData(chunkenc.EncXOR, out)
	return c, nil, err
}
