package generatorconnector

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/generator"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
	"github.com/sprout-otel/sprout/internal/wal"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	custom := generator.DefaultConfig()
	custom.Processors = []string{generator.ProcessorSpanMetrics}
	custom.SpanMetrics.Dimensions = []string{"http.method", "deployment.environment"}
	custom.SpanMetrics.HistogramBuckets = []float64{0.01, 0.1, 1}
	custom.SpanMetrics.IntrinsicDimensions.StatusMessage = true
	custom.SpanMetrics.EnableTargetInfo = true
	custom.SpanMetrics.EnableInstanceLabel = false
	custom.SpanMetrics.TargetInfoExcludedDimensions = []string{"host.name"}
	custom.SpanMetrics.SpanMultiplierKey = "X-SampleRatio"
	custom.ServiceGraphs.Dimensions = []string{"deployment.environment"}
	custom.ServiceGraphs.EnableClientServerPrefix = true
	custom.ServiceGraphs.EnableVirtualNodeLabel = true
	custom.ServiceGraphs.EnableMessagingSystemLatencyHistogram = true
	custom.GenerateNativeHistograms = generator.HistogramBoth
	custom.NativeHistogramBucketFactor = 1.2
	custom.NativeHistogramMaxBucketNumber = 50
	custom.TraceIDLabelName = "trace_id"
	custom.ServiceGraphs.HistogramBuckets = []float64{0.5, 1}
	custom.ServiceGraphs.Wait = 5 * time.Second
	custom.ServiceGraphs.MaxItems = 500
	custom.ServiceGraphs.PeerAttributes = []string{"peer.service"}
	custom.MaxActiveSeries = 2000
	custom.StaleAfter = 5 * time.Minute
	custom.FlushInterval = 30 * time.Second
	custom.WAL = generator.WALConfig{Dir: "/var/lib/sprout/generator", CheckpointInterval: 2 * time.Minute, MinFreeDiskBytes: 1 << 20,
		Policy: wal.Policy{Fsync: wal.FsyncAlways, FsyncInterval: time.Second, Sync: "none"}} // the deprecated key still loads

	for _, tc := range []struct {
		id      string
		want    *Config
		wantErr string
	}{
		{id: "sprout_generator", want: createDefaultConfig().(*Config)},
		{id: "sprout_generator/custom", want: &Config{Config: custom, API: createDefaultConfig().(*Config).API}},
		{id: "sprout_generator/bad", wantErr: `unknown processor "local-blocks"`},
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
			err = cfg.Validate()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalConfig(cfg, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", *cfg, *tc.want)
			}
		})
	}
}

func equalConfig(a, b *Config) bool { return reflect.DeepEqual(a, b) }

func oneSpan(svc, name string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName(name)
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	now := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-10 * time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
	return td
}

func callsValue(md pmetric.Metrics, service string) (float64, bool) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		if rms.At(i).Resource().Attributes().Len() != 0 {
			return -1, true // the resource must be empty
		}
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != "traces_spanmetrics_calls_total" {
					continue
				}
				dps := m.Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					if v, _ := dps.At(d).Attributes().Get("service"); v.Str() == service {
						return dps.At(d).DoubleValue(), true
					}
				}
			}
		}
	}
	return 0, false
}

// mtHost holds a sprout_api extension with multi-tenancy on, whose tenant policy the connector reads.
type mtHost struct {
	ext map[component.ID]component.Component
}

func (h mtHost) GetExtensions() map[component.ID]component.Component { return h.ext }

