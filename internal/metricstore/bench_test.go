package metricstore

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
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

// BenchmarkRefCache measures the remote write reference cache as 100k and 1M new series arrive (put, after the
// miss that precedes it) and then as every series is looked up again (get, the steady state). The cost per
// series is reported; at 1M the maps no longer fit the CPU's caches.
func BenchmarkRefCache(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		keys := make([]uint64, n)
		entries := make([]*refEntry, n)
		for i := range keys {
			keys[i] = xxhash.Sum64String(strconv.Itoa(i))
			entries[i] = &refEntry{}
			entries[i].ref.Store(uint32(i + 1))
		}
		b.Run("put/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c := newRefCache()
				for i, k := range keys {
					if c.get(k) != nil {
						b.Fatal("hit before put")
					}
					c.put(k, entries[i])
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
		b.Run("get/"+strconv.Itoa(n), func(b *testing.B) {
			c := newRefCache()
			for i, k := range keys {
				c.put(k, entries[i])
			}
			for range 3 { // as the next rounds do: the entries still waiting in fresh are merged
				for _, k := range keys {
					c.get(k)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, k := range keys {
					if c.get(k) == nil {
						b.Fatal("miss")
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/series")
		})
	}
}
