package metricstore

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/prometheus/prometheus/model/histogram"
	"google.golang.org/protobuf/encoding/protowire"
)

// Decoding of remote write requests, 1.0 (prompb.WriteRequest) and 2.0 (writev2.Request), in one pass over the
// decompressed protobuf into an rwRequest: flat arrays reused from request to request, whose byte slices alias
// the body. Nothing is decoded twice and nothing is re-encoded: the appender (remotewrite.go) reads the
// rwRequest, and metadata, exemplars and native histograms come out of the same pass as the samples.
//
//	1.0  WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//	     TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 3;
//	                    repeated Histogram histograms = 4; }
//	     Label        { string name = 1; string value = 2; }
//	     Sample       { double value = 1; int64 timestamp = 2; }
//	     Exemplar     { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
//	     MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
//	2.0  Request      { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
//	     TimeSeries   { repeated uint32 labels_refs = 1; repeated Sample samples = 2; repeated Histogram histograms = 3;
//	                    repeated Exemplar exemplars = 4; Metadata metadata = 5; }
//	     Sample       { double value = 1; int64 timestamp = 2; int64 start_timestamp = 3; }
//	     Exemplar     { repeated uint32 labels_refs = 1; double value = 2; int64 timestamp = 3; }
//	     Metadata     { MetricType type = 1; uint32 help_ref = 3; uint32 unit_ref = 4; }
//	both Histogram    (the same fields; 2.0 adds start_timestamp = 17)
//
// The decoder follows the generated decoders: unknown fields are skipped, a known field with the wrong wire type
// is an error, repeated scalars are read packed or not, a later value of a field replaces an earlier one (a
// oneof included), an embedded message given twice is merged. It is stricter than they are only on framing no
// encoder writes (unmatched group markers, field numbers above 2^29-1, over-long varints, a packed run of
// doubles whose length is not a multiple of 8).

// rwLabel is one label of a 1.0 series or exemplar, aliasing the body.
type rwLabel struct{ name, value []byte }

type rwSample struct {
	v     float64
	t, st int64 // st: 2.0 start timestamp
}

// rwExemplar's labels are r.labels[lo:hi] (1.0) or the symbol references r.refs[lo:hi] (2.0).
type rwExemplar struct {
	lo, hi int
	v      float64
	t      int64
}

// rwHistogram is a native histogram with the fields of both versions, kept as the generated decoders keep
// them so that the conversion follows Prometheus' ToIntHistogram/ToFloatHistogram exactly.
type rwHistogram struct {
	countInt, zeroInt     uint64
	countFloat, zeroFloat float64
	countKind, zeroKind   uint8 // which oneof member was set last: 0 none, 1 int, 2 float
	sum, zeroThreshold    float64
	schema, resetHint     int32
	negSpans, posSpans    []histogram.Span
	negDeltas, posDeltas  []int64
	negCounts, posCounts  []float64
	custom                []float64
	t, st                 int64
}

// isFloat reports whether the histogram has float counts (Prometheus' IsFloatHistogram).
func (h *rwHistogram) isFloat() bool { return h.countKind == 2 }

// toHistogram builds what the appender takes: an integer histogram, or a float one for float counts. It
// shares h's slices, which no later request reuses.
func (h *rwHistogram) toHistogram() (*histogram.Histogram, *histogram.FloatHistogram) {
	if h.isFloat() {
		fh := &histogram.FloatHistogram{
			CounterResetHint: histogram.CounterResetHint(h.resetHint),
			Schema:           h.schema,
			ZeroThreshold:    h.zeroThreshold,
			Count:            h.countFloat,
			Sum:              h.sum,
			PositiveSpans:    h.posSpans,
			PositiveBuckets:  h.posCounts,
			NegativeSpans:    h.negSpans,
			NegativeBuckets:  h.negCounts,
			CustomValues:     h.custom,
		}
		if h.zeroKind == 2 {
			fh.ZeroCount = h.zeroFloat
		}
		return nil, fh
	}
	ih := &histogram.Histogram{
		CounterResetHint: histogram.CounterResetHint(h.resetHint),
		Schema:           h.schema,
		ZeroThreshold:    h.zeroThreshold,
		Sum:              h.sum,
		PositiveSpans:    h.posSpans,
		PositiveBuckets:  h.posDeltas,
		NegativeSpans:    h.negSpans,
		NegativeBuckets:  h.negDeltas,
		CustomValues:     h.custom,
	}
	if h.countKind == 1 {
		ih.Count = h.countInt
	}
	if h.zeroKind == 1 {
		ih.ZeroCount = h.zeroInt
	}
	return ih, nil
}

