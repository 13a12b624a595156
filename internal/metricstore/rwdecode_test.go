package metricstore

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

// The decoder is checked against Prometheus' generated decoders (prompb, writev2): for every input of a corpus
// (generated requests, hand-built messages, the committed fuzz corpora) both accept it or both refuse it, and
// what the decoder finds (series and their labels, samples, exemplars, native histograms, metadata, symbols, in
// order) is what the generated decoder finds.

// asV1 converts a decoded 1.0 request into prompb structs.
func asV1(r *rwRequest) *prompb.WriteRequest {
	out := &prompb.WriteRequest{}
	lbls := func(ls []rwLabel) []prompb.Label {
		var out []prompb.Label
		for _, l := range ls {
			out = append(out, prompb.Label{Name: string(l.name), Value: string(l.value)})
		}
		return out
	}
	for _, s := range r.series {
		ts := prompb.TimeSeries{Labels: lbls(r.labels[s.labLo:s.labHi])}
		for _, smp := range r.samples[s.smpLo:s.smpHi] {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: smp.v, Timestamp: smp.t})
		}
		for _, e := range r.exemplars[s.exLo:s.exHi] {
			ts.Exemplars = append(ts.Exemplars, prompb.Exemplar{Labels: lbls(r.labels[e.lo:e.hi]), Value: e.v, Timestamp: e.t})
		}
		for _, h := range r.histograms[s.hLo:s.hHi] {
			ts.Histograms = append(ts.Histograms, asV1Histogram(&h))
		}
		out.Timeseries = append(out.Timeseries, ts)
	}
	for _, m := range r.metadata {
		out.Metadata = append(out.Metadata, prompb.MetricMetadata{
			Type: prompb.MetricMetadata_MetricType(m.typ), MetricFamilyName: string(m.name), Help: string(m.help), Unit: string(m.unit),
		})
	}
	return out
}

func asV1Histogram(h *rwHistogram) prompb.Histogram {
	p := prompb.Histogram{
		Sum: h.sum, Schema: h.schema, ZeroThreshold: h.zeroThreshold,
		NegativeDeltas: h.negDeltas, NegativeCounts: h.negCounts, PositiveDeltas: h.posDeltas, PositiveCounts: h.posCounts,
		ResetHint: prompb.Histogram_ResetHint(h.resetHint), Timestamp: h.t, CustomValues: h.custom,
	}
	switch h.countKind {
	case 1:
		p.Count = &prompb.Histogram_CountInt{CountInt: h.countInt}
	case 2:
		p.Count = &prompb.Histogram_CountFloat{CountFloat: h.countFloat}
	}
	switch h.zeroKind {
	case 1:
		p.ZeroCount = &prompb.Histogram_ZeroCountInt{ZeroCountInt: h.zeroInt}
	case 2:
		p.ZeroCount = &prompb.Histogram_ZeroCountFloat{ZeroCountFloat: h.zeroFloat}
	}
	for _, s := range h.negSpans {
		p.NegativeSpans = append(p.NegativeSpans, prompb.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	for _, s := range h.posSpans {
		p.PositiveSpans = append(p.PositiveSpans, prompb.BucketSpan{Offset: s.Offset, Length: s.Length})
	}
	return p
}

// asV2 converts a decoded 2.0 request into writev2 structs.
func asV2(r *rwRequest) *writev2.Request {
	out := &writev2.Request{}
	for _, s := range r.symbols {
		out.Symbols = append(out.Symbols, string(s))
	}
	refs := func(rs []uint32) []uint32 { return append([]uint32(nil), rs...) }
	for _, s := range r.series {
		ts := writev2.TimeSeries{
			LabelsRefs: refs(r.refs[s.labLo:s.labHi]),
			Metadata:   writev2.Metadata{Type: writev2.Metadata_MetricType(s.mtype), HelpRef: s.helpRef, UnitRef: s.unitRef},
		}
		for _, smp := range r.samples[s.smpLo:s.smpHi] {
			ts.Samples = append(ts.Samples, writev2.Sample{Value: smp.v, Timestamp: smp.t, StartTimestamp: smp.st})
		}
		for _, e := range r.exemplars[s.exLo:s.exHi] {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{LabelsRefs: refs(r.refs[e.lo:e.hi]), Value: e.v, Timestamp: e.t})
		}
		for _, h := range r.histograms[s.hLo:s.hHi] {
			p := asV1Histogram(&h)
			w := writev2.Histogram{
				Sum: p.Sum, Schema: p.Schema, ZeroThreshold: p.ZeroThreshold,
				NegativeDeltas: p.NegativeDeltas, NegativeCounts: p.NegativeCounts, PositiveDeltas: p.PositiveDeltas, PositiveCounts: p.PositiveCounts,
				ResetHint: writev2.Histogram_ResetHint(p.ResetHint), Timestamp: p.Timestamp, CustomValues: p.CustomValues, StartTimestamp: h.st,
			}
			switch c := p.Count.(type) {
			case *prompb.Histogram_CountInt:
				w.Count = &writev2.Histogram_CountInt{CountInt: c.CountInt}
			case *prompb.Histogram_CountFloat:
				w.Count = &writev2.Histogram_CountFloat{CountFloat: c.CountFloat}
			}
			switch c := p.ZeroCount.(type) {
			case *prompb.Histogram_ZeroCountInt:
				w.ZeroCount = &writev2.Histogram_ZeroCountInt{ZeroCountInt: c.ZeroCountInt}
			case *prompb.Histogram_ZeroCountFloat:
				w.ZeroCount = &writev2.Histogram_ZeroCountFloat{ZeroCountFloat: c.ZeroCountFloat}
			}
			for _, s := range p.NegativeSpans {
				w.NegativeSpans = append(w.NegativeSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
			}
			for _, s := range p.PositiveSpans {
				w.PositiveSpans = append(w.PositiveSpans, writev2.BucketSpan{Offset: s.Offset, Length: s.Length})
			}
			ts.Histograms = append(ts.Histograms, w)
		}
		out.Timeseries = append(out.Timeseries, ts)
	}
	return out
}

// stripUnknown clears every XXX_unrecognized field (the unknown fields the generated decoders keep and this
// decoder skips), recursively.
func stripUnknown(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			stripUnknown(v.Elem())
		}
	case reflect.Slice:
		for i := range v.Len() {
			stripUnknown(v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).Name == "XXX_unrecognized" {
				v.Field(i).SetBytes(nil)
				continue
			}
			if v.Field(i).CanSet() {
				stripUnknown(v.Field(i))
			}
		}
	}
}

