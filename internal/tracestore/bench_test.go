package tracestore

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// BenchmarkIngest measures Push of 500-span batches (50 traces of 10 spans) through the WAL (sync: batch) into
// memory. Reported: ns per batch and spans/s.
func BenchmarkIngest(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.WAL.Sync = SyncBatch
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
