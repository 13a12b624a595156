package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/sprout-otel/sprout/internal/testutil"
)

const seedConfig = "../../../shared/seed/configs/otel-collector.yaml"

// seedWithEndpoints returns the seed's collector config with its two exporter endpoints, whose host names only
// resolve in the seed's VPC, replaced by ${env:...} references, the way a user would point them elsewhere; it
// checks that nothing else in the file changed.
func seedWithEndpoints(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(seedConfig)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("seed config: %v", err)
		}
		t.Skipf("seed config not beside the repository: %v", err)
	}
	orig := string(raw)
	s := strings.Replace(orig, "endpoint: tempo.my-local-domain:4317", "endpoint: ${env:SEED_TEMPO_ENDPOINT}", 1)
	s = strings.Replace(s, `endpoint: "http://prometheus.my-local-domain:9090/api/v1/write"`, "endpoint: ${env:SEED_PROMETHEUS_ENDPOINT}", 1)
	ol, nl := strings.Split(orig, "\n"), strings.Split(s, "\n")
	if len(ol) != len(nl) {
		t.Fatal("line count changed")
	}
	changed := 0
	for i := range ol {
		if ol[i] != nl[i] {
			changed++
		}
	}
	if changed != 2 {
		t.Fatalf("expected exactly the 2 exporter endpoint lines to change, %d did", changed)
	}
	p := filepath.Join(t.TempDir(), "otel-collector.yaml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveECS stands in for the ECS task metadata endpoint v4, which cannot run here, with the documented
// Fargate example responses kept in internal/distribution/testdata/ecs.
func serveECS(t *testing.T) string {
	return testutil.ServeECSMetadata(t, filepath.Join("..", "..", "internal", "distribution", "testdata", "ecs"))
}

// startOTLPSink runs the Collector's own OTLP receiver as the stand-in for Tempo's OTLP gRPC endpoint.
func startOTLPSink(t *testing.T) (string, *consumertest.TracesSink) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{"grpc": map[string]any{"endpoint": addr}}}).Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	sink := new(consumertest.TracesSink)
	r, err := f.CreateTraces(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), nopHost{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return addr, sink
}

type nopHost struct{}

func (nopHost) GetExtensions() map[component.ID]component.Component { return nil }

// startPrometheus runs Debian's Prometheus with its remote-write receiver on.
func startPrometheus(t *testing.T) string {
	t.Helper()
	return testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: testutil.RequireBinary(t, "prometheus")}).API()
}

// promQuery runs an instant query and returns the result's label sets.
func promQuery(base, q string) ([]map[string]string, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, out.Error)
	}
	var sets []map[string]string
	for _, r := range out.Data.Result {
		sets = append(sets, r.Metric)
	}
	return sets, nil
}

// The attributes the seed's resource processor deletes.
var seedDeleted = []string{"net_host_port", "server_port", "service_instance_id", "http_scheme", "url_scheme",
	"cloud.provider", "cloud.account.id", "cloud.platform", "cloud.region", "cloud.availability_zone",
	"aws.ecs.task.arn", "aws.ecs.task.family", "aws.ecs.task.revision", "aws.ecs.launchtype",
	"aws.ecs.cluster.arn", "aws.log.group.names", "aws.log.group.arns", "aws.log.stream.names", "aws.log.stream.arns"}

