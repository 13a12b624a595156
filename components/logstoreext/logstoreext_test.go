package logstoreext

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/testutil"
)

type host struct {
	exts map[component.ID]component.Component
}

func (h *host) GetExtensions() map[component.ID]component.Component { return h.exts }

func TestConfigValidate(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	cfg.WAL.Fsync = "sometimes"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "wal.fsync") {
		t.Fatalf("want wal.fsync error, got %v", err)
	}
	cfg = createDefaultConfig().(*Config)
	cfg.Storage.Backend = "s3"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "storage: s3.bucket") {
		t.Fatalf("want storage error, got %v", err)
	}
}

// TestPipelineToQuery runs the extension and the exporter as the Collector would: logs consumed by the exporter
// are answered by the Loki API on the sprout_api port, found by trace id.
func TestPipelineToQuery(t *testing.T) {
	ctx := context.Background()
	apiCfg := apiserver.NewFactory().CreateDefaultConfig().(*apiserver.Config)
	apiCfg.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
	api, err := apiserver.NewFactory().Create(ctx, extensiontest.NewNopSettings(apiserver.Type), apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.DataDir = filepath.Join(t.TempDir(), "logs")
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &host{exts: map[component.ID]component.Component{component.NewID(apiserver.Type): api, component.NewID(Type): ext}}
	if err := api.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	defer api.Shutdown(ctx)
	if err := ext.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	exp, err := NewExporterFactory().CreateLogs(ctx, exportertest.NewNopSettings(Type), NewExporterFactory().CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "app")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	lr.Body().SetStr("payment accepted")
	lr.SetTraceID([16]byte{0xaa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	if err := exp.ConsumeLogs(ctx, ld); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"query": {`{service_name=~".+"} | trace_id="aa0102030405060708090a0b0c0d0e0f"`}}
	resp, err := http.Get("http://" + apiCfg.NetAddr.Endpoint + "/loki/api/v1/query_range?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Values [][]string `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || len(r.Data.Result) != 1 || r.Data.Result[0].Values[0][1] != "payment accepted" {
		t.Fatalf("query: %s (%v)", body, err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ext.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id      string
		check   func(*Config) bool
		wantErr string
	}{
		{"sprout_logs", func(c *Config) bool {
			return c.DataDir == "/var/lib/sprout/logs" && c.Retention == 168*time.Hour && c.WAL.Fsync == "interval" &&
				c.Limits.MaxLineSize == 1024 && c.Limits.MaxGlobalStreamsPerUser == 5000 &&
				c.Limits.QueryTimeout == 90*time.Second && c.Limits.MaxConcurrent == 3 && c.Limits.MaxQueueWait == 10*time.Second && c.Storage.S3.Bucket == "sprout-logs"
		}, ""},
		{"sprout_logs/bad", nil, "wal.fsync"},
		// segment_size, the deprecated spelling of segment_bytes, still loads.
		{"sprout_logs/segment_size", func(c *Config) bool { return c.WAL.SegmentSize == 2<<20 && c.WAL.SegmentBytes == 128<<20 }, ""},
		{"sprout_logs/small_segment", nil, "wal.segment_bytes: must be at least 1 MiB"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			sub, err := cm.Sub(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			cfg := createDefaultConfig().(*Config)
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			err = confmap.Validate(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil || !tc.check(cfg) {
				t.Fatalf("config %+v, err %v", cfg, err)
			}
		})
	}
}
