package metricstore

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/zap"
)

// TestOpensPrometheusDataDir opens a tenant directory as the store wrote it when it ran Prometheus' tsdb.DB (an
// install upgrading): blocks, a snappy write-ahead log and mapped head chunks. Every sample must read back, from
// the blocks and from the replayed log, and again after a second restart (the log's refs may have been
// rewritten by the first).
func TestOpensPrometheusDataDir(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = 0 // keep the old blocks whatever the clock says
	const id = "upgrade"
	dir := filepath.Join(cfg.DataDir, id)

	opts := tsdb.DefaultOptions()
	opts.WALCompression = "snappy"
	opts.RetentionDuration = 0
	db, err := tsdb.Open(dir, nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	const step = int64(15_000)
	t0 := int64(1_700_000_000_000) / (2 * 3600_000) * (2 * 3600_000)
	n := int(5 * 3600_000 / step) // five hours: two blocks written, the rest in the log
	want := map[string]int{}
	series := []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "a"),
		labels.FromStrings("__name__", "up", "job", "b"),
		labels.FromStrings("__name__", "requests_total", "job", "a", "code", "200"),
	}
	refs := make([]storage.SeriesRef, len(series))
	for i := 0; i < n; i += 100 { // in time order: the old head refuses samples far behind its newest
		app := db.Appender(context.Background())
		for j := i; j < min(i+100, n); j++ {
			for s, lset := range series {
				if refs[s], err = app.Append(refs[s], lset, t0+int64(j)*step, float64(s*j)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for _, lset := range series {
		want[lset.String()] = n
	}
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(db.Blocks()) == 0 {
		t.Fatal("the old DB wrote no block: the test reads only its log")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "chunks_head")); err != nil {
		t.Fatalf("the old DB left no chunks_head: %v", err)
	}

	for restart := range 2 {
		s, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(), Version: "test"})
		if err != nil {
			t.Fatal(err)
		}
		tn, err := s.Tenant(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tn.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		var it chunkenc.Iterator
		for ss.Next() {
			sr := ss.At()
			it = sr.Iterator(it)
			i := 0
			for it.Next() == chunkenc.ValFloat {
				i++
			}
			got[sr.Labels().String()] = i
		}
		if err := ss.Err(); err != nil {
			t.Fatal(err)
		}
		_ = q.Close()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("restart %d: %s has %d samples, want %d", restart, k, got[k], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("restart %d: %d series, want %d", restart, len(got), len(want))
		}
		if _, err := os.Stat(filepath.Join(dir, "chunks_head")); !os.IsNotExist(err) {
			t.Errorf("restart %d: chunks_head left: %v", restart, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
