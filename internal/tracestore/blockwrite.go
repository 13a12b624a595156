package tracestore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/oklog/ulid/v2"
	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

// tagSummary collects attribute keys and up to maxTagValues values per key, by scope, for meta.json.
type tagSummary struct {
	scopes map[string]map[string]*tagVals
}

type tagVals struct {
	seen map[string]struct{}
	list []string
}

func newTagSummary() *tagSummary {
	return &tagSummary{scopes: map[string]map[string]*tagVals{"span": {}, "resource": {}}}
}

func (t *tagSummary) vals(scope string, key []byte) *tagVals {
	m := t.scopes[scope]
	if m == nil {
		m = map[string]*tagVals{}
		t.scopes[scope] = m
	}
	tv := m[string(key)]
	if tv == nil {
		tv = &tagVals{seen: map[string]struct{}{}, list: []string{}}
		m[string(key)] = tv
	}
	return tv
}

// addWire notes a KeyValue read from the wire.
func (t *tagSummary) addWire(scope string, key, val []byte, typ int, num uint64) {
	tv := t.vals(scope, key)
	if len(tv.list) >= maxTagValues {
		return
	}
	if typ == 1 {
		if len(val) > maxValueBytes {
			return
		}
		if _, ok := tv.seen[string(val)]; ok {
			return
		}
		s := string(val)
		tv.seen[s] = struct{}{}
		tv.list = append(tv.list, s)
		return
	}
	if s := anyString(val, typ, num); s != "" {
		tv.addString(s)
	}
}

func (tv *tagVals) addString(s string) {
	if len(tv.list) >= maxTagValues || len(s) > maxValueBytes {
		return
	}
	if _, ok := tv.seen[s]; ok {
		return
	}
	tv.seen[s] = struct{}{}
	tv.list = append(tv.list, s)
}

// merge adds a block's summary (compaction).
func (t *tagSummary) merge(tags map[string]map[string][]string) {
	for scope, keys := range tags {
		for k, vs := range keys {
			tv := t.vals(scope, []byte(k))
			for _, v := range vs {
				tv.addString(v)
			}
		}
	}
}

func (t *tagSummary) result() map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for scope, keys := range t.scopes {
		out[scope] = map[string][]string{}
		for k, tv := range keys {
			out[scope][k] = tv.list
		}
	}
	return out
}

// blockWriter streams rows, sorted by trace id then start time and free of duplicates, into a block: the
// parquet file goes to a temporary file under <data_dir>/<tenant>/tmp, then the block is uploaded.
type blockWriter struct {
	in    *instance
	ctx   context.Context
	tmp   *os.File
	bw    *bufio.Writer
	w     *parquet.GenericWriter[spanRow]
	rows  []spanRow
	arena []byte
	index []indexEntry
	meta  blockMeta
	tags  *tagSummary
	stats *statsBuilder
	n     int
}