// rwMetadata is one 1.0 MetricMetadata, aliasing the body.
type rwMetadata struct {
	typ              int32
	name, help, unit []byte
}

// rwSeries is one time series; its parts are index ranges into the request's arrays.
type rwSeries struct {
	// run is the bytes of a 1.0 series' label fields (tags included) when they are contiguous, which every
	// encoder produces: it identifies the series in the refCache. nil when there are no labels or they are
	// interleaved with other fields.
	run          []byte
	interleaved  bool
	labLo, labHi int // r.labels (1.0) or r.refs (2.0)
	smpLo, smpHi int
	exLo, exHi   int
	hLo, hHi     int
	// 2.0 metadata.
	mtype            int32
	helpRef, unitRef uint32
}

// rwRequest is one decoded request. Its slices keep their capacity between requests (rwRequests are pooled).
type rwRequest struct {
	v2         bool
	symbols    [][]byte // 2.0
	series     []rwSeries
	labels     []rwLabel // 1.0
	refs       []uint32  // 2.0
	samples    []rwSample
	exemplars  []rwExemplar
	histograms []rwHistogram
	metadata   []rwMetadata // 1.0
	// pending holds a series' exemplars until its labels are read, so that the series' labels (or label
	// references) stay one run in r.labels (r.refs) whatever order the fields come in.
	pending [][]byte
}

var rwRequestPool = sync.Pool{New: func() any { return new(rwRequest) }}

func getRWRequest() *rwRequest { return rwRequestPool.Get().(*rwRequest) }

// putRWRequest returns r to the pool, unless one huge request made it large enough to pin memory.
func putRWRequest(r *rwRequest) {
	if cap(r.samples) > 1<<16 || cap(r.labels) > 1<<18 || cap(r.refs) > 1<<18 || cap(r.series) > 1<<16 {
		return
	}
	r.reset(false)
	rwRequestPool.Put(r)
}

func (r *rwRequest) reset(v2 bool) {
	clear(r.symbols)
	clear(r.series) // drop references into the last body
	clear(r.labels)
	clear(r.metadata)
	clear(r.histograms)
	clear(r.pending)
	*r = rwRequest{
		v2:         v2,
		symbols:    r.symbols[:0],
		series:     r.series[:0],
		labels:     r.labels[:0],
		refs:       r.refs[:0],
		samples:    r.samples[:0],
		exemplars:  r.exemplars[:0],
		histograms: r.histograms[:0],
		metadata:   r.metadata[:0],
		pending:    r.pending[:0],
	}
}

// errDecode marks malformed protobuf, as opposed to refused samples.
var errDecode = errors.New("malformed message")

var errWireType = errors.New("wrong wire type")

type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
func (e decodeError) Unwrap() []error {
	return []error{e.err, errDecode}
}

func decodeErr(err error) error {
	if err == nil || errors.Is(err, errDecode) {
		return err
	}
	return decodeError{err}
}

func wireTypeErr(what string, typ protowire.Type) error {
	return fmt.Errorf("%s: %w %d", what, errWireType, typ)
}

