package logstore

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

// headBlockBytes is the line bytes at which a head's open tail is sealed into a compressed block. Decoded
// entries cost each line's string, 40 B of entry and a metadata string; sealed, a line costs its share of the
// compressed block, a fraction of that, which is what bounds a busy store's memory.
var headBlockBytes = 64 << 10

// headBlock is a sealed part of a head: its entries in arrival order, encoded as a chunk payload without
// stream labels and s2-compressed.
type headBlock struct {
	data       []byte
	n          int
	minT, maxT int64
	lineBytes  int
	sorted     bool // entries in time order
	// spans are where the block's timestamps lie (see spansOf): the read's duplicate check and the counting
	// path compare them with the stream's other sources.
	spans [][2]int64
	// traces holds the block's trace ids (nil when it has none), so that a trace-id lookup decodes only the
	// head blocks that may hold the trace, as it reads only such chunks.
	traces bloom
}

// seal compresses the open tail into a block; st.mu is held. The tail gets a new slice: query snapshots of the
// old one stay valid.
func (st *stream) seal() {
	if len(st.tail) == 0 {
		return
	}
	ts, sorted := tailTimes(st.tail, timeBufs.Get().(*[]int64))
	defer timeBufs.Put(ts)
	if hasTie(*ts) {
		// A repeat within the tail is sealed once (the stream's head counters keep it until the cut recounts
		// them). Only entries of a shared timestamp can repeat one another, so most tails skip this.
		if t := dedupTail(st.tail); len(t) != len(st.tail) {
			st.tail, st.tailBytes = t, 0
			for _, e := range t {
				st.tailBytes += len(e.Line)
			}
			ts, sorted = tailTimes(st.tail, ts)
		}
	}
	e := encbuf{b: headBufs.get()}
	e.uvarint(0) // no stream labels
	e.entries(st.tail)
	enc := s2.Encode(headBufs.get()[:0], e.b)
	tt := *ts
	b := headBlock{data: append([]byte(nil), enc...), n: len(st.tail), minT: tt[0], maxT: tt[len(tt)-1], lineBytes: st.tailBytes,
		sorted: sorted, spans: spansOf(len(tt), func(i int) int64 { return tt[i] }), traces: traceBloom(st.tail)}
	headBufs.put(e.b)
	headBufs.put(enc)
	st.blocks = append(st.blocks, b)
	st.tail, st.tailBytes = nil, 0
}

// traceBloom returns a bloom filter of the trace ids of es, or nil when none has one. A head block's filter
// is smaller than a chunk's (10 bits and 7 probes per id: about 1 % false positives), as it lives in memory
// and a false positive costs one block's decode.
func traceBloom(es []logql.Entry) bloom {
	var ids []string
	for _, e := range es {
		if t := e.Metadata.Get("trace_id"); t != "" && (len(ids) == 0 || ids[len(ids)-1] != t) {
			ids = append(ids, t)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	b := newBloomOf(len(ids), headBloomBitsPerKey, headBloomK)
	for _, t := range ids {
		b.add(t)
	}
	return b
}

const (
	headBloomBitsPerKey = 10
	headBloomK          = 7
)

// timeBufs holds scratch slices of timestamps for sealing.
var timeBufs = sync.Pool{New: func() any { return new([]int64) }}

// tailTimes fills *buf with the timestamps of es in ascending order and reports whether es was in that order.
func tailTimes(es []logql.Entry, buf *[]int64) (*[]int64, bool) {
	ts := (*buf)[:0]
	sorted := true
	for i, e := range es {
		ts = append(ts, e.Timestamp)
		sorted = sorted && (i == 0 || e.Timestamp >= es[i-1].Timestamp)
	}
	if !sorted {
		slices.Sort(ts)
	}
	*buf = ts
	return buf, sorted
}

// hasTie reports whether two of the ascending timestamps ts are equal.
func hasTie(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] == ts[i-1] {
			return true
		}
	}
	return false
}

// timeSpans are the block's spans, or [minT, maxT] when it has none.
func (b *headBlock) timeSpans() [][2]int64 {
	if len(b.spans) > 0 || b.n == 0 {
		return b.spans
	}
	return [][2]int64{{b.minT, b.maxT}}
}

// headSpans are the time spans of a head snapshot's sources: each block's, then the tail's. A block holds no
// entry twice (seal drops repeats), but two blocks, or a block and the tail, may share one: a push retried
// once its first copy was sealed, or after a restart replayed it.
func headSpans(blocks []headBlock, tail []logql.Entry) [][][2]int64 {
	hs := make([][][2]int64, 0, len(blocks)+1)
	for i := range blocks {
		hs = append(hs, blocks[i].timeSpans())
	}
	return append(hs, tailSpans(tail, false))
}

