package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// defaultEnv points every listener of the embedded all-in-one config at a free port and the data directory
// at a temporary one.
func defaultEnv(t *testing.T) (env []string, apiURL string) {
	t.Helper()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	api := port()
	return []string{
		"SPROUT_DATA=" + t.TempDir(),
		"SPROUT_HTTP_ENDPOINT=" + api,
		"SPROUT_OTLP_GRPC_ENDPOINT=" + port(),
		"SPROUT_OTLP_HTTP_ENDPOINT=" + port(),
		"SPROUT_HEALTH_ENDPOINT=" + port(),
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)),
	}, "http://" + api
}

// TestDefaultConfigLifecycle runs the binary with no flags: it must become ready, serve its own metrics, and
// exit cleanly and promptly on SIGTERM, as ECS stops a task.
func TestDefaultConfigLifecycle(t *testing.T) {
	env, api := defaultEnv(t)
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)

	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "sprout_http_requests_total") {
		t.Errorf("/metrics does not serve Sprout's metrics:\n%s", tail(string(body), 500))
	}
	start := time.Now()
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	t.Logf("stopped in %s", time.Since(start))
}

// TestBadConfigExits checks that the binary refuses a broken config with a non-zero exit and a message that
// names the problem, for both `validate` and a normal start.
func TestBadConfigExits(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"yaml", "receivers: [otlp\n", "yaml"},
		{"unknown", "receivers:\n  nosuch: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [nosuch]\n      exporters: [debug]\n", "nosuch"},
		{"field", "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: localhost:4317\n        bogus_field: 1\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n", "bogus_field"},
	} {
		p := filepath.Join(dir, tc.name+".yaml")
		if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"validate", "--config", p}, {"--config", p}} {
			out, err := exec.Command(sproutBinary(t), args...).CombinedOutput()
			if err == nil {
				t.Errorf("%s %v: exit 0, want non-zero", tc.name, args)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("%s %v: output does not name %q:\n%s", tc.name, args, tc.want, tail(string(out), 800))
			}
			if strings.Contains(string(out), "panic") {
				t.Errorf("%s %v: panicked:\n%s", tc.name, args, out)
			}
		}
	}
}

// TestUnwritableDataDir starts the default config on a data directory that cannot be created: the binary must
// exit non-zero with a message that names the directory, not panic.
func TestUnwritableDataDir(t *testing.T) {
	env, _ := defaultEnv(t)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(blocker, "data") // a path under a regular file: not creatable, even as root
	env = append(env, "SPROUT_DATA="+bad)
	cmd := exec.Command(sproutBinary(t))
	cmd.Env = append(os.Environ(), env...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("sprout kept running on an unwritable data directory")
	}
	if err == nil {
		t.Fatal("exit 0 on an unwritable data directory")
	}
	if !strings.Contains(string(out), blocker) {
		t.Errorf("output does not name %s:\n%s", blocker, tail(string(out), 1500))
	}
	if strings.Contains(string(out), "panic:") {
		t.Errorf("panicked:\n%s", tail(string(out), 3000))
	}
}
