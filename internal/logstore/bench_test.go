package logstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/wal"
)

func benchStore(b *testing.B, fsync string) *Store {
	dir := b.TempDir()
	bkt, err := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(dir, "bucket")}}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.WAL.Fsync = fsync
	cfg.Limits.IngestionRateMB = 0
	cfg.Limits.RejectOldSamples = false
	cfg.Limits.CreationGracePeriod = 100 * 365 * 24 * time.Hour
	cfg.FlushCheckPeriod = time.Hour
	s, err := Open(context.Background(), cfg, bkt, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// benchBatch is 500 lines of about 200 bytes over 10 streams, with trace ids in structured metadata.
func benchBatch(seq int, base int64) []PushStream {
	out := make([]PushStream, 10)
	for s := range out {
		out[s].Labels = labels.FromStrings("service_name", fmt.Sprint("svc-", s), "env", "prod")
		for i := 0; i < 50; i++ {
			n := seq*500 + s*50 + i
			lvl := "info"
			if n%97 == 0 {
				lvl = "error"
			}
			line := fmt.Sprintf("ts=2026-03-01T12:00:00Z level=%s caller=handler.go:%d msg=\"request served\" method=GET path=/api/v1/items/%d status=200 duration=%dms user=u%d", lvl, n%400, n, n%997, n%5000)
			out[s].Entries = append(out[s].Entries, logql.Entry{Timestamp: base + int64(n)*int64(time.Millisecond), Line: line,
				Metadata: labels.FromStrings("trace_id", fmt.Sprintf("%032x", n/10), "span_id", fmt.Sprintf("%016x", n))})
		}
	}
	return out
}

func BenchmarkPush(b *testing.B) {
	for _, fsync := range []string{wal.FsyncNever, wal.FsyncAlways} {
		b.Run("fsync="+fsync, func(b *testing.B) {
			s := benchStore(b, fsync)
			base := time.Now().Add(-time.Hour).UnixNano()
			batches := make([][]PushStream, 64)
			for i := range batches {
				batches[i] = benchBatch(i, base)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := s.Push(context.Background(), "bench", batches[i%len(batches)]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// benchLines is the store size for the query benchmarks; LOGSTORE_BENCH_LINES overrides it (docs/logs.md
// records a 10M-line run).
func benchLines() int {
	if v, err := strconv.Atoi(os.Getenv("LOGSTORE_BENCH_LINES")); err == nil && v > 0 {
		return v
	}
	return 200_000
}

var (
	filledStores = map[int]*Store{}
	benchDirs    []string
)

// TestMain removes the query benchmarks' stores, which are shared between benchmarks and so outlive them.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range filledStores {
		_ = s.Close(context.Background())
	}
	for _, d := range benchDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}

func filledStore(b *testing.B) (*Store, int64) {
	n := benchLines()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	if s, ok := filledStores[n]; ok {
		return s, base
	}
	dir, _ := os.MkdirTemp("", "logstore-bench")
	benchDirs = append(benchDirs, dir)
	bkt, _ := bucket.New(context.Background(), bucket.Config{Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(dir, "bucket")}}, zap.NewNop())
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.WAL.Fsync = wal.FsyncNever
	cfg.Limits.IngestionRateMB = 0
	cfg.Limits.RejectOldSamples = false
	cfg.Limits.CreationGracePeriod = 100 * 365 * 24 * time.Hour
	s, err := Open(context.Background(), cfg, bkt, Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i*500 < n; i++ {
		if err := s.Push(context.Background(), "bench", benchBatch(i, base)); err != nil {
			b.Fatal(err)
		}
		if i%2000 == 1999 {
			if err := s.Flush(context.Background(), false); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Flush(context.Background(), true); err != nil {
		b.Fatal(err)
	}
	filledStores[n] = s
	return s, base
}

func BenchmarkQueryLineFilter(b *testing.B) {
	for _, q := range []string{`{service_name="svc-3"} |= "level=error"`, `{env="prod"} |= "level=error"`} {
		b.Run(q, func(b *testing.B) { benchQuery(b, q) })
	}
}

// BenchmarkQueryLineFilterForward is the full-range line filter read oldest first.
func BenchmarkQueryLineFilterForward(b *testing.B) {
	benchQueryDir(b, `{env="prod"} |= "level=error"`, logql.Forward)
}

// BenchmarkQueryCountOverTime is a metric query that must read every line of the range.
func BenchmarkQueryCountOverTime(b *testing.B) {
	s, base := filledStore(b)
	expr, err := logql.ParseExpr(`sum by (service_name) (count_over_time({env="prod"} |= "level=error" [1h]))`)
	if err != nil {
		b.Fatal(err)
	}
	end := base + int64(benchLines())*int64(time.Millisecond)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st logql.Stats
		res, _, err := s.Engine().EvalRange(context.Background(), s.Querier("bench"), expr.(logql.SampleExpr), base, end, int64(time.Minute), &st)
		if err != nil || len(res) == 0 {
			b.Fatal(err, len(res))
		}
		b.ReportMetric(float64(st.TotalLinesProcessed), "lines/op")
	}
}

func benchQuery(b *testing.B, q string) { benchQueryDir(b, q, logql.Backward) }

func benchQueryDir(b *testing.B, q string, dir logql.Direction) {
	s, base := filledStore(b)
	sel, _ := logql.ParseLogSelector(q)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st logql.Stats
		res, err := s.Engine().SelectLogs(context.Background(), s.Querier("bench"), logql.LogQuery{Expr: sel, Start: base, End: base + int64(24*time.Hour), Limit: 100, Direction: dir}, &st)
		if err != nil || len(res) == 0 {
			b.Fatal(err, len(res))
		}
		b.ReportMetric(float64(st.TotalLinesProcessed), "lines/op")
	}
}

func BenchmarkTraceIDLookup(b *testing.B) {
	s, base := filledStore(b)
	n := benchLines()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%032x", (i*7919)%(n/10))
		sel, _ := logql.ParseLogSelector(`{service_name=~".+"} | trace_id="` + id + `"`)
		var st logql.Stats
		res, err := s.Engine().SelectLogs(context.Background(), s.Querier("bench"), logql.LogQuery{Expr: sel, Start: base, End: base + int64(24*time.Hour), Limit: 100}, &st)
		if err != nil || len(res) == 0 {
			b.Fatal(err, len(res), id)
		}
	}
}

// BenchmarkQueryCountOverTimeHeads is the metric query over lines still in the heads (nothing flushed yet), as
// right after a burst of pushes.
func BenchmarkQueryCountOverTimeHeads(b *testing.B) {
	s := benchStore(b, wal.FsyncNever)
	s.cfg.MaxHeadBytes = 0
	base := time.Now().Add(-time.Hour).UnixNano()
	const batches = 1000 // 500k lines
	for i := 0; i < batches; i++ {
		if err := s.Push(context.Background(), "bench", benchBatch(i, base)); err != nil {
			b.Fatal(err)
		}
	}
	expr, err := logql.ParseExpr(`sum by (service_name) (count_over_time({env="prod"} |= "status=200" [1m]))`)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st logql.Stats
		res, _, err := s.Engine().EvalRange(context.Background(), s.Querier("bench"), expr.(logql.SampleExpr), base, base+int64(30*time.Minute), int64(time.Minute), &st)
		if err != nil || len(res) == 0 {
			b.Fatal(err, len(res))
		}
	}
}

// BenchmarkQueryCountInterleaved counts every line of 100k pushed by four senders whose time ranges interleave
// in each stream, as the runner's load does: every chunk of a stream overlaps the others in time, so the read
// must look for duplicates across all of them. B/op is what the duplicate check costs.
func BenchmarkQueryCountInterleaved(b *testing.B) {
	s := benchStore(b, wal.FsyncNever)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	const senders, perSender = 4, 50 // batches of 500 lines
	for i := 0; i < perSender; i++ {
		for w := 0; w < senders; w++ {
			if err := s.Push(context.Background(), "bench", benchBatch(w*perSender+i, base)); err != nil {
				b.Fatal(err)
			}
		}
		if i%10 == 9 {
			if err := s.Flush(context.Background(), true); err != nil {
				b.Fatal(err)
			}
		}
	}
	end := base + int64(time.Hour)
	for _, tc := range []struct {
		name, query string
		start, step int64
	}{
		{"all", `sum(count_over_time({env="prod"}[1h]))`, end - int64(time.Minute), int64(time.Minute)},
		// The runner's grouped count: a line filter and a window per minute.
		{"grouped-filter-1m", `sum by (service_name) (count_over_time({env="prod"} |= "level=error" [1m]))`, base, int64(time.Minute)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			expr, err := logql.ParseExpr(tc.query)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var st logql.Stats
				res, _, err := s.Engine().EvalRange(context.Background(), s.Querier("bench"), expr.(logql.SampleExpr), tc.start, end, tc.step, &st)
				if err != nil || len(res) == 0 {
					b.Fatal(err, len(res))
				}
				if st.TotalLinesProcessed != senders*perSender*500 {
					b.Fatalf("%d lines processed, want %d", st.TotalLinesProcessed, senders*perSender*500)
				}
			}
		})
	}
}

// BenchmarkCheckpoint writes the WAL checkpoint of 10 heads of about 1 MB of lines each, none due for a cut.
// B/op is the checkpoint's transient memory.
func BenchmarkCheckpoint(b *testing.B) {
	s := benchStore(b, wal.FsyncNever)
	s.cfg.MaxHeadBytes = 0 // every flush checkpoints
	s.cfg.ChunkTargetSize = 64 << 20
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for i := 0; i < 100; i++ {
		if err := s.Push(context.Background(), "bench", benchBatch(i, base)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.flush(context.Background(), false, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkQueryCountAll is the count of every line in the store (the runner's check that every acknowledged
// line is queryable): a range aggregation with no line filter, over one window that covers everything.
func BenchmarkQueryCountAll(b *testing.B) {
	s, base := filledStore(b)
	end := base + int64(benchLines())*int64(time.Millisecond) + int64(time.Minute)
	expr, err := logql.ParseExpr(fmt.Sprintf(`sum(count_over_time({env="prod"}[%dm]))`, (end-base)/int64(time.Minute)+2))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st logql.Stats
		res, _, err := s.Engine().EvalRange(context.Background(), s.Querier("bench"), expr.(logql.SampleExpr), end, end, 0, &st)
		if err != nil || len(res) != 1 || int(res[0].Points[0].V) != benchLines() {
			b.Fatal(err, res)
		}
	}
}
