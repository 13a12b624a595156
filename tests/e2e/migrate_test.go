package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// TestMigrateToPeers writes last week's traces, logs and metrics into Sprout (all-in-one), stops it, and moves
// them with `sprout migrate` into real Tempo, Loki and Prometheus (standing in for Mimir: remote write, and its
// TSDB opened on the blocks migrate wrote in Mimir's bucket layout). The first run is killed part way with
// SIGKILL and resumed; a third run sends nothing. Each peer's own API must then return every item.
//
//	SPROUT_PEER_TEMPO=/work/peers/tempo SPROUT_PEER_LOKI=/work/peers/loki SPROUT_PEER_PROMETHEUS=/usr/bin/prometheus \
//	  SPROUT_BIN=/tmp/sprout go test -count=1 -run TestMigrateToPeers -v ./tests/e2e/
func TestMigrateToPeers(t *testing.T) {
	tempoBin, lokiBin, promBin := os.Getenv("SPROUT_PEER_TEMPO"), os.Getenv("SPROUT_PEER_LOKI"), os.Getenv("SPROUT_PEER_PROMETHEUS")
	if tempoBin == "" || lokiBin == "" || promBin == "" {
		t.Skip("SPROUT_PEER_TEMPO, SPROUT_PEER_LOKI and SPROUT_PEER_PROMETHEUS name the peers' binaries; unset")
	}
	now := time.Now()
	const (
		nTraces = 21 // one every 8 hours over the last week
		nLines  = 21
		step    = 10 * time.Minute
	)
	nSamples := int(7 * 24 * time.Hour / step)
	svc := "migrate-" + randHex(3)
	metric := "migrate_e2e_" + randHex(3) + "_total"

	// 1. Last week's data into Sprout, then a clean stop (traces and log heads are flushed to the bucket; the
	// metrics stay in the TSDB's WAL and blocks, which migrate reads read-only).
	env, api := defaultEnv(t)
	data := envValue(env, "SPROUT_DATA")
	p := startSprout(t, env, "--config", "sprout:all-in-one", "--set=extensions.sprout_metrics.out_of_order_time_window=720h",
		"--set=extensions.sprout_logs.limits.reject_old_samples=false")
	p.waitHTTP(api+"/ready", 60*time.Second)
	otlp := "http://" + envValue(env, "SPROUT_OTLP_HTTP_ENDPOINT") + "/v1/traces"
	var traceIDs, lines []string
	for i := 0; i < nTraces; i++ {
		id := randHex(16)
		at := now.Add(-7*24*time.Hour + time.Duration(i)*8*time.Hour + time.Hour)
		pushTempoTrace(t, otlp, id, svc, at)
		line := fmt.Sprintf("order %d failed: card declined (%s)", i, randHex(3))
		pushLokiLine(t, api, svc, line, id, at.Add(time.Second))
		traceIDs, lines = append(traceIDs, id), append(lines, line)
	}
	var ts prompb.TimeSeries
	ts.Labels = []prompb.Label{{Name: "__name__", Value: metric}, {Name: "job", Value: "shop"}}
	start := now.Add(-7 * 24 * time.Hour).Truncate(step)
	for i := 0; i < nSamples; i++ {
		ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: start.Add(time.Duration(i) * step).UnixMilli(), Value: float64(i)})
	}
	remoteWrite(t, api+"/api/v1/write", ts)
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// 2. The clusters.
	tempoPeer := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true})
	tempo, tempoOTLP := tempoPeer.API(), tempoPeer.OTLPHTTP()
	loki := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true}).API()
	// Without storage.tsdb.out_of_order_time_window Prometheus refuses samples older than its head.
	prom := testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: promBin,
		Config: "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n"}).API()
	blocks := t.TempDir()

	// 3. Migrate: killed part way (a low --rate keeps it running), resumed, then run once more.
	work := t.TempDir()
	args := []string{"migrate", "--config", "sprout:all-in-one", "--from", "8d", "--tenant", "single-tenant",
		"--target-tenant", growTenant, "--traces-otlp", strings.TrimSuffix(tempoOTLP, "/v1/traces"), "--logs-loki", loki,
		"--metrics-remote-write", prom + "/api/v1/write", "--metrics-bucket-dir", blocks, "--batch-size", "10",
		"--checkpoint", filepath.Join(work, "cp.json"), "--to", now.Add(time.Minute).UTC().Format(time.RFC3339)}
	migrateCmd := func(extra ...string) *exec.Cmd {
		cmd := exec.Command(sproutBinary(t), append(append([]string(nil), args...), extra...)...)
		cmd.Env = append(os.Environ(), "SPROUT_DATA="+data)
		cmd.Dir = work
		return cmd
	}
	first := migrateCmd("--rate", "40")
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		var cp struct {
			Signals map[string]struct{ Items int }
		}
		b, _ := os.ReadFile(filepath.Join(work, "cp.json"))
		if json.Unmarshal(b, &cp) != nil || cp.Signals["metrics"].Items < 100 {
			return fmt.Errorf("checkpoint: %s", b)
		}
		return nil
	})
	_ = first.Process.Kill()
	_ = first.Wait()
	t.Logf("first run, killed:\n%s", firstOut.String())

	out, err := migrateCmd().CombinedOutput()
	t.Logf("second run:\n%s", out)
	if err != nil {
		t.Fatalf("resumed migrate: %v", err)
	}
	for _, want := range []string{"traces: 0 spans sent", "skipped what an earlier run sent: 1 blocks", fmt.Sprintf("logs: %d lines sent", nLines)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("resumed run's counts lack %q", want)
		}
	}
	out, err = migrateCmd().CombinedOutput()
	t.Logf("third run:\n%s", out)
	if err != nil || !strings.Contains(string(out), "traces: 0 spans") || !strings.Contains(string(out), "metrics: 0 samples") || !strings.Contains(string(out), "logs: 0 lines") {
		t.Fatalf("a third run must send nothing: %v", err)
	}

	// 4. Every item, through each peer's own API.
	for _, id := range traceIDs {
		testutil.Eventually(t, 60*time.Second, func() error {
			if err := expectBody(tempo+"/api/v2/traces/"+id, "charge card"); err != nil {
				return err
			}
			return expectBody(tempo+"/api/v2/traces/"+id, svc)
		})
	}
	q := url.Values{"query": {`{service_name="` + svc + `"}`}, "start": {fmt.Sprint(now.Add(-8 * 24 * time.Hour).UnixNano())},
		"end": {fmt.Sprint(now.Add(time.Minute).UnixNano())}, "limit": {"1000"}}
	testutil.Eventually(t, 60*time.Second, func() error {
		body, err := getTenantBody(loki + "/loki/api/v1/query_range?" + q.Encode())
		if err != nil {
			return err
		}
		for i, line := range lines {
			if !strings.Contains(body, line) || !strings.Contains(body, traceIDs[i]) {
				return fmt.Errorf("loki lacks line %q with trace_id %s", line, traceIDs[i])
			}
		}
		if n := strings.Count(body, "card declined"); n != nLines {
			return fmt.Errorf("loki has %d lines, want %d", n, nLines)
		}
		return nil
	})
	countQuery := url.Values{"query": {"count_over_time(" + metric + "[8d])"}}
	want := fmt.Sprintf(`"%d"]`, nSamples)
	testutil.Eventually(t, 60*time.Second, func() error {
		return expectBody(prom+"/api/v1/query?"+countQuery.Encode(), want)
	})
	// The blocks, as Mimir's store-gateway would find them: <tenant>/<ULID>/{meta.json,index,chunks/}. A
	// Prometheus opened on the tenant's directory must read every sample from them.
	ents, err := os.ReadDir(filepath.Join(blocks, growTenant))
	if err != nil || len(ents) == 0 {
		t.Fatalf("no blocks under %s: %v", filepath.Join(blocks, growTenant), err)
	}
	promBlocks := startPromOn(t, promBin, filepath.Join(blocks, growTenant))
	testutil.Eventually(t, 60*time.Second, func() error {
		return expectBody(promBlocks+"/api/v1/query?"+countQuery.Encode(), want)
	})
}

func getTenantBody(u string) (string, error) {
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("X-Scope-OrgID", growTenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b), nil
}

func remoteWrite(t *testing.T, u string, series ...prompb.TimeSeries) {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", u, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %d %s", resp.StatusCode, b)
	}
}

// startPromOn runs Prometheus with its TSDB in dir (a directory of blocks is read as it is).
func startPromOn(t *testing.T, bin, dir string) string {
	return testutil.StartPeer(t, testutil.PeerSpec{
		Name:       "prometheus",
		Bin:        bin,
		Ports:      []string{"http"},
		ConfigFile: "prometheus.yml",
		Config:     "global: {}\n",
		Args: []string{"--config.file={{.Config}}", "--storage.tsdb.path=" + dir, "--storage.tsdb.retention.time=30d",
			`--web.listen-address={{.Addr "http"}}`},
		Ready:   `{{.URL "http"}}/-/ready`,
		Timeout: time.Minute,
	}).URL("http")
}
