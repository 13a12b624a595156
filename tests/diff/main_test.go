// Package diff is Sprout's differential test: one generated, seeded data set is written to the real sprout
// binary and to a real peer (Loki, Prometheus), the same committed query corpus (testdata/) runs on both, and
// the answers are compared after normalising what the APIs leave open (order of streams and series, float
// rounding, stats). It runs only when the peer binaries are named:
//
//	SPROUT_PEER_LOKI=/path/to/loki            LogQL vs Loki (TestLogQLDiff, TestLogQLParserHintsDiff)
//	SPROUT_PEER_PROMETHEUS=/usr/bin/prometheus PromQL vs Prometheus (TestPromQLDiff, TestPromQLNativeDiff)
//	SPROUT_PEER_TEMPO=/path/to/tempo          TraceQL vs Tempo (TestTraceQLCorpusDiff, TestTraceQLMetricsDiff,
//	                                           TestTraceQLNilDiff, TestTraceQLOrphanDiff)
//
// SPROUT_BIN names a prebuilt sprout binary; without it the test builds one. Differences are printed and
// counted; the test fails when a corpus' equal count falls below its floor (equalFloor), and on any difference
// with SPROUT_DIFF_STRICT=1.
package diff

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
		// Read inside a test, the module's source becomes part of the key of `go test`'s cache (see
		// testutil.SourceKey), so a changed store is tested again, not served from the cache.
		if _, err := testutil.SourceKey(filepath.Join("..", "..")); err != nil {
			buildErr = err
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

// startSprout runs the binary with its embedded all-in-one config on free ports and returns its API URL.
func startSprout(t *testing.T) string {
	api, _ := startSproutOTLP(t)
	return api
}

// startSproutData is startSprout on the data directory dir (kept across restarts) and returns the running
// binary, so that a test can stop it and start another on the same data.
func startSproutData(t *testing.T, dir string) *testutil.Peer {
	t.Helper()
	return testutil.StartPeer(t, testutil.PeerSpec{
		Name: "sprout",
		Bin:  sproutBinary(t),
		// As Loki's (startLoki): a query grouped by structured metadata can pass the default of 500 series.
		Args:  []string{"--config=sprout:all-in-one", "--set=extensions.sprout_logs.limits.max_query_series=100000"},
		Ports: []string{"api", "otlp_grpc", "otlp_http", "health", "telemetry"},
		Environ: []string{
			"SPROUT_DATA=" + dir,
			`SPROUT_HTTP_ENDPOINT={{.Addr "api"}}`,
			`SPROUT_OTLP_GRPC_ENDPOINT={{.Addr "otlp_grpc"}}`,
			`SPROUT_OTLP_HTTP_ENDPOINT={{.Addr "otlp_http"}}`,
			`SPROUT_HEALTH_ENDPOINT={{.Addr "health"}}`,
			`SPROUT_TELEMETRY_PORT={{.Port "telemetry"}}`,
		},
		Ready:   `{{.URL "api"}}/ready`,
		Timeout: 90 * time.Second,
	})
}

// startSproutOTLP is startSprout that also returns the URL of its OTLP/HTTP traces receiver; args are added to
// its command line.
func startSproutOTLP(t *testing.T, args ...string) (string, string) {
	t.Helper()
	p := testutil.StartPeer(t, testutil.PeerSpec{
		Name:  "sprout",
		Bin:   sproutBinary(t),
		Args:  args,
		Ports: []string{"api", "otlp_grpc", "otlp_http", "health", "telemetry"},
		Environ: []string{
			"SPROUT_DATA={{.Dir}}/data",
			`SPROUT_HTTP_ENDPOINT={{.Addr "api"}}`,
			`SPROUT_OTLP_GRPC_ENDPOINT={{.Addr "otlp_grpc"}}`,
			`SPROUT_OTLP_HTTP_ENDPOINT={{.Addr "otlp_http"}}`,
			`SPROUT_HEALTH_ENDPOINT={{.Addr "health"}}`,
			`SPROUT_TELEMETRY_PORT={{.Port "telemetry"}}`,
		},
		Ready:   `{{.URL "api"}}/ready`,
		Timeout: 90 * time.Second,
	})
	return p.URL("api"), p.URL("otlp_http") + "/v1/traces"
}

// startLoki runs Loki with the limits raised so that a whole answer over the generated data fits in one
// response (the comparison needs every line, not the newest 100, and every series: a query grouped by a
// parsed label can pass Loki's default of 500).
func startLoki(t *testing.T) string {
	t.Helper()
	return testutil.StartLoki(t, testutil.LokiOptions{Overlay: `
limits_config:
  max_entries_limit_per_query: 20000
  max_line_size: 0
  max_query_series: 100000
`}).API()
}

func startPrometheus(t *testing.T) string {
	t.Helper()
	return testutil.StartPrometheus(t, testutil.PrometheusOptions{}).API()
}

// startTempo runs Tempo and returns its API URL and its OTLP/HTTP traces URL.
func startTempo(t *testing.T) (api, otlp string) {
	t.Helper()
	tempo := testutil.StartTempo(t, testutil.TempoOptions{})
	return tempo.API(), tempo.OTLPHTTP()
}

// peerBinary, startProcess and waitReady keep the start-up calls of tests written before testutil.StartPeer
// compiling; they go through testutil. New tests call testutil.StartPrometheus, StartLoki, StartTempo or
// startSproutOTLP instead.
func peerBinary(t *testing.T, env string) string { return testutil.PeerBinary(t, env) }

func startProcess(t *testing.T, name string, env []string, bin string, args ...string) {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "{{`" + a + "`}}" // StartPeer reads arguments as templates; these are literal
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// In the test's directory, as before: callers pass paths relative to it.
	testutil.StartPeer(t, testutil.PeerSpec{Name: name, Bin: bin, Args: quoted, Environ: env, WorkDir: wd})
}

func waitReady(t *testing.T, u string, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		code, body := get(u, nil)
		if code != http.StatusOK {
			return fmt.Errorf("%s: %d %s", u, code, body)
		}
		return nil
	})
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