// nextField reads one field of b: its number, wire type, value (for bytes fields, the payload; for others, the
// encoded value) and the rest of b.
func nextField(b []byte) (num protowire.Number, typ protowire.Type, val, rest []byte, err error) {
	// Fast path for what remote write messages are mostly made of: a one-byte tag (field numbers below 16) of a
	// bytes field whose length fits one byte (under 128 bytes: labels, samples). Everything else goes through
	// protowire, which also reports every malformation.
	if len(b) >= 2 && b[0] < 0x80 && b[0]&7 == byte(protowire.BytesType) && b[0] >= 8 && b[1] < 0x80 {
		if l := int(b[1]); 2+l <= len(b) {
			return protowire.Number(b[0] >> 3), protowire.BytesType, b[2 : 2+l], b[2+l:], nil
		}
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, nil, protowire.ParseError(n)
	}
	b = b[n:]
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return 0, 0, nil, nil, protowire.ParseError(m)
		}
		return num, typ, v, b[m:], nil
	}
	m := protowire.ConsumeFieldValue(num, typ, b)
	if m < 0 {
		return 0, 0, nil, nil, protowire.ParseError(m)
	}
	return num, typ, b[:m], b[m:], nil
}

// Scalar readers of a field value returned by nextField (already validated by it).

func varintOf(val []byte) uint64 {
	if len(val) == 1 {
		return uint64(val[0])
	}
	v, _ := protowire.ConsumeVarint(val)
	return v
}

func fixed64Of(val []byte) float64 {
	return math.Float64frombits(uint64(val[0]) | uint64(val[1])<<8 | uint64(val[2])<<16 | uint64(val[3])<<24 |
		uint64(val[4])<<32 | uint64(val[5])<<40 | uint64(val[6])<<48 | uint64(val[7])<<56)
}

// zigzag32 decodes a sint32 as the generated decoder does (the varint truncated to 32 bits first).
func zigzag32(v uint64) int32 {
	u := uint32(v)
	return int32(u>>1) ^ -int32(u&1)
}

// decodeV1 decodes a remote write 1.0 WriteRequest into r.
func (r *rwRequest) decodeV1(b []byte) error {
	r.reset(false)
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return decodeErr(fmt.Errorf("write request: %w", err))
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return decodeErr(wireTypeErr("write request timeseries", typ))
			}
			if err := r.seriesV1(val); err != nil {
				return decodeErr(fmt.Errorf("time series: %w", err))
			}
		case 3:
			if typ != protowire.BytesType {
				return decodeErr(wireTypeErr("write request metadata", typ))
			}
			if err := r.metadataV1(val); err != nil {
				return decodeErr(fmt.Errorf("metadata: %w", err))
			}
		}
	}
	return nil
}

func (r *rwRequest) seriesV1(b []byte) error {
	s := rwSeries{labLo: len(r.labels), smpLo: len(r.samples), exLo: len(r.exemplars), hLo: len(r.histograms)}
	pending := len(r.pending)
	runStart, runEnd := -1, -1 // of the label fields, as offsets into b
	off := 0
	for off < len(b) {
		num, typ, val, rest, err := nextField(b[off:])
		if err != nil {
			return err
		}
		next := len(b) - len(rest)
		if num >= 1 && num <= 4 && typ != protowire.BytesType {
			return wireTypeErr(fmt.Sprintf("field %d", num), typ)
		}
		switch num {
		case 1:
			switch {
			case runStart < 0:
				runStart, runEnd = off, next
			case runEnd == off:
				runEnd = next
			default:
				s.interleaved = true
			}
			l, err := labelV1(val)
			if err != nil {
				return err
			}
			r.labels = append(r.labels, l)
		case 2:
			smp, err := decodeSample(val, false)
			if err != nil {
				return err
			}
			r.samples = append(r.samples, smp)
		case 3:
			r.pending = append(r.pending, val)
		case 4:
			if err := r.histogram(val, false); err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
		}
		off = next
	}
	s.labHi = len(r.labels)
	for _, eb := range r.pending[pending:] {
		if err := r.exemplarV1(eb); err != nil {
			return err
		}
	}
	r.pending = r.pending[:pending]
	s.smpHi, s.exHi, s.hHi = len(r.samples), len(r.exemplars), len(r.histograms)
	if runStart >= 0 && !s.interleaved {
		s.run = b[runStart:runEnd]
	}
	r.series = append(r.series, s)
	return nil
}

