package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/migrate"
)

func TestParseTimeFlag(t *testing.T) {
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"0s", now, false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"1.5d", now.Add(-36 * time.Hour), false},
		{"36h", now.Add(-36 * time.Hour), false},
		{"2026-11-30T00:00:00Z", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-30T00:00:00.5+01:00", time.Date(2026, 11, 29, 23, 0, 0, 5e8, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"d", time.Time{}, true},
	} {
		got, err := parseTimeFlag(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("parseTimeFlag(%q) = %v, %v", tc.in, got, err)
		}
	}
}

// TestMigrateOptionsFromConfig: the stores' locations come from the config the backend runs, with the stores'
// derived defaults (all-in-one: traces/blocks, logs/bucket, metrics and metrics-bucket under $SPROUT_DATA).
func TestMigrateOptionsFromConfig(t *testing.T) {
	data := t.TempDir()
	t.Setenv("SPROUT_DATA", data)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := migrateFlags{config: "sprout:all-in-one", from: "7d", to: "0s", tenant: "single-tenant", batch: 100,
		tracesOTLP: "grpc://tempo:4317", logsLoki: "http://loki:3100", metricsDir: "/tmp/mimir",
		headers: []string{"X-Team: shop"}, bearerFile: tok, checkpoint: "cp.json"}
	o, err := f.options(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o.Traces.Source.Filesystem.Dir != filepath.Join(data, "traces", "blocks") ||
		o.Logs.Source.Filesystem.Dir != filepath.Join(data, "logs", "bucket") ||
		o.Metrics.DataDir != filepath.Join(data, "metrics") ||
		o.Metrics.Source == nil || o.Metrics.Source.Filesystem.Dir != filepath.Join(data, "metrics-bucket") {
		t.Fatalf("sources: traces %s, logs %s, metrics %s + %v", o.Traces.Source.Filesystem.Dir, o.Logs.Source.Filesystem.Dir, o.Metrics.DataDir, o.Metrics.Source)
	}
	if strings.Join(o.Signals, ",") != "traces,metrics,logs" || o.Auth.BearerToken != "s3cret" || o.Auth.Headers["X-Team"] != "shop" {
		t.Fatalf("signals %v, auth %+v", o.Signals, o.Auth)
	}
	if o.Metrics.TargetBucket == nil || o.Metrics.TargetBucket.Filesystem.Dir != "/tmp/mimir" || o.Metrics.Window != 2*time.Hour {
		t.Fatalf("metrics target %+v window %s", o.Metrics.TargetBucket, o.Metrics.Window)
	}

	for _, tc := range []struct {
		change func(*migrateFlags)
		want   string
	}{
		{func(f *migrateFlags) { f.tracesOTLP, f.logsLoki, f.metricsDir = "", "", "" }, "no target"},
		{func(f *migrateFlags) { f.signals = "traces,profiles" }, "unknown signal"},
		{func(f *migrateFlags) { f.from = "last week" }, "--from"},
		{func(f *migrateFlags) { f.rate = "fast" }, "--rate"},
		{func(f *migrateFlags) { f.headers = []string{"nocolon"} }, "--header"},
		{func(f *migrateFlags) { f.basicAuth = "nopassword" }, "--basic-auth"},
		{func(f *migrateFlags) { f.metricsCfg = "x.yaml" }, "give one"},
		{func(f *migrateFlags) { f.config = "sprout:collector-sidecar" }, "no sprout_traces extension"},
		{func(f *migrateFlags) { f.tracesOTLP = "tempo:4317" }, "--traces-otlp"},
	} {
		g := f
		tc.change(&g)
		if _, err := g.options(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}

	// A bucket file for the Mimir target, with Sprout's bucket keys and ${env:…}.
	t.Setenv("MIMIR_BUCKET", "mimir-blocks")
	bf := filepath.Join(t.TempDir(), "bucket.yaml")
	if err := os.WriteFile(bf, []byte("backend: s3\nprefix: blocks\ns3:\n  bucket: ${env:MIMIR_BUCKET}\n  endpoint: s3.eu-west-1.amazonaws.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := f
	g.metricsDir, g.metricsCfg, g.signals = "", bf, migrate.Metrics
	o, err = g.options(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if b := o.Metrics.TargetBucket; b == nil || b.S3.Bucket != "mimir-blocks" || b.Prefix != "blocks" || b.Backend != "s3" || strings.Join(o.Signals, ",") != "metrics" {
		t.Fatalf("bucket file read as %+v, signals %v", b, o.Signals)
	}
	_ = os.WriteFile(bf, []byte("backend: s3\n"), 0o644)
	if _, err := g.options(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "s3.bucket") {
		t.Fatalf("a bucket file without s3.bucket: %v", err)
	}
}
