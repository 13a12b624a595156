package metricstore

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sprout-otel/sprout/internal/memguard"
)

// TestWriteDecodedSizeAndGovernor: behind sprout_api (governor and a 20 MiB body limit in the context) every
// snappy path refuses a body declaring more than the body limit from its header, and a write finding the
// ingest budget full is refused with a retryable 503.
func TestWriteDecodedSizeAndGovernor(t *testing.T) {
	s, _ := openTestStore(t, testConfig(t))
	h := s.Handler(nil)
	g := memguard.New(memguard.Budget{InFlight: 64 << 20}, memguard.Budget{}, memguard.Options{})
	do := func(path string, hdr map[string]string, body []byte) (int, http.Header, string, uint64) {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		req = req.WithContext(memguard.NewContext(req.Context(), g, 20<<20))
		rec := httptest.NewRecorder()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h.ServeHTTP(rec, req)
		runtime.ReadMemStats(&after)
		return rec.Code, rec.Header(), rec.Body.String(), after.TotalAlloc - before.TotalAlloc
	}
	bomb := snappy.Encode(nil, make([]byte, 25<<20)) // under Prometheus' 32 MiB, over the 20 MiB body limit
	rw1 := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	rw2 := map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request", "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0"}
	read := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "up"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: 1}},
	}}}
	raw, _ := wr.Marshal()
	ok := snappy.Encode(nil, raw)
	// The tenant's TSDB is opened by its first request: not part of what a refusal costs.
	if code, _, body, _ := do("/api/v1/write", rw1, ok); code/100 != 2 && code != http.StatusBadRequest {
		t.Fatalf("first write: %d %q", code, body)
	}
	for _, tc := range []struct {
		name, path string
		hdr        map[string]string
	}{{"remote write 1.0", "/api/v1/write", rw1}, {"remote write 2.0", "/api/v1/write", rw2}, {"remote read", "/api/v1/read", read}} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body, alloc := do(tc.path, tc.hdr, bomb)
			if code != http.StatusBadRequest || !strings.Contains(body, "exceeds the 20971520 bytes limit") {
				t.Fatalf("status %d %q, want 400 naming the limit", code, body)
			}
			if alloc > 8<<20 {
				t.Fatalf("refusing allocated %d MiB", alloc>>20)
			}
		})
		// A header declaring 1 GiB in front of a body longer than the limit: refused from the header, before the
		// body is read into memory (reading it first would answer 413 after buffering 20 MiB).
		t.Run(tc.name+", header first", func(t *testing.T) {
			lie := append(binary.AppendUvarint(nil, 1<<30), make([]byte, 21<<20)...)
			code, _, body, alloc := do(tc.path, tc.hdr, lie)
			if code != http.StatusBadRequest || !strings.Contains(body, "decoded size 1073741824 exceeds the 20971520 bytes limit") {
				t.Fatalf("status %d %q, want 400 naming the declared size", code, body)
			}
			if alloc > 1<<20 {
				t.Fatalf("refusing allocated %d KiB", alloc>>10)
			}
		})
	}

	held := g.Ticket(memguard.Ingest)
	if err := held.Grow(64 << 20); err != nil {
		t.Fatal(err)
	}
	code, hdr, body, _ := do("/api/v1/write", rw1, ok)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "memory") {
		t.Fatalf("with the budget full: %d Retry-After %q %q", code, hdr.Get("Retry-After"), body)
	}
	held.Release()
	if code, _, body, _ := do("/api/v1/write", rw1, ok); code/100 != 2 && code != http.StatusBadRequest {
		t.Fatalf("after release: %d %q", code, body)
	}
	if g.InFlight(memguard.Ingest) != 0 {
		t.Fatalf("%d bytes still reserved", g.InFlight(memguard.Ingest))
	}
}
