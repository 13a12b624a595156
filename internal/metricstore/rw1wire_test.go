package metricstore

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
)

// decodeWire reads a WriteRequest with the wire-level reader into prompb structs, so tests can compare it with
// the generated decoder.
func decodeWire(b []byte) (*prompb.WriteRequest, error) {
	out := &prompb.WriteRequest{}
	err := walkWriteRequest(b, func(ts []byte) error { return decodeErr(readSeries(out, ts)) }, func(mb []byte) error {
		var m prompb.MetricMetadata
		if err := m.Unmarshal(mb); err != nil {
			return decodeErr(err)
		}
		out.Metadata = append(out.Metadata, m)
		return nil
	})
	return out, err
}

func readSeries(out *prompb.WriteRequest, ts []byte) error {
	{
		layout, err := scanSeries(ts)
		if err != nil {
			return err
		}
		var s prompb.TimeSeries
		if layout.labels != nil {
			// The contiguous run must hold exactly the series' labels.
			var all, run []prompb.Label
			if err := forEachLabel(ts, func(n, v []byte) error { all = append(all, label(n, v)); return nil }); err != nil {
				return err
			}
			if err := forEachLabel(layout.labels, func(n, v []byte) error { run = append(run, label(n, v)); return nil }); err != nil {
				return err
			}
			if len(all) != len(run) {
				return errors.New("label run is not every label")
			}
		}
		if err := forEachLabel(ts, func(n, v []byte) error { s.Labels = append(s.Labels, label(n, v)); return nil }); err != nil {
			return err
		}
		if err := forEachSample(ts, func(v float64, t int64) error {
			s.Samples = append(s.Samples, prompb.Sample{Value: v, Timestamp: t})
			return nil
		}); err != nil {
			return err
		}
		if err := forEachField(ts, 3, func(eb []byte) error {
			lb, v, t, err := parseExemplar(eb)
			if err != nil {
				return err
			}
			e := prompb.Exemplar{Value: v, Timestamp: t}
			if err := forEachLabel(lb, func(n, v []byte) error { e.Labels = append(e.Labels, label(n, v)); return nil }); err != nil {
				return err
			}
			s.Exemplars = append(s.Exemplars, e)
			return nil
		}); err != nil {
			return err
		}
		if err := forEachField(ts, 4, func(hb []byte) error {
			var h prompb.Histogram
			if err := h.Unmarshal(hb); err != nil {
				return err
			}
			s.Histograms = append(s.Histograms, h)
			return nil
		}); err != nil {
			return err
		}
		if len(s.Samples) != layout.samples || len(s.Exemplars) != layout.exemplars || len(s.Histograms) != layout.histograms {
			return errors.New("layout counts differ from what was read")
		}
		out.Timeseries = append(out.Timeseries, s)
		return nil
	}
}

func label(n, v []byte) prompb.Label { return prompb.Label{Name: string(n), Value: string(v)} }

type wireCase struct {
	name    string
	msg     []byte
	wantErr bool
}

// wireCases are hand-built messages for what encoders rarely produce: unknown fields, interleaved labels,
// fields out of order, wrong wire types, truncation.
func wireCases() []wireCase {
	lbl := func(n, v string) []byte {
		var b []byte
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, n)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
		return b
	}
	field := func(num protowire.Number, payload []byte) []byte {
		b := protowire.AppendTag(nil, num, protowire.BytesType)
		return protowire.AppendBytes(b, payload)
	}
	sample := func(v float64, t int64) []byte {
		var b []byte
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(t))
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, 0x3ff0000000000000) // 1.0, written after the timestamp
		return b
	}
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 7)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	interleaved := field(1, cat(field(1, lbl("__name__", "m")), field(2, sample(1, 5)), field(1, lbl("job", "j"))))
	withUnknown := field(1, cat(unknown, field(1, cat(lbl("__name__", "m"), unknown)), field(2, sample(1, 5)), unknown))
	wrongSampleType := field(1, cat(field(1, lbl("__name__", "m")), protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)))
	wrongValueType := field(1, cat(field(1, lbl("__name__", "m")), field(2, field(1, []byte("x")))))
	return []wireCase{
		{name: "empty", msg: nil},
		{name: "interleaved labels", msg: interleaved},
		{name: "unknown fields", msg: cat(unknown, withUnknown, unknown)},
		{name: "series field as varint", msg: protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3), wantErr: true},
		{name: "sample as varint", msg: wrongSampleType, wantErr: true},
		{name: "sample value as bytes", msg: wrongValueType, wantErr: true},
		{name: "truncated", msg: withUnknown[:len(withUnknown)-3], wantErr: true},
		{name: "field number zero", msg: []byte{0x02, 0x00}, wantErr: true},
	}
}

func TestWireReaderMatchesGeneratedDecoder(t *testing.T) {
	cases := wireCases()
	for i, s := range seedV1() {
		cases = append(cases, wireCase{name: "seed " + string(rune('0'+i)), msg: s})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var want prompb.WriteRequest
			wantErr := want.Unmarshal(c.msg)
			got, err := decodeWire(c.msg)
			if (wantErr != nil) != c.wantErr {
				t.Fatalf("generated decoder: %v (case expects error: %v)", wantErr, c.wantErr)
			}
			if (err != nil) != c.wantErr {
				t.Fatalf("wire reader: %v (want error: %v)", err, c.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errDecode) {
					t.Errorf("wire reader error %v is not a decode error", err)
				}
				return
			}
			if !sameRequest(got, &want) {
				t.Errorf("wire reader read\n%+v\nwant\n%+v", got, &want)
			}
		})
	}
}

// sameRequest compares two WriteRequests by their encoding, without the unknown fields the generated decoder
// keeps (the wire reader skips them).
func sameRequest(a, b *prompb.WriteRequest) bool {
	ab, _ := stripUnknown(a).Marshal()
	bb, _ := stripUnknown(b).Marshal()
	return bytes.Equal(ab, bb)
}

func stripUnknown(r *prompb.WriteRequest) *prompb.WriteRequest {
	r.XXX_unrecognized = nil
	for i := range r.Timeseries {
		ts := &r.Timeseries[i]
		ts.XXX_unrecognized = nil
		for j := range ts.Labels {
			ts.Labels[j].XXX_unrecognized = nil
		}
		for j := range ts.Samples {
			ts.Samples[j].XXX_unrecognized = nil
		}
		for j := range ts.Exemplars {
			ts.Exemplars[j].XXX_unrecognized = nil
			for k := range ts.Exemplars[j].Labels {
				ts.Exemplars[j].Labels[k].XXX_unrecognized = nil
			}
		}
	}
	return r
}

// BenchmarkWireWalk measures the wire reader alone on a 500-series request (labels scanned and hashed,
// samples read), as the receiver reads a request of known series.
func BenchmarkWireWalk(b *testing.B) {
	var req prompb.WriteRequest
	for i := range 500 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  series("load_metric_"+strconv.Itoa(i%100), "instance", "host-"+strconv.Itoa(i/100), "job", "metricload"),
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: 1700000000000 + int64(i)}},
		})
	}
	body, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		err := walkWriteRequest(body, func(ts []byte) error {
			layout, err := scanSeries(ts)
			if err != nil {
				return err
			}
			_ = xxhash.Sum64(layout.labels)
			return forEachSample(ts, func(v float64, _ int64) error { sum += v; return nil })
		}, func([]byte) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
}
