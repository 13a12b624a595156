package tempopb

import (
	"bytes"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// roundTrip encodes m, decodes the bytes into a fresh message and returns it.
func roundTrip[T any, P interface {
	*T
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}](t *testing.T, m P) P {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out := P(new(T))
	if err := out.Unmarshal(b); err != nil {
		t.Fatalf("decode %T: %v", m, err)
	}
	return out
}

func str(s string) *AnyValue { return &AnyValue{Kind: KindString, Str: s} }

func TestRoundTrip(t *testing.T) {
	search := &SearchResponse{
		Traces: []*TraceSearchMetadata{{
			TraceID: "a1", RootServiceName: "frontend", RootTraceName: "GET /", StartTimeUnixNano: 1700000000123456789, DurationMs: 12,
			SpanSets: []*SpanSet{{Matched: 3, Spans: []*Span{{SpanID: "b0", Name: "x", StartTimeUnixNano: 5, DurationNanos: 7,
				Attributes: []KeyValue{{Key: "s", Value: str("v")}, {Key: "i", Value: &AnyValue{Kind: KindInt, Int: -3}},
					{Key: "d", Value: &AnyValue{Kind: KindDouble, Double: 0.5}}, {Key: "b", Value: &AnyValue{Kind: KindBool, Bool: true}},
					{Key: "by", Value: &AnyValue{Kind: KindBytes, Bytes: []byte{1, 2}}},
					{Key: "a", Value: &AnyValue{Kind: KindArray, Array: []AnyValue{*str("x"), {Kind: KindKVList, KVList: []KeyValue{{Key: "k", Value: str("")}}}}}}}}},
				Attributes: []KeyValue{{Key: "by(name)", Value: str("x")}}}},
			ServiceStats: map[string]*ServiceStats{"frontend": {SpanCount: 2, ErrorCount: 1}, "backend": {SpanCount: 1}},
		}},
		Metrics: &SearchMetrics{InspectedTraces: 1, InspectedBytes: 1 << 40, TotalBlocks: 2, CompletedJobs: 3, TotalJobs: 3, InspectedSpans: 9},
	}
	search.Traces[0].SpanSet = search.Traces[0].SpanSets[0]
	if got := roundTrip(t, search); !reflect.DeepEqual(got, search) {
		t.Fatalf("SearchResponse:\n got %+v\nwant %+v", got, search)
	}
	qr := &QueryRangeResponse{Series: []*TimeSeries{{Labels: []KeyValue{{Key: "__name__", Value: str("rate")}},
		Samples:   []Sample{{TimestampMs: 1000, Value: 1.5}, {TimestampMs: 2000, Value: math.Copysign(0, -1)}},
		Exemplars: []Exemplar{{Labels: []KeyValue{{Key: "trace:id", Value: str("ab")}}, Value: 2, TimestampMs: 1500}}}},
		Metrics: &SearchMetrics{CompletedJobs: 1}, Status: StatusPartial, Message: "too many series"}
	if got := roundTrip(t, qr); !reflect.DeepEqual(got, qr) {
		t.Fatalf("QueryRangeResponse:\n got %+v\nwant %+v", got, qr)
	}
	for _, m := range []any{
		&SearchRequest{Tags: map[string]string{"a": "b"}, MinDurationMs: 1, MaxDurationMs: 2, Limit: 3, Start: 4, End: 5, Query: "{ }", SpansPerSpanSet: 6},
		&SearchTagsRequest{Scope: "span", Query: "{}", Start: 1, End: 2, MaxTagsPerScope: 3},
		&SearchTagValuesRequest{TagName: "span.x", Query: "{}", Start: 1, End: 2, MaxTagValues: 3},
		&QueryRangeRequest{Query: "{} | rate()", Start: 1, End: 2, Step: 3, QueryMode: "recent", Exemplars: 4, MaxSeries: 5, Instant: true},
		&QueryInstantRequest{Query: "{} | rate()", Start: 1, End: 2},
		&SearchTagsResponse{TagNames: []string{"a", ""}, Metrics: &MetadataMetrics{InspectedBytes: 1, TotalJobs: 2, CompletedJobs: 3, TotalBlocks: 4, TotalBlockBytes: 5}},
		&SearchTagsV2Response{Scopes: []*SearchTagsV2Scope{{Name: "span", Tags: []string{"a"}}}, Metrics: &MetadataMetrics{}},
		&SearchTagValuesResponse{TagValues: []string{"x"}, Metrics: &MetadataMetrics{}},
		&SearchTagValuesV2Response{TagValues: []*TagValue{{Type: "int", Value: "200"}}, Metrics: &MetadataMetrics{}},
		&QueryInstantResponse{Series: []*InstantSeries{{Labels: []KeyValue{{Key: "k", Value: str("v")}}, Value: 3}}, Metrics: &SearchMetrics{}},
	} {
		msg := m.(interface {
			Marshal() ([]byte, error)
			Unmarshal([]byte) error
		})
		b, _ := msg.Marshal()
		out := reflect.New(reflect.TypeOf(m).Elem()).Interface().(interface{ Unmarshal([]byte) error })
		if err := out.Unmarshal(b); err != nil || !reflect.DeepEqual(out, m) {
			t.Fatalf("%T: got %+v (%v), want %+v", m, out, err, m)
		}
	}
}

// TestWireFormat pins field numbers against bytes written by hand from Tempo's format.
func TestWireFormat(t *testing.T) {
	var b []byte
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, `{ .a = "b" }`)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, 20)
	b = protowire.AppendTag(b, 5, protowire.VarintType)
	b = protowire.AppendVarint(b, 1700000000)
	b = protowire.AppendTag(b, 9, protowire.VarintType)
	b = protowire.AppendVarint(b, 3)
	b = protowire.AppendTag(b, 10, protowire.BytesType) // RF1After, a Timestamp: skipped
	b = protowire.AppendBytes(b, []byte{8, 1})
	var req SearchRequest
	if err := req.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	want := SearchRequest{Query: `{ .a = "b" }`, Limit: 20, Start: 1700000000, SpansPerSpanSet: 3}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("got %+v, want %+v", req, want)
	}
	// Sample: value = 1 (double), timestamp_ms = 2.
	s, _ := (&Sample{TimestampMs: 7, Value: 1}).Marshal()
	if want := []byte{0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 7}; !reflect.DeepEqual(s, want) {
		t.Fatalf("Sample: % x, want % x", s, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	deep := []byte{}
	for range 200 { // arrays in arrays, deeper than maxDepth
		deep = append(protowire.AppendTag(nil, 5, protowire.BytesType), protowire.AppendBytes(nil, append(protowire.AppendTag(nil, 1, protowire.BytesType), protowire.AppendBytes(nil, deep)...))...)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"truncated tag", []byte{0x80}},
		{"truncated string", []byte{0x42, 5, 'a'}},
		{"wrong type for limit", []byte{0x25, 0, 0, 0, 0}},
		{"wrong type for query", []byte{0x40, 1}},
		{"field zero", []byte{0x00, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var req SearchRequest
			if err := req.Unmarshal(tc.b); err == nil {
				t.Fatalf("decoded %+v from % x", req, tc.b)
			}
		})
	}
	var v AnyValue
	if err := v.Unmarshal(deep); err == nil {
		t.Fatal("decoded values nested 200 deep")
	}
}