func multiTenantHost(t *testing.T) component.Host {
	t.Helper()
	f := apiserver.NewFactory()
	cfg := f.CreateDefaultConfig().(*apiserver.Config)
	cfg.MultitenancyEnabled = true
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(apiserver.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return mtHost{map[component.ID]component.Component{component.NewID(apiserver.Type): ext}}
}

func startConnector(t *testing.T, dir string, sink *consumertest.MetricsSink) *generatorConnector {
	t.Helper()
	return startConnectorOn(t, multiTenantHost(t), dir, sink)
}

func startConnectorOn(t *testing.T, host component.Host, dir string, sink *consumertest.MetricsSink) *generatorConnector {
	t.Helper()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.WAL.Dir = dir
	cfg.FlushInterval = 50 * time.Millisecond
	conn, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return conn.(*generatorConnector)
}

// TestConnectorEmitsPerTenantAndSurvivesRestart drives the connector as the Collector does: spans in through
// ConsumeTraces with the tenant in client metadata, cumulative metrics out through the next consumer, and a
// restart that must continue the counters.
func TestConnectorEmitsPerTenantAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	sink := &consumertest.MetricsSink{}
	c := startConnector(t, dir, sink)
	ctx := client.NewContext(context.Background(), client.Info{
		Metadata: client.NewMetadata(map[string][]string{tenant.Header: {"team-a"}}),
	})
	for range 2 {
		if err := c.ConsumeTraces(ctx, oneSpan("checkout", "POST /pay")); err != nil {
			t.Fatal(err)
		}
	}
	waitForCalls(t, sink, "team-a", "checkout", 2)
	// Crash: stop the loop but neither flush nor checkpoint.
	close(c.stop)
	<-c.done
	// The generator is abandoned without Close: no checkpoint, the WAL alone must carry the state.

	sink2 := &consumertest.MetricsSink{}
	c2 := startConnector(t, dir, sink2)
	if err := c2.ConsumeTraces(ctx, oneSpan("checkout", "POST /pay")); err != nil {
		t.Fatal(err)
	}
	waitForCalls(t, sink2, "team-a", "checkout", 3)
	if err := c2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestOneTenantModeIgnoresOrgID: without multi-tenancy a sender's X-Scope-OrgID names no tenant; the spans
// feed the one tenant's metrics.
func TestOneTenantModeIgnoresOrgID(t *testing.T) {
	sink := &consumertest.MetricsSink{}
	c := startConnectorOn(t, componenttest.NewNopHost(), t.TempDir(), sink)
	for _, org := range []string{"ghost", "../../escape3", ".hidden"} {
		ctx := client.NewContext(context.Background(), client.Info{
			Metadata: client.NewMetadata(map[string][]string{tenant.Header: {org}}),
		})
		if err := c.ConsumeTraces(ctx, oneSpan("checkout", "POST /pay")); err != nil {
			t.Fatalf("X-Scope-OrgID %q: %v", org, err)
		}
	}
	waitForCalls(t, sink, tenant.Default, "checkout", 3)
	if n := c.gen.Stats().TenantsTracked; n != 1 {
		t.Errorf("tenants tracked = %d, want 1", n)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func waitForCalls(t *testing.T, sink *consumertest.MetricsSink, tenantID, svc string, want float64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		all := sink.AllMetrics()
		for i := len(all) - 1; i >= 0; i-- {
			ctxs := sink.Contexts()
			if i < len(ctxs) && tenant.FromContext(ctxs[i]) != tenantID {
				continue
			}
			v, ok := callsValue(all[i], svc)
			if !ok {
				continue
			}
			if v != want {
				return fmt.Errorf("calls = %v, want %v", v, want)
			}
			return nil
		}
		return fmt.Errorf("no emission for tenant %s yet", tenantID)
	})
}

var _ component.Component = (*generatorConnector)(nil)

// blockingSink holds every hand-off of one tenant until released, and records the others.
type blockingSink struct {
	consumertest.MetricsSink
	slow    string
	release chan struct{}
	mu      sync.Mutex
	slowN   int
}

func (b *blockingSink) ConsumeMetrics(ctx context.Context, md pmetric.Metrics) error {
	if tenant.FromContext(ctx) == b.slow {
		b.mu.Lock()
		b.slowN++
		b.mu.Unlock()
		<-b.release
	}
	return b.MetricsSink.ConsumeMetrics(ctx, md)
}

// TestSlowTenantDoesNotHoldBackOthers: while one tenant's hand-off downstream hangs (a write of tens of thousands
// of series timing out and retried), other tenants' metrics keep flowing, the slow tenant has one hand-off in
// flight at a time, and Shutdown still delivers its last values.
func TestSlowTenantDoesNotHoldBackOthers(t *testing.T) {
	sink := &blockingSink{slow: "noisy", release: make(chan struct{})}
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.WAL.Dir = t.TempDir()
	cfg.FlushInterval = 20 * time.Millisecond
	conn, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(context.Background(), multiTenantHost(t)); err != nil {
		t.Fatal(err)
	}
	c := conn.(*generatorConnector)
	for _, id := range []string{"noisy", "quiet"} {
		ctx := client.NewContext(context.Background(), client.Info{Metadata: client.NewMetadata(map[string][]string{tenant.Header: {id}})})
		if err := c.ConsumeTraces(ctx, oneSpan("svc-"+id, "GET /")); err != nil {
			t.Fatal(err)
		}
	}
	waitForCalls(t, &sink.MetricsSink, "quiet", "svc-quiet", 1)
	// Many flushes later the quiet tenant has been handed off again and again; the noisy one once.
	testutil.Eventually(t, 10*time.Second, func() error {
		quiet := 0
		for _, ctx := range sink.Contexts() {
			if tenant.FromContext(ctx) == "quiet" {
				quiet++
			}
		}
		if quiet < 5 {
			return fmt.Errorf("quiet tenant handed off %d times", quiet)
		}
		return nil
	})
	sink.mu.Lock()
	slowN := sink.slowN
	sink.mu.Unlock()
	if slowN != 1 {
		t.Fatalf("the hanging tenant was handed off %d times at once, want 1", slowN)
	}
	close(sink.release)
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitForCalls(t, &sink.MetricsSink, "noisy", "svc-noisy", 1)
}
