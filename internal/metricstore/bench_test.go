package metricstore

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// BenchmarkRemoteWriteIngest measures the remote write path end to end in process (snappy, protobuf,
// limits, TSDB append and WAL commit), 1.0 and 2.0: 1000-sample requests over 10k series, timestamps advancing.
func BenchmarkRemoteWriteIngest(b *testing.B) {
	b.Run("v1", func(b *testing.B) { benchmarkRemoteWriteIngest(b, false) })
	b.Run("v2", func(b *testing.B) { benchmarkRemoteWriteIngest(b, true) })
}

func benchmarkRemoteWriteIngest(b *testing.B, v2 bool) {
	const nSeries, batch = 10000, 1000
	s, _ := openTestStore(b, testConfig(b))
	h := s.Handler(nil)
	start := time.Now().Add(-6 * time.Hour).UnixMilli()
	contentType := contentTypeV1
	if v2 {
		contentType = contentTypeV2
	}
	encode := func(round, lo int) []byte {
		wr := prompb.WriteRequest{}
		st := writev2.NewSymbolTable()
		wr2 := writev2.Request{}
		for i := lo; i < lo+batch; i++ {
			ls := []prompb.Label{{Name: "__name__", Value: "bench_" + strconv.Itoa(i%100)}, {Name: "instance", Value: "host-" + strconv.Itoa(i/100)}}
			smp := prompb.Sample{Value: float64(round), Timestamp: start + int64(round)*1000}
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{smp}})
			var refs []uint32
			for _, l := range ls {
				refs = append(refs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			wr2.Timeseries = append(wr2.Timeseries, writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: smp.Value, Timestamp: smp.Timestamp}}})
		}
		wr2.Symbols = st.Symbols()
		raw, _ := wr.Marshal()
		if v2 {
			raw, _ = wr2.Marshal()
		}
		return snappy.Encode(nil, raw)
	}
	const rounds = 100
	reqs := make([][]byte, 0, rounds*nSeries/batch)
	for r := 0; r < rounds; r++ {
		for lo := 0; lo < nSeries; lo += batch {
			reqs = append(reqs, encode(r, lo))
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := reqs[i%len(reqs)]
		if i > 0 && i%len(reqs) == 0 {
			b.StopTimer() // out of fresh timestamps: start a new tenant-sized store
			s, _ = openTestStore(b, testConfig(b))
			h = s.Handler(nil)
			b.StartTimer()
		}
		req := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
}