func FuzzSearchResponse(f *testing.F) {
	seed, _ := (&SearchResponse{Traces: []*TraceSearchMetadata{{TraceID: "a", SpanSets: []*SpanSet{{Spans: []*Span{{SpanID: "b",
		Attributes: []KeyValue{{Key: "k", Value: &AnyValue{Kind: KindArray, Array: []AnyValue{{Kind: KindInt, Int: 1}}}}}}}}},
		ServiceStats: map[string]*ServiceStats{"s": {SpanCount: 1}}}}, Metrics: &SearchMetrics{TotalJobs: 1}}).Marshal()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m SearchResponse
		if m.Unmarshal(b) != nil {
			return
		}
		// What decodes re-encodes to bytes that decode, and encode again to the same bytes (the first
		// re-encoding drops unknown fields, repeated scalars and oneof members overwritten by later ones).
		again, _ := m.Marshal()
		var m2 SearchResponse
		if err := m2.Unmarshal(again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if third, _ := m2.Marshal(); !bytes.Equal(third, again) {
			t.Fatalf("re-encoding changed:\n% x\n% x", again, third)
		}
	})
}

func FuzzRequests(f *testing.F) {
	for _, m := range []interface{ Marshal() ([]byte, error) }{
		&SearchRequest{Tags: map[string]string{"a": "b"}, Query: "{}", Limit: 1},
		&SearchTagValuesRequest{TagName: "x", Query: "{}"},
		&QueryRangeRequest{Query: "{} | rate()", Step: 1, Instant: true},
	} {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a SearchRequest
		_ = a.Unmarshal(b)
		var c SearchTagsRequest
		_ = c.Unmarshal(b)
		var d SearchTagValuesRequest
		_ = d.Unmarshal(b)
		var e QueryRangeRequest
		_ = e.Unmarshal(b)
		var g QueryInstantRequest
		_ = g.Unmarshal(b)
	})
}

func FuzzMetricsResponses(f *testing.F) {
	b, _ := (&QueryRangeResponse{Series: []*TimeSeries{{Labels: []KeyValue{{Key: "k", Value: &AnyValue{Kind: KindString, Str: "v"}}},
		Samples: []Sample{{TimestampMs: 1, Value: 2}}, Exemplars: []Exemplar{{Value: 1}}}}}).Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r QueryRangeResponse
		_ = r.Unmarshal(b)
		var i QueryInstantResponse
		_ = i.Unmarshal(b)
		var tg SearchTagsV2Response
		_ = tg.Unmarshal(b)
		var tv SearchTagValuesV2Response
		_ = tv.Unmarshal(b)
	})
}
