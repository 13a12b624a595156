package distribution

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"
	"gopkg.in/yaml.v3"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// serveECSMetadata stands in for ECS, which cannot run here: the task metadata endpoint v4 serves the
// documented example responses in testdata/ecs.
func serveECSMetadata(t *testing.T) {
	t.Setenv("ECS_CONTAINER_METADATA_URI_V4", testutil.ServeECSMetadata(t, filepath.Join("testdata", "ecs")))
}

// seedProcessor builds the named processor from the seed's own collector config file, so the test runs the
// seed's exact settings.
func seedProcessor(t *testing.T, name string, next consumer.Traces) processor.Traces {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "seed", "configs", "otel-collector.yaml"))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("seed config not found beside the repository: %v", err)
		}
		t.Skipf("seed config not found beside the repository: %v", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	conf := confmap.NewFromStringMap(m)
	sub, err := conf.Sub("processors::" + name)
	if err != nil {
		t.Fatal(err)
	}
	factories, err := Components()
	if err != nil {
		t.Fatal(err)
	}
	f := factories.Processors[component.MustNewType(name)]
	if f == nil {
		t.Fatalf("no processor %q in the distribution", name)
	}
	cfg := f.CreateDefaultConfig()
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshal seed %s config: %v", name, err)
	}
	if err := confmap.Validate(cfg); err != nil {
		t.Fatalf("seed %s config invalid: %v", name, err)
	}
	p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), cfg, next)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if err := p.Start(context.Background(), componenttestHost{}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

type componenttestHost struct{}

func (componenttestHost) GetExtensions() map[component.ID]component.Component { return nil }

func oneSpan() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "app")
	rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("GET /")
	return td
}

func attrs(td ptrace.Traces) map[string]any {
	return td.ResourceSpans().At(0).Resource().Attributes().AsRaw()
}

// TestECSDetection runs the resource detection processor with the seed's detectors (env, ecs) against the
// stand-in metadata endpoint and checks every attribute it derives from the documented responses.
func TestECSDetection(t *testing.T) {
	serveECSMetadata(t)
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	sink := new(consumertest.TracesSink)
	p := seedProcessor(t, "resourcedetection", sink)
	if err := p.ConsumeTraces(context.Background(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	got := attrs(sink.AllTraces()[0])
	want := map[string]any{
		"service.name":            "app",
		"deployment.environment":  "test",
		"cloud.provider":          "aws",
		"cloud.platform":          "aws_ecs",
		"cloud.account.id":        "111122223333",
		"cloud.region":            "ap-northeast-1",
		"cloud.availability_zone": "ap-northeast-1a",
		"aws.ecs.task.arn":        "arn:aws:ecs:ap-northeast-1:111122223333:task/default/cd189a933e5849daa93386466019ab50",
		"aws.ecs.task.family":     "app",
		"aws.ecs.task.revision":   "26",
		"aws.ecs.task.id":         "cd189a933e5849daa93386466019ab50",
		"aws.ecs.cluster.arn":     "arn:aws:ecs:ap-northeast-1:111122223333:cluster/default",
		"aws.ecs.launchtype":      "fargate",
		"aws.log.group.names":     []any{"/ecs/app"},
		"aws.log.stream.names":    []any{"ecs/app/cd189a933e5849daa93386466019ab50"},
		"aws.log.group.arns":      []any{"arn:aws:logs:ap-northeast-1:111122223333:log-group:/ecs/app"},
		"aws.log.stream.arns":     []any{"arn:aws:logs:ap-northeast-1:111122223333:log-group:/ecs/app:log-stream:ecs/app/cd189a933e5849daa93386466019ab50"},
	}
	compareAttrs(t, got, want)
}

// TestSeedResourceRules chains detection and the seed's resource processor: the noisy attributes are deleted
// and the task definition revision survives as TaskDefinitionRevision.
func TestSeedResourceRules(t *testing.T) {
	serveECSMetadata(t)
	sink := new(consumertest.TracesSink)
	res := seedProcessor(t, "resource", sink)
	det := seedProcessor(t, "resourcedetection", res)
	if err := det.ConsumeTraces(context.Background(), oneSpan()); err != nil {
		t.Fatal(err)
	}
	compareAttrs(t, attrs(sink.AllTraces()[0]), map[string]any{
		"service.name":           "app",
		"aws.ecs.task.id":        "cd189a933e5849daa93386466019ab50",
		"TaskDefinitionRevision": "26",
	})
}

func compareAttrs(t *testing.T, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("attribute %s missing", k)
		} else if !equalAny(g, v) {
			t.Errorf("attribute %s = %#v, want %#v", k, g, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected attribute %s = %#v", k, got[k])
		}
	}
}

func equalAny(a, b any) bool {
	as, aok := a.([]any)
	bs, bok := b.([]any)
	if aok != bok {
		return false
	}
	if !aok {
		return a == b
	}
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		if as[i] != bs[i] {
			return false
		}
	}
	return true
}
