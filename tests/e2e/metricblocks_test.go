package e2e

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

// metricBlocks are the TSDB blocks TestCorruptBlockOnStart puts in the metrics store before its last start:
// a good and a damaged block on local disk and in the (filesystem) bucket, each with 10 series of its own name.
var metricBlocks = []struct {
	name    string
	bucket  bool
	damaged bool
	ago     time.Duration
}{
	{"e2e_local_good", false, false, 3 * time.Hour},
	{"e2e_local_bad", false, true, 4 * time.Hour},
	{"e2e_bucket_good", true, false, 10 * time.Hour},
	{"e2e_bucket_bad", true, true, 12 * time.Hour},
}

// writeMetricBlocks creates metricBlocks under the all-in-one config's metrics data and bucket directories for
// the single tenant, and damages the chunks of the bad ones.
func writeMetricBlocks(t *testing.T, dataDir string) {
	t.Helper()
	for _, mb := range metricBlocks {
		var series []storage.Series
		base := time.Now().Add(-mb.ago).UnixMilli()
		for i := 0; i < 10; i++ {
			var ss []chunks.Sample
			for j := int64(0); j < 120; j++ {
				ss = append(ss, floatSample{t: base + j*15000, f: float64(j)})
			}
			series = append(series, storage.NewListSeries(labels.FromStrings("__name__", mb.name, "i", fmt.Sprint(i)), ss))
		}
		tmp := t.TempDir()
		p, err := tsdb.CreateBlock(series, tmp, 0, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dataDir, "metrics", "single-tenant", filepath.Base(p))
		if mb.bucket {
			dst = filepath.Join(dataDir, "metrics-bucket", "single-tenant", filepath.Base(p))
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p, dst); err != nil {
			t.Fatal(err)
		}
		if mb.damaged {
			flipMiddle(t, filepath.Join(dst, "chunks", "000001"))
		}
		t.Logf("metrics block %s (%s, damaged %v) at %s", mb.name, map[bool]string{false: "local", true: "bucket"}[mb.bucket], mb.damaged, strings.TrimPrefix(dst, dataDir))
	}
}

// checkMetricBlocks checks that the good blocks are served, the damaged ones are left out, and queries over all
// of them answer; it returns the checks passed and run.
func checkMetricBlocks(t *testing.T, c *client, api string) (passed, total int) {
	t.Helper()
	start := fmt.Sprint(time.Now().Add(-13 * time.Hour).Unix())
	end := fmt.Sprint(time.Now().Unix())
	sel := url.QueryEscape(`{__name__=~"e2e_.+"}`)
	var seriesBody string
	err := poll(30*time.Second, func() error {
		var code int
		code, seriesBody = c.get(api + "/api/v1/series?match[]=" + sel + "&start=" + start + "&end=" + end)
		if code != 200 {
			return fmt.Errorf("series: %d %s", code, firstLine(seriesBody))
		}
		if !strings.Contains(seriesBody, "e2e_local_good") || !strings.Contains(seriesBody, "e2e_bucket_good") {
			return fmt.Errorf("series: good blocks not served yet: %s", firstLine(seriesBody))
		}
		return nil
	})
	code, rangeBody := c.get(api + "/api/v1/query_range?query=" + url.QueryEscape(`count by (__name__) ({__name__=~"e2e_.+"})`) + "&start=" + start + "&end=" + end + "&step=300")
	for _, mb := range metricBlocks {
		total += 2
		inSeries, inRange := strings.Contains(seriesBody, `"`+mb.name+`"`), strings.Contains(rangeBody, `"`+mb.name+`"`)
		if inSeries == !mb.damaged {
			passed++
		} else {
			t.Errorf("metrics block %s (damaged %v): in /api/v1/series %v", mb.name, mb.damaged, inSeries)
		}
		if code == 200 && inRange == !mb.damaged {
			passed++
		} else {
			t.Errorf("metrics block %s (damaged %v): query_range %d, in answer %v: %s", mb.name, mb.damaged, code, inRange, firstLine(rangeBody))
		}
	}
	if err != nil {
		t.Errorf("metrics blocks: %v", err)
	}
	return passed, total
}
