package generatorconnector

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sprout-otel/sprout/components/tracestoreext"
	"github.com/sprout-otel/sprout/internal/wal"
)

type benchHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h benchHost) GetExtensions() map[component.ID]component.Component { return h.exts }

// BenchmarkIngest drives the traces pipeline's exporters as the Collector's fan-out does: every batch goes to
// the sprout_traces exporter (trace store in the same process: WAL, live traces, block cutting) and, in the
// "on" variant, to the sprout_generator connector as well. Compare cpu-ns/span of the two variants: the
// difference is the generator's cost per span. The workload is 1000-span batches of 10-span traces with
// client/server pairs across 5 services (the generator's expensive case: span metrics and service graph both
// work on every span).
func BenchmarkIngest(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("generator=%v", on), func(b *testing.B) {
			ctx := context.Background()
			extF := tracestoreext.NewFactory()
			extCfg := extF.CreateDefaultConfig().(*tracestoreext.Config)
			extCfg.DataDir = b.TempDir()
			extCfg.Storage.Filesystem.Dir = extCfg.DataDir + "/blocks"
			ext, err := extF.Create(ctx, extensiontest.NewNopSettings(tracestoreext.Type), extCfg)
			if err != nil {
				b.Fatal(err)
			}
			h := benchHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{component.NewID(tracestoreext.Type): ext}}
			if err := ext.Start(ctx, h); err != nil {
				b.Fatal(err)
			}
			expF := tracestoreext.NewExporterFactory()
			exp, err := expF.CreateTraces(ctx, exportertest.NewNopSettings(tracestoreext.Type), expF.CreateDefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			if err := exp.Start(ctx, h); err != nil {
				b.Fatal(err)
			}
			consumers := []consumer.Traces{exp}
			if on {
				f := NewFactory()
				cfg := f.CreateDefaultConfig().(*Config)
				cfg.WAL.Dir = b.TempDir()
				cfg.WAL.Fsync = wal.FsyncNever // as in the all-in-one config
				cfg.FlushInterval = 5 * time.Second
				conn, err := f.CreateTracesToMetrics(ctx, connectortest.NewNopSettings(Type), cfg, consumertest.NewNop())
				if err != nil {
					b.Fatal(err)
				}
				if err := conn.Start(ctx, h); err != nil {
					b.Fatal(err)
				}
				defer conn.Shutdown(ctx)
				consumers = append(consumers, conn)
			}
			defer ext.Shutdown(ctx)
			defer exp.Shutdown(ctx)

			batches := make([]ptrace.Traces, 64)
			for i := range batches {
				batches[i] = shopBatch(i)
			}
			spans := batches[0].SpanCount()
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := processCPU()
			for i := 0; i < b.N; i++ {
				td := batches[i%len(batches)]
				restamp(td, i)
				for _, c := range consumers {
					// The trace store pushes back (ResourceExhausted) while its live traces wait to be cut
					// into blocks; retry as a client would. The wait costs no CPU.
					for try := 0; ; try++ {
						err := c.ConsumeTraces(ctx, td)
						if err == nil {
							break
						}
						if status.Code(err) != codes.ResourceExhausted || try > 600 {
							b.Fatal(err)
						}
						time.Sleep(100 * time.Millisecond)
					}
				}
			}
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(spans*b.N), "cpu-ns/span")
			b.ReportMetric(float64(spans*b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

// shopBatch is 100 traces of 10 spans: a root server span and client/server pairs across 5 services.
func shopBatch(seq int) ptrace.Traces {
	td := ptrace.NewTraces()
	services := []string{"frontend", "cart", "checkout", "payment", "shipping"}
	ss := make([]ptrace.SpanSlice, len(services))
	for i, s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s)
		rs.Resource().Attributes().PutStr("service.instance.id", "i-"+s)
		ss[i] = rs.ScopeSpans().AppendEmpty().Spans()
	}
	start := pcommon.NewTimestampFromTime(time.Now())
	for tr := 0; tr < 100; tr++ {
		var tid pcommon.TraceID
		tid[0], tid[1], tid[2] = byte(seq), byte(tr), 1
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
			sp.SetName(fmt.Sprintf("op-%d", s))
			sp.SetStartTimestamp(start)
			sp.SetEndTimestamp(start + pcommon.Timestamp(time.Duration(s+1)*time.Millisecond))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
			parent = sid
		}
	}
	return td
}

// restamp gives every trace of the batch a fresh id (bytes 8..15 hold the iteration), so that the trace store
// sees new traces and the generator new edges, as under real load.
func restamp(td ptrace.Traces, iter int) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		spans := rss.At(i).ScopeSpans().At(0).Spans()
		for j := 0; j < spans.Len(); j++ {
			sp := spans.At(j)
			id := sp.TraceID()
			for k := 0; k < 8; k++ {
				id[8+k] = byte(iter >> (8 * k))
			}
			sp.SetTraceID(id)
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