func labelV1(b []byte) (rwLabel, error) {
	// Fast path for the usual encoding: name then value, each once, each under 128 bytes.
	if len(b) >= 4 && b[0] == 0x0a && b[1] < 0x80 {
		if n := 2 + int(b[1]); n+2 <= len(b) && b[n] == 0x12 && b[n+1] < 0x80 && n+2+int(b[n+1]) == len(b) {
			return rwLabel{name: b[2:n], value: b[n+2:]}, nil
		}
	}
	var l rwLabel
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return l, fmt.Errorf("label: %w", err)
		}
		b = rest
		switch num {
		case 1, 2:
			if typ != protowire.BytesType {
				return l, wireTypeErr(fmt.Sprintf("label field %d", num), typ)
			}
			if num == 1 {
				l.name = val
			} else {
				l.value = val
			}
		}
	}
	return l, nil
}

// decodeSample reads a Sample of either version (1.0 has no field 3).
func decodeSample(b []byte, v2 bool) (rwSample, error) {
	var s rwSample
	// Fast path for the usual encoding: value, then timestamp, each once.
	if len(b) >= 10 && b[0] == 0x09 && b[9] == 0x10 {
		if t, n := protowire.ConsumeVarint(b[10:]); n > 0 && 10+n == len(b) {
			return rwSample{v: fixed64Of(b[1:9]), t: int64(t)}, nil
		}
	}
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return s, fmt.Errorf("sample: %w", err)
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.Fixed64Type {
				return s, wireTypeErr("sample value", typ)
			}
			s.v = fixed64Of(val)
		case 2, 3:
			if num == 3 && !v2 {
				continue
			}
			if typ != protowire.VarintType {
				return s, wireTypeErr(fmt.Sprintf("sample field %d", num), typ)
			}
			if num == 2 {
				s.t = int64(varintOf(val))
			} else {
				s.st = int64(varintOf(val))
			}
		}
	}
	return s, nil
}

func (r *rwRequest) exemplarV1(b []byte) error {
	e := rwExemplar{lo: len(r.labels)}
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return fmt.Errorf("exemplar: %w", err)
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return wireTypeErr("exemplar labels", typ)
			}
			l, err := labelV1(val)
			if err != nil {
				return fmt.Errorf("exemplar: %w", err)
			}
			r.labels = append(r.labels, l)
		case 2:
			if typ != protowire.Fixed64Type {
				return wireTypeErr("exemplar value", typ)
			}
			e.v = fixed64Of(val)
		case 3:
			if typ != protowire.VarintType {
				return wireTypeErr("exemplar timestamp", typ)
			}
			e.t = int64(varintOf(val))
		}
	}
	e.hi = len(r.labels)
	r.exemplars = append(r.exemplars, e)
	return nil
}

func (r *rwRequest) metadataV1(b []byte) error {
	var m rwMetadata
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.VarintType {
				return wireTypeErr("metadata type", typ)
			}
			m.typ = int32(varintOf(val))
		case 2, 4, 5:
			if typ != protowire.BytesType {
				return wireTypeErr(fmt.Sprintf("metadata field %d", num), typ)
			}
			switch num {
			case 2:
				m.name = val
			case 4:
				m.help = val
			default:
				m.unit = val
			}
		}
	}
	r.metadata = append(r.metadata, m)
	return nil
}

