package generator

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/wal"
)

// benchBatch is 100 traces of 10 spans (a server span and client/server pairs across 5 services), 1000 spans,
// the shape of the load used for the peers in PEERS.md.
func benchBatch(seq int) ptrace.Traces {
	td := ptrace.NewTraces()
	services := []string{"frontend", "cart", "checkout", "payment", "shipping"}
	ss := make([]ptrace.SpanSlice, len(services))
	for i, s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s)
		rs.Resource().Attributes().PutStr("service.instance.id", "i-"+s)
		ss[i] = rs.ScopeSpans().AppendEmpty().Spans()
	}
	start := pcommon.NewTimestampFromTime(t0)
	for tr := 0; tr < 100; tr++ {
		var tid pcommon.TraceID
		tid[0], tid[1], tid[2], tid[3] = byte(seq>>8), byte(seq), byte(tr), 1
		parent := pcommon.SpanID{}
		for s := 0; s < 10; s++ {
			svc := (s + 1) / 2 % len(services)
			sp := ss[svc].AppendEmpty()
			sp.SetTraceID(tid)
			sid := pcommon.SpanID{byte(tr), byte(s), 1}
			sp.SetSpanID(sid)
			sp.SetParentSpanID(parent)
			kind := ptrace.SpanKindServer
			if s%2 == 1 {
				kind = ptrace.SpanKindClient
			}
			sp.SetKind(kind)
			sp.SetName("op-" + itoa(s))
			sp.SetStartTimestamp(start)
			sp.SetEndTimestamp(start + pcommon.Timestamp(time.Duration(s+1)*time.Millisecond))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
			parent = sid
		}
	}
	return td
}

func BenchmarkConsumeTraces(b *testing.B) {
	for _, bc := range []struct {
		name string
		wal  bool
		sync string
	}{
		{"wal=off", false, ""},
		{"wal=fsync-never", true, wal.FsyncNever},
		{"wal=fsync-always", true, wal.FsyncAlways},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			if bc.wal {
				cfg.WAL.Dir = b.TempDir()
				cfg.WAL.Fsync = bc.sync
			}
			g := mustNew(b, cfg)
			defer g.Close()
			batches := make([]ptrace.Traces, 16)
			for i := range batches {
				batches[i] = benchBatch(i)
			}
			spans := batches[0].SpanCount()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			now := t0
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Millisecond)
				if err := g.Consume(tenantA, now, batches[i%len(batches)]); err != nil {
					b.Fatal(err)
				}
				if i%100 == 99 {
					_ = g.Tick(now)
				}
			}
			// CPU time, not wall time, is the figure to compare: the shared CI machines run other work.
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(spans*b.N), "cpu-ns/span")
			b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

func BenchmarkCollect(b *testing.B) {
	g := mustNew(b, testConfig())
	for i := 0; i < 16; i++ {
		if err := g.Consume(tenantA, t0, benchBatch(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = g.Collect(t0)
	}
	b.ReportMetric(float64(g.Stats().ActiveSeries), "series")
}

// processCPU is the user+system CPU time the process has used, GC included.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDistinctSpanNames feeds 100 000 distinct span names (100 batches of 1000 spans, both processors,
// the default max_active_series of 100 000) and reports the peak heap in use, sampled after every batch and
// after the emission, with the limit hit: memory is bounded by the limit, not by the names.
func BenchmarkDistinctSpanNames(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		g := mustNew(b, testConfig())
		var peak uint64
		sample := func() {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse-min(base, ms.HeapInuse))
		}
		const total, perBatch = 100000, 1000
		for bt := 0; bt < total/perBatch; bt++ {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", "svc")
			spans := rs.ScopeSpans().AppendEmpty().Spans()
			for j := 0; j < perBatch; j++ {
				sp := spans.AppendEmpty()
				sp.SetName("GET /api/items/" + itoa(bt*perBatch+j))
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetTraceID(pcommon.TraceID{byte(bt), byte(j), byte(j >> 8), 1})
				sp.SetSpanID(pcommon.SpanID{byte(j), byte(j >> 8), 1})
				sp.SetEndTimestamp(pcommon.Timestamp(time.Millisecond))
			}
			if err := g.Consume(tenantA, t0, td); err != nil {
				b.Fatal(err)
			}
			sample()
		}
		ingestPeak := peak
		tms := g.Collect(t0)
		sample()
		st := g.Stats()
		b.ReportMetric(float64(ingestPeak)/(1<<20), "ingest-peak-heap-MiB")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-with-emission-MiB")
		b.ReportMetric(float64(st.ActiveSeries), "active-series")
		b.ReportMetric(float64(st.RefusedSeries), "refused")
		b.ReportMetric(float64(tms[0].Metrics.DataPointCount()), "emitted-points")
	}
}
