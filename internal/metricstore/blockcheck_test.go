package metricstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"go.uber.org/zap"
)

// writeTestBlock writes a block of 20 series × 120 samples named name into dir and returns its directory.
func writeTestBlock(t *testing.T, dir, name string, base int64) string {
	t.Helper()
	var series []storage.Series
	for i := 0; i < 20; i++ {
		var ss []chunks.Sample
		for j := int64(0); j < 120; j++ {
			ss = append(ss, sample{t: base + j*15000, f: float64(j)})
		}
		series = append(series, storage.NewListSeries(labels.FromStrings("__name__", name, "i", fmt.Sprint(i)), ss))
	}
	p, err := tsdb.CreateBlock(series, dir, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func flip(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, 16)
	for i := range junk {
		junk[i] = 0xff
	}
	if _, err := f.WriteAt(junk, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

func TestQuarantineCorruptBlocks(t *testing.T) {
	for _, file := range []string{"index", "chunks/000001", "meta.json"} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			good := writeTestBlock(t, dir, "good_metric", 1_000_000)
			bad := writeTestBlock(t, dir, "bad_metric", 10_000_000)
			flip(t, filepath.Join(bad, file))
			moved := quarantineCorruptBlocks(context.Background(), dir, slog.New(slog.DiscardHandler), zap.NewNop(), "t")
			if len(moved) != 1 || moved[0] != filepath.Base(bad) {
				t.Fatalf("moved %v, want [%s]", moved, filepath.Base(bad))
			}
			if _, err := os.Stat(filepath.Join(dir, corruptDir, filepath.Base(bad), "meta.json")); err != nil {
				t.Errorf("corrupt block not kept for inspection: %v", err)
			}
			if _, err := os.Stat(filepath.Join(good, verifiedMarker)); err != nil {
				t.Errorf("good block not marked verified: %v", err)
			}
			// The rest is served.
			db, err := tsdb.Open(dir, slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			q, err := db.Querier(0, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			n := 0
			ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
			for ss.Next() {
				if ss.At().Labels().Get("__name__") != "good_metric" {
					t.Errorf("series from the corrupt block: %s", ss.At().Labels())
				}
				n++
			}
			if err := ss.Err(); err != nil || n != 20 {
				t.Errorf("after quarantine: %d series, err %v; want 20", n, err)
			}
			// A second start reads nothing again and moves nothing.
			if moved := quarantineCorruptBlocks(context.Background(), dir, slog.New(slog.DiscardHandler), zap.NewNop(), "t"); len(moved) != 0 {
				t.Errorf("second pass moved %v", moved)
			}
		})
	}
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }
