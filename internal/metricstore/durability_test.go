package metricstore

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// TestAckedWritesSurviveCrash acknowledges remote writes, then copies the data directory while the store is
// still open (what a kill -9 leaves behind) and opens the copy: every acknowledged sample must be there.
func TestAckedWritesSurviveCrash(t *testing.T) {
	cfg := testConfig(t)
	_, srv := openTestStore(t, cfg)
	start := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	const requests, seriesPerReq = 50, 20
	for i := 0; i < requests; i++ {
		var ts []prompb.TimeSeries
		for s := 0; s < seriesPerReq; s++ {
			ts = append(ts, prompb.TimeSeries{Labels: series("crash_test", "s", string(rune('a'+s))),
				Samples: []prompb.Sample{{Value: float64(i), Timestamp: start + int64(i)*1000}}})
		}
		if code, body := post(t, srv.URL+"/api/v1/write", contentTypeV1, encodeV1(t, &prompb.WriteRequest{Timeseries: ts})); code != 204 {
			t.Fatalf("write %d: %d %s", i, code, body)
		}
	}

	crashed := t.TempDir()
	copyDir(t, cfg.DataDir, crashed)
	_ = os.Remove(filepath.Join(crashed, tenant.Default, "lock"))

	cfg2 := cfg
	cfg2.DataDir = crashed
	s2, err := Open(context.Background(), cfg2, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("open the crashed copy: %v", err)
	}
	defer s2.Close()
	tn, err := s2.Tenant(context.Background(), tenant.Default)
	if err != nil {
		t.Fatal(err)
	}
	q, err := tn.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "crash_test"))
	nSeries, nSamples := 0, 0
	for set.Next() {
		nSeries++
		it := set.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if want := float64((ts - start) / 1000); v != want {
				t.Fatalf("sample at %d = %g, want %g", ts, v, want)
			}
			nSamples++
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if nSeries != seriesPerReq || nSamples != requests*seriesPerReq {
		t.Errorf("after crash: %d series, %d samples; want %d, %d", nSeries, nSamples, seriesPerReq, requests*seriesPerReq)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
