package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/sprout-otel/sprout/internal/logql"
)

// A chunk object is "SPLC" | version | zstd(payload). Entries are in time order. The index (chunkMeta) keeps
// its time range, counts and a bloom filter of its trace ids.
//
// Version 1 (rows), still read: the stream labels, the number of entries, then per entry its timestamp (delta
// to the previous one), its line and its structured metadata.
// Version 2 (columns), written since: the stream labels, the number of entries, the timestamps (length-prefixed
// column of deltas), the metadata sets (length-prefixed column) and the lines (one string each, to the end).
// Apart, each column compresses against its own kind: timestamps and repeated metadata cost almost nothing and
// no longer break zstd's matches between lines (about 9 % fewer bytes per line on the benchmark's logs).
var (
	chunkMagic   = []byte("SPLC\x02")
	chunkMagicV1 = []byte("SPLC\x01")
)

// chunkWindow is the zstd window of chunk compression. A chunk's raw payload is about chunk_target_size (1.5 MiB
// of lines plus their metadata), so a 2 MiB window still sees the whole chunk, while the default 8 MiB window
// kept a 16 MiB history buffer alive in the encoder.
const chunkWindow = 2 << 20

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(chunkWindow))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

// payload is a chunk's decompressed payload and its layout.
type payload struct {
	s    string
	cols bool // version 2
}

// rowPayload is a payload in version 1's layout, which head blocks and WAL records keep.
func rowPayload(s string) payload { return payload{s: s} }

func encodeChunk(lbs labels.Labels, es []logql.Entry) []byte {
	// The raw payload is scratch (pooled): growing a fresh buffer by doubling allocated about five times the
	// chunk's size per chunk. The output is sized for logs' usual 4-6x compression.
	e := encbuf{b: chunkBufs.get()}
	e.payload(lbs, es)
	out := compressChunk(e.b)
	chunkBufs.put(e.b)
	return out
}

// payload appends the version 2 payload of a stream's entries.
func (e *encbuf) payload(lbs labels.Labels, es []logql.Entry) {
	e.labels(lbs)
	appendColumns(e, len(es), func(i int) (int64, string) { return es[i].Timestamp, es[i].Line }, func(i int, m *encbuf) { m.labels(es[i].Metadata) })
}

// appendColumns appends the entry count and the columns of a version 2 payload to e, which holds the stream
// labels. The timestamps and metadata go through small scratch buffers; the lines, most of the bytes, are
// appended straight to e, sized once.
func appendColumns(e *encbuf, n int, entry func(i int) (ts int64, line string), meta func(i int, m *encbuf)) {
	ts, md := encbuf{b: headBufs.get()}, encbuf{b: headBufs.get()}
	var prev int64
	lineBytes := 0
	for i := 0; i < n; i++ {
		t, l := entry(i)
		ts.varint(t - prev)
		prev = t
		meta(i, &md)
		lineBytes += uvarintLen(len(l)) + len(l)
	}
	e.uvarint(uint64(n))
	e.str(unsafe.String(unsafe.SliceData(ts.b), len(ts.b)))
	e.str(unsafe.String(unsafe.SliceData(md.b), len(md.b)))
	e.b = slices.Grow(e.b, lineBytes)
	for i := 0; i < n; i++ {
		_, l := entry(i)
		e.str(l)
	}
	headBufs.put(ts.b)
	headBufs.put(md.b)
}

