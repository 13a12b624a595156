package tracestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/parquet-go/parquet-go"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/traceql"
)

// Block layout in the bucket, under <tenant>/blocks/<ulid>/:
//
//	data.parquet  one row per span (spanRow), sorted by trace id then start time
//	index         sorted trace ids with the first row and the row count of each trace
//	bloom         bloom filter over the trace ids
//	meta.json     blockMeta; written last, so a block without it is incomplete and ignored
//
// A row keeps the span's searchable fields as columns (trace and span ids, times, name, service, kind, status)
// and the exact OTLP encoding of the span, its resource and its scope as byte columns, so that trace by id gives
// back exactly what was sent. Resource and scope columns are dictionary-encoded: the spans of one process share
// one copy in each column chunk.

const (
	blockFormat   = "sprout-parquet-v1"
	dataFile      = "data.parquet"
	indexFile     = "index"
	bloomFile     = "bloom"
	metaFile      = "meta.json"
	bloomFPRate   = 0.01
	maxTagValues  = 200
	indexEntrySz  = 24
	indexMagic    = "SPTI0001"
	bloomMagic    = "SPTB0001"
	maxValueBytes = 256
)

// rowsPerGroup is the number of spans per parquet row group (a variable so that tests can make many small ones).
var rowsPerGroup int64 = 50_000

type spanRow struct {
	TraceID    []byte `parquet:"trace_id"`
	SpanID     []byte `parquet:"span_id"`
	ParentID   []byte `parquet:"parent_span_id"`
	Start      int64  `parquet:"start_unix_nano,delta"`
	Duration   int64  `parquet:"duration_nano"`
	Name       string `parquet:"name,dict"`
	Service    string `parquet:"service_name,dict"`
	Kind       int32  `parquet:"kind"`
	StatusCode int32  `parquet:"status_code"`
	Resource   []byte `parquet:"resource,dict"`
	Scope      []byte `parquet:"scope,dict"`
	Span       []byte `parquet:"span"`
}

// blockMeta describes a block; it is meta.json.
type blockMeta struct {
	Format        string    `json:"format"`
	ULID          string    `json:"ulid"`
	Tenant        string    `json:"tenant"`
	MinTraceID    string    `json:"minTraceID"`
	MaxTraceID    string    `json:"maxTraceID"`
	StartUnixNano uint64    `json:"startUnixNano"`
	EndUnixNano   uint64    `json:"endUnixNano"`
	Traces        int       `json:"traces"`
	Spans         int       `json:"spans"`
	Size          int64     `json:"size"`
	Level         int       `json:"compactionLevel"`
	CreatedAt     time.Time `json:"createdAt"`
	// Tags lists attribute keys and some of their values by scope (span, resource), for the tags API.
	Tags map[string]map[string][]string `json:"tags"`
	// Columns summarises the plain columns, so that a search can skip the block without opening it. Blocks
	// written before it existed have none.
	Columns *colStats `json:"columns,omitempty"`
}

type indexEntry struct {
	id    pcommon.TraceID
	first uint32
	count uint32
}

// block is a block known to this process: its meta, and, once opened, its index, bloom filter and file.
type block struct {
	meta  blockMeta
	minID pcommon.TraceID
	maxID pcommon.TraceID

	// readers counts the views that hold the block (view.go): its files are deleted only at zero.
	readers atomic.Int64

	openMu sync.Mutex
	opened bool
	index  []indexEntry
	bloom  *bloomFilter
	file   *parquet.File
}

func (in *instance) blockPrefix(id string) string { return bucket.Join(in.tenant, "blocks", id) + "/" }

func parentBytes(id pcommon.SpanID) []byte {
	if id.IsEmpty() {
		return nil
	}
	return append([]byte(nil), id[:]...)
}

