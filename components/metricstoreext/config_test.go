package metricstoreext

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id      component.ID
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{id: component.NewID(Type), check: func(t *testing.T, c *Config) {
			if c.Frontend.CacheResults || c.Frontend.SplitQueriesByInterval != 24*time.Hour || c.Limits.MaxCacheFreshness != 10*time.Minute {
				t.Errorf("frontend defaults: %+v, max_cache_freshness %s", c.Frontend, c.Limits.MaxCacheFreshness)
			}
			if c.DataDir != "./data/metrics" || !c.Storage.Enabled || c.Storage.CompactorBlocksRetentionPeriod != 30*24*time.Hour {
				t.Errorf("defaults: %+v", c.Config)
			}
			if c.IsolationEnabled {
				t.Error("isolation_enabled defaults to true, want false (Mimir's default)")
			}
		}},
		{id: component.NewIDWithName(Type, "custom"), check: func(t *testing.T, c *Config) {
			if c.Retention != 12*time.Hour || c.OutOfOrderTimeWindow != 10*time.Minute || c.Storage.Backend != "s3" ||
				c.Storage.S3.Bucket != "sprout-metrics" || c.Limits.IngestionRate != 10000 || len(c.RemoteWrite) != 1 ||
				fmt.Sprint(c.Storage.CompactorBlockRanges) != "[6h0m0s 24h0m0s]" || c.Storage.CompactionInterval != 30*time.Minute {
				t.Errorf("custom: %+v", c.Config)
			}
			if f := c.Frontend; !f.CacheResults || f.SplitQueriesByInterval != 12*time.Hour || f.ResultsCache.MaxSizeBytes != 1<<20 ||
				c.Limits.MaxCacheFreshness != 5*time.Minute || c.Limits.ResultsCacheTTL != 7*24*time.Hour {
				t.Errorf("frontend %+v, max_cache_freshness %s, results_cache_ttl %s", f, c.Limits.MaxCacheFreshness, c.Limits.ResultsCacheTTL)
			}
			if !c.IsolationEnabled {
				t.Error("isolation_enabled: true was not read")
			}
			if c.QueryShards != 3 {
				t.Errorf("query_shards %d, want 3", c.QueryShards)
			}
			if c.Limits.MaxLabelNamesPerSeries != 30 {
				t.Errorf("unset limits keep their defaults, got max_label_names_per_series %d", c.Limits.MaxLabelNamesPerSeries)
			}
		}},
		{id: component.NewIDWithName(Type, "bad_limit"), wantErr: "limits: ingestion_rate"},
		{id: component.NewIDWithName(Type, "bad_query_shards"), wantErr: "query_shards: -1 is out of range"},
		{id: component.NewIDWithName(Type, "bad_remote_write"), wantErr: "remote_write[0]"},
		{id: component.NewIDWithName(Type, "bad_cache_size"), wantErr: "frontend.results_cache.max_size_bytes: 0 must be positive with cache_results on"},
		{id: component.NewIDWithName(Type, "bad_freshness"), wantErr: "limits: max_cache_freshness: must not be negative"},
		{id: component.NewIDWithName(Type, "bad_relabel"), wantErr: "nonsense"},
		{id: component.NewIDWithName(Type, "bad_ranges"), wantErr: "storage.compactor_block_ranges[1]: 18h0m0s must be greater than and a multiple of 12h0m0s"},
	} {
		t.Run(tc.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			if load(t, cm, tc.id.String(), cfg, tc.wantErr) {
				tc.check(t, cfg)
			}
		})
	}
}

// TestExporterConfig: the exporter names its extension with `store`, as the trace and log exporters do; the
// first spelling, `metrics_store`, still loads and is logged as deprecated when the exporter starts.
func TestExporterConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "exporter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	other := component.NewIDWithName(Type, "other")
	for _, tc := range []struct {
		name       string
		store      component.ID
		deprecated bool
		r2t        bool
		wantErr    string
	}{
		{name: "sprout_metrics", store: component.NewID(Type)},
		{name: "sprout_metrics/store", store: other},
		{name: "sprout_metrics/deprecated", store: other, deprecated: true, r2t: true},
		{name: "sprout_metrics/both", wantErr: "metrics_store: deprecated spelling of store; set only store"},
		{name: "sprout_metrics/not_metrics", wantErr: `store: "sprout_logs" is not a sprout_metrics extension`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultExporterConfig().(*ExporterConfig)
			if !load(t, cm, tc.name, cfg, tc.wantErr) {
				return
			}
			if cfg.Store != tc.store || cfg.ResourceToTelemetryConversion.Enabled != tc.r2t {
				t.Fatalf("config %+v", cfg)
			}
			if !cfg.BackOffConfig.Enabled {
				t.Error("retry_on_failure lost its default")
			}

			core, logs := observer.New(zap.WarnLevel)
			h := host{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{
				tc.store: newExtension(createDefaultConfig().(*Config), extensiontest.NewNopSettings(Type))}}
			if err := newMetricsExporter(cfg, zap.New(core)).x.Start(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			if warned := logs.FilterMessageSnippet("key metrics_store is deprecated; call it store").Len() == 1; warned != tc.deprecated {
				t.Errorf("deprecation logged: %v, want %v", warned, tc.deprecated)
			}
		})
	}
}

// load unmarshals the section id of cm into cfg and validates it as the Collector does (every nested config
// with a Validate method). It reports whether cfg is good; an error must contain wantErr, and is fatal when
// wantErr is empty.
func load(t *testing.T, cm *confmap.Conf, id string, cfg any, wantErr string) bool {
	t.Helper()
	sub, err := cm.Sub(id)
	if err != nil {
		t.Fatal(err)
	}
	err = sub.Unmarshal(cfg)
	if err == nil {
		err = confmap.Validate(cfg)
	}
	switch {
	case wantErr == "" && err != nil:
		t.Fatal(err)
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Fatalf("err = %v, want an error containing %q", err, wantErr)
	}
	return err == nil
}
