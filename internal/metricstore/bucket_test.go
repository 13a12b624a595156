package metricstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestShipQueryFromBucketAndRetention writes data 40 and 10 days old, cuts and ships blocks, lets local
// retention (1 day) delete them, and checks that queries still answer from the bucket; then bucket retention
// (30 days) deletes the 40-day-old blocks and only those.
func TestShipQueryFromBucketAndRetention(t *testing.T) {
	for _, backend := range []string{bucket.BackendFilesystem, bucket.BackendS3} {
		t.Run(backend, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Storage.Enabled = true
			cfg.Storage.ShipInterval, cfg.Storage.SyncInterval = time.Hour, time.Hour // driven by the test
			if backend == bucket.BackendS3 {
				s3 := testutil.StartS3(t)
				s3.MakeBucket("metrics")
				cfg.Storage.Config = bucket.Config{Backend: bucket.BackendS3, Prefix: "metrics", S3: bucket.S3Config{
					Bucket: "metrics", Endpoint: s3.Endpoint, Insecure: true, ForcePathStyle: true,
					AccessKey: s3.AccessKey, SecretKey: configopaque.String(s3.SecretKey)}}
			}
			ctx := context.Background()
			now := time.Now()
			old, mid := now.Add(-40*24*time.Hour).Truncate(time.Hour), now.Add(-10*24*time.Hour).Truncate(time.Hour)

			s := openStore(t, cfg)
			tn, err := s.Tenant(ctx, tenant.Default)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				name string
				from time.Time
			}{{"old_metric", old}, {"mid_metric", mid}} {
				appendSeries(t, tn, w.name, w.from, 7*time.Hour, 10*time.Minute)
				if err := tn.DB().Compact(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if len(tn.DB().Blocks()) < 4 {
				t.Fatalf("want at least 4 local blocks cut from the head, have %d", len(tn.DB().Blocks()))
			}
			shipped, err := tn.Ship(ctx)
			if err != nil || shipped != len(tn.DB().Blocks()) {
				t.Fatalf("ship: %d blocks, %v; want %d", shipped, err, len(tn.DB().Blocks()))
			}
			for _, b := range tn.DB().Blocks() {
				for _, f := range []string{"meta.json", "index", "chunks/000001"} {
					if ok, err := s.Bucket().Exists(ctx, bucket.Join(tenant.Default, b.Meta().ULID.String(), f)); !ok || err != nil {
						t.Errorf("bucket lacks %s of block %s: %v", f, b.Meta().ULID, err)
					}
				}
			}
			if n, err := tn.Ship(ctx); n != 0 || err != nil {
				t.Errorf("second ship uploaded %d blocks (%v), want 0", n, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// Hours later the WAL would have been checkpointed past these samples; a test cannot wait for that,
			// so drop it. Reopen: local retention (1 day) now deletes the shipped blocks; queries go to the bucket.
			if err := os.RemoveAll(filepath.Join(cfg.DataDir, tenant.Default, "wal")); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, cfg)
			tn, _ = s.Tenant(ctx, tenant.Default)
			if n := len(tn.DB().Blocks()); n != 0 {
				t.Errorf("%d blocks remain locally past local retention", n)
			}
			_, srv := serveStore(t, s)
			if got := instant(t, srv.URL, "old_metric", old.Add(3*time.Hour)); got["map[__name__:old_metric]"] != fmt.Sprint(3*6) {
				t.Errorf("old_metric from bucket = %v, want 18", got)
			}
			if got := instant(t, srv.URL, "mid_metric", mid.Add(time.Hour)); got["map[__name__:mid_metric]"] != "6" {
				t.Errorf("mid_metric from bucket = %v, want 6", got)
			}

			// Bucket retention: 40-day-old blocks go, 10-day-old blocks stay.
			if err := tn.SyncBucket(ctx); err != nil {
				t.Fatal(err)
			}
			if got := instant(t, srv.URL, "old_metric", old.Add(3*time.Hour)); len(got) != 0 {
				t.Errorf("old_metric after bucket retention = %v, want nothing", got)
			}
			if got := instant(t, srv.URL, "mid_metric", mid.Add(time.Hour)); got["map[__name__:mid_metric]"] != "6" {
				t.Errorf("mid_metric after bucket retention = %v, want 6", got)
			}
			var left []string
			_ = s.Bucket().Iter(ctx, tenant.Default+"/", func(name string) error {
				// The filesystem backend may leave a deleted block's empty directory behind; meta.json decides.
				if ok, _ := s.Bucket().Exists(ctx, name+"meta.json"); ok {
					left = append(left, name)
				}
				return nil
			})
			if len(left) == 0 || len(left) >= shipped {
				t.Errorf("bucket holds %d blocks after retention, want fewer than %d and more than 0", len(left), shipped)
			}
		})
	}
}

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg, Options{Logger: zap.NewNop(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// appendSeries appends value = minutes/10 since from, every step for span.
func appendSeries(t *testing.T, st storage.Appendable, name string, from time.Time, span, step time.Duration) {
	t.Helper()
	app := st.Appender(context.Background())
	ls := labels.FromStrings("__name__", name)
	for d := time.Duration(0); d < span; d += step {
		if _, err := app.Append(0, ls, from.Add(d).UnixMilli(), float64(d/step)); err != nil {
			t.Fatalf("append %s: %v", name, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}
