package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/sprout-otel/sprout/internal/logql"
)

// A chunk object is "SPLC" | version | zstd(labels, entries). Entries are in time order. The index (chunkMeta)
// keeps its time range, counts and a bloom filter of its trace ids.
var chunkMagic = []byte("SPLC\x01")

// chunkWindow is the zstd window of chunk compression. A chunk's raw payload is about chunk_target_size (1.5 MiB
// of lines plus their metadata), so a 2 MiB window still sees the whole chunk, while the default 8 MiB window
// kept a 16 MiB history buffer alive in the encoder.
const chunkWindow = 2 << 20

var (
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(chunkWindow))
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
)

func encodeChunk(lbs labels.Labels, es []logql.Entry) []byte {
	// The raw payload is scratch (pooled): growing a fresh buffer by doubling allocated about five times the
	// chunk's size per chunk. The output is sized for logs' usual 4-6x compression.
	e := encbuf{b: chunkBufs.get()}
	e.labels(lbs)
	e.entries(es)
	out := compressChunk(e.b)
	chunkBufs.put(e.b)
	return out
}

// compressChunk returns the chunk object of a raw payload.
func compressChunk(raw []byte) []byte {
	out := make([]byte, 0, len(chunkMagic)+len(raw)/3+64)
	out = append(out, chunkMagic...)
	return zenc.EncodeAll(raw, out)
}

func decodeChunk(b []byte) (labels.Labels, []logql.Entry, error) {
	raw, err := decompressChunk(b)
	if err != nil {
		return labels.EmptyLabels(), nil, err
	}
	d := decbuf{s: raw}
	var sb labels.ScratchBuilder
	lbs := d.labels(&sb)
	es := d.entries(&sb)
	if d.err != nil {
		return lbs, nil, fmt.Errorf("decode chunk: %w", d.err)
	}
	return lbs, es, nil
}

// decompressChunk returns a chunk's payload as one string, which decoded entries then share.
func decompressChunk(b []byte) (string, error) {
	if !bytes.HasPrefix(b, chunkMagic) {
		return "", errors.New("not a Sprout log chunk (bad magic)")
	}
	raw, err := zdec.DecodeAll(b[len(chunkMagic):], nil)
	if err != nil {
		return "", fmt.Errorf("decompress chunk: %w", err)
	}
	if len(raw) == 0 {
		return "", nil
	}
	// raw is never written again: share it instead of copying it.
	return unsafe.String(&raw[0], len(raw)), nil
}

// decodeSelected decodes the entries of a chunk payload that p selects: in its time range, with its trace id,
// passing its line filter. Structured metadata is only built for the entries returned; lines dropped by the
// line filter are reported through p.Skipped.
func decodeSelected(raw string, p *logql.SelectParams) ([]logql.Entry, error) {
	d := decbuf{s: raw}
	for k, nl := 0, d.count(len(d.s)); k < 2*nl && d.err == nil; k++ {
		d.str() // stream labels
	}
	n := d.count(len(d.s))
	var es []logql.Entry
	var sb labels.ScratchBuilder
	var prev, skippedLines, skippedBytes int64
	var prevMeta labels.Labels
	prevRaw := "\xff"
	// The engine's cutoff (log queries with a limit), refreshed every 1024 lines: lines beyond it are skipped
	// before the line filter.
	var cut int64
	haveCut := false
	for i := 0; i < n && d.err == nil; i++ {
		prev += d.varint()
		line := d.str()
		if p.Cutoff != nil && i&1023 == 0 {
			cut, haveCut = p.Cutoff()
		}
		before := d.s
		traceID := ""
		for k, nl := 0, d.count(len(d.s)); k < nl && d.err == nil; k++ {
			name, val := d.str(), d.str()
			if name == "trace_id" {
				traceID = val
			}
		}
		if prev < p.Start || prev >= p.End || (p.TraceID != "" && traceID != p.TraceID) || (haveCut && logql.Beyond(p.Direction, prev, cut)) {
			continue
		}
		if p.LineFilter != nil && !p.LineFilter(line) {
			skippedLines++
			skippedBytes += int64(len(line))
			continue
		}
		rawMeta := before[:len(before)-len(d.s)]
		if rawMeta != prevRaw {
			md := decbuf{s: rawMeta}
			prevMeta, prevRaw = md.labels(&sb), rawMeta
		}
		es = append(es, logql.Entry{Timestamp: prev, Line: line, Metadata: prevMeta})
	}
	if d.err != nil {
		return nil, fmt.Errorf("decode chunk: %w", d.err)
	}
	if p.Skipped != nil && skippedLines > 0 {
		p.Skipped(skippedLines, skippedBytes)
	}
	return es, nil
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

func newBloom(n int) bloom {
	bits := n * bloomBitsPerKey
	if bits < 64 {
		bits = 64
	}
	b := make(bloom, 1+(bits+7)/8)
	b[0] = bloomK
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
