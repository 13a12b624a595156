package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/configcheck"
	"github.com/sprout-otel/sprout/internal/distribution"
	"github.com/sprout-otel/sprout/internal/testutil"
)

// demoPorts points every listener of the embedded configs at free loopback ports for this test, and returns
// Sprout's HTTP base URL.
func demoPorts(t *testing.T) (apiBase string) {
	t.Helper()
	free := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	api := free()
	t.Setenv("SPROUT_HTTP_ENDPOINT", api)
	t.Setenv("SPROUT_OTLP_GRPC_ENDPOINT", free())
	t.Setenv("SPROUT_OTLP_HTTP_ENDPOINT", free())
	t.Setenv("SPROUT_HEALTH_ENDPOINT", free())
	t.Setenv("SPROUT_TELEMETRY_PORT", fmt.Sprint(testutil.FreePort(t)))
	t.Setenv("SPROUT_DATA", t.TempDir())
	t.Setenv("SPROUT_DEMO_METRICS", "")
	return "http://" + api
}

// demoConfig is sprout:demo when every component it names is linked in. Otherwise, on a developer machine, it
// is the demo config without the missing components (their pipelines end in `debug`), so that the demo's own
// start-up and shutdown are still tested; under CI a missing component fails.
func demoConfig(t *testing.T) (uri string, complete bool) {
	t.Helper()
	f, err := distribution.Components()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configcheck.Read("../../examples/configs/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	missing := configcheck.Missing(cfg, f)
	if len(missing) == 0 {
		return distribution.EmbeddedScheme + ":demo", true
	}
	if !configcheck.OnlyPending(missing) || os.Getenv("CI") != "" {
		t.Fatalf("demo config needs components not linked into sprout: %v", missing)
	}
	path := filepath.Join(t.TempDir(), "demo.yaml")
	if err := configcheck.Write(path, configcheck.Without(cfg, missing)); err != nil {
		t.Fatal(err)
	}
	t.Logf("demo config without %v", missing)
	return "file:" + path, false
}

// syncBuffer collects the demo's console output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestDemoRunsAndStops: `sprout demo --duration` brings Sprout up, runs the workload against it, and shuts
// both down cleanly.
func TestDemoRunsAndStops(t *testing.T) {
	demoPorts(t)
	t.Setenv("SPROUT_RULES", "") // as outside a checkout: the demo brings its own rules
	uri, _ := demoConfig(t)
	dataDir := t.TempDir()
	o := demoOptions{config: uri, rate: 50, duration: 3 * time.Second, dataDir: dataDir,
		metricsAddr: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), readyWithin: 30 * time.Second}
	var out syncBuffer
	if err := runDemo(context.Background(), o, &out); err != nil {
		t.Fatalf("runDemo: %v\n%s", err, out.String())
	}
	for _, want := range []string{"Sprout is ready after", "UI                          http://", "Demo stopped after"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	rulesDir := filepath.Join(dataDir, "example-rules")
	if !strings.Contains(out.String(), "Example recording and alerting rules: "+rulesDir) {
		t.Errorf("output does not name the example rules at %s:\n%s", rulesDir, out.String())
	}
	for _, f := range []string{"red.yaml", filepath.Join("logql", "errors.yaml")} {
		if _, err := os.Stat(filepath.Join(rulesDir, f)); err != nil {
			t.Errorf("example rule file: %v", err)
		}
	}
	if strings.Contains(out.String(), "Demo stopped after 0 requests") {
		t.Errorf("the workload sent nothing:\n%s", out.String())
	}
}

// TestDemoFailsFastOnBadConfig: a config Sprout cannot start with ends the demo with the reason, not a hang.
func TestDemoFailsFastOnBadConfig(t *testing.T) {
	demoPorts(t)
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("receivers: {nope: {}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := demoOptions{config: "file:" + path, rate: 1, readyWithin: 30 * time.Second, dataDir: t.TempDir(), metricsAddr: "127.0.0.1:0"}
	err := runDemo(context.Background(), o, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("error %v, want one naming the unknown component", err)
	}
}
