package tracestoreext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/testutil"
	"github.com/sprout-otel/sprout/internal/wal"
)

func TestConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id      string
		check   func(*testing.T, *Config)
		wantErr string
	}{
		{id: "sprout_traces", check: func(t *testing.T, c *Config) {
			if c.DataDir != "./data/traces" || c.Storage.Filesystem.Dir != "data/traces/blocks" || c.WAL.Fsync != wal.FsyncInterval || c.Compaction.BlockRetention != 720*time.Hour || !c.FlushAllOnShutdown ||
				c.Compaction.MaxInputBlocks != 4 {
				t.Fatalf("defaults: %+v", c.Config)
			}
		}},
		{id: "sprout_traces/custom", check: func(t *testing.T, c *Config) {
			if c.DataDir != "/var/lib/sprout/traces" || c.WAL.Sync != "always" || effectiveFsync(c) != wal.FsyncAlways || c.TraceIdlePeriod != 5*time.Second ||
				c.Compaction.BlockRetention != 48*time.Hour || c.Compaction.MaxInputBlocks != 6 || c.Limits.MaxBytesPerTrace != 1000000 ||
				c.Storage.Backend != "s3" || c.API.String() != "sprout_api/other" || c.Storage.Filesystem.Dir != "/var/lib/sprout/traces/blocks" {
				t.Fatalf("custom: %+v", c)
			}
			// The query admission keys (querylimit.Config, squashed into limits).
			if c.Limits.QueryTimeout != 90*time.Second || c.Limits.MaxConcurrent != 3 || c.Limits.MaxQueueWait != 10*time.Second {
				t.Fatalf("custom limits: %+v", c.Limits)
			}
		}},
		{id: "sprout_traces/bad_sync", wantErr: `wal.sync: "sometimes" is not one of always, batch, none`},
		{id: "sprout_traces/bad_retention", wantErr: "compaction.block_retention: must not be negative"},
		{id: "sprout_traces/bad_max_input_blocks", wantErr: "compaction.max_input_blocks: 3 is below compaction.min_input_blocks 4"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			// what the Collector does: validate every nested config that has a Validate method
			err = confmap.Validate(cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
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

type host struct {
	exts map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.exts }

func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	apiFactory := apiserver.NewFactory()
	apiCfg := apiFactory.CreateDefaultConfig().(*apiserver.Config)
	apiCfg.NetAddr.Endpoint = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	api, err := apiFactory.Create(ctx, extensiontest.NewNopSettings(apiserver.Type), apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	cfg.DataDir = t.TempDir()
	cfg.Storage.Filesystem.Dir = "" // derived from data_dir, as Unmarshal does for a config file
	cfg.WAL.Fsync = wal.FsyncNever
	cfg.Limits.MaxBytesPerTrace = 2000
	ext, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{exts: map[component.ID]component.Component{component.NewID(apiserver.Type): api, component.NewID(Type): ext}}
	for _, c := range []extension.Extension{api, ext} {
		if err := c.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	expF := NewExporterFactory()
	exp, err := expF.CreateTraces(ctx, exportertest.NewNopSettings(Type), expF.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{0xab, 1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("GET /")
	if err := exp.ConsumeTraces(ctx, td); err != nil {
		t.Fatal(err)
	}
	base := "http://" + apiCfg.NetAddr.Endpoint
	resp, err := http.Get(base + "/api/traces/" + pcommon.TraceID{0xab, 1}.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"GET /"`) {
		t.Fatalf("trace by id: %d %s", resp.StatusCode, body)
	}
	// an over-size trace is a permanent error that names the limit
	big := ptrace.NewTraces()
	spans := big.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := 0; i < 100; i++ {
		s := spans.AppendEmpty()
		s.SetTraceID(pcommon.TraceID{0xcd})
		s.SetSpanID(pcommon.SpanID{byte(i + 1)})
		s.SetName(strings.Repeat("x", 100))
	}
	err = exp.ConsumeTraces(ctx, big)
	if !consumererror.IsPermanent(err) || !strings.Contains(err.Error(), "max_bytes_per_trace") {
		t.Fatalf("over-size trace: %v, want a permanent error naming max_bytes_per_trace", err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []extension.Extension{ext, api} {
		if err := c.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Fatal(err)
		}
	}
}

// effectiveFsync is the policy the store runs with: the deprecated key sync applied over fsync.
func effectiveFsync(c *Config) string {
	fsync, _, _ := c.WAL.Effective()
	return fsync
}
