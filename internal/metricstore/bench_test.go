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
)

// BenchmarkRemoteWriteIngest measures the remote write 1.0 path end to end in process (snappy, protobuf,
// limits, TSDB append and WAL commit): 1000-sample requests over 10k series, timestamps advancing.
func BenchmarkRemoteWriteIngest(b *testing.B) {
	const nSeries, batch = 10000, 1000
	s, _ := openTestStore(b, testConfig(b))
	h := s.Handler(nil)
	start := time.Now().Add(-6 * time.Hour).UnixMilli()
	encode := func(round, lo int) []byte {
		wr := prompb.WriteRequest{}
		for i := lo; i < lo+batch; i++ {
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "bench_" + strconv.Itoa(i%100)}, {Name: "instance", Value: "host-" + strconv.Itoa(i/100)}},
				Samples: []prompb.Sample{{Value: float64(round), Timestamp: start + int64(round)*1000}},
			})
		}
		raw, _ := wr.Marshal()
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
		req.Header.Set("Content-Type", contentTypeV1)
		req.Header.Set("Content-Encoding", "snappy")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "samples/s")
}
