package metrichead

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// xorState is what appending the next sample to an open chunk needs to know: the chunk's bytes are Prometheus'
// XOR encoding (a 2-byte big-endian sample count, then Gorilla's bit stream with Prometheus' timestamp buckets),
// so a finished chunk is handed to the TSDB's readers and block writer as it is. Prometheus keeps a 48-byte
// appender and a 32-byte chunk object beside each series' bytes; this is the same state in 32 bytes, kept
// inline in the series.
type xorState struct {
	t        int64
	v        uint64 // float64 bits
	tDelta   uint64
	free     uint8 // bits not yet written in the last byte
	leading  uint8 // 0xff until the first value delta
	trailing uint8
	logged   bool   // the series' record is in the write-ahead log (kept here, in the struct's padding)
	hasHist  bool   // the series has histogram state in Head.hists
	pending  uint16 // samples appenders hold for the series until they commit or roll back: it is not collected
}

// chunkHeader is the XOR chunk's sample count.
const chunkHeader = 2

// newChunk starts a chunk with room for a few samples; the bytes grow by append, in Go's size classes.
func newChunk(capacity int) []byte { return make([]byte, chunkHeader, max(capacity, chunkHeader)) }

// chunkSamples is how many samples a chunk holds.
func chunkSamples(b []byte) int { return int(binary.BigEndian.Uint16(b)) }

// xorAppend appends (t, v) to chunk b, whose state is st, and returns the grown slice. The caller keeps
// timestamps increasing and a chunk below 65535 samples.
func xorAppend(b []byte, st *xorState, t int64, v float64) []byte {
	num := binary.BigEndian.Uint16(b)
	w := bitWriter{b: b, free: st.free}
	vb := math.Float64bits(v)
	var tDelta uint64
	switch num {
	case 0:
		st.leading = 0xff
		var buf [binary.MaxVarintLen64]byte
		for _, c := range buf[:binary.PutVarint(buf[:], t)] {
			w.writeByte(c)
		}
		w.writeBits(vb, 64)
	case 1:
		tDelta = uint64(t - st.t)
		var buf [binary.MaxVarintLen64]byte
		for _, c := range buf[:binary.PutUvarint(buf[:], tDelta)] {
			w.writeByte(c)
		}
		w.writeValue(vb, st)
	default:
		tDelta = uint64(t - st.t)
		dod := int64(tDelta - st.tDelta)
		switch {
		case dod == 0:
			w.writeBit(false)
		case inBitRange(dod, 14):
			w.writeByte(0b10<<6 | (uint8(dod>>8) & (1<<6 - 1)))
			w.writeByte(uint8(dod))
		case inBitRange(dod, 17):
			w.writeBits(0b110, 3)
			w.writeBits(uint64(dod), 17)
		case inBitRange(dod, 20):
			w.writeBits(0b1110, 4)
			w.writeBits(uint64(dod), 20)
		default:
			w.writeBits(0b1111, 4)
			w.writeBits(uint64(dod), 64)
		}
		w.writeValue(vb, st)
	}
	st.t, st.v, st.tDelta, st.free = t, vb, tDelta, w.free
	binary.BigEndian.PutUint16(w.b, num+1)
	return w.b
}

// inBitRange reports whether x fits the signed bucket of nbits bits as the XOR encoding defines it.
func inBitRange(x int64, nbits uint8) bool {
	return -((1<<(nbits-1))-1) <= x && x <= 1<<(nbits-1)
}

// writeValue writes v's XOR against the previous value: one 0 bit when equal, else the meaningful bits with
// the previous leading/trailing window when they fit it, or a new window.
func (w *bitWriter) writeValue(vb uint64, st *xorState) {
	delta := vb ^ st.v
	if delta == 0 {
		w.writeBit(false)
		return
	}
	w.writeBit(true)
	leading := uint8(bits.LeadingZeros64(delta))
	trailing := uint8(bits.TrailingZeros64(delta))
	if leading >= 32 {
		leading = 31
	}
	if st.leading != 0xff && leading >= st.leading && trailing >= st.trailing {
		w.writeBit(false)
		w.writeBits(delta>>st.trailing, 64-int(st.leading)-int(st.trailing))
		return
	}
	st.leading, st.trailing = leading, trailing
	w.writeBit(true)
	w.writeBits(uint64(leading), 5)
	sig := 64 - leading - trailing // 64 is written as 0 in 6 bits; readers take 0 as 64
	w.writeBits(uint64(sig), 6)
	w.writeBits(delta>>trailing, int(sig))
}

// bitWriter appends bits most significant first; free is how many low bits of the last byte are unwritten.
type bitWriter struct {
	b    []byte
	free uint8
}

func (w *bitWriter) writeBit(bit bool) {
	if w.free == 0 {
		w.b = append(w.b, 0)
		w.free = 8
	}
	if bit {
		w.b[len(w.b)-1] |= 1 << (w.free - 1)
	}
	w.free--
}

func (w *bitWriter) writeByte(c byte) {
	if w.free == 0 {
		w.b = append(w.b, c)
		return
	}
	w.b[len(w.b)-1] |= c >> (8 - w.free)
	w.b = append(w.b, c<<w.free)
}

// writeBits writes the low nbits of u.
func (w *bitWriter) writeBits(u uint64, nbits int) {
	if nbits == 0 {
		return
	}
	u <<= 64 - uint(nbits)
	if w.free > 0 {
		f := int(w.free)
		w.b[len(w.b)-1] |= byte(u >> (64 - f))
		if nbits < f {
			w.free = uint8(f - nbits)
			return
		}
		u <<= uint(f)
		nbits -= f
		w.free = 0
	}
	for ; nbits >= 8; nbits -= 8 {
		w.b = append(w.b, byte(u>>56))
		u <<= 8
	}
	if nbits > 0 {
		w.b = append(w.b, byte(u>>56))
		w.free = uint8(8 - nbits)
	}
}