type marshaler interface{ Marshal() ([]byte, error) }

// sameMessage compares two messages by their encoding (which also compares NaNs by their bits), without
// unknown fields.
func sameMessage(a, b marshaler) bool {
	stripUnknown(reflect.ValueOf(a))
	stripUnknown(reflect.ValueOf(b))
	ab, err1 := a.Marshal()
	bb, err2 := b.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// sameHistograms checks that the histograms the appender gets are what Prometheus' conversion gives.
func sameHistograms(t testing.TB, r *rwRequest) {
	t.Helper()
	norm := func(v any) any {
		switch h := v.(type) {
		case *histogram.Histogram:
			if h != nil {
				c := *h
				c.PositiveSpans, c.NegativeSpans = nilIfEmpty(c.PositiveSpans), nilIfEmpty(c.NegativeSpans)
				return c
			}
		case *histogram.FloatHistogram:
			if h != nil {
				c := *h
				c.PositiveSpans, c.NegativeSpans = nilIfEmpty(c.PositiveSpans), nilIfEmpty(c.NegativeSpans)
				return c
			}
		}
		return nil
	}
	for i := range r.histograms {
		h := &r.histograms[i]
		p := asV1Histogram(h)
		gh, gfh := h.toHistogram()
		var wh *histogram.Histogram
		var wfh *histogram.FloatHistogram
		if p.IsFloatHistogram() {
			wfh = p.ToFloatHistogram()
		} else {
			wh = p.ToIntHistogram()
		}
		if fmt.Sprintf("%#v %#v", norm(gh), norm(gfh)) != fmt.Sprintf("%#v %#v", norm(wh), norm(wfh)) {
			t.Fatalf("histogram %d: got %#v %#v, Prometheus converts to %#v %#v", i, gh, gfh, wh, wfh)
		}
	}
}

func nilIfEmpty(s []histogram.Span) []histogram.Span {
	if len(s) == 0 {
		return nil
	}
	return s
}

// stricterOnly reports whether err is one of the framings this decoder refuses and the generated decoders skip
// over or read past (see rwdecode.go): not a difference in what a valid message means.
func stricterOnly(err error) bool {
	return err != nil && !errors.Is(err, errWireType)
}

// checkV1 decodes msg both ways and fails t if they differ.
func checkV1(t testing.TB, msg []byte) (decoded bool) {
	t.Helper()
	var want prompb.WriteRequest
	wantErr := want.Unmarshal(msg)
	r := getRWRequest()
	defer putRWRequest(r)
	gotErr := r.decodeV1(msg)
	if gotErr != nil && !errors.Is(gotErr, errDecode) {
		t.Fatalf("decode error %v is not a decode error", gotErr)
	}
	if wantErr == nil && stricterOnly(gotErr) {
		return false
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("generated decoder error %v, decoder error %v", wantErr, gotErr)
	}
	if wantErr != nil {
		return false
	}
	if got := asV1(r); !sameMessage(got, &want) {
		t.Fatalf("decoder read\n%+v\nthe generated decoder\n%+v", got, &want)
	}
	for _, s := range r.series {
		// The label run, when there is one, is exactly the series' labels.
		if s.run != nil {
			var ts prompb.TimeSeries
			if err := ts.Unmarshal(s.run); err != nil || len(ts.Labels) != s.labHi-s.labLo || len(ts.Samples)+len(ts.Exemplars)+len(ts.Histograms) != 0 {
				t.Fatalf("label run %q is not the series' labels (%v)", s.run, err)
			}
		}
	}
	sameHistograms(t, r)
	return true
}

// checkV2 is checkV1 for remote write 2.0.
func checkV2(t testing.TB, msg []byte) (decoded bool) {
	t.Helper()
	var want writev2.Request
	wantErr := want.Unmarshal(msg)
	r := getRWRequest()
	defer putRWRequest(r)
	gotErr := r.decodeV2(msg)
	if gotErr != nil && !errors.Is(gotErr, errDecode) {
		t.Fatalf("decode error %v is not a decode error", gotErr)
	}
	if wantErr == nil && stricterOnly(gotErr) {
		return false
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("generated decoder error %v, decoder error %v", wantErr, gotErr)
	}
	if wantErr != nil {
		return false
	}
	if got := asV2(r); !sameMessage(got, &want) {
		t.Fatalf("decoder read\n%+v\nthe generated decoder\n%+v", got, &want)
	}
	sameHistograms(t, r)
	return true
}

// randomRequests builds requests of both versions with every part a sender may use: many series, labels in
// and out of order, empty and unicode values, samples with NaN and start timestamps, exemplars, integer and
// float native histograms with custom values, metadata of every type.
func randomRequests(seed int64, n int) (v1, v2 [][]byte) {
	rng := rand.New(rand.NewSource(seed))
	str := func() string {
		words := []string{"", "a", "job", "instance", "__name__", "le", "ünïcödé", "x y", strings.Repeat("long", 40), "0"}
		return words[rng.Intn(len(words))] + strconv.Itoa(rng.Intn(5))
	}
	float := func() float64 {
		switch rng.Intn(6) {
		case 0:
			return math.NaN()
		case 1:
			return math.Inf(-1)
		}
		return rng.NormFloat64() * 1e6
	}
	spans := func() []histogram.Span {
		var s []histogram.Span
		for range rng.Intn(3) {
			s = append(s, histogram.Span{Offset: int32(rng.Intn(20) - 10), Length: uint32(rng.Intn(4))})
		}
		return s
	}
	hist := func(ts int64) prompb.Histogram {
		if rng.Intn(2) == 0 {
			h := &histogram.Histogram{Schema: int32(rng.Intn(12) - 4), ZeroThreshold: rng.Float64(), ZeroCount: uint64(rng.Intn(9)),
				Count: uint64(rng.Intn(1000)), Sum: float(), PositiveSpans: spans(), NegativeSpans: spans(),
				CounterResetHint: histogram.CounterResetHint(rng.Intn(4))}
			for range rng.Intn(5) {
				h.PositiveBuckets = append(h.PositiveBuckets, int64(rng.Intn(100)-50))
				h.NegativeBuckets = append(h.NegativeBuckets, int64(rng.Intn(100)-50))
			}
			if rng.Intn(4) == 0 {
				h.Schema, h.CustomValues = histogram.CustomBucketsSchema, []float64{0.1, 1, 10}
			}
			return prompb.FromIntHistogram(ts, h)
		}
		fh := &histogram.FloatHistogram{Schema: int32(rng.Intn(8)), ZeroCount: rng.Float64(), Count: float(), Sum: float(),
			PositiveSpans: spans(), NegativeSpans: spans()}
		for range rng.Intn(5) {
			fh.PositiveBuckets = append(fh.PositiveBuckets, float())
		}
		return prompb.FromFloatHistogram(ts, fh)
	}
	for range n {
		var r1 prompb.WriteRequest
		st := writev2.NewSymbolTable()
		var r2 writev2.Request
		for range rng.Intn(20) {
			var ts prompb.TimeSeries
			var ts2 writev2.TimeSeries
			for range rng.Intn(6) {
				l := prompb.Label{Name: str(), Value: str()}
				ts.Labels = append(ts.Labels, l)
				ts2.LabelsRefs = append(ts2.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			for range rng.Intn(4) {
				t := rng.Int63n(1 << 42)
				ts.Samples = append(ts.Samples, prompb.Sample{Value: float(), Timestamp: t})
				ts2.Samples = append(ts2.Samples, writev2.Sample{Value: float(), Timestamp: t, StartTimestamp: rng.Int63n(2) * t})
			}
			for range rng.Intn(3) {
				e := prompb.Exemplar{Labels: []prompb.Label{{Name: "trace_id", Value: str()}}, Value: float(), Timestamp: rng.Int63n(1 << 42)}
				ts.Exemplars = append(ts.Exemplars, e)
				ts2.Exemplars = append(ts2.Exemplars, writev2.Exemplar{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize(str())}, Value: e.Value, Timestamp: e.Timestamp})
			}
			for range rng.Intn(3) {
				h := hist(rng.Int63n(1 << 42))
				ts.Histograms = append(ts.Histograms, h)
				var h2 writev2.Histogram
				if b, err := h.Marshal(); err == nil && h2.Unmarshal(b) == nil { // the same fields and numbers
					h2.StartTimestamp = rng.Int63n(2) * h.Timestamp
					ts2.Histograms = append(ts2.Histograms, h2)
				}
			}
			ts2.Metadata = writev2.Metadata{Type: writev2.Metadata_MetricType(rng.Intn(9)), HelpRef: st.Symbolize(str()), UnitRef: st.Symbolize(str())}
			r1.Timeseries = append(r1.Timeseries, ts)
			r2.Timeseries = append(r2.Timeseries, ts2)
		}
		for range rng.Intn(3) {
			r1.Metadata = append(r1.Metadata, prompb.MetricMetadata{Type: prompb.MetricMetadata_MetricType(rng.Intn(9)), MetricFamilyName: str(), Help: str(), Unit: str()})
		}
		r2.Symbols = st.Symbols()
		b1, _ := r1.Marshal()
		b2, _ := r2.Marshal()
		v1, v2 = append(v1, b1), append(v2, b2)
	}
	return v1, v2
}

type wireCase struct {
	name    string
	msg     []byte
	wantErr bool
}

// Wire helpers for hand-built messages.
func wField(num protowire.Number, payload []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), payload)
}