// TestSeedConfig runs the seed's collector config, unchanged but for its two exporter endpoints, in the real
// binary: an app instrumented with the OpenTelemetry Go SDK sends traces and metrics over OTLP gRPC, a
// Prometheus client serves /metrics on localhost:8080 for the prometheus receiver, and the data must arrive
// at a real OTLP gRPC endpoint and in a real Prometheus through remote write, with the seed's resource rules
// applied to the ECS attributes.
func TestSeedConfig(t *testing.T) {
	cfgPath := seedWithEndpoints(t)
	ecsURL := serveECS(t)
	otlpAddr, traces := startOTLPSink(t)
	promURL := startPrometheus(t)

	// The app's Prometheus endpoint, where the seed's scrape config looks for it.
	reg := prometheus.NewRegistry()
	libCounter := prometheus.NewCounter(prometheus.CounterOpts{Name: "library_requests_total", Help: "Requests."})
	reg.MustRegister(libCounter)
	libCounter.Add(7)
	ln, err := net.Listen("tcp", "localhost:8080")
	if err != nil {
		t.Fatalf("the seed scrapes localhost:8080, which must be free for this test: %v", err)
	}
	msrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go func() { _ = msrv.Serve(ln) }()
	t.Cleanup(func() { _ = msrv.Close() })

	grpcAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	healthAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := startSprout(t, []string{
		"ECS_CONTAINER_METADATA_URI_V4=" + ecsURL,
		"SEED_TEMPO_ENDPOINT=" + otlpAddr,
		"SEED_PROMETHEUS_ENDPOINT=" + promURL + "/api/v1/write",
	},
		"--config", cfgPath,
		// Listening addresses only, so that this test can run beside others on one machine.
		"--set=receivers.otlp.protocols.grpc.endpoint="+grpcAddr,
		"--set=extensions.health_check.endpoint="+healthAddr,
		"--set=service.telemetry.metrics.level=none",
	)
	p.waitHTTP("http://"+healthAddr+"/", 60*time.Second)

	// The app, instrumented as the seed's is: OTLP gRPC, service.name=app.
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", "app"))
	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(texp))
	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(grpcAddr), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp, sdkmetric.WithInterval(time.Second))))
	defer func() { _ = tp.Shutdown(ctx); _ = mp.Shutdown(ctx) }()
	_, span := tp.Tracer("seed-test").Start(ctx, "GET /checkout")
	span.End()
	counter, _ := mp.Meter("seed-test").Int64Counter("app.orders")
	counter.Add(ctx, 3)

	// Traces at the OTLP endpoint, resource rewritten by the seed's rules.
	testutil.Eventually(t, 30*time.Second, func() error {
		if len(traces.AllTraces()) == 0 {
			return fmt.Errorf("no traces at the OTLP endpoint yet")
		}
		return nil
	})
	rs := traces.AllTraces()[0].ResourceSpans().At(0)
	if n := rs.ScopeSpans().At(0).Spans().At(0).Name(); n != "GET /checkout" {
		t.Errorf("span name %q", n)
	}
	ra := rs.Resource().Attributes().AsRaw()
	if ra["service.name"] != "app" || ra["TaskDefinitionRevision"] != "26" || ra["aws.ecs.task.id"] != "cd189a933e5849daa93386466019ab50" {
		t.Errorf("resource attributes %v: want service.name=app, TaskDefinitionRevision=26, aws.ecs.task.id", ra)
	}
	for _, k := range seedDeleted {
		if _, ok := ra[k]; ok {
			t.Errorf("attribute %s should have been deleted by the seed's resource rules", k)
		}
	}

	// Metrics from the SDK and from the scrape, in Prometheus with the resource as labels.
	for _, q := range []string{
		`{__name__=~"app_orders.*", job="app", TaskDefinitionRevision="26"}`,
		`library_requests_total{job="prometheus-library", TaskDefinitionRevision="26"}`,
	} {
		testutil.Eventually(t, 60*time.Second, func() error {
			sets, err := promQuery(promURL, q)
			if err != nil {
				return err
			}
			if len(sets) == 0 {
				return fmt.Errorf("no series for %s yet", q)
			}
			for _, s := range sets {
				for _, k := range []string{"aws_ecs_task_revision", "cloud_provider", "cloud_region", "aws_ecs_task_arn"} {
					if _, ok := s[k]; ok {
						return fmt.Errorf("series %v still has deleted label %s", s, k)
					}
				}
			}
			return nil
		})
	}
	if v, err := promValue(promURL, `library_requests_total{job="prometheus-library"}`); err != nil || v != 7 {
		t.Errorf("library_requests_total = %v, %v; want 7", v, err)
	}
	if err := p.stop(30 * time.Second); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func promValue(base, q string) (float64, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if len(out.Data.Result) != 1 {
		return 0, fmt.Errorf("%d results", len(out.Data.Result))
	}
	var f float64
	_, err = fmt.Sscan(out.Data.Result[0].Value[1].(string), &f)
	return f, err
}
