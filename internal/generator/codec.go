package generator

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Record types of the WAL.
const (
	recBatchV1 byte = 1 // the first batch format, still replayed
	recTick    byte = 2
	// recBatch adds per span the start time and the two span multipliers.
	recBatch byte = 3
)

// maxDecodeLen bounds any length read from disk, so a corrupt file cannot make the decoder allocate gigabytes.
const maxDecodeLen = 1 << 26

var errShort = errors.New("record truncated")

type encoder struct{ b []byte }

func (e *encoder) byte1(v byte)     { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) f64(v float64)    { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *encoder) raw(v []byte)     { e.b = append(e.b, v...) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) boolean(v bool) {
	if v {
		e.byte1(1)
	} else {
		e.byte1(0)
	}
}
func (e *encoder) strs(v []string) {
	e.uvarint(uint64(len(v)))
	for _, s := range v {
		e.str(s)
	}
}
func (e *encoder) pairs(p []labelPair) {
	e.uvarint(uint64(len(p)))
	for _, l := range p {
		e.str(l.name)
		e.str(l.value)
	}
}

// decoder reads what encoder wrote. The first error sticks; every read after it returns zero values, so callers
// check err once at the end. It never panics on any input.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte1() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) f64() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) raw(dst []byte) {
	if d.err != nil || len(d.b) < len(dst) {
		d.fail(errShort)
		return
	}
	copy(dst, d.b)
	d.b = d.b[len(dst):]
}

// length reads a count and checks it against what the remaining bytes could possibly hold.
func (d *decoder) length(minItemSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > maxDecodeLen || (minItemSize > 0 && n > uint64(len(d.b)/minItemSize)) {
		d.fail(fmt.Errorf("length %d exceeds the record", n))
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.length(1)
	if d.err != nil || len(d.b) < n {
		d.fail(errShort)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) boolean() bool { return d.byte1() != 0 }

func (d *decoder) strs() []string {
	n := d.length(1)
	if n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = d.str()
	}
	return v
}

func (d *decoder) pairs() []labelPair {
	n := d.length(2)
	if n == 0 {
		return nil
	}
	p := make([]labelPair, n)
	for i := range p {
		p[i].name = d.str()
		p[i].value = d.str()
	}
	return p
}

func encodeBatch(e *encoder, b *batch) {
	e.byte1(recBatch)
	e.str(b.tenant)
	e.varint(b.now)
	e.uvarint(uint64(len(b.resources)))
	for _, r := range b.resources {
		e.str(r.job)
		e.str(r.instance)
		e.pairs(r.attrs)
	}
	e.uvarint(uint64(len(b.spans)))
	for i := range b.spans {
		f := &b.spans[i]
		e.str(f.service)
		e.str(f.name)
		e.byte1(f.kind)
		e.byte1(f.status)
		e.str(f.statusMsg)
		e.varint(f.duration)
		e.varint(f.size)
		e.raw(f.traceID[:])
		e.raw(f.spanID[:])
		e.raw(f.parentID[:])
		e.uvarint(uint64(len(f.dims)))
		for _, d := range f.dims {
			e.str(d)
		}
		e.str(f.peer)
		e.str(f.db)
		e.varint(int64(f.resource))
		e.varint(f.start)
		e.f64(f.smMult)
		e.f64(f.sgMult)
	}
}

func encodeTick(e *encoder, now int64) {
	e.byte1(recTick)
	e.varint(now)
}

// decodeRecord decodes one WAL record: a batch, or a tick (batch nil, now set).
func decodeRecord(p []byte) (b *batch, now int64, err error) {
	d := &decoder{b: p}
	switch t := d.byte1(); t {
	case recTick:
		now = d.varint()
	case recBatch, recBatchV1:
		b = &batch{}
		b.tenant = d.str()
		b.now = d.varint()
		nres := d.length(3)
		if nres > 0 {
			b.resources = make([]resourceFact, nres)
		}
		for i := range b.resources {
			b.resources[i].job = d.str()
			b.resources[i].instance = d.str()
			b.resources[i].attrs = d.pairs()
		}
		nspans := d.length(40)
		b.spans = make([]spanFact, nspans)
		for i := range b.spans {
			f := &b.spans[i]
			f.service = d.str()
			f.name = d.str()
			f.kind = d.byte1()
			f.status = d.byte1()
			f.statusMsg = d.str()
			f.duration = d.varint()
			f.size = d.varint()
			d.raw(f.traceID[:])
			d.raw(f.spanID[:])
			d.raw(f.parentID[:])
			if nd := d.length(1); nd > 0 {
				f.dims = make([]string, nd)
				for j := range f.dims {
					f.dims[j] = d.str()
				}
			}
			f.peer = d.str()
			f.db = d.str()
			r := d.varint()
			if r < -1 || r >= int64(len(b.resources)) {
				d.fail(fmt.Errorf("span %d names resource %d of %d", i, r, len(b.resources)))
			}
			f.resource = int32(r)
			f.smMult, f.sgMult = 1, 1
			if t == recBatch {
				f.start = d.varint()
				f.smMult = d.f64()
				f.sgMult = d.f64()
				if !(f.smMult > 0) || !(f.sgMult > 0) || math.IsInf(f.smMult, 0) || math.IsInf(f.sgMult, 0) {
					d.fail(fmt.Errorf("span %d has a bad span multiplier", i))
				}
			}
			if f.duration < 0 {
				d.fail(fmt.Errorf("span %d has negative duration", i))
			}
		}
		if d.err == nil && !validTenant(b.tenant) {
			d.fail(fmt.Errorf("bad tenant %q", b.tenant))
		}
	default:
		if d.err == nil {
			d.fail(fmt.Errorf("unknown record type %d", t))
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Errorf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return nil, 0, fmt.Errorf("decode wal record: %w", d.err)
	}
	return b, now, nil
}

func validTenant(s string) bool { return s != "" }