// decodeV2 decodes a remote write 2.0 Request into r. Symbol references are checked by the appender, as
// Prometheus checks them per series.
func (r *rwRequest) decodeV2(b []byte) error {
	r.reset(true)
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return decodeErr(fmt.Errorf("write request: %w", err))
		}
		b = rest
		switch num {
		case 4:
			if typ != protowire.BytesType {
				return decodeErr(wireTypeErr("write request symbols", typ))
			}
			r.symbols = append(r.symbols, val)
		case 5:
			if typ != protowire.BytesType {
				return decodeErr(wireTypeErr("write request timeseries", typ))
			}
			if err := r.seriesV2(val); err != nil {
				return decodeErr(fmt.Errorf("time series: %w", err))
			}
		}
	}
	return nil
}

func (r *rwRequest) seriesV2(b []byte) error {
	s := rwSeries{labLo: len(r.refs), smpLo: len(r.samples), exLo: len(r.exemplars), hLo: len(r.histograms)}
	pending := len(r.pending)
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		switch num {
		case 1:
			if r.refs, err = appendUint32s(r.refs, typ, val); err != nil {
				return fmt.Errorf("labels_refs: %w", err)
			}
		case 2, 3, 4, 5:
			if typ != protowire.BytesType {
				return wireTypeErr(fmt.Sprintf("field %d", num), typ)
			}
			switch num {
			case 2:
				smp, err := decodeSample(val, true)
				if err != nil {
					return err
				}
				r.samples = append(r.samples, smp)
			case 3:
				if err := r.histogram(val, true); err != nil {
					return fmt.Errorf("histogram: %w", err)
				}
			case 4:
				r.pending = append(r.pending, val)
			case 5:
				if err := s.metadataV2(val); err != nil {
					return fmt.Errorf("metadata: %w", err)
				}
			}
		}
	}
	s.labHi = len(r.refs)
	for _, eb := range r.pending[pending:] {
		if err := r.exemplarV2(eb); err != nil {
			return err
		}
	}
	r.pending = r.pending[:pending]
	s.smpHi, s.exHi, s.hHi = len(r.samples), len(r.exemplars), len(r.histograms)
	r.series = append(r.series, s)
	return nil
}

func (s *rwSeries) metadataV2(b []byte) error {
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		switch num {
		case 1, 3, 4:
			if typ != protowire.VarintType {
				return wireTypeErr(fmt.Sprintf("field %d", num), typ)
			}
			v := varintOf(val)
			switch num {
			case 1:
				s.mtype = int32(v)
			case 3:
				s.helpRef = uint32(v)
			default:
				s.unitRef = uint32(v)
			}
		}
	}
	return nil
}

func (r *rwRequest) exemplarV2(b []byte) error {
	e := rwExemplar{lo: len(r.refs)}
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return fmt.Errorf("exemplar: %w", err)
		}
		b = rest
		switch num {
		case 1:
			if r.refs, err = appendUint32s(r.refs, typ, val); err != nil {
				return fmt.Errorf("exemplar labels_refs: %w", err)
			}
		case 2:
			if typ != protowire.Fixed64Type {
				return wireTypeErr("exemplar value", typ)
			}
			e.v = fixed64Of(val)
		case 3:
			if typ != protowire.VarintType {
				return wireTypeErr("exemplar timestamp", typ)
			}
			e.t = int64(varintOf(val))
		}
	}
	e.hi = len(r.refs)
	r.exemplars = append(r.exemplars, e)
	return nil
}

// appendUint32s appends a repeated uint32 field's value, packed or not.
func appendUint32s(dst []uint32, typ protowire.Type, val []byte) ([]uint32, error) {
	switch typ {
	case protowire.VarintType:
		return append(dst, uint32(varintOf(val))), nil
	case protowire.BytesType:
		for len(val) > 0 {
			if val[0] < 0x80 {
				dst = append(dst, uint32(val[0]))
				val = val[1:]
				continue
			}
			v, n := protowire.ConsumeVarint(val)
			if n < 0 {
				return dst, protowire.ParseError(n)
			}
			dst = append(dst, uint32(v))
			val = val[n:]
		}
		return dst, nil
	}
	return dst, wireTypeErr("packed uint32", typ)
}

