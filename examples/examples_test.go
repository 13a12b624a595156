// Tests that every deliverable under examples/ is what it claims to be: configs that `sprout validate` accepts,
// task definitions that are valid JSON and agree with the configs on ports, endpoints and deadlines, a compose
// file whose services reach each other by name, and a Dockerfile that builds the image the others run.
package examples_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/otelcol"

	"github.com/sprout-otel/sprout/internal/configcheck"
	"github.com/sprout-otel/sprout/internal/distribution"
)

// TestConfigsValidate runs every example config through the code path of `sprout validate` (otelcol.NewCollector
// with the distribution's settings, then DryRun), reading it as the binary does: by its embedded sprout:NAME.
func TestConfigsValidate(t *testing.T) {
	files, err := filepath.Glob("configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	factories, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	// backend.yaml picks S3 from the environment, as the ECS task definition does; validate that choice.
	t.Setenv("SPROUT_STORAGE_BACKEND", "s3")
	t.Setenv("SPROUT_S3_BUCKET", "my-sprout-bucket")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg := readYAML(t, f)
			if missing := configcheck.Missing(cfg, factories); len(missing) > 0 {
				if !configcheck.OnlyPending(missing) {
					t.Fatalf("%s uses components %v, which are not in the distribution", f, missing)
				}
				if os.Getenv("CI") != "" {
					t.Fatalf("%s needs components not linked into sprout: %v", f, missing)
				}
				// Until then, validate everything else in the file: the upstream components' settings.
				stripped := filepath.Join(t.TempDir(), name+".yaml")
				if err := configcheck.Write(stripped, configcheck.Without(cfg, missing)); err != nil {
					t.Fatal(err)
				}
				dryRun(t, "file:"+stripped)
				t.Skipf("the rest is valid; needs components not linked in yet: %v", missing)
			}
			dryRun(t, distribution.EmbeddedScheme+":"+name)
		})
	}
}

func dryRun(t *testing.T, uri string) {
	t.Helper()
	col, err := otelcol.NewCollector(distribution.Settings("test", uri))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := col.DryRun(ctx); err != nil {
		t.Fatalf("sprout validate --config %s: %v", uri, err)
	}
}

// TestDefaultConfigIsAllInOne: `sprout` with no flags must keep running the all-in-one config.
func TestDefaultConfigIsAllInOne(t *testing.T) {
	set := distribution.Settings("test")
	if got := set.ConfigProviderSettings.ResolverSettings.URIs; len(got) != 1 || got[0] != "sprout:all-in-one" {
		t.Fatalf("default config URIs %v, want [sprout:all-in-one]", got)
	}
	if !slices.Contains(distribution.EmbeddedConfigs(), "all-in-one") {
		t.Fatal("all-in-one is not embedded")
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	m, err := configcheck.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lookup walks a parsed YAML/JSON document along keys.
func lookup(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// defaultOf expands ${env:NAME:-default} to its default (the port a config listens on when nothing is set).
func defaultOf(s string) string {
	for {
		i := strings.Index(s, "${env:")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], "}")
		inner := s[i+len("${env:") : i+j]
		_, def, _ := strings.Cut(inner, ":-")
		s = s[:i] + def + s[i+j+1:]
	}
}

func portOf(t *testing.T, hostport string) string {
	t.Helper()
	if strings.Contains(hostport, "://") {
		u, err := url.Parse(hostport)
		if err != nil {
			t.Fatalf("%q: %v", hostport, err)
		}
		hostport = u.Host
	}
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q is not host:port: %v", hostport, err)
	}
	return port
}

// The three numbers that every deliverable must agree on.
const (
	otlpGRPCPort = "4317"
	httpPort     = "3200"
	healthPort   = "13133"
)