func wVarint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func wFixed(num protowire.Number, v float64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), math.Float64bits(v))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// wireCasesV1 are hand-built 1.0 messages for what encoders rarely produce: unknown fields, interleaved labels,
// fields out of order, packed and unpacked repeated scalars, a oneof given twice, wrong wire types, truncation.
func wireCasesV1() []wireCase {
	lbl := func(n, v string) []byte { return cat(wField(1, []byte(n)), wField(2, []byte(v))) }
	sample := cat(wVarint(2, 5), wFixed(1, 1)) // timestamp before value
	unknown := wVarint(9, 7)
	interleaved := wField(1, cat(wField(1, lbl("__name__", "m")), wField(2, sample), wField(3, wField(1, lbl("trace_id", "t"))), wField(1, lbl("job", "j"))))
	withUnknown := wField(1, cat(unknown, wField(1, cat(lbl("__name__", "m"), unknown)), wField(2, sample), unknown))
	packed := func(num protowire.Number, vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = protowire.AppendVarint(b, v)
		}
		return wField(num, b)
	}
	hist := cat(wVarint(1, 3), wFixed(2, 2.5), wVarint(1, 4), // count oneof: int, float, int again
		wVarint(4, protowire.EncodeZigZag(-3)), wField(11, cat(wVarint(1, protowire.EncodeZigZag(-1)), wVarint(2, 2))),
		packed(12, protowire.EncodeZigZag(2), protowire.EncodeZigZag(-1)), wVarint(12, protowire.EncodeZigZag(5)),
		wFixed(13, 1.5), wField(16, binaryDoubles(0.5, 1)), wFixed(7, 0.25), wVarint(15, 123), wVarint(17, 9))
	return []wireCase{
		{name: "empty", msg: nil},
		{name: "interleaved labels and an exemplar between them", msg: interleaved},
		{name: "unknown fields", msg: cat(unknown, withUnknown, unknown)},
		{name: "histogram fields in every encoding", msg: wField(1, cat(wField(1, lbl("__name__", "h")), wField(4, hist)))},
		{name: "metadata of an unknown type", msg: wField(3, cat(wVarint(1, 42), wField(2, []byte("m")), wField(4, []byte("help")), wField(5, []byte("unit"))))},
		{name: "series field as varint", msg: wVarint(1, 3), wantErr: true},
		{name: "sample as varint", msg: wField(1, cat(wField(1, lbl("__name__", "m")), wVarint(2, 1))), wantErr: true},
		{name: "sample value as bytes", msg: wField(1, cat(wField(1, lbl("__name__", "m")), wField(2, wField(1, []byte("x"))))), wantErr: true},
		{name: "histogram schema as bytes", msg: wField(1, wField(4, wField(4, nil))), wantErr: true},
		{name: "truncated", msg: withUnknown[:len(withUnknown)-3], wantErr: true},
		{name: "field number zero", msg: []byte{0x02, 0x00}, wantErr: true},
	}
}

