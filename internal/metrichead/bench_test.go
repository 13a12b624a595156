package metrichead

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
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