func TestConfigPorts(t *testing.T) {
	for _, name := range []string{"all-in-one", "demo", "backend", "collector-sidecar"} {
		cfg := readYAML(t, "configs/"+name+".yaml")
		if got := portOf(t, defaultOf(lookup(cfg, "receivers", "otlp", "protocols", "grpc", "endpoint").(string))); got != otlpGRPCPort {
			t.Errorf("%s: OTLP gRPC on %s, want %s", name, got, otlpGRPCPort)
		}
		if got := portOf(t, defaultOf(lookup(cfg, "extensions", "health_check", "endpoint").(string))); got != healthPort {
			t.Errorf("%s: health_check on %s, want %s", name, got, healthPort)
		}
		if name != "collector-sidecar" {
			if got := portOf(t, defaultOf(lookup(cfg, "extensions", "sprout_api", "endpoint").(string))); got != httpPort {
				t.Errorf("%s: sprout_api on %s, want %s", name, got, httpPort)
			}
		}
	}
	backend := readYAML(t, "configs/backend.yaml")
	for _, path := range [][]string{
		{"receivers", "otlp", "protocols", "grpc", "endpoint"},
		{"extensions", "sprout_api", "endpoint"},
		{"extensions", "health_check", "endpoint"},
	} {
		if host, _, _ := net.SplitHostPort(defaultOf(lookup(backend, path...).(string))); host != "0.0.0.0" {
			t.Errorf("backend %s listens on %q, want 0.0.0.0 (other tasks reach it over the network)", strings.Join(path, "."), host)
		}
	}
	sidecar := readYAML(t, "configs/collector-sidecar.yaml")
	if got := portOf(t, defaultOf(lookup(sidecar, "exporters", "otlp_grpc/sprout", "endpoint").(string))); got != otlpGRPCPort {
		t.Errorf("sidecar exports OTLP to port %s, want the backend's %s", got, otlpGRPCPort)
	}
	rw := defaultOf(lookup(sidecar, "exporters", "prometheus_remote_write", "endpoint").(string))
	if portOf(t, rw) != httpPort || !strings.HasSuffix(rw, "/api/v1/write") {
		t.Errorf("sidecar remote-writes to %s, want the backend's :%s/api/v1/write", rw, httpPort)
	}
	// The demo config scrapes the demo workload where `sprout demo` serves its /metrics by default.
	demo := readYAML(t, "configs/demo.yaml")
	sc := lookup(demo, "receivers", "prometheus", "config", "scrape_configs").([]any)[0].(map[string]any)
	target := defaultOf(sc["static_configs"].([]any)[0].(map[string]any)["targets"].([]any)[0].(string))
	if target != "localhost:8080" || sc["scrape_interval"] != "15s" {
		t.Errorf("demo scrapes %s every %v, want localhost:8080 every 15s as the seed does", target, sc["scrape_interval"])
	}
}

// taskDef is the part of an ECS task definition the tests read.
type taskDef struct {
	Family                  string   `json:"family"`
	NetworkMode             string   `json:"networkMode"`
	RequiresCompatibilities []string `json:"requiresCompatibilities"`
	ContainerDefinitions    []struct {
		Name         string   `json:"name"`
		Image        string   `json:"image"`
		Essential    bool     `json:"essential"`
		Command      []string `json:"command"`
		PortMappings []struct {
			ContainerPort int `json:"containerPort"`
		} `json:"portMappings"`
		Environment []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"environment"`
		HealthCheck *struct {
			Command []string `json:"command"`
		} `json:"healthCheck"`
		StopTimeout      int `json:"stopTimeout"`
		LogConfiguration *struct {
			LogDriver string            `json:"logDriver"`
			Options   map[string]string `json:"options"`
		} `json:"logConfiguration"`
		FirelensConfiguration *struct {
			Type string `json:"type"`
		} `json:"firelensConfiguration"`
	} `json:"containerDefinitions"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s is not valid JSON: %v", path, err)
	}
}

func TestECSJSONParses(t *testing.T) {
	files, _ := filepath.Glob("ecs/*.json")
	if len(files) < 4 {
		t.Fatalf("want the task definitions and the IAM policy in ecs/, found %v", files)
	}
	for _, f := range files {
		var v any
		readJSON(t, f, &v)
	}
}

func env(def taskDef, container, name string) string {
	for _, c := range def.ContainerDefinitions {
		if c.Name == container {
			for _, e := range c.Environment {
				if e.Name == name {
					return e.Value
				}
			}
		}
	}
	return ""
}

