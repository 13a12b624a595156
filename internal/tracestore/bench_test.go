package tracestore

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/wal"
)

// BenchmarkIngest measures Push of 500-span batches (50 traces of 10 spans) through the WAL (fsync: interval) into
// memory. Reported: ns per batch and spans/s.
func BenchmarkIngest(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.WAL.Fsync = wal.FsyncInterval
	cfg.Limits.MaxBytesPerTrace = 0
	s := openStore(b, cfg)
	defer s.closeNoFlush()
	ctx := context.Background()
	pre := make([]ptrace.Traces, 100)
	for i := range pre {
		pre[i] = batch(i*50, 50, 10)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		td := pre[i%len(pre)]
		i++
		if err := s.Push(ctx, tn, td); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(500*b.N)/b.Elapsed().Seconds(), "spans/s")
}

func benchStore(b *testing.B, traces int) *Store {
	b.Helper()
	cfg := testConfig(b.TempDir())
	cfg.Limits.MaxBytesPerTrace = 0
	s := openStore(b, cfg)
	ctx := context.Background()
	for i := 0; i < traces; i += 100 {
		if err := s.Push(ctx, tn, batch(i, 100, 10)); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkTraceByID looks traces up in a flushed block of 20k traces (200k spans) on the filesystem bucket.
func BenchmarkTraceByID(b *testing.B) {
	s := benchStore(b, 20000)
	defer s.closeNoFlush()
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		td, err := s.TraceByID(ctx, tn, tid((i*7919)%20000), TimeRange{})
		if err != nil || td.SpanCount() != 10 {
			b.Fatalf("trace %d: %v", i, err)
		}
		i++
	}
}

// BenchmarkSearch runs a selective TraceQL search over a block of 5k traces (50k spans) that matches nothing,
// so every span is inspected.
func BenchmarkSearch(b *testing.B) {
	s := benchStore(b, 5000)
	defer s.closeNoFlush()
	ctx := context.Background()
	q := mustQuery(b, `{ resource.service.name = "backend" && duration > 10s }`)
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.Search(ctx, tn, SearchRequest{Query: q, Limit: 20})
		if err != nil || len(res.Traces) != 0 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(50000*b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkSearchBlocks searches 4 flushed blocks of 5k traces (50k spans each, 200k spans). The queries differ
// in what can skip work: the block summaries in meta.json (no such service; no backend span that long), or
// nothing but the column scan (a name and a duration that each occur, but never on one span).
func BenchmarkSearchBlocks(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.Limits.MaxBytesPerTrace = 0
	s := openStore(b, cfg)
	defer s.closeNoFlush()
	ctx := context.Background()
	const blocks, perBlock = 4, 5000
	for k := 0; k < blocks; k++ {
		for i := k * perBlock; i < (k+1)*perBlock; i += 100 {
			if err := s.Push(ctx, tn, batch(i, 100, 10)); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.CutAndFlush(ctx, true); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct{ name, q string }{
		{"no_such_service", `{ resource.service.name = "x" && duration > 500ms }`},
		{"service_duration_out_of_range", `{ resource.service.name = "backend" && duration > 500ms }`},
		{"column_scan_no_match", `{ name = "step-3" && duration > 200ms }`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := mustQuery(b, bc.q)
			for b.Loop() {
				res, err := s.Search(ctx, tn, SearchRequest{Query: q, Limit: 20})
				if err != nil || len(res.Traces) != 0 {
					b.Fatalf("%v, %d traces", err, len(res.Traces))
				}
			}
			b.ReportMetric(float64(blocks*perBlock*10*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

// loadShapedBatch is one traceload request: 50 traces of 10 spans under one resource and scope, with the
// generator's names and attributes; b makes the trace ids unique.
func loadShapedBatch(b int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "traceload")
	rs.Resource().Attributes().PutStr("host.name", "loadgen-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("traceload")
	now := time.Now()
	for t := 0; t < 50; t++ {
		var id pcommon.TraceID
		id[0], id[1], id[2], id[14], id[15] = byte(b>>16), byte(b>>8), byte(b), 1, byte(t)
		for s := 0; s < 10; s++ {
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(id)
			sp.SetSpanID(pcommon.SpanID{byte(s + 1), byte(t), 1, 2, 3, 4, 5, 6})
			if s > 0 {
				sp.SetParentSpanID(pcommon.SpanID{1, byte(t), 1, 2, 3, 4, 5, 6})
			}
			sp.SetName(fmt.Sprintf("operation-%d", s))
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(s+1) * time.Millisecond)))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
		}
	}
	return td
}

// BenchmarkLiveSetHeap measures the Go heap that live traces hold: 200k traceload-shaped spans pushed and kept in
// memory (nothing cut), then heap in use after a GC per span held. Reported: B/span (a measurement, not a limit).
func BenchmarkLiveSetHeap(b *testing.B) {
	const batches = 400
	pre := make([]ptrace.Traces, batches)
	for i := range pre {
		pre[i] = loadShapedBatch(i)
	}
	ctx := context.Background()
	var perSpan float64
	for b.Loop() {
		cfg := testConfig(b.TempDir())
		cfg.MaxLiveBytes, cfg.Limits.MaxBytesPerTrace = 0, 0
		s := openStore(b, cfg)
		heap := func() uint64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return m.HeapAlloc
		}
		h0 := heap()
		for _, td := range pre {
			if err := s.Push(ctx, tn, td); err != nil {
				b.Fatal(err)
			}
		}
		perSpan = float64(heap()-h0) / float64(batches*500)
		s.closeNoFlush()
	}
	b.ReportMetric(perSpan, "B/span")
}