// uvarintLen is the length of v's uvarint encoding.
func uvarintLen(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// compressChunk returns the chunk object of a raw (version 2) payload.
func compressChunk(raw []byte) []byte {
	out := make([]byte, 0, len(chunkMagic)+len(raw)/3+64)
	out = append(out, chunkMagic...)
	return zenc.EncodeAll(raw, out)
}

func decodeChunk(b []byte) (labels.Labels, []logql.Entry, error) {
	pl, err := decompressChunk(b)
	if err != nil {
		return labels.EmptyLabels(), nil, err
	}
	var sb labels.ScratchBuilder
	lbs, _, err := openPayload(pl, &sb)
	if err != nil {
		return lbs, nil, fmt.Errorf("decode chunk: %w", err)
	}
	es, err := decodeSelected(pl, &logql.SelectParams{Start: math.MinInt64, End: math.MaxInt64})
	return lbs, es, err
}

// decompressChunk returns a chunk's payload as one string, which decoded entries then share.
func decompressChunk(b []byte) (payload, error) {
	pl, _, err := decompressChunkInto(b, nil)
	return pl, err
}

// decompressChunkInto decompresses a chunk into dst's storage (grown if it is too small) and returns the
// payload and the buffer that holds it. A caller that passes a reused buffer must let nothing of the payload
// outlive its next use.
func decompressChunkInto(b, dst []byte) (payload, []byte, error) {
	var pl payload
	switch {
	case bytes.HasPrefix(b, chunkMagic):
		pl.cols = true
	case bytes.HasPrefix(b, chunkMagicV1):
	default:
		return pl, dst, errors.New("not a Sprout log chunk (bad magic)")
	}
	raw, err := zdec.DecodeAll(b[len(chunkMagic):], dst[:0])
	if err != nil {
		return pl, dst, fmt.Errorf("decompress chunk: %w", err)
	}
	if len(raw) > 0 {
		// raw is never written again while the payload is in use: share it instead of copying it.
		pl.s = unsafe.String(&raw[0], len(raw))
	}
	return pl, raw, nil
}

// entryReader walks a payload's entries in order, whatever its layout.
type entryReader struct {
	d        decbuf // the rows (version 1), or the lines column (version 2)
	ts, meta decbuf // version 2's other columns
	cols     bool
	n, i     int
	t        int64
}

// openPayload reads a payload's stream labels (skipped when sb is nil) and opens its entries.
func openPayload(pl payload, sb *labels.ScratchBuilder) (labels.Labels, entryReader, error) {
	r := entryReader{d: decbuf{s: pl.s}, cols: pl.cols}
	lbs := labels.EmptyLabels()
	if sb != nil {
		lbs = r.d.labels(sb)
	} else {
		r.d.skipLabels()
	}
	r.n = r.d.count(len(r.d.s))
	if pl.cols {
		r.ts.s = r.d.str()
		r.meta.s = r.d.str()
	}
	return lbs, r, r.d.err
}

// next returns the next entry's timestamp, line and encoded metadata; ok is false after the last entry and on
// damaged data (see err).
func (r *entryReader) next() (ts int64, line, meta string, ok bool) {
	if r.i >= r.n || r.err() != nil {
		return 0, "", "", false
	}
	r.i++
	if r.cols {
		r.t += r.ts.varint()
		line = r.d.str()
		meta = r.meta.skipLabels()
	} else {
		r.t += r.d.varint()
		line = r.d.str()
		meta = r.d.skipLabels()
	}
	return r.t, line, meta, r.err() == nil
}

func (r *entryReader) err() error {
	for _, err := range []error{r.d.err, r.ts.err, r.meta.err} {
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeSelected decodes the entries of a chunk payload that p selects: in its time range, with its trace id,
// passing its line filter. Structured metadata is only built for the entries returned; lines dropped by the
// line filter are reported through p.Skipped.
func decodeSelected(pl payload, p *logql.SelectParams) ([]logql.Entry, error) {
	_, r, err := openPayload(pl, nil)
	if err != nil {
		return nil, fmt.Errorf("decode chunk: %w", err)
	}
	var es []logql.Entry
	var sb labels.ScratchBuilder
	var skippedLines, skippedBytes int64
	var prevMeta labels.Labels
	prevRaw := "\xff"
	// The engine's cutoff (log queries with a limit), refreshed every 1024 lines: lines beyond it are skipped
	// before the line filter.
	var cut int64
	haveCut := false
	for i := 0; ; i++ {
		ts, line, rawMeta, ok := r.next()
		if !ok {
			break
		}
		if p.Cutoff != nil && i&1023 == 0 {
			cut, haveCut = p.Cutoff()
		}
		if ts < p.Start || ts >= p.End || (haveCut && logql.Beyond(p.Direction, ts, cut)) {
			continue
		}
		if p.TraceID != "" && metaValue(rawMeta, "trace_id") != p.TraceID {
			continue
		}
		if p.LineFilter != nil && !p.LineFilter(line) {
			skippedLines++
			skippedBytes += int64(len(line))
			continue
		}
		if rawMeta != prevRaw {
			md := decbuf{s: rawMeta}
			prevMeta, prevRaw = md.labels(&sb), rawMeta
		}
		es = append(es, logql.Entry{Timestamp: ts, Line: line, Metadata: prevMeta})
	}
	if err := r.err(); err != nil {
		return nil, fmt.Errorf("decode chunk: %w", err)
	}
	if p.Skipped != nil && skippedLines > 0 {
		p.Skipped(skippedLines, skippedBytes)
	}
	return es, nil
}

// metaValue returns the value of name in encoded metadata, or "".
func metaValue(raw, name string) string {
	d := decbuf{s: raw}
	for k, nl := 0, d.count(len(d.s)); k < nl && d.err == nil; k++ {
		if n, v := d.str(), d.str(); n == name {
			return v
		}
	}
	return ""
}

// bloom is a fixed-size bloom filter of a chunk's trace ids. Its first byte is the number of probes, so the
// parameters can change without breaking stored indexes. At 20 bits and 14 probes per id the false-positive
// rate is under 0.01 %, so a trace-id lookup over thousands of chunks decodes almost only the chunks that hold
// the trace.
type bloom []byte

const (
	bloomBitsPerKey = 20
	bloomK          = 14
)

func newBloom(n int) bloom { return newBloomOf(n, bloomBitsPerKey, bloomK) }

// newBloomOf returns an empty filter for n keys at bitsPerKey bits and k probes per key.
func newBloomOf(n, bitsPerKey int, k byte) bloom {
	bits := n * bitsPerKey
	if bits < 64 {
		bits = 64
	}
	b := make(bloom, 1+(bits+7)/8)
	b[0] = k
	return b
}

func (b bloom) add(s string) {
	h := xxhash.Sum64String(s)
	h1, h2 := uint32(h), uint32(h>>32)|1
	bits := b[1:]
	m := uint32(len(bits) * 8)
	for i := uint32(0); i < uint32(b[0]); i++ {
		p := (h1 + i*h2) % m
		bits[p/8] |= 1 << (p % 8)
	}
}

func (b bloom) has(s string) bool {
	if len(b) < 2 {
		return true
	}
	h := xxhash.Sum64String(s)
	h1, h2 := uint32(h), uint32(h>>32)|1
	bits := b[1:]
	m := uint32(len(bits) * 8)
	for i := uint32(0); i < uint32(b[0]); i++ {
		p := (h1 + i*h2) % m
		if bits[p/8]&(1<<(p%8)) == 0 {
			return false
		}
	}
	return true
}

// chunkCache keeps chunk objects as stored (compressed), bounded by their size, with CLOCK-style eviction.
// It keeps compressed bytes, as Loki's chunk cache does, not decompressed payloads: a full scan then holds at
// most the cache's size live instead of every payload it read (a payload is 6-7 times its object), and the
// GC's headroom doubles whatever the cache holds.
type chunkCache struct {
	mu    sync.Mutex
	max   int
	size  int
	items map[string]*cacheItem
	order []string
}

type cacheItem struct {
	obj  []byte
	used bool
}

func newChunkCache(max int) *chunkCache { return &chunkCache{max: max, items: map[string]*cacheItem{}} }

// newObjectCache is the chunk cache for objects of bkt: none for a filesystem bucket, whose objects the kernel's
// page cache already holds (a copy in the heap would count twice, and twice again under the GC's headroom), nor
// when max is 0.
func newObjectCache(bkt objstore.Bucket, max int) *chunkCache {
	if max <= 0 || (bkt != nil && bkt.Provider() == objstore.FILESYSTEM) {
		return nil
	}
	return newChunkCache(max)
}

// get returns a cached object; callers must not modify it.
func (c *chunkCache) get(k string) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.items[k]
	if !ok {
		return nil, false
	}
	it.used = true
	return it.obj, true
}

func (c *chunkCache) put(k string, obj []byte) {
	if c == nil || len(obj) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	for c.size+len(obj) > c.max && len(c.order) > 0 {
		victim := c.order[0]
		c.order = c.order[1:]
		it := c.items[victim]
		if it == nil {
			continue
		}
		if it.used {
			it.used = false
			c.order = append(c.order, victim)
			continue
		}
		c.size -= len(it.obj)
		delete(c.items, victim)
	}
	c.items[k] = &cacheItem{obj: obj}
	c.order = append(c.order, k)
	c.size += len(obj)
}

func (c *chunkCache) drop(k string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if it, ok := c.items[k]; ok {
		c.size -= len(it.obj)
		delete(c.items, k)
	}
}