func TestECSSidecarTask(t *testing.T) {
	for _, f := range []string{"ecs/app-with-sidecar.json", "ecs/app-with-sidecar-firelens.json"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var def taskDef
			readJSON(t, f, &def)
			if def.NetworkMode != "awsvpc" || !slices.Contains(def.RequiresCompatibilities, "FARGATE") {
				t.Errorf("want a Fargate awsvpc task (containers share localhost), got %s %v", def.NetworkMode, def.RequiresCompatibilities)
			}
			// The seed's app: OTLP to the sidecar on localhost:4317, service.name from the environment.
			if got := env(def, "app", "OTEL_EXPORTER_OTLP_ENDPOINT"); got != "http://localhost:"+otlpGRPCPort {
				t.Errorf("app sends OTLP to %q, want http://localhost:%s", got, otlpGRPCPort)
			}
			if got := env(def, "app", "OTEL_RESOURCE_ATTRIBUTES"); got != "service.name=app" {
				t.Errorf("app OTEL_RESOURCE_ATTRIBUTES %q", got)
			}
			for _, c := range def.ContainerDefinitions {
				switch c.Name {
				case "otel":
					if !slices.Contains(c.Command, "--config=sprout:collector-sidecar") {
						t.Errorf("sidecar command %v does not run the collector-sidecar config", c.Command)
					}
					if len(c.PortMappings) == 0 || c.PortMappings[0].ContainerPort != 4317 {
						t.Errorf("sidecar does not expose 4317")
					}
					if c.HealthCheck == nil || !slices.Equal(c.HealthCheck.Command[1:3], []string{"/sprout", "healthcheck"}) || portOf(t, c.HealthCheck.Command[len(c.HealthCheck.Command)-1]) != healthPort {
						t.Errorf("sidecar health check %+v: want /sprout healthcheck on :%s", c.HealthCheck, healthPort)
					}
				case "app":
					if len(c.PortMappings) == 0 || c.PortMappings[0].ContainerPort != 8080 {
						t.Errorf("app does not expose 8080 for the sidecar's scrape")
					}
					if lc := c.LogConfiguration; lc != nil && lc.LogDriver == "awsfirelens" {
						if lc.Options["Name"] != "loki" || lc.Options["port"] != httpPort || lc.Options["uri"] != "/loki/api/v1/push" {
							t.Errorf("FireLens output %v: want loki to :%s/loki/api/v1/push", lc.Options, httpPort)
						}
					}
				}
			}
			if portOf(t, env(def, "otel", "SPROUT_BACKEND_OTLP")) != otlpGRPCPort || portOf(t, env(def, "otel", "SPROUT_BACKEND_HTTP")) != httpPort {
				t.Errorf("sidecar backend endpoints %q %q do not match the backend's ports", env(def, "otel", "SPROUT_BACKEND_OTLP"), env(def, "otel", "SPROUT_BACKEND_HTTP"))
			}
			if host, _, _ := net.SplitHostPort(env(def, "otel", "SPROUT_BACKEND_OTLP")); host == "localhost" {
				t.Error("the backend is another service; it is not on the task's localhost")
			}
			if strings.Contains(f, "firelens") {
				var router bool
				for _, c := range def.ContainerDefinitions {
					router = router || (c.FirelensConfiguration != nil && c.FirelensConfiguration.Type == "fluentbit")
				}
				if !router {
					t.Error("no fluentbit FireLens log router container")
				}
			}
		})
	}
}

