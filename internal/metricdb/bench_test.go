package metricdb

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/sprout-otel/sprout/internal/metrichead"
)

// BenchmarkCompactHead writes one 2-hour block out of a head holding 3h10m of samples a minute apart, with
// Sprout's DB and with Prometheus' DB (isolation off, as Sprout runs it, and no write-ahead log); both use
// Prometheus' compactor, so the difference is the head's reader and its truncation. SPROUT_COMPACT_BENCH_SERIES sets how many series (default 20,000): the
// runner's metrics load, load_metric_<i%100>, instance host-<i/100>, job metricload, a unique series label.
//
//	go test -run XXX -bench BenchmarkCompactHead -benchtime 3x ./internal/metricdb/
func BenchmarkCompactHead(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("SPROUT_COMPACT_BENCH_SERIES")); err == nil && v > 0 {
		n = v
	}
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "load_metric_"+strconv.Itoa(i%100), "instance", "host-"+strconv.Itoa(i/100),
			"job", "metricload", "series", strconv.Itoa(i))
	}
	const step, span = int64(60_000), int64(190 * 60_000)
	ctx := context.Background()
	b.Run("db=sprout", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			b.StopTimer()
			o := DefaultOptions()
			h, err := metrichead.New(o.HeadOptions())
			if err != nil {
				b.Fatal(err)
			}
			db, err := Open(b.TempDir(), nil, nil, h, o)
			if err != nil {
				b.Fatal(err)
			}
			refs := make([]uint32, n)
			for i, l := range lsets {
				if refs[i], _, err = h.GetOrCreate(l); err != nil {
					b.Fatal(err)
				}
			}
			for ts := int64(0); ts <= span; ts += step {
				for _, r := range refs {
					if err := h.Append(r, ts, float64(ts)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StartTimer()
			if err := db.Compact(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if len(db.Blocks()) != 1 {
				b.Fatalf("%d blocks, want 1", len(db.Blocks()))
			}
			db.Close()
			b.StartTimer()
		}
	})
	b.Run("db=prometheus", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			b.StopTimer()
			o := tsdb.DefaultOptions()
			o.IsolationDisabled = true
			o.WALSegmentSize = -1 // no write-ahead log, as Sprout's DB has none yet: no checkpoint in the timing
			o.RetentionDuration = int64(15 * 24 * time.Hour / time.Millisecond)
			db, err := tsdb.Open(b.TempDir(), nil, nil, o, nil)
			if err != nil {
				b.Fatal(err)
			}
			db.DisableCompactions()
			for ts := int64(0); ts <= span; ts += step {
				app := db.Appender(ctx)
				for _, l := range lsets {
					if _, err := app.Append(0, l, ts, float64(ts)); err != nil {
						b.Fatal(err)
					}
				}
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			if err := db.Compact(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if len(db.Blocks()) != 1 {
				b.Fatalf("%d blocks, want 1", len(db.Blocks()))
			}
			db.Close()
			b.StartTimer()
		}
	})
}
