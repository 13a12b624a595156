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

type decbuf struct {
	b   []byte
	err error
}

func (d *decbuf) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decbuf) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decbuf) str() string {
	l := d.uvarint()
	if d.err != nil {
		return ""
	}
	if l > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
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
	n := d.count(len(d.b))
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
	n := d.count(len(d.b))
	es := make([]logql.Entry, 0, n)
	var prev int64
	for i := 0; i < n && d.err == nil; i++ {
		prev += d.varint()
		line := d.str()
		es = append(es, logql.Entry{Timestamp: prev, Line: line, Metadata: d.labels(sb)})
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
	e := encbuf{b: make([]byte, 0, size)}
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
	d := decbuf{b: b[1:]}
	var sb labels.ScratchBuilder
	r := &walRecord{tenant: d.str()}
	n := d.count(len(d.b))
	for i := 0; i < n && d.err == nil; i++ {
		lbs := d.labels(&sb)
		r.streams = append(r.streams, walStream{labels: lbs, entries: d.entries(&sb)})
	}
	return r, d.err
}