// dedupTail returns es without the entries equal (time, line, structured metadata) to one before them, as
// Loki's head block keeps a repeated entry once; es itself when it has none (the common case: no copy).
func dedupTail(es []logql.Entry) []logql.Entry {
	var first map[entryKey]int
	var out []logql.Entry
	for i, e := range es {
		if first == nil {
			first = make(map[entryKey]int, len(es))
		}
		k := keyOf(e)
		if j, ok := first[k]; ok && es[j].Line == e.Line && labels.Equal(es[j].Metadata, e.Metadata) {
			if out == nil {
				out = append(make([]logql.Entry, 0, len(es)), es[:i]...)
			}
			continue
		}
		first[k] = i
		if out != nil {
			out = append(out, e)
		}
	}
	if out == nil {
		return es
	}
	return out
}

// tailSpans are the time spans of entries (in time order when sorted is set).
func tailSpans(es []logql.Entry, sorted bool) [][2]int64 {
	if sorted {
		return spansOf(len(es), func(i int) int64 { return es[i].Timestamp })
	}
	ts := make([]int64, len(es))
	for i, e := range es {
		ts[i] = e.Timestamp
	}
	ss, _ := spansOfUnsorted(ts, ts)
	return ss
}

// decode returns the block's entries that p selects (time range, trace id, line filter), in arrival order.
// They share one fresh allocation, which callers may keep.
func (b *headBlock) decode(p *logql.SelectParams) ([]logql.Entry, error) {
	raw, err := s2.Decode(nil, b.data)
	if err != nil {
		return nil, fmt.Errorf("decode head block: %w", err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return decodeSelected(rowPayload(unsafe.String(&raw[0], len(raw))), p)
}

// appendBlockRecord appends to dst the WAL record of one sealed block of a stream: the block's payload is the
// encoding of its entries after an empty label set, which is what a record's stream holds after its labels.
func appendBlockRecord(dst []byte, tenant string, lbs labels.Labels, b *headBlock) ([]byte, error) {
	n, err := s2.DecodedLen(b.data)
	if err != nil {
		return dst, fmt.Errorf("decode head block: %w", err)
	}
	e := encbuf{b: dst}
	e.b = append(e.b, recEntries)
	e.str(tenant)
	e.uvarint(1)
	e.labels(lbs)
	off := len(e.b)
	e.b = slices.Grow(e.b, n)[:off+n]
	raw, err := s2.Decode(e.b[off:], b.data)
	if err != nil {
		return dst, fmt.Errorf("decode head block: %w", err)
	}
	if len(raw) == 0 || raw[0] != 0 {
		return dst, errors.New("decode head block: it carries stream labels")
	}
	copy(e.b[off:], raw[1:])
	return e.b[:off+len(raw)-1], nil
}

// headEntries returns a head snapshot's entries in arrival order: those of the sealed blocks in p's time range
// and with its trace id, then the whole open tail (callers check the tail's entries themselves).
func headEntries(blocks []headBlock, tail []logql.Entry, p *logql.SelectParams) ([]logql.Entry, error) {
	if len(blocks) == 0 {
		return tail, nil
	}
	sel := logql.SelectParams{Start: p.Start, End: p.End, TraceID: p.TraceID}
	var out []logql.Entry
	for i := range blocks {
		b := &blocks[i]
		if b.maxT < p.Start || b.minT >= p.End || (p.TraceID != "" && !b.traces.has(p.TraceID)) {
			continue
		}
		es, err := b.decode(&sel)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	return append(out, tail...), nil
}

// all returns every entry of blocks, in order.
func allBlockEntries(blocks []headBlock) ([]logql.Entry, error) {
	return headEntries(blocks, nil, &logql.SelectParams{Start: math.MinInt64, End: math.MaxInt64})
}

// headIn counts the head's entries and line bytes in [start, end); st.mu is held. Blocks wholly inside or
// outside the range are counted from their summary.
func (st *stream) headIn(start, end int64) (n, bytes int64) {
	for i := range st.blocks {
		b := &st.blocks[i]
		switch {
		case b.maxT < start || b.minT >= end:
		case b.minT >= start && b.maxT < end:
			n += int64(b.n)
			bytes += int64(b.lineBytes)
		default:
			es, err := b.decode(&logql.SelectParams{Start: start, End: end})
			if err != nil {
				continue
			}
			for _, e := range es {
				n++
				bytes += int64(len(e.Line))
			}
		}
	}
	for _, e := range st.tail {
		if e.Timestamp >= start && e.Timestamp < end {
			n++
			bytes += int64(len(e.Line))
		}
	}
	return n, bytes
}

// rawChunk is an uncompressed chunk payload and what its index entry needs.
type rawChunk struct {
	raw        []byte
	minT, maxT int64
	n          int
	lineBytes  int
	spans      [][2]int64
	traces     map[string]struct{}
}

// blocksToChunks re-encodes head blocks as chunk payloads of about target line bytes each (split as writeChunks
// splits), in time order (stable, as flush sorts), copying each entry's line and metadata bytes as they are
// instead of decoding them into entries: the payloads are byte for byte what encodeChunk makes of the sorted
// decoded entries.
func blocksToChunks(lbs labels.Labels, blocks []headBlock, target int) ([]rawChunk, error) {
	type rawEntry struct {
		ts         int64
		line, meta string
	}
	// The blocks are decoded into one chunk-sized scratch buffer (pooled; the parts copy what they keep), not one
	// fresh buffer per block: those were an eighth of ingest's garbage. Pooling block-sized buffers instead made
	// later chunk-sized gets grow them.
	total, count := 0, 0
	for i := range blocks {
		dl, err := s2.DecodedLen(blocks[i].data)
		if err != nil {
			return nil, fmt.Errorf("decode head block: %w", err)
		}
		total += dl
		count += blocks[i].n
	}
	buf := slices.Grow(chunkBufs.get()[:0], total)[:total]
	defer chunkBufs.put(buf)
	ents := make([]rawEntry, 0, count)
	sorted := true
	prevMax := int64(math.MinInt64)
	off := 0
	for i := range blocks {
		b := &blocks[i]
		sorted = sorted && b.sorted && b.minT >= prevMax
		prevMax = max(prevMax, b.maxT)
		dl, _ := s2.DecodedLen(b.data)
		raw, err := s2.Decode(buf[off:off+dl], b.data)
		if err != nil {
			return nil, fmt.Errorf("decode head block: %w", err)
		}
		off += dl
		d := decbuf{s: unsafe.String(unsafe.SliceData(raw), len(raw))}
		for k, nl := 0, d.count(len(d.s)); k < 2*nl && d.err == nil; k++ {
			d.str()
		}
		var ts int64
		for j, n := 0, d.count(len(d.s)); j < n && d.err == nil; j++ {
			ts += d.varint()
			line := d.str()
			meta := d.s
			for k, nl := 0, d.count(len(d.s)); k < nl && d.err == nil; k++ {
				d.str()
				d.str()
			}
			ents = append(ents, rawEntry{ts: ts, line: line, meta: meta[:len(meta)-len(d.s)]})
		}
		if d.err != nil {
			return nil, fmt.Errorf("decode head block: %w", d.err)
		}
	}
	if !sorted {
		sort.SliceStable(ents, func(i, j int) bool { return ents[i].ts < ents[j].ts })
	}
	// An entry equal to one before it in the head (a retried push whose first copy was not the line just
	// before it) is written once, as Loki's head block keeps it once: entries of one timestamp are neighbours
	// now, and equal metadata sets encode alike.
	kept, group := ents[:0], 0
	for _, en := range ents {
		if len(kept) == 0 || kept[len(kept)-1].ts != en.ts {
			group = len(kept)
		} else if slices.ContainsFunc(kept[group:], func(k rawEntry) bool { return k.line == en.line && k.meta == en.meta }) {
			continue
		}
		kept = append(kept, en)
	}
	ents = kept
	var hdr encbuf
	hdr.labels(lbs)
	var parts []rawChunk
	for len(ents) > 0 {
		n, size := 0, 0
		for n < len(ents) && (n == 0 || size+len(ents[n].line) <= target) {
			size += len(ents[n].line)
			n++
		}
		part := ents[:n]
		c := rawChunk{minT: ents[0].ts, maxT: ents[n-1].ts, n: n, lineBytes: size, traces: map[string]struct{}{},
			spans: spansOf(n, func(i int) int64 { return part[i].ts })}
		e := encbuf{b: chunkBufs.get()}
		e.b = append(e.b, hdr.b...)
		appendColumns(&e, n, func(i int) (int64, string) { return part[i].ts, part[i].line }, func(i int, m *encbuf) { m.b = append(m.b, part[i].meta...) })
		for _, en := range part {
			md := decbuf{s: en.meta}
			for k, nl := 0, md.count(len(md.s)); k < nl && md.err == nil; k++ {
				if name, val := md.str(), md.str(); name == "trace_id" && val != "" {
					if _, ok := c.traces[val]; !ok {
						c.traces[strings.Clone(val)] = struct{}{} // keep the block's buffer collectable
					}
				}
			}
		}
		c.raw = e.b
		parts = append(parts, c)
		ents = ents[n:]
	}
	return parts, nil
}
