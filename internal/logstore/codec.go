package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
)

var errShort = errors.New("truncated data")

type encbuf struct{ b []byte }

func (e *encbuf) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encbuf) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encbuf) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encbuf) labels(ls labels.Labels) {
	e.uvarint(uint64(ls.Len()))
	ls.Range(func(l labels.Label) { e.str(l.Name); e.str(l.Value) })
}

func (e *encbuf) entries(es []logql.Entry) {
	e.uvarint(uint64(len(es)))
	var prev int64
	for _, en := range es {
		e.varint(en.Timestamp - prev)
		prev = en.Timestamp
		e.str(en.Line)
		e.labels(en.Metadata)
	}
}

// decbuf reads what encbuf wrote. It works on a string so that the lines and label values it returns are
// substrings of one allocation, not one allocation each.
type decbuf struct {
	s   string
	err error
}

func (d *decbuf) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < len(d.s); i++ {
		c := d.s[i]
		if i == binary.MaxVarintLen64 {
			d.err = errShort
			return 0
		}
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				d.err = errShort
				return 0
			}
			d.s = d.s[i+1:]
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.err = errShort
	return 0
}

func (d *decbuf) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decbuf) str() string {
	l := d.uvarint()
	if d.err != nil {
		return ""
	}
	if l > uint64(len(d.s)) {
		d.err = errShort
		return ""
	}
	s := d.s[:l]
	d.s = d.s[l:]
	return s
}

// skipLabels passes over a label set and returns its encoding.
func (d *decbuf) skipLabels() string {
	before := d.s
	for k, nl := 0, d.count(len(d.s)); k < 2*nl && d.err == nil; k++ {
		d.str()
	}
	return before[:len(before)-len(d.s)]
}

func (d *decbuf) count(max int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(max) {
		d.err = fmt.Errorf("count %d exceeds remaining data", n)
		return 0
	}
	return int(n)
}

func (d *decbuf) labels(sb *labels.ScratchBuilder) labels.Labels {
	n := d.count(len(d.s))
	if n == 0 {
		return labels.EmptyLabels()
	}
	sb.Reset()
	for i := 0; i < n && d.err == nil; i++ {
		sb.Add(d.str(), d.str())
	}
	sb.Sort()
	return sb.Labels()
}

func (d *decbuf) entries(sb *labels.ScratchBuilder) []logql.Entry {
	n := d.count(len(d.s))
	es := make([]logql.Entry, 0, n)
	var prev int64
	var prevMeta labels.Labels
	var prevRaw string
	for i := 0; i < n && d.err == nil; i++ {
		prev += d.varint()
		line := d.str()
		// Consecutive lines often carry the same metadata (one trace's lines): reuse the previous Labels.
		before := d.s
		for k, nl := 0, d.count(len(d.s)); k < 2*nl && d.err == nil; k++ {
			d.str()
		}
		raw := before[:len(before)-len(d.s)]
		md := prevMeta
		if i == 0 || raw != prevRaw {
			md2 := decbuf{s: raw}
			md = md2.labels(sb)
			if md2.err != nil {
				d.err = md2.err
			}
		}
		prevMeta, prevRaw = md, raw
		es = append(es, logql.Entry{Timestamp: prev, Line: line, Metadata: md})
	}
	return es
}

// walRecord is what one push writes to the WAL: a tenant's accepted entries by stream.
type walRecord struct {
	tenant  string
	streams []walStream
}

type walStream struct {
	labels  labels.Labels
	entries []logql.Entry
}

const recEntries = 1

func encodeWALRecord(r *walRecord) []byte {
	size := 64 + len(r.tenant)
	for _, s := range r.streams {
		size += 64 + len(s.labels.String())
		for _, en := range s.entries {
			size += len(en.Line) + 16 + en.Metadata.Len()*48
		}
	}
	return appendWALRecord(make([]byte, 0, size), r)
}

// appendWALRecord appends r's encoding to b (a pooled buffer on the push path).
func appendWALRecord(b []byte, r *walRecord) []byte {
	e := encbuf{b: b}
	e.b = append(e.b, recEntries)
	e.str(r.tenant)
	e.uvarint(uint64(len(r.streams)))
	for _, s := range r.streams {
		e.labels(s.labels)
		e.entries(s.entries)
	}
	return e.b
}

func decodeWALRecord(b []byte) (*walRecord, error) {
	if len(b) == 0 || b[0] != recEntries {
		return nil, errors.New("unknown WAL record type")
	}
	d := decbuf{s: string(b[1:])}
	var sb labels.ScratchBuilder
	r := &walRecord{tenant: d.str()}
	n := d.count(len(d.s))
	for i := 0; i < n && d.err == nil; i++ {
		lbs := d.labels(&sb)
		r.streams = append(r.streams, walStream{labels: lbs, entries: d.entries(&sb)})
	}
	return r, d.err
}