// wireCasesV2 are the same for 2.0: symbols after the series, packed and unpacked references, exemplars before
// the series' own references, metadata given twice (merged), references out of range (decoded: the appender
// refuses them).
func wireCasesV2() []wireCase {
	syms := cat(wField(4, nil), wField(4, []byte("__name__")), wField(4, []byte("m")), wField(4, []byte("trace_id")), wField(4, []byte("t")))
	sample := cat(wFixed(1, 2), wVarint(2, 7), wVarint(3, 6))
	exemplar := wField(4, cat(wVarint(1, 3), wVarint(1, 4), wFixed(2, 1), wVarint(3, 7)))
	series := wField(5, cat(exemplar, wVarint(1, 1), wField(1, []byte{2}), wField(2, sample),
		wField(5, wVarint(1, 1)), wField(5, wVarint(3, 2))))
	return []wireCase{
		{name: "empty", msg: nil},
		{name: "symbols after the series", msg: cat(series, syms)},
		{name: "references out of range", msg: cat(wField(5, cat(wVarint(1, 99), wField(2, sample))), syms)},
		{name: "histogram with a start timestamp", msg: cat(syms, wField(5, cat(wField(1, []byte{1, 2}), wField(3, cat(wVarint(1, 1), wVarint(17, 5), wVarint(15, 9))))))},
		{name: "unknown fields", msg: cat(wVarint(1, 1), syms, wField(3, []byte("reserved")), series, wFixed(6, 1))},
		{name: "symbol as varint", msg: wVarint(4, 1), wantErr: true},
		{name: "metadata type as bytes", msg: wField(5, wField(5, wField(1, nil))), wantErr: true},
		{name: "labels_refs as fixed64", msg: wField(5, wFixed(1, 1)), wantErr: true},
		{name: "truncated", msg: series[:len(series)-2], wantErr: true},
	}
}

