package logstore

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/klauspost/compress/s2"

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
}

// seal compresses the open tail into a block; st.mu is held. The tail gets a new slice: query snapshots of the
// old one stay valid.
func (st *stream) seal() {
	if len(st.tail) == 0 {
		return
	}
	e := encbuf{b: chunkBufs.get()}
	e.uvarint(0) // no stream labels
	e.entries(st.tail)
	enc := s2.Encode(chunkBufs.get()[:0], e.b)
	b := headBlock{data: append([]byte(nil), enc...), n: len(st.tail), minT: math.MaxInt64, maxT: math.MinInt64, lineBytes: st.tailBytes}
	chunkBufs.put(e.b)
	chunkBufs.put(enc)
	for _, en := range st.tail {
		b.minT = min(b.minT, en.Timestamp)
		b.maxT = max(b.maxT, en.Timestamp)
	}
	st.blocks = append(st.blocks, b)
	st.tail, st.tailBytes = nil, 0
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
	return decodeSelected(unsafe.String(&raw[0], len(raw)), p)
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
		if b.maxT < p.Start || b.minT >= p.End {
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
