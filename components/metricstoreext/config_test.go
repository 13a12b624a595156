package metricstoreext

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
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
			if c.DataDir != "./data/metrics" || !c.Storage.Enabled || c.Storage.CompactorBlocksRetentionPeriod != 30*24*time.Hour {
				t.Errorf("defaults: %+v", c.Config)
			}
		}},
		{id: component.NewIDWithName(Type, "custom"), check: func(t *testing.T, c *Config) {
			if c.Retention != 12*time.Hour || c.OutOfOrderTimeWindow != 10*time.Minute || c.Storage.Backend != "s3" ||
				c.Storage.S3.Bucket != "sprout-metrics" || c.Limits.IngestionRate != 10000 || len(c.RemoteWrite) != 1 ||
				fmt.Sprint(c.Storage.CompactorBlockRanges) != "[6h0m0s 24h0m0s]" || c.Storage.CompactionInterval != 30*time.Minute {
				t.Errorf("custom: %+v", c.Config)
			}
			if c.Limits.MaxLabelNamesPerSeries != 30 {
				t.Errorf("unset limits keep their defaults, got max_label_names_per_series %d", c.Limits.MaxLabelNamesPerSeries)
			}
		}},
		{id: component.NewIDWithName(Type, "bad_limit"), wantErr: "limits: ingestion_rate"},
		{id: component.NewIDWithName(Type, "bad_remote_write"), wantErr: "remote_write[0]"},
		{id: component.NewIDWithName(Type, "bad_relabel"), wantErr: "nonsense"},
		{id: component.NewIDWithName(Type, "bad_ranges"), wantErr: "storage.compactor_block_ranges[1]: 18h0m0s must be greater than and a multiple of 12h0m0s"},
	} {
		t.Run(tc.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tc.id.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			err = confmap.Validate(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}
