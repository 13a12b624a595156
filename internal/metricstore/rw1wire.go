package metricstore

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// Wire-level reading of a decompressed remote write 1.0 WriteRequest (prompb):
//
//	WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; repeated Exemplar exemplars = 3;
//	               repeated Histogram histograms = 4; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }
//	Exemplar     { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }
//
// The request is walked in place instead of being unmarshalled into prompb structs: the structs cost one
// allocation per series, label and sample, and the labels of a series the store already holds need not be
// decoded at all (see refCache). Unknown fields are skipped, as protobuf decoders do; a field of a known number
// with the wrong wire type is an error, as it is for the generated decoder.

var errWireType = errors.New("wrong wire type")

// nextField reads one field of b: its number, wire type, value (for bytes fields, the payload; for others, the
// encoded value) and the rest of b.
func nextField(b []byte) (num protowire.Number, typ protowire.Type, val, rest []byte, err error) {
	// Fast path for what remote write messages are made of: a one-byte tag (field numbers below 16) of a bytes
	// field whose length fits one byte (under 128 bytes: labels, samples). Everything else goes through
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

// walkWriteRequest calls series for each TimeSeries and meta for each MetricMetadata of a WriteRequest, with
// the message's bytes.
func walkWriteRequest(b []byte, series, meta func([]byte) error) error {
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return decodeErr(fmt.Errorf("write request: %w", err))
		}
		b = rest
		switch num {
		case 1, 3:
			if typ != protowire.BytesType {
				return decodeErr(fmt.Errorf("write request field %d: %w %d", num, errWireType, typ))
			}
			fn := series
			if num == 3 {
				fn = meta
			}
			if err := fn(val); err != nil {
				return err
			}
		}
	}
	return nil
}

// seriesLayout is what one pass over a TimeSeries finds: where its labels are and what else it holds.
type seriesLayout struct {
	// labels are the bytes of the label fields (tags included) when they are contiguous, which every encoder
	// produces; they identify the series in the refCache. nil when there are no labels or they are interleaved
	// with other fields (then the series is read the slow way).
	labels     []byte
	interleave bool
	samples    int
	exemplars  int
	histograms int
}

func scanSeries(ts []byte) (seriesLayout, error) {
	var l seriesLayout
	start, end := -1, -1 // of the label run, as offsets into ts
	off := 0
	for off < len(ts) {
		num, typ, _, rest, err := nextField(ts[off:])
		if err != nil {
			return l, fmt.Errorf("time series: %w", err)
		}
		next := len(ts) - len(rest)
		if num >= 1 && num <= 4 && typ != protowire.BytesType {
			return l, fmt.Errorf("time series field %d: %w %d", num, errWireType, typ)
		}
		switch num {
		case 1:
			switch {
			case start < 0:
				start, end = off, next
			case end == off:
				end = next
			default:
				l.interleave = true
			}
		case 2:
			l.samples++
		case 3:
			l.exemplars++
		case 4:
			l.histograms++
		}
		off = next
	}
	if start >= 0 && !l.interleave {
		l.labels = ts[start:end]
	}
	return l, nil
}

// forEachLabel calls fn with the name and value of each Label (field 1) of b, which is a TimeSeries, an
// Exemplar or a run of their label fields. name and value alias b.
func forEachLabel(b []byte, fn func(name, value []byte) error) error {
	for len(b) > 0 {
		num, _, val, rest, err := nextField(b)
		if err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		b = rest
		if num != 1 {
			continue
		}
		name, value, err := parseLabel(val)
		if err != nil {
			return err
		}
		if err := fn(name, value); err != nil {
			return err
		}
	}
	return nil
}

func parseLabel(b []byte) (name, value []byte, err error) {
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return nil, nil, fmt.Errorf("label: %w", err)
		}
		b = rest
		if num != 1 && num != 2 {
			continue
		}
		if typ != protowire.BytesType {
			return nil, nil, fmt.Errorf("label field %d: %w %d", num, errWireType, typ)
		}
		if num == 1 {
			name = val
		} else {
			value = val
		}
	}
	return name, value, nil
}

// forEachSample calls fn for each Sample (field 2) of a TimeSeries.
func forEachSample(ts []byte, fn func(v float64, t int64) error) error {
	return forEachField(ts, 2, func(s []byte) error {
		v, t, err := parseSample(s)
		if err != nil {
			return decodeErr(err)
		}
		return fn(v, t)
	})
}

// forEachField calls fn with the payload of each bytes field number num of b.
func forEachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, _, val, rest, err := nextField(b)
		if err != nil {
			return decodeErr(err)
		}
		b = rest
		if n == num {
			if err := fn(val); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseSample(b []byte) (v float64, t int64, err error) {
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return 0, 0, fmt.Errorf("sample: %w", err)
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.Fixed64Type {
				return 0, 0, fmt.Errorf("sample value: %w %d", errWireType, typ)
			}
			u, _ := protowire.ConsumeFixed64(val)
			v = math.Float64frombits(u)
		case 2:
			if typ != protowire.VarintType {
				return 0, 0, fmt.Errorf("sample timestamp: %w %d", errWireType, typ)
			}
			u, _ := protowire.ConsumeVarint(val)
			t = int64(u)
		}
	}
	return v, t, nil
}

// parseExemplar reads an Exemplar: its label fields (for forEachLabel), value and timestamp.
func parseExemplar(b []byte) (lbls []byte, v float64, t int64, err error) {
	lbls = b
	for len(b) > 0 {
		num, typ, val, rest, err := nextField(b)
		if err != nil {
			return nil, 0, 0, fmt.Errorf("exemplar: %w", err)
		}
		b = rest
		switch num {
		case 1:
			if typ != protowire.BytesType {
				return nil, 0, 0, fmt.Errorf("exemplar labels: %w %d", errWireType, typ)
			}
		case 2:
			if typ != protowire.Fixed64Type {
				return nil, 0, 0, fmt.Errorf("exemplar value: %w %d", errWireType, typ)
			}
			u, _ := protowire.ConsumeFixed64(val)
			v = math.Float64frombits(u)
		case 3:
			if typ != protowire.VarintType {
				return nil, 0, 0, fmt.Errorf("exemplar timestamp: %w %d", errWireType, typ)
			}
			u, _ := protowire.ConsumeVarint(val)
			t = int64(u)
		}
	}
	return lbls, v, t, nil
}

// unsafeString views b as a string without copying; the string must not outlive b's contents.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