func TestECSBackendTask(t *testing.T) {
	var def taskDef
	readJSON(t, "ecs/sprout-backend.json", &def)
	if len(def.ContainerDefinitions) != 1 {
		t.Fatalf("want one sprout container, got %d", len(def.ContainerDefinitions))
	}
	c := def.ContainerDefinitions[0]
	if !slices.Contains(c.Command, "--config=sprout:backend") {
		t.Errorf("command %v does not run the backend config", c.Command)
	}
	var ports []int
	for _, p := range c.PortMappings {
		ports = append(ports, p.ContainerPort)
	}
	for _, want := range []int{4317, 4318, 3200, 13133} {
		if !slices.Contains(ports, want) {
			t.Errorf("backend does not expose %d (exposes %v)", want, ports)
		}
	}
	if c.HealthCheck == nil || strings.Join(c.HealthCheck.Command, " ") != "CMD /sprout healthcheck --url http://localhost:"+httpPort+"/ready" {
		t.Errorf("health check %+v: want the binary probing :%s/ready", c.HealthCheck, httpPort)
	}
	// Draining must finish before ECS's SIGKILL: Sprout's own deadline sits under the stop timeout.
	d, err := time.ParseDuration(env(def, "sprout", "SPROUT_SHUTDOWN_TIMEOUT"))
	if err != nil || c.StopTimeout != 30 || d >= time.Duration(c.StopTimeout)*time.Second {
		t.Errorf("SPROUT_SHUTDOWN_TIMEOUT %q must be set and below stopTimeout %ds", env(def, "sprout", "SPROUT_SHUTDOWN_TIMEOUT"), c.StopTimeout)
	}
	if env(def, "sprout", "SPROUT_STORAGE_BACKEND") != "s3" || env(def, "sprout", "SPROUT_S3_BUCKET") == "" {
		t.Error("backend task must keep blocks in S3")
	}
	if env(def, "sprout", "SPROUT_DATA") != "/var/lib/sprout" {
		t.Errorf("SPROUT_DATA %q: want the task-storage mount /var/lib/sprout", env(def, "sprout", "SPROUT_DATA"))
	}

	// Each store keeps its own prefix in the bucket, and the task role may touch exactly those.
	backend := readYAML(t, "configs/backend.yaml")
	var policy struct {
		Statement []struct {
			Action   []string `json:"Action"`
			Resource []string `json:"Resource"`
		} `json:"Statement"`
	}
	readJSON(t, "ecs/sprout-backend-task-role-policy.json", &policy)
	var actions, resources []string
	for _, s := range policy.Statement {
		actions = append(actions, s.Action...)
		resources = append(resources, s.Resource...)
	}
	for _, a := range []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} {
		if !slices.Contains(actions, a) {
			t.Errorf("IAM policy lacks %s", a)
		}
	}
	bucket := env(def, "sprout", "SPROUT_S3_BUCKET")
	seen := map[string]bool{}
	for _, store := range []string{"sprout_traces", "sprout_metrics", "sprout_logs"} {
		prefix, _ := lookup(backend, "extensions", store, "storage", "prefix").(string)
		if prefix == "" || seen[prefix] {
			t.Errorf("%s: prefix %q must be set and distinct", store, prefix)
		}
		seen[prefix] = true
		if !slices.Contains(resources, "arn:aws:s3:::"+bucket+"/"+prefix+"/*") {
			t.Errorf("IAM policy does not cover %s/%s/*", bucket, prefix)
		}
	}
	if !slices.Contains(resources, "arn:aws:s3:::"+bucket) {
		t.Errorf("IAM policy does not allow listing bucket %s", bucket)
	}
}

func TestCompose(t *testing.T) {
	c := readYAML(t, "compose/compose.yaml")
	services, _ := c["services"].(map[string]any)
	for _, s := range []string{"sprout-backend", "otel", "app"} {
		if services[s] == nil {
			t.Fatalf("compose has no %q service (has %v)", s, services)
		}
	}
	envOf := func(svc, name string) string {
		v, _ := lookup(services[svc].(map[string]any), "environment", name).(string)
		return v
	}
	// Service names, not localhost: the difference from an ECS task that the seed points out.
	for _, e := range []struct{ svc, name, host, port string }{
		{"app", "OTEL_EXPORTER_OTLP_ENDPOINT", "otel", otlpGRPCPort},
		{"otel", "SPROUT_BACKEND_OTLP", "sprout-backend", otlpGRPCPort},
		{"otel", "SPROUT_BACKEND_HTTP", "sprout-backend", httpPort},
		{"otel", "SPROUT_SCRAPE_TARGET", "app", "8080"},
	} {
		v := envOf(e.svc, e.name)
		hp := strings.TrimPrefix(v, "http://")
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host != e.host || port != e.port {
			t.Errorf("%s %s=%q, want %s:%s", e.svc, e.name, v, e.host, e.port)
		}
	}
	cmd := strings.Join(toStrings(lookup(services["app"].(map[string]any), "command")), " ")
	if !strings.Contains(cmd, "demo --workload-only") || !strings.Contains(cmd, ":8080") {
		t.Errorf("app command %q: want the demo workload serving /metrics on :8080", cmd)
	}
	for svc, want := range map[string]string{"sprout-backend": ":3200/ready", "otel": ":13133/"} {
		hc := strings.Join(toStrings(lookup(services[svc].(map[string]any), "healthcheck", "test")), " ")
		if !strings.Contains(hc, "/sprout healthcheck") || !strings.Contains(hc, want) {
			t.Errorf("%s healthcheck %q: want /sprout healthcheck on %s", svc, hc, want)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0",
		"-trimpath",
		`-ldflags "-s -w`,
		"-tags remove_all_sd",
		"gcr.io/distroless/static",
		"USER 65532:65532",
		`HEALTHCHECK`,
		`"/sprout", "healthcheck", "--url", "http://localhost:3200/ready"`,
		`ENTRYPOINT ["/sprout"]`,
	} {
		if !strings.Contains(d, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
