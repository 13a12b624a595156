package resourcedetectionprocessor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	"gopkg.in/yaml.v3"
)

func loadConfig(t *testing.T, id string) (*Config, error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	sub, err := confmap.NewFromStringMap(m).Sub(id)
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return nil, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		id      string
		want    *Config
		wantErr string
	}{
		{id: "resourcedetection", want: &Config{Detectors: []string{"env", "ecs"}, Override: true, Timeout: 5 * time.Second}},
		{id: "resource_detection/override_off", want: &Config{Detectors: []string{"ecs"}, Override: false, Timeout: 2 * time.Second}},
		{id: "resource_detection/unlinked", wantErr: `detectors[1]: detector "ec2" is not linked into Sprout (linked: env, ecs`},
		{id: "resource_detection/twice", wantErr: `detectors[1]: detector "env" is listed twice`},
		{id: "resource_detection/zero_timeout", wantErr: "timeout: must be positive"},
		{id: "resource_detection/unknown_key", wantErr: "has invalid keys: ecs"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			cfg, err := loadConfig(t, tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tc.want) {
				t.Fatalf("config %+v, want %+v", cfg, tc.want)
			}
		})
	}
}

func TestParseEnvAttributes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]any
		wantErr string
	}{
		{in: "a=b", want: map[string]any{"a": "b"}},
		{in: " service.name = shop , deployment.environment=prod,", want: map[string]any{"service.name": "shop", "deployment.environment": "prod"}},
		{in: "k=v%2Cw%20x", want: map[string]any{"k": "v,w x"}},
		{in: "k=", want: map[string]any{"k": ""}},
		{in: "k=a=b", want: map[string]any{"k": "a=b"}},
		{in: "a=1,a=2", want: map[string]any{"a": "2"}},
		{in: "novalue", wantErr: `pair 1 "novalue": no '='`},
		{in: "a=b,,c=d", wantErr: "pair 2"},
		{in: "=v", wantErr: "the key must be 1 to 256 characters"},
		{in: "k=é", wantErr: "only ASCII"},
		{in: "k=%zz", wantErr: `the value of "k"`},
		{in: "k=" + strings.Repeat("x", 257), wantErr: "longer than 256"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m := pcommon.NewMap()
			err := parseEnvAttributes(tc.in, m)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := m.AsRaw(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func readTestdata(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveECS serves the two metadata answers as ECS's endpoint does; failTask makes /task answer 500 that many
// times first.
func serveECS(t *testing.T, failTask int) {
	task, container := readTestdata(t, "task.json"), readTestdata(t, "container.json")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v4/meta", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(container) })
	mux.HandleFunc("GET /v4/meta/task", func(w http.ResponseWriter, _ *http.Request) {
		if failTask > 0 {
			failTask--
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(task)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Setenv("ECS_CONTAINER_METADATA_URI_V4", srv.URL+"/v4/meta")
	t.Setenv("ECS_CONTAINER_METADATA_URI", "")
}

var wantECS = map[string]any{
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

func TestECSResource(t *testing.T) {
	task, container := readTestdata(t, "task.json"), readTestdata(t, "container.json")
	for _, tc := range []struct {
		name    string
		task    []byte
		self    []byte
		want    func() map[string]any
		wantErr string
	}{
		{name: "fargate task, sidecar's own logs left out", task: task, self: container, want: func() map[string]any { return wantECS }},
		{name: "no container answer: no log attributes", task: task, want: func() map[string]any {
			m := map[string]any{}
			for k, v := range wantECS {
				if !strings.HasPrefix(k, "aws.log.") {
					m[k] = v
				}
			}
			return m
		}},
		{name: "cluster short name, old task ARN, EC2", task: []byte(`{"Cluster":"prod","TaskARN":"arn:aws:ecs:eu-west-1:123456789012:task/0123abcd","Family":"f","Revision":"3","LaunchType":"EC2"}`),
			want: func() map[string]any {
				return map[string]any{"cloud.provider": "aws", "cloud.platform": "aws_ecs", "cloud.account.id": "123456789012", "cloud.region": "eu-west-1",
					"aws.ecs.task.arn": "arn:aws:ecs:eu-west-1:123456789012:task/0123abcd", "aws.ecs.task.family": "f", "aws.ecs.task.revision": "3",
					"aws.ecs.task.id": "0123abcd", "aws.ecs.cluster.arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "aws.ecs.launchtype": "ec2"}
			}},
		{name: "not JSON", task: []byte(`<html>`), wantErr: "decode task metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ecsResource(tc.task, tc.self)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := res.Attributes().AsRaw(), tc.want(); !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func oneSpan(attrs map[string]any) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	_ = rs.Resource().Attributes().FromRaw(attrs)
	rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("GET /")
	return td
}

func startTraces(t *testing.T, f *Config, sink *consumertest.TracesSink) error {
	t.Helper()
	fac := NewFactory()
	p, err := fac.CreateTraces(context.Background(), processortest.NewNopSettings(Type), f, sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return err
	}
	return p.ConsumeTraces(context.Background(), oneSpan(map[string]any{"service.name": "app", "cloud.region": "mine"}))
}

func TestProcessor(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       string
		ecs       bool
		failTask  int
		cfg       Config
		want      map[string]any
		wantErr   string
		wantNoECS bool
	}{
		{name: "env and ecs, override", env: "deployment.environment=test,cloud.region=from-env", ecs: true, cfg: Config{Detectors: []string{"env", "ecs"}, Override: true, Timeout: 5 * time.Second},
			want: merge(wantECS, map[string]any{"service.name": "app", "deployment.environment": "test", "cloud.region": "from-env"})},
		{name: "ecs first wins over env", env: "cloud.region=from-env", ecs: true, cfg: Config{Detectors: []string{"ecs", "env"}, Override: true, Timeout: 5 * time.Second},
			want: merge(wantECS, map[string]any{"service.name": "app"})},
		{name: "no override keeps the data's own", ecs: true, cfg: Config{Detectors: []string{"ecs"}, Timeout: 5 * time.Second},
			want: merge(wantECS, map[string]any{"service.name": "app", "cloud.region": "mine"})},
		{name: "outside ECS nothing is added", cfg: Config{Detectors: []string{"env", "ecs"}, Override: true, Timeout: 5 * time.Second},
			want: map[string]any{"service.name": "app", "cloud.region": "mine"}},
		{name: "endpoint fails once, retried", ecs: true, failTask: 1, cfg: Config{Detectors: []string{"ecs"}, Override: true, Timeout: 10 * time.Second},
			want: merge(wantECS, map[string]any{"service.name": "app"})},
		{name: "bad OTEL_RESOURCE_ATTRIBUTES fails the start", env: "oops", cfg: Config{Detectors: []string{"env"}, Override: true, Timeout: 5 * time.Second},
			wantErr: `resource detection: detector env: OTEL_RESOURCE_ATTRIBUTES: pair 1 "oops": no '='`},
		{name: "endpoint down until the timeout fails the start", ecs: true, failTask: 1 << 30, cfg: Config{Detectors: []string{"ecs"}, Override: true, Timeout: 200 * time.Millisecond},
			wantErr: "resource detection: detector ecs: task metadata: GET "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", tc.env)
			t.Setenv("OTEL_RESOURCE", "")
			t.Setenv("ECS_CONTAINER_METADATA_URI_V4", "")
			t.Setenv("ECS_CONTAINER_METADATA_URI", "")
			if tc.ecs {
				serveECS(t, tc.failTask)
			}
			sink := new(consumertest.TracesSink)
			cfg := tc.cfg
			err := startTraces(t, &cfg, sink)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rs := sink.AllTraces()[0].ResourceSpans().At(0)
			if got := rs.Resource().Attributes().AsRaw(); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
			if tc.ecs && rs.SchemaUrl() != ecsSchemaURL {
				t.Fatalf("schema URL %q", rs.SchemaUrl())
			}
		})
	}
}

func merge(ms ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestSharedDetection: the traces and metrics processors of one config entry detect once.
func TestSharedDetection(t *testing.T) {
	var tasks int
	task := readTestdata(t, "task.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/task") {
			tasks++
			_, _ = w.Write(task)
			return
		}
		_, _ = w.Write(readTestdata(t, "container.json"))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("ECS_CONTAINER_METADATA_URI_V4", srv.URL+"/v4")
	cfg := &Config{Detectors: []string{"ecs"}, Override: true, Timeout: 5 * time.Second}
	fac := NewFactory()
	set := processortest.NewNopSettings(Type)
	set.ID = component.NewIDWithName(DeprecatedType, "shared")
	tp, err := fac.CreateTraces(context.Background(), set, cfg, consumertest.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	msink := new(consumertest.MetricsSink)
	mp, err := fac.CreateMetrics(context.Background(), set, cfg, msink)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []component.Component{tp, mp} {
		if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	}
	if tasks != 1 {
		t.Fatalf("task metadata fetched %d times, want once", tasks)
	}
	md := pmetric.NewMetrics()
	md.ResourceMetrics().AppendEmpty()
	if err := mp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	if got := msink.AllMetrics()[0].ResourceMetrics().At(0).Resource().Attributes().AsRaw(); !reflect.DeepEqual(got, wantECS) {
		t.Fatalf("metrics resource %v", got)
	}
}
