// Package diff is Sprout's differential test: one generated, seeded data set is written to the real sprout
// binary and to a real peer (Loki, Prometheus), the same committed query corpus (testdata/) runs on both, and
// the answers are compared after normalising what the APIs leave open (order of streams and series, float
// rounding, stats). It runs only when the peer binaries are named:
//
//	SPROUT_PEER_LOKI=/path/to/loki            LogQL vs Loki (TestLogQLDiff)
//	SPROUT_PEER_PROMETHEUS=/usr/bin/prometheus PromQL vs Prometheus (TestPromQLDiff)
//
// SPROUT_BIN names a prebuilt sprout binary; without it the test builds one. Differences are printed and
// counted; the test fails when a corpus' equal count falls below its floor (equalFloor), and on any difference
// with SPROUT_DIFF_STRICT=1.
package diff

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the generated query corpora in testdata/")

var (
	buildOnce sync.Once
	sproutBin string
	buildErr  error
)

// sproutBinary returns SPROUT_BIN or a binary built once for this run.
func sproutBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("SPROUT_BIN"); p != "" {
			sproutBin = p
			return
		}
		dir, err := os.MkdirTemp("", "sprout-diff-bin")
		if err != nil {
			buildErr = err
			return
		}
		sproutBin = filepath.Join(dir, "sprout")
		out, err := exec.Command("go", "build", "-o", sproutBin, "../../cmd/sprout").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build sprout: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return sproutBin
}

// peerBinary returns the binary named by env, or skips the test.
func peerBinary(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Skipf("%s is not set", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", env, err)
	}
	return p
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startProcess runs a child process until the test ends; its output tail is printed if the test fails.
func startProcess(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(logs.String(), 4000))
		}
	})
}

func waitReady(t *testing.T, u string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil
	})
}

// startSprout runs the binary with its embedded all-in-one config on free ports and returns its API URL.
func startSprout(t *testing.T) string {
	api, _ := startSproutOTLP(t)
	return api
}

// startSproutOTLP is startSprout that also returns the URL of its OTLP/HTTP traces receiver.
func startSproutOTLP(t *testing.T) (string, string) {
	t.Helper()
	bin := sproutBinary(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)) }
	api, otlp := port(), port()
	startProcess(t, "sprout", []string{
		"SPROUT_DATA=" + t.TempDir(),
		"SPROUT_HTTP_ENDPOINT=" + api,
		"SPROUT_OTLP_GRPC_ENDPOINT=" + port(),
		"SPROUT_OTLP_HTTP_ENDPOINT=" + otlp,
		"SPROUT_HEALTH_ENDPOINT=" + port(),
		"SPROUT_TELEMETRY_PORT=" + fmt.Sprint(testutil.FreePort(t)),
	}, bin)
	waitReady(t, "http://"+api+"/ready", 90*time.Second)
	return "http://" + api, "http://" + otlp + "/v1/traces"
}

// lokiConfig is a single-process Loki on the filesystem, with the limits raised so that a whole answer over the
// generated data fits in one response (the comparison needs every line, not the newest 100).
const lokiConfig = `auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %[2]d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %[3]d
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: %[1]s
  storage:
    filesystem:
      chunks_directory: %[1]s/chunks
      rules_directory: %[1]s/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index: {prefix: index_, period: 24h}
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
  max_entries_limit_per_query: 20000
  max_line_size: 0
query_range:
  cache_results: false
pattern_ingester:
  enabled: false
analytics:
  reporting_enabled: false
memberlist:
  bind_port: %[4]d
`

func startLoki(t *testing.T) string {
	t.Helper()
	bin := peerBinary(t, "SPROUT_PEER_LOKI")
	dir := t.TempDir()
	port := testutil.FreePort(t)
	cfg := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(lokiConfig, dir, port, testutil.FreePort(t), testutil.FreePort(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "loki", nil, bin, "-config.file="+cfg)
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitReady(t, u+"/ready", 180*time.Second)
	return u
}

func startPrometheus(t *testing.T) string {
	t.Helper()
	bin := peerBinary(t, "SPROUT_PEER_PROMETHEUS")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	startProcess(t, "prometheus", nil, bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	waitReady(t, "http://"+addr+"/-/ready", 60*time.Second)
	return "http://" + addr
}

func post(t *testing.T, u, contentType string, body []byte, hdr map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post %s: %v", u, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("post %s: %d %s", u, resp.StatusCode, b)
	}
}

var client = &http.Client{Timeout: 60 * time.Second}

// get asks u with params and returns the status code and body (status 0 with the error text on a transport
// failure, which is counted as a difference).
func get(u string, params url.Values) (int, []byte) {
	resp, err := client.Get(u + "?" + params.Encode())
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
