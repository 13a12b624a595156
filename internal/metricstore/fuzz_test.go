package metricstore

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// fuzzHandler is one store's HTTP handler shared by a fuzz target's inputs.
func fuzzHandler(f *testing.F) http.Handler {
	cfg := testConfig(f)
	cfg.OutOfOrderTimeWindow = time.Hour
	s, _ := openTestStore(f, cfg)
	return s.Handler(nil)
}

func fuzzPost(t *testing.T, h http.Handler, path, contentType, encoding string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	switch rec.Code {
	case http.StatusOK, http.StatusNoContent, http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusTooManyRequests:
	default:
		t.Fatalf("POST %s: unexpected status %d: %s", path, rec.Code, rec.Body.String())
	}
	if rec.Code >= 400 && rec.Body.Len() == 0 {
		t.Fatalf("POST %s: %d without a reason", path, rec.Code)
	}
}

func seedV1() [][]byte {
	now := time.Now().UnixMilli()
	h := &histogram.Histogram{Count: 2, Sum: 1, Schema: 1, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{2}}
	reqs := []*prompb.WriteRequest{
		{Timeseries: []prompb.TimeSeries{{Labels: series("fuzz_a", "x", "1"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t"}}, Value: 1, Timestamp: now}}}}},
		{Timeseries: []prompb.TimeSeries{{Labels: series("fuzz_h"), Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, h)}}}},
		{Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "fuzz_a", Help: "h"}}},
	}
	var out [][]byte
	for _, r := range reqs {
		b, _ := r.Marshal()
		out = append(out, b)
	}
	return out
}

func seedV2() [][]byte {
	st := writev2.NewSymbolTable()
	r := &writev2.Request{Timeseries: []writev2.TimeSeries{{
		LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("fuzz_v2")},
		Samples:    []writev2.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
		Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("help")},
	}}}
	r.Symbols = st.Symbols()
	b, _ := r.Marshal()
	return [][]byte{b, {}}
}

func seedOTLP() [][]byte {
	b, _ := pmetricotlp.NewExportRequestFromMetrics(testMetrics(time.Now())).MarshalProto()
	return [][]byte{b, {}}
}

// FuzzRemoteWriteV1 feeds protobuf payloads (snappy-compressed by the harness) to the remote write 1.0 path.
func FuzzRemoteWriteV1(f *testing.F) {
	for _, s := range seedV1() {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fuzzPost(t, h, "/api/v1/write", contentTypeV1, "snappy", snappy.Encode(nil, msg))
	})
}

// FuzzRemoteWriteV2 feeds protobuf payloads to the remote write 2.0 path.
func FuzzRemoteWriteV2(f *testing.F) {
	for _, s := range seedV2() {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fuzzPost(t, h, "/api/v1/push", contentTypeV2, "snappy", snappy.Encode(nil, msg))
	})
}

// FuzzRemoteWriteBody feeds raw bodies, exercising snappy decoding itself.
func FuzzRemoteWriteBody(f *testing.F) {
	for _, s := range seedV1() {
		f.Add(snappy.Encode(nil, s))
	}
	f.Add([]byte("not snappy"))
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		fuzzPost(t, h, "/api/v1/write", contentTypeV1, "snappy", body)
	})
}

// FuzzOTLPMetrics feeds OTLP protobuf payloads to /otlp/v1/metrics.
func FuzzOTLPMetrics(f *testing.F) {
	for _, s := range seedOTLP() {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fuzzPost(t, h, "/otlp/v1/metrics", "application/x-protobuf", "", msg)
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpus: SPROUT_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SPROUT_WRITE_CORPUS") == "" {
		t.Skip("set SPROUT_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	for name, seeds := range map[string][][]byte{
		"FuzzRemoteWriteV1": seedV1(), "FuzzRemoteWriteV2": seedV2(), "FuzzOTLPMetrics": seedOTLP(),
		"FuzzRemoteWriteBody":   {snappy.Encode(nil, seedV1()[0]), []byte("not snappy")},
		"FuzzRemoteWriteV2Wire": v2WireSeeds(),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func v2WireSeeds() [][]byte {
	out := seedV2()
	for _, c := range wireCasesV2() {
		out = append(out, c.msg)
	}
	return out
}