func binaryDoubles(vs ...float64) []byte {
	var b []byte
	for _, v := range vs {
		b = protowire.AppendFixed64(b, math.Float64bits(v))
	}
	return b
}

// fuzzCorpus reads the committed corpus of a fuzz target (each file one []byte input).
func fuzzCorpus(t testing.TB, target string) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if q, ok := strings.CutPrefix(line, "[]byte("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				out = append(out, []byte(s))
			}
		}
	}
	return out
}

func TestDecodeV1MatchesPrometheus(t *testing.T) {
	v1, _ := randomRequests(21, 300)
	for _, s := range seedV1() {
		v1 = append(v1, s)
	}
	corpus := fuzzCorpus(t, "FuzzRemoteWriteV1Wire")
	decoded := 0
	for i, msg := range append(v1, corpus...) {
		t.Run("corpus-"+strconv.Itoa(i), func(t *testing.T) {
			if checkV1(t, msg) {
				decoded++
			}
		})
	}
	if len(corpus) == 0 || decoded < 300 {
		t.Errorf("%d committed fuzz inputs, %d messages decoded: the corpus is not being read", len(corpus), decoded)
	}
	for _, c := range wireCasesV1() {
		t.Run(c.name, func(t *testing.T) {
			var want prompb.WriteRequest
			if err := want.Unmarshal(c.msg); (err != nil) != c.wantErr {
				t.Fatalf("generated decoder: %v (case expects error: %v)", err, c.wantErr)
			}
			r := getRWRequest()
			defer putRWRequest(r)
			if err := r.decodeV1(c.msg); (err != nil) != c.wantErr {
				t.Fatalf("decoder: %v (want error: %v)", err, c.wantErr)
			}
			checkV1(t, c.msg)
		})
	}
}