func (in *instance) newBlockWriter(ctx context.Context, level int) (*blockWriter, error) {
	dir := filepath.Join(in.s.tenantDir(in.tenant), "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	f, err := os.CreateTemp(dir, "block-*.parquet")
	if err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	bw := &blockWriter{in: in, ctx: ctx, tmp: f, bw: bufio.NewWriterSize(f, 1<<20), rows: make([]spanRow, 0, 1024),
		tags: newTagSummary(), stats: newStatsBuilder(),
		meta: blockMeta{Format: blockFormat, Tenant: in.tenant, Level: level, CreatedAt: in.s.now().UTC()}}
	bw.w = parquet.NewGenericWriter[spanRow](bw.bw, parquet.Compression(pageCodec), parquet.MaxRowsPerRowGroup(rowsPerGroup))
	return bw, nil
}

// keep copies b into the writer's arena, valid until the next batch of rows is written.
func (bw *blockWriter) keep(b []byte) []byte {
	n := len(bw.arena)
	bw.arena = append(bw.arena, b...)
	return bw.arena[n:len(bw.arena):len(bw.arena)]
}

// wrap appends the span column encoding of a Span message to the arena.
func (bw *blockWriter) wrap(raw []byte) []byte {
	n := len(bw.arena)
	bw.arena = wrapSpan(bw.arena, raw)
	return bw.arena[n:len(bw.arena):len(bw.arena)]
}

// add appends a row; its bytes must stay valid until the next flush (the arena, or memory of the caller).
func (bw *blockWriter) add(tid pcommon.TraceID, r spanRow) error {
	if n := len(bw.index); n == 0 || bw.index[n-1].id != tid {
		bw.index = append(bw.index, indexEntry{id: tid, first: uint32(bw.n)})
	}
	bw.index[len(bw.index)-1].count++
	st, en := uint64(r.Start), uint64(r.Start+r.Duration)
	if bw.n == 0 || st < bw.meta.StartUnixNano {
		bw.meta.StartUnixNano = st
	}
	if en > bw.meta.EndUnixNano {
		bw.meta.EndUnixNano = en
	}
	bw.stats.add(&r)
	bw.n++
	bw.rows = append(bw.rows, r)
	if len(bw.rows) == cap(bw.rows) {
		return bw.flushRows()
	}
	return nil
}

func (bw *blockWriter) flushRows() error {
	if err := bw.ctx.Err(); err != nil {
		return fmt.Errorf("write block: %w", err) // shutdown deadline: the traces stay in the WAL
	}
	if len(bw.rows) > 0 {
		if _, err := bw.w.Write(bw.rows); err != nil {
			return fmt.Errorf("write parquet: %w", err)
		}
	}
	clear(bw.rows)
	bw.rows = bw.rows[:0]
	bw.arena = bw.arena[:0]
	return nil
}

// abort drops the temporary file (a no-op after finish).
func (bw *blockWriter) abort() {
	if bw.tmp != nil {
		_ = bw.tmp.Close()
		_ = os.Remove(bw.tmp.Name())
		bw.tmp = nil
	}
}

// finish closes the parquet file, writes index, bloom filter and meta.json, and uploads the block.
func (bw *blockWriter) finish() (*block, error) {
	defer bw.abort()
	in := bw.in
	if err := bw.flushRows(); err != nil {
		return nil, err
	}
	if bw.n == 0 {
		return nil, fmt.Errorf("write block: no spans to write")
	}
	if err := bw.w.Close(); err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	if err := bw.bw.Flush(); err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	size, err := bw.tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	if _, err := bw.tmp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("write block: %w", err)
	}
	index := bw.index
	meta := bw.meta
	id := ulid.MustNew(ulid.Timestamp(in.s.now()), rand.Reader).String()
	meta.ULID = id
	meta.Traces = len(index)
	meta.Spans = bw.n
	meta.MinTraceID = index[0].id.String()
	meta.MaxTraceID = index[len(index)-1].id.String()
	meta.Size = size
	meta.Tags = bw.tags.result()
	meta.Columns = bw.stats.result()

	bloom := newBloom(len(index), bloomFPRate)
	idx := make([]byte, 0, len(indexMagic)+4+len(index)*indexEntrySz)
	idx = append(idx, indexMagic...)
	idx = binary.LittleEndian.AppendUint32(idx, uint32(len(index)))
	for _, e := range index {
		bloom.add(e.id)
		idx = append(idx, e.id[:]...)
		idx = binary.LittleEndian.AppendUint32(idx, e.first)
		idx = binary.LittleEndian.AppendUint32(idx, e.count)
	}
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	prefix := in.blockPrefix(id)
	if err := in.s.bkt.Upload(bw.ctx, prefix+dataFile, bw.tmp); err != nil {
		return nil, fmt.Errorf("upload block %s/%s: %w", id, dataFile, err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{indexFile, idx}, {bloomFile, bloom.marshal()}, {metaFile, metaJSON}} {
		if err := in.s.bkt.Upload(bw.ctx, prefix+f.name, bytes.NewReader(f.b)); err != nil {
			return nil, fmt.Errorf("upload block %s/%s: %w", id, f.name, err)
		}
	}
	in.s.m.blocksWritten.Inc()
	in.s.m.blockBytes.Add(float64(size))
	// Keep index and bloom filter: the first lookup need not read them back from the bucket.
	b := &block{meta: meta, minID: index[0].id, maxID: index[len(index)-1].id, index: index, bloom: bloom}
	return b, nil
}

// writeLiveBlock writes traces from memory as one block, reusing each span's encoding from its WAL record.
// Pieces of one trace (cut more than once) are merged; duplicate spans (same span id) are dropped.
func (in *instance) writeLiveBlock(ctx context.Context, traces []*liveTrace) (*block, error) {
	sorted := append([]*liveTrace(nil), traces...)
	sort.SliceStable(sorted, func(i, j int) bool { return bytes.Compare(sorted[i].id[:], sorted[j].id[:]) < 0 })
	bw, err := in.newBlockWriter(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer bw.abort()
	seenSpan := map[pcommon.SpanID]struct{}{}
	var spans []*liveSpan
	seenRes := map[*rawResource]bool{}
	noteSpan := func(k, v []byte, typ int, num uint64) error {
		bw.tags.addWire("span", k, v, typ, num)
		return nil
	}
	noteRes := func(k, v []byte, typ int, num uint64) error {
		bw.tags.addWire("resource", k, v, typ, num)
		return nil
	}
	for i := 0; i < len(sorted); {
		id := sorted[i].id
		spans = spans[:0]
		j := i
		for ; j < len(sorted) && sorted[j].id == id; j++ {
			for k := range sorted[j].spans {
				spans = append(spans, &sorted[j].spans[k])
			}
		}
		i = j
		sort.SliceStable(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
		clear(seenSpan)
		for _, sp := range spans {
			spanID, parentID := sp.ids()
			if _, dup := seenSpan[spanID]; dup {
				continue
			}
			seenSpan[spanID] = struct{}{}
			res, raw := sp.res(), sp.rawBytes()
			row := spanRow{TraceID: bw.keep(id[:]), SpanID: bw.keep(spanID[:]), Start: sp.start, Duration: sp.duration(),
				Name: sp.name(), Service: res.service, Kind: sp.kind, StatusCode: sp.status,
				Resource: res.enc, Scope: sp.scope.enc, Span: bw.wrap(raw)}
			if !parentID.IsEmpty() {
				row.ParentID = bw.keep(parentID[:])
			}
			_ = eachAttr(raw, 9, noteSpan)
			if !seenRes[res] {
				seenRes[res] = true
				_ = eachAttr(res.attrs, 1, noteRes)
			}
			if err := bw.add(id, row); err != nil {
				return nil, err
			}
		}
	}
	return bw.finish()
}
