package metrichead

import (
	"context"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// benchSeries is the runner's metrics load (tools/bench at 100×): load_metric_<i%100>, instance host-<i/100>,
// job metricload and a series label unique to each series. SPROUT_HEAD_BENCH_SERIES sets how many (default
// 100,000; the runner's 100× is 1,000,000).
func benchSeries(b *testing.B) []labels.Labels {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("SPROUT_HEAD_BENCH_SERIES")); err == nil && v > 0 {
		n = v
	}
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = labels.FromStrings("__name__", "load_metric_"+strconv.Itoa(i%100), "instance", "host-"+strconv.Itoa(i/100),
			"job", "metricload", "series", strconv.Itoa(i))
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkHeadMemory is the live heap per series of this head and of Prometheus' head (isolation off, as Sprout
// runs it) holding the same series with 10 samples each, 10 s apart: the runner's load. The label sets given to
// both are made before the first measurement; what each head keeps of them is its own copy.
//
//	SPROUT_HEAD_BENCH_SERIES=1000000 go test -run XXX -bench BenchmarkHeadMemory -benchtime 1x ./internal/metrichead/
func BenchmarkHeadMemory(b *testing.B) {
	const rounds = 10
	b.Run("head=sprout", func(b *testing.B) {
		for b.Loop() {
			lsets := benchSeries(b)
			base := heapInUse()
			h, err := New(DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			refs := make([]uint32, len(lsets))
			for r := range rounds {
				for i, l := range lsets {
					if r == 0 {
						if refs[i], _, err = h.GetOrCreate(l); err != nil {
							b.Fatal(err)
						}
					}
					if err := h.Append(refs[i], int64(r)*10000, float64(i+r)); err != nil {
						b.Fatal(err)
					}
				}
			}
			refsBytes := uint64(len(refs) * 4)
			used := heapInUse() - base - refsBytes
			b.ReportMetric(float64(used)/float64(len(lsets)), "B/series")
			runtime.KeepAlive(h)
			runtime.KeepAlive(refs)
			runtime.KeepAlive(lsets)
		}
	})
	b.Run("head=prometheus", func(b *testing.B) {
		for b.Loop() {
			lsets := benchSeries(b)
			base := heapInUse()
			opts := tsdb.DefaultOptions()
			opts.IsolationDisabled = true
			opts.WALSegmentSize = -1 // no WAL: the head's memory alone
			db, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
			if err != nil {
				b.Fatal(err)
			}
			refs := make([]storage.SeriesRef, len(lsets))
			for r := range rounds {
				app := db.Appender(context.Background())
				for i, l := range lsets {
					if refs[i], err = app.Append(refs[i], l, int64(r)*10000, float64(i+r)); err != nil {
						b.Fatal(err)
					}
				}
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			refsBytes := uint64(len(refs) * 8)
			used := heapInUse() - base - refsBytes
			b.ReportMetric(float64(used)/float64(len(lsets)), "B/series")
			runtime.KeepAlive(refs)
			runtime.KeepAlive(lsets)
			db.Close()
		}
	})
}

// BenchmarkHeadIngest is the runner's remote-write load in process: 4 writers, 500 samples a commit, 10 rounds
// over the series, through each head's appender and write-ahead log (snappy, as Prometheus' default). It
// reports samples/s and the process's peak RSS (VmHWM, this test binary included), for one head per process:
//
//	SPROUT_HEAD_BENCH_SERIES=1000000 go test -run XXX -bench 'BenchmarkHeadIngest/head=sprout' -benchtime 1x ./internal/metrichead/
//	SPROUT_HEAD_BENCH_SERIES=1000000 go test -run XXX -bench 'BenchmarkHeadIngest/head=prometheus' -benchtime 1x ./internal/metrichead/
func BenchmarkHeadIngest(b *testing.B) {
	const (
		rounds  = 10
		workers = 4
		batch   = 500
	)
	type appendFn func(w int, round int, lsets []labels.Labels, refs []uint64) error
	run := func(b *testing.B, open func(dir string) (appendFn, func())) {
		for b.Loop() {
			lsets := benchSeries(b)
			refs := make([]uint64, len(lsets))
			app, closeFn := open(b.TempDir())
			start := time.Now()
			for r := range rounds {
				var wg sync.WaitGroup
				errs := make([]error, workers)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[w] = app(w, r, lsets, refs)
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			el := time.Since(start)
			b.ReportMetric(float64(len(lsets)*rounds)/el.Seconds(), "samples/s")
			b.ReportMetric(float64(vmHWM())/(1<<20), "MiB-peak-RSS")
			closeFn()
		}
	}
	part := func(w, n int) (int, int) { per := n / workers; return w * per, min(n, (w+1)*per) }
	b.Run("head=sprout", func(b *testing.B) {
		run(b, func(dir string) (appendFn, func()) {
			h, _, err := Open(dir, DefaultOptions(), WALOptions{Compression: compression.Snappy}, math.MinInt64, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func(w, r int, lsets []labels.Labels, refs []uint64) error {
				from, to := part(w, len(lsets))
				app := h.Appender()
				for i := from; i < to; i++ {
					ref, err := app.Append(uint32(refs[i]), lsets[i], int64(r)*10000, float64(i+r))
					if err != nil {
						return err
					}
					refs[i] = uint64(ref)
					if (i-from+1)%batch == 0 {
						if err := app.Commit(); err != nil {
							return err
						}
					}
				}
				return app.Commit()
			}, func() { h.Close() }
		})
	})
	b.Run("head=prometheus", func(b *testing.B) {
		run(b, func(dir string) (appendFn, func()) {
			opts := tsdb.DefaultOptions()
			opts.IsolationDisabled = true
			opts.WALCompression = compression.Snappy
			db, err := tsdb.Open(dir, nil, nil, opts, nil)
			if err != nil {
				b.Fatal(err)
			}
			return func(w, r int, lsets []labels.Labels, refs []uint64) error {
				from, to := part(w, len(lsets))
				app := db.Appender(context.Background())
				for i := from; i < to; i++ {
					ref, err := app.Append(storage.SeriesRef(refs[i]), lsets[i], int64(r)*10000, float64(i+r))
					if err != nil {
						return err
					}
					refs[i] = uint64(ref)
					if (i-from+1)%batch == 0 {
						if err := app.Commit(); err != nil {
							return err
						}
						app = db.Appender(context.Background())
					}
				}
				return app.Commit()
			}, func() { db.Close() }
		})
	})
}

// vmHWM is the process's peak resident set in bytes (Linux), 0 elsewhere.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