func TestDecodeV2MatchesPrometheus(t *testing.T) {
	_, v2 := randomRequests(22, 300)
	v2 = append(v2, seedV2()...)
	corpus := fuzzCorpus(t, "FuzzRemoteWriteV2Wire")
	decoded := 0
	for i, msg := range append(v2, corpus...) {
		t.Run("corpus-"+strconv.Itoa(i), func(t *testing.T) {
			if checkV2(t, msg) {
				decoded++
			}
		})
	}
	if len(corpus) == 0 || decoded < 300 {
		t.Errorf("%d committed fuzz inputs, %d messages decoded: the corpus is not being read", len(corpus), decoded)
	}
	for _, c := range wireCasesV2() {
		t.Run(c.name, func(t *testing.T) {
			var want writev2.Request
			if err := want.Unmarshal(c.msg); (err != nil) != c.wantErr {
				t.Fatalf("generated decoder: %v (case expects error: %v)", err, c.wantErr)
			}
			r := getRWRequest()
			defer putRWRequest(r)
			if err := r.decodeV2(c.msg); (err != nil) != c.wantErr {
				t.Fatalf("decoder: %v (want error: %v)", err, c.wantErr)
			}
			checkV2(t, c.msg)
		})
	}
}

// TestDecodeReusesRequest: a pooled request decoded again holds only the new message.
func TestDecodeReusesRequest(t *testing.T) {
	v1, v2 := randomRequests(5, 40)
	r := new(rwRequest)
	for i := range v1 {
		if err := r.decodeV1(v1[i]); err != nil {
			t.Fatal(err)
		}
		var want prompb.WriteRequest
		_ = want.Unmarshal(v1[i])
		if !sameMessage(asV1(r), &want) {
			t.Fatalf("1.0 request %d decoded into a used request differs", i)
		}
		if err := r.decodeV2(v2[i]); err != nil {
			t.Fatal(err)
		}
		var want2 writev2.Request
		_ = want2.Unmarshal(v2[i])
		if !sameMessage(asV2(r), &want2) {
			t.Fatalf("2.0 request %d decoded into a used request differs", i)
		}
	}
}

// FuzzRemoteWriteV1Wire checks the 1.0 decoder against the generated decoder (see checkV1).
func FuzzRemoteWriteV1Wire(f *testing.F) {
	for _, s := range seedV1() {
		f.Add(s)
	}
	for _, c := range wireCasesV1() {
		f.Add(c.msg)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkV1(t, data) })
}

// FuzzRemoteWriteV2Wire checks the 2.0 decoder against the generated decoder (see checkV2).
func FuzzRemoteWriteV2Wire(f *testing.F) {
	for _, s := range seedV2() {
		f.Add(s)
	}
	for _, c := range wireCasesV2() {
		f.Add(c.msg)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkV2(t, data) })
}

// BenchmarkDecodeV1 and BenchmarkDecodeV2 measure the decoder alone on a 500-series request of the shape
// metricload sends (one sample each).
func BenchmarkDecodeV1(b *testing.B) {
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
	r := new(rwRequest)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.decodeV1(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV2(b *testing.B) {
	st := writev2.NewSymbolTable()
	var req writev2.Request
	for i := range 500 {
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("load_metric_" + strconv.Itoa(i%100)), st.Symbolize("instance"),
				st.Symbolize("host-" + strconv.Itoa(i/100)), st.Symbolize("job"), st.Symbolize("metricload")},
			Samples: []writev2.Sample{{Value: float64(i), Timestamp: 1700000000000 + int64(i)}},
		})
	}
	req.Symbols = st.Symbols()
	body, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	r := new(rwRequest)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.decodeV2(body); err != nil {
			b.Fatal(err)
		}
	}
}