// histogram decodes a Histogram of either version (1.0 has no field 17) and appends it to r.histograms. Its
// slices are fresh: the head keeps the last histogram of each series.
func (r *rwRequest) histogram(b []byte, v2 bool) error {
	r.histograms = append(r.histograms, rwHistogram{})
	h := &r.histograms[len(r.histograms)-1]
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return err
		}
		b = rest
		if num == 17 && !v2 {
			continue
		}
		switch num {
		case 1, 4, 6, 14, 15, 17: // varints
			if typ != protowire.VarintType {
				return wireTypeErr(fmt.Sprintf("field %d", num), typ)
			}
			v := varintOf(val)
			switch num {
			case 1:
				h.countInt, h.countKind = v, 1
			case 4:
				h.schema = zigzag32(v)
			case 6:
				h.zeroInt, h.zeroKind = v, 1
			case 14:
				h.resetHint = int32(v)
			case 15:
				h.t = int64(v)
			default:
				h.st = int64(v)
			}
		case 2, 3, 5, 7: // doubles
			if typ != protowire.Fixed64Type {
				return wireTypeErr(fmt.Sprintf("field %d", num), typ)
			}
			v := fixed64Of(val)
			switch num {
			case 2:
				h.countFloat, h.countKind = v, 2
			case 3:
				h.sum = v
			case 5:
				h.zeroThreshold = v
			default:
				h.zeroFloat, h.zeroKind = v, 2
			}
		case 8, 11: // spans
			if typ != protowire.BytesType {
				return wireTypeErr(fmt.Sprintf("field %d", num), typ)
			}
			sp, err := span(val)
			if err != nil {
				return err
			}
			if num == 8 {
				h.negSpans = append(h.negSpans, sp)
			} else {
				h.posSpans = append(h.posSpans, sp)
			}
		case 9, 12: // sint64 deltas
			dst := &h.negDeltas
			if num == 12 {
				dst = &h.posDeltas
			}
			if *dst, err = appendSint64s(*dst, typ, val); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
		case 10, 13, 16: // double counts, custom values
			dst := &h.negCounts
			switch num {
			case 13:
				dst = &h.posCounts
			case 16:
				dst = &h.custom
			}
			if *dst, err = appendDoubles(*dst, typ, val); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
		}
	}
	return nil
}

func span(b []byte) (histogram.Span, error) {
	var s histogram.Span
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return s, fmt.Errorf("span: %w", err)
		}
		b = rest
		switch num {
		case 1, 2:
			if typ != protowire.VarintType {
				return s, wireTypeErr(fmt.Sprintf("span field %d", num), typ)
			}
			if num == 1 {
				s.Offset = zigzag32(varintOf(val))
			} else {
				s.Length = uint32(varintOf(val))
			}
		}
	}
	return s, nil
}

func appendSint64s(dst []int64, typ protowire.Type, val []byte) ([]int64, error) {
	switch typ {
	case protowire.VarintType:
		return append(dst, protowire.DecodeZigZag(varintOf(val))), nil
	case protowire.BytesType:
		for len(val) > 0 {
			v, n := protowire.ConsumeVarint(val)
			if n < 0 {
				return dst, protowire.ParseError(n)
			}
			dst = append(dst, protowire.DecodeZigZag(v))
			val = val[n:]
		}
		return dst, nil
	}
	return dst, wireTypeErr("sint64", typ)
}

func appendDoubles(dst []float64, typ protowire.Type, val []byte) ([]float64, error) {
	switch typ {
	case protowire.Fixed64Type:
		return append(dst, fixed64Of(val)), nil
	case protowire.BytesType:
		if len(val)%8 != 0 {
			return dst, fmt.Errorf("packed doubles of %d bytes", len(val))
		}
		for ; len(val) > 0; val = val[8:] {
			dst = append(dst, fixed64Of(val))
		}
		return dst, nil
	}
	return dst, wireTypeErr("double", typ)
}

// unsafeString views b as a string without copying; the string must not outlive b's contents.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