// loadBlocks reads meta.json of every block of the tenant.
func (in *instance) loadBlocks(ctx context.Context) error {
	prefix := bucket.Join(in.tenant, "blocks") + "/"
	var ids []string
	err := in.s.bkt.Iter(ctx, prefix, func(name string) error {
		ids = append(ids, trimSlash(strings.TrimPrefix(name, prefix)))
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		raw, err := bucket.ReadAll(ctx, in.s.bkt, in.blockPrefix(id)+metaFile)
		if err != nil {
			if in.s.bkt.IsObjNotFoundErr(err) {
				continue // incomplete: an upload that did not finish, or a deletion in progress
			}
			return fmt.Errorf("read %s meta: %w", id, err)
		}
		var m blockMeta
		if err := json.Unmarshal(raw, &m); err != nil || m.Format != blockFormat {
			in.s.logger.Warn("Skipping block with unreadable meta.json")
			continue
		}
		b := &block{meta: m}
		b.minID, _ = ParseTraceID(m.MinTraceID)
		b.maxID, _ = ParseTraceID(m.MaxTraceID)
		in.blocks = append(in.blocks, b)
	}
	sort.Slice(in.blocks, func(i, j int) bool { return in.blocks[i].meta.EndUnixNano < in.blocks[j].meta.EndUnixNano })
	in.s.m.blocks.Set(float64(len(in.blocks)))
	return nil
}

// bucketReaderAt reads ranges of an object.
type bucketReaderAt struct {
	ctx   context.Context
	bkt   bucket.Bucket
	name  string
	cache *rangeCache // nil: none
}

func (r *bucketReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if r.cache.get(r.name, off, p) {
		return len(p), nil
	}
	rc, err := r.bkt.GetRange(r.ctx, r.name, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	if err == nil {
		r.cache.put(r.name, off, p)
	}
	return n, err
}

// open loads the block's index and bloom filter and opens its parquet file.
func (in *instance) open(ctx context.Context, b *block) error {
	b.openMu.Lock()
	defer b.openMu.Unlock()
	if b.opened {
		return nil
	}
	prefix := in.blockPrefix(b.meta.ULID)
	if b.index == nil || b.bloom == nil {
		raw, err := bucket.ReadAll(ctx, in.s.bkt, prefix+indexFile)
		if err != nil {
			return fmt.Errorf("block %s: read index: %w", b.meta.ULID, err)
		}
		idx, err := parseIndex(raw)
		if err != nil {
			return fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		raw, err = bucket.ReadAll(ctx, in.s.bkt, prefix+bloomFile)
		if err != nil {
			return fmt.Errorf("block %s: read bloom filter: %w", b.meta.ULID, err)
		}
		bf, err := unmarshalBloom(raw)
		if err != nil {
			return fmt.Errorf("block %s: %w", b.meta.ULID, err)
		}
		b.index, b.bloom = idx, bf
	}
	f, err := in.openParquet(b, in.s.readBufferSize())
	if err != nil {
		return err
	}
	b.file, b.opened = f, true
	return nil
}

// Read buffers of block files. parquet-go gives every column chunk a reader its own buffer of this size for as
// long as the chunk is read, so a scan holds one per column (12) and a merge one per column of every input.
// On the filesystem a read is a pread(2) and the buffer only gathers page headers: a small one costs nothing
// (reads larger than the buffer bypass it). From an object store every buffer fill is a ranged GET, so fewer,
// larger reads pay for the memory.
const (
	fsReadBuffer     = 32 << 10
	objectReadBuffer = 1 << 20
)

// readBufferSize is the read buffer of the store's block files.
func (s *Store) readBufferSize() int {
	if s.cache == nil {
		return fsReadBuffer
	}
	return objectReadBuffer
}

// openParquet opens a block's parquet file with read buffers of bufSize bytes per column chunk being read.
func (in *instance) openParquet(b *block, bufSize int) (*parquet.File, error) {
	ra := &bucketReaderAt{ctx: context.Background(), bkt: in.s.bkt, name: in.blockPrefix(b.meta.ULID) + dataFile, cache: in.s.cache}
	f, err := parquet.OpenFile(ra, b.meta.Size, parquet.SkipBloomFilters(true), parquet.ReadBufferSize(bufSize))
	if err != nil {
		return nil, fmt.Errorf("block %s: open parquet: %w", b.meta.ULID, err)
	}
	return f, nil
}

func parseIndex(raw []byte) ([]indexEntry, error) {
	if len(raw) < len(indexMagic)+4 || string(raw[:len(indexMagic)]) != indexMagic {
		return nil, errors.New("index: bad header")
	}
	n := binary.LittleEndian.Uint32(raw[len(indexMagic):])
	body := raw[len(indexMagic)+4:]
	if uint64(len(body)) != uint64(n)*indexEntrySz {
		return nil, fmt.Errorf("index: %d bytes for %d entries", len(body), n)
	}
	out := make([]indexEntry, n)
	for i := range out {
		e := body[i*indexEntrySz:]
		copy(out[i].id[:], e[:16])
		out[i].first = binary.LittleEndian.Uint32(e[16:])
		out[i].count = binary.LittleEndian.Uint32(e[20:])
	}
	return out, nil
}

// decoder turns rows back into spans, sharing resources and scopes between rows.
type decoder struct {
	u     ptrace.ProtoUnmarshaler
	res   map[string]*traceql.Resource
	scope map[string]pcommon.InstrumentationScope
}

func newDecoder() *decoder {
	return &decoder{res: map[string]*traceql.Resource{}, scope: map[string]pcommon.InstrumentationScope{}}
}

func (d *decoder) decode(r *spanRow) (traceql.Span, error) {
	return d.decodeParts(r.Resource, r.Scope, r.Span)
}

// decodeParts decodes a span from its column encodings (resource, scope, span).
func (d *decoder) decodeParts(resEnc, scopeEnc, spanEnc []byte) (traceql.Span, error) {
	res, ok := d.res[string(resEnc)]
	if !ok {
		td, err := d.u.UnmarshalTraces(resEnc)
		if err != nil || td.ResourceSpans().Len() != 1 {
			return traceql.Span{}, fmt.Errorf("corrupt resource column: %v", err)
		}
		rs := td.ResourceSpans().At(0)
		res = traceql.NewResource(rs.Resource())
		res.SchemaURL = rs.SchemaUrl()
		d.res[string(resEnc)] = res
	}
	sc, ok := d.scope[string(scopeEnc)]
	if !ok {
		td, err := d.u.UnmarshalTraces(scopeEnc)
		if err != nil || td.ResourceSpans().Len() != 1 || td.ResourceSpans().At(0).ScopeSpans().Len() != 1 {
			return traceql.Span{}, fmt.Errorf("corrupt scope column: %v", err)
		}
		sc = td.ResourceSpans().At(0).ScopeSpans().At(0).Scope()
		d.scope[string(scopeEnc)] = sc
	}
	td, err := d.u.UnmarshalTraces(spanEnc)
	if err != nil || td.SpanCount() != 1 {
		return traceql.Span{}, fmt.Errorf("corrupt span column: %v", err)
	}
	return traceql.Span{Span: td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0), Resource: res, Scope: sc}, nil
}

// readRows reads count rows from first (count < 0: to the end), calling fn for each batch of decoded spans.
func readRows(f *parquet.File, first, count int64, fn func(rows []spanRow) error) error {
	r := parquet.NewGenericReader[spanRow](f)
	defer r.Close()
	if first > 0 {
		if err := r.SeekToRow(first); err != nil {
			return err
		}
	}
	buf := make([]spanRow, 512)
	left := count
	for left != 0 {
		want := buf
		if left > 0 && left < int64(len(buf)) {
			want = buf[:left]
		}
		n, err := r.Read(want)
		if n > 0 {
			if ferr := fn(want[:n]); ferr != nil {
				return ferr
			}
			if left > 0 {
				left -= int64(n)
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	return nil
}

// inBlocks says whether one of blocks holds spans of trace id (id range, bloom filter and index; no rows read).
// A block that cannot be opened is passed over: the search that asked reads it again and reports it.
func (in *instance) inBlocks(ctx context.Context, blocks []*block, id pcommon.TraceID) bool {
	for _, b := range blocks {
		if bytes.Compare(id[:], b.minID[:]) < 0 || bytes.Compare(id[:], b.maxID[:]) > 0 {
			continue
		}
		if err := in.open(ctx, b); err != nil || !b.bloom.test(id) {
			continue
		}
		i := sort.Search(len(b.index), func(i int) bool { return bytes.Compare(b.index[i].id[:], id[:]) >= 0 })
		if i < len(b.index) && b.index[i].id == id {
			return true
		}
	}
	return false
}

// splitIDs returns the trace ids that more than one of blocks holds, from their indexes (sorted by id): the
// traces whose spans arrived on both sides of a block cut. A k-way walk, no copy of the indexes.
func (in *instance) splitIDs(ctx context.Context, blocks []*block) []pcommon.TraceID {
	var lists [][]indexEntry
	for _, b := range blocks {
		if err := in.open(ctx, b); err == nil && len(b.index) > 0 {
			lists = append(lists, b.index)
		}
	}
	if len(lists) < 2 {
		return nil
	}
	var out []pcommon.TraceID
	pos := make([]int, len(lists))
	for {
		var low *pcommon.TraceID
		for k, l := range lists {
			if pos[k] < len(l) && (low == nil || bytes.Compare(l[pos[k]].id[:], low[:]) < 0) {
				low = &l[pos[k]].id
			}
		}
		if low == nil {
			return out
		}
		id, n := *low, 0
		for k, l := range lists {
			if pos[k] < len(l) && l[pos[k]].id == id {
				pos[k]++
				n++
			}
		}
		if n > 1 {
			out = append(out, id)
		}
	}
}

// findInBlock returns the spans of one trace in a block.
func (in *instance) findInBlock(ctx context.Context, b *block, id pcommon.TraceID) ([]traceql.Span, error) {
	if bytes.Compare(id[:], b.minID[:]) < 0 || bytes.Compare(id[:], b.maxID[:]) > 0 {
		return nil, nil
	}
	if err := in.open(ctx, b); err != nil {
		return nil, err
	}
	if !b.bloom.test(id) {
		return nil, nil
	}
	i := sort.Search(len(b.index), func(i int) bool { return bytes.Compare(b.index[i].id[:], id[:]) >= 0 })
	if i == len(b.index) || b.index[i].id != id {
		return nil, nil
	}
	e := b.index[i]
	dec := newDecoder()
	var out []traceql.Span
	err := readRows(b.file, int64(e.first), int64(e.count), func(rows []spanRow) error {
		for k := range rows {
			s, err := dec.decode(&rows[k])
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("block %s: read trace: %w", b.meta.ULID, err)
	}
	return out, nil
}

// scanBlock calls fn with every trace of a block, in trace id order.
func (in *instance) scanBlock(ctx context.Context, b *block, fn func(id pcommon.TraceID, spans []traceql.Span) bool) error {
	if err := in.open(ctx, b); err != nil {
		return err
	}
	dec := newDecoder()
	var (
		cur   pcommon.TraceID
		spans []traceql.Span
		stop  = errors.New("stop")
	)
	err := readRows(b.file, 0, -1, func(rows []spanRow) error {
		if err := querylimit.Checkpoint(ctx); err != nil {
			return err
		}
		for k := range rows {
			var tid pcommon.TraceID
			copy(tid[:], rows[k].TraceID)
			if tid != cur && len(spans) > 0 {
				if !fn(cur, spans) {
					return stop
				}
				spans = nil
			}
			cur = tid
			s, err := dec.decode(&rows[k])
			if err != nil {
				return err
			}
			spans = append(spans, s)
		}
		return nil
	})
	if errors.Is(err, stop) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("block %s: scan: %w", b.meta.ULID, err)
	}
	if len(spans) > 0 {
		fn(cur, spans)
	}
	return nil
}

// bloomFilter is a plain bloom filter over trace ids (double hashing of xxhash).
type bloomFilter struct {
	k    uint32
	bits []uint64
}

func newBloom(n int, p float64) *bloomFilter {
	if n < 1 {
		n = 1
	}
	// m = -n ln p / (ln 2)^2, k = m/n ln 2
	m := uint64(float64(n)*-math.Log(p)/(math.Ln2*math.Ln2)) + 64
	k := uint32(float64(m)/float64(n)*0.6931471805599453 + 0.5)
	if k < 1 {
		k = 1
	}
	if k > 16 {
		k = 16
	}
	return &bloomFilter{k: k, bits: make([]uint64, (m+63)/64)}
}

func (b *bloomFilter) hashes(id pcommon.TraceID) (uint64, uint64) {
	h := xxhash.Sum64(id[:])
	h2 := h*0x9E3779B97F4A7C15 ^ (h >> 29) | 1
	return h, h2
}

func (b *bloomFilter) add(id pcommon.TraceID) {
	h1, h2 := b.hashes(id)
	m := uint64(len(b.bits) * 64)
	for i := uint32(0); i < b.k; i++ {
		bit := (h1 + uint64(i)*h2) % m
		b.bits[bit/64] |= 1 << (bit % 64)
	}
}

func (b *bloomFilter) test(id pcommon.TraceID) bool {
	h1, h2 := b.hashes(id)
	m := uint64(len(b.bits) * 64)
	for i := uint32(0); i < b.k; i++ {
		bit := (h1 + uint64(i)*h2) % m
		if b.bits[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

func (b *bloomFilter) marshal() []byte {
	out := make([]byte, 0, len(bloomMagic)+8+8*len(b.bits))
	out = append(out, bloomMagic...)
	out = binary.LittleEndian.AppendUint32(out, b.k)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.bits)))
	for _, w := range b.bits {
		out = binary.LittleEndian.AppendUint64(out, w)
	}
	return out
}

func unmarshalBloom(raw []byte) (*bloomFilter, error) {
	if len(raw) < len(bloomMagic)+8 || string(raw[:len(bloomMagic)]) != bloomMagic {
		return nil, errors.New("bloom filter: bad header")
	}
	k := binary.LittleEndian.Uint32(raw[len(bloomMagic):])
	n := binary.LittleEndian.Uint32(raw[len(bloomMagic)+4:])
	body := raw[len(bloomMagic)+8:]
	if uint64(len(body)) != uint64(n)*8 || n == 0 || k == 0 || k > 16 {
		return nil, errors.New("bloom filter: bad size")
	}
	b := &bloomFilter{k: k, bits: make([]uint64, n)}
	for i := range b.bits {
		b.bits[i] = binary.LittleEndian.Uint64(body[i*8:])
	}
	return b, nil
}
