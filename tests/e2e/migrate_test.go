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
	"slices"
	"strconv"
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
	var starts []time.Time
	for i := 0; i < nTraces; i++ {
		id := randHex(16)
		at := now.Add(-7*24*time.Hour + time.Duration(i)*8*time.Hour + time.Hour)
		pushTempoTrace(t, otlp, id, svc, at)
		line := fmt.Sprintf("order %d failed: card declined (%s)", i, randHex(3))
		pushLokiLine(t, api, svc, line, id, at.Add(time.Second))
		traceIDs, lines, starts = append(traceIDs, id), append(lines, line), append(starts, at)
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
	// Tempo keeps each span's times, but indexes a trace for search at its ingestion time ± the WAL's
	// ingestion_time_range_slack (2m), so that a search over last week would not find what was moved today: an
	// operator moving history raises the slack beyond the range moved. This single-binary Tempo (no block
	// builder) answers a search from its live store only for the last query_backend_after (15m), which must then
	// cover the range too.
	tempoPeer := testutil.StartTempo(t, testutil.TempoOptions{MultiTenant: true, Overlay: `
live_store:
  wal:
    ingestion_time_range_slack: 240h
query_frontend:
  search:
    query_backend_after: 192h
`})
	tempo, tempoOTLP := tempoPeer.API(), tempoPeer.OTLPHTTP()
	loki := testutil.StartLoki(t, testutil.LokiOptions{MultiTenant: true}).API()
	// Without storage.tsdb.out_of_order_time_window Prometheus refuses samples older than its head.
	prom := testutil.StartPrometheus(t, testutil.PrometheusOptions{Bin: promBin,
		Config: "storage:\n  tsdb:\n    out_of_order_time_window: 30d\n"}).API()
	blocks := t.TempDir()
	promAuth := startPromBasicAuth(t, promBin)

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
	// Bad input first, each with a checkpoint of its own. A cluster nobody listens for is named, the run stops
	// with the checkpoint kept, and the same command completes once the cluster is there (the real runs below
	// resume that way after the kill).
	down := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t))
	refused := func(name string, extra ...string) string {
		t.Helper()
		cmd := exec.Command(sproutBinary(t), append([]string{"migrate", "--config", "sprout:all-in-one", "--from", "8d",
			"--to", now.Add(time.Minute).UTC().Format(time.RFC3339), "--tenant", "single-tenant", "--target-tenant", growTenant,
			"--checkpoint", filepath.Join(work, name+".json")}, extra...)...)
		cmd.Env = append(os.Environ(), "SPROUT_DATA="+data)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%s: migrate succeeded:\n%s", name, out)
		}
		t.Logf("%s: %v\n%s", name, err, tail(string(out), 800))
		return string(out)
	}
	for _, c := range []struct {
		name  string
		args  []string
		wants []string
	}{
		{"unreachable Loki", []string{"--logs-loki", down, "--max-retry-time", "3s"},
			[]string{"loki " + down + "/loki/api/v1/push: unreachable", "gave up after retrying"}},
		// A tenant header the clusters do not take (empty, as from an unset variable): Loki's and Tempo's 401.
		{"Loki without a tenant", []string{"--logs-loki", loki, "--header", "X-Scope-OrgID:"},
			[]string{"loki " + loki + "/loki/api/v1/push: 401 Unauthorized: no org id", "check the target tenant and credentials"}},
		{"Tempo without a tenant", []string{"--traces-otlp", strings.TrimSuffix(tempoOTLP, "/v1/traces"), "--header", "X-Scope-OrgID:"},
			[]string{"OTLP " + tempoOTLP + ": 400 Bad Request: no org id (check the target tenant and credentials"}},
		// A wrong password at a Mimir behind an authenticating gateway (Prometheus with basic auth).
		{"wrong Mimir password", []string{"--metrics-remote-write", promAuth + "/api/v1/write", "--basic-auth", growMimirUser + ":wrong"},
			[]string{"remote write " + promAuth + "/api/v1/write: 401 Unauthorized", "check the target tenant and credentials"}},
	} {
		out := refused(c.name, c.args...)
		for _, want := range c.wants {
			if !strings.Contains(out, want) {
				t.Errorf("%s: the error lacks %q", c.name, want)
			}
		}
	}

	m := migrated{tempo: tempo, loki: loki, prom: prom, promBin: promBin, blocks: blocks, traceIDs: traceIDs, lines: lines,
		starts: starts, nSamples: nSamples, svc: svc, metric: metric, now: now}
	check := func(t *testing.T, when string) {
		t.Helper()
		t.Logf("checking the clusters %s", when)
		checkMigrated(t, m)
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
	check(t, "after the resumed run")

	// 5. Run twice: the whole move again with the checkpoint lost (a new one) sends every trace and sample again,
	// and the clusters still count each item once. Loki refuses lines more than max_chunk_age/2 (1h) older than
	// the newest its ingester holds for the stream ("entry too far behind"), so the logs moved again are refused
	// by Loki with a 400: the run stops with Loki's words, and Loki still has each line once.
	again := func(signals, checkpoint string) (string, error) {
		a := append([]string(nil), args...)
		a[slices.Index(a, "--checkpoint")+1] = filepath.Join(work, checkpoint)
		cmd := exec.Command(sproutBinary(t), append(a, "--signals", signals)...)
		cmd.Env, cmd.Dir = append(os.Environ(), "SPROUT_DATA="+data), work
		out, err := cmd.CombinedOutput()
		t.Logf("the move of %s again:\n%s", signals, tail(string(out), 1500))
		return string(out), err
	}
	out2, err := again("traces,metrics", "again.json")
	if err != nil || !strings.Contains(out2, fmt.Sprintf("traces: %d spans sent", 2*nTraces)) {
		t.Errorf("the second whole move: %v; want every span sent again", err)
	}
	// The tenant's TSDB holds Sprout's own series beside the test's: every window is sent again, none skipped.
	var samples, windows int
	for _, l := range strings.Split(out2, "\n") {
		if _, e := fmt.Sscanf(l, "metrics: %d samples sent in %d requests (%d bytes) from %d windows", &samples, new(int), new(int), &windows); e == nil && !strings.Contains(l, "skipped") {
			break
		}
		samples = 0
	}
	if samples < nSamples || windows == 0 {
		t.Errorf("the second whole move sent %d samples from %d windows, want every window again (at least %d samples)", samples, windows, nSamples)
	}
	out2, err = again("logs", "again-logs.json")
	if err == nil || !strings.Contains(out2, "loki "+loki+"/loki/api/v1/push: 400 Bad Request") || !strings.Contains(out2, "entry too far behind") {
		t.Errorf("logs moved again into a stream Loki holds: %v, want Loki's 400 'entry too far behind' named", err)
	}
	check(t, "after the whole move twice")
}

// checkMigrated asks each cluster for what TestMigrateToPeers moved: every trace by id with its two spans at
// their original start times, every log line once at its original timestamp with its trace_id as structured
// metadata, and every sample once, in the remote-write Prometheus and in one opened on the blocks.
func checkMigrated(t *testing.T, m migrated) {
	t.Helper()
	tempo, loki, prom, promBin, blocks := m.tempo, m.loki, m.prom, m.promBin, m.blocks
	traceIDs, lines, starts, nLines, nSamples, svc, metric, now := m.traceIDs, m.lines, m.starts, len(m.lines), m.nSamples, m.svc, m.metric, m.now
	for i, id := range traceIDs {
		testutil.Eventually(t, 60*time.Second, func() error {
			if err := expectBody(tempo+"/api/v2/traces/"+id, svc); err != nil {
				return err
			}
			spans, err := tempoTraceStarts(tempo, growTenant, id)
			if err != nil {
				return err
			}
			if len(spans) != 2 || spans["GET /checkout"] != starts[i].UnixNano() || spans["charge card"] != starts[i].Add(10*time.Millisecond).UnixNano() {
				return fmt.Errorf("trace %s in Tempo: spans %v, want GET /checkout at %d and charge card 10ms later", id, spans, starts[i].UnixNano())
			}
			return nil
		})
	}
	q := url.Values{"query": {`{service_name="` + svc + `"}`}, "start": {fmt.Sprint(now.Add(-8 * 24 * time.Hour).UnixNano())},
		"end": {fmt.Sprint(now.Add(time.Minute).UnixNano())}, "limit": {"1000"}}
	testutil.Eventually(t, 60*time.Second, func() error {
		body, err := getTenantBody(loki + "/loki/api/v1/query_range?" + q.Encode())
		if err != nil {
			return err
		}
		if n := strings.Count(body, "card declined"); n != nLines {
			return fmt.Errorf("loki has %d lines, want %d", n, nLines)
		}
		got, err := lokiLines(loki, growTenant, `{service_name="`+svc+`"}`, now.Add(-8*24*time.Hour), now.Add(time.Minute))
		if err != nil {
			return err
		}
		byLine := map[string]lokiLine{}
		for _, l := range got {
			byLine[l.line] = l
		}
		for i, line := range lines {
			l, ok := byLine[line]
			if !ok || l.metadata["trace_id"] != traceIDs[i] || l.stream["level"] != "error" || l.ts != starts[i].Add(time.Second).UnixNano() {
				return fmt.Errorf("loki: line %q is %+v, want it at %d with stream label level=error and trace_id %s as structured metadata",
					line, l, starts[i].Add(time.Second).UnixNano(), traceIDs[i])
			}
		}
		return nil
	})
	// Last week's traces by a TraceQL search over last week, as a dashboard would ask, and over the two hours
	// around one of them.
	search := func(from, to time.Time) ([]string, error) {
		var sr struct {
			Traces []struct {
				TraceID string `json:"traceID"`
			} `json:"traces"`
		}
		sq := url.Values{"q": {`{ resource.service.name = "` + svc + `" }`}, "limit": {"100"}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}
		if err := growGet(tempo+"/api/search?"+sq.Encode(), growTenant, &sr, ""); err != nil {
			return nil, err
		}
		var ids []string
		for _, tr := range sr.Traces {
			ids = append(ids, fmt.Sprintf("%032s", tr.TraceID))
		}
		slices.Sort(ids)
		return ids, nil
	}
	testutil.Eventually(t, 3*time.Minute, func() error {
		want := slices.Sorted(slices.Values(traceIDs))
		if got, err := search(now.Add(-7*24*time.Hour+30*time.Minute), now); err != nil || !slices.Equal(got, want) {
			return fmt.Errorf("Tempo's search over last week finds %d traces (%v), want %d", len(got), err, len(want))
		}
		if got, err := search(starts[3].Add(-time.Hour), starts[3].Add(time.Hour)); err != nil || !slices.Equal(got, []string{traceIDs[3]}) {
			return fmt.Errorf("Tempo's search around %s finds %v (%v), want [%s]", starts[3].Format(time.RFC3339), got, err, traceIDs[3])
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
	// A copy: Prometheus takes its directory's lock and writes beside the blocks, and a later check opens them
	// again.
	copied := t.TempDir()
	if err := os.CopyFS(copied, os.DirFS(filepath.Join(blocks, growTenant))); err != nil {
		t.Fatal(err)
	}
	promBlocks := startPromOn(t, promBin, copied)
	testutil.Eventually(t, 60*time.Second, func() error {
		return expectBody(promBlocks+"/api/v1/query?"+countQuery.Encode(), want)
	})
}

// migrated is what TestMigrateToPeers moved and where.
type migrated struct {
	tempo, loki, prom, promBin, blocks string
	traceIDs, lines                    []string
	starts                             []time.Time // of each trace; its log line is a second later
	nSamples                           int
	svc, metric                        string
	now                                time.Time
}

// tempoTraceStarts returns the start time (Unix ns) of each span of trace id in Tempo, by span name.
func tempoTraceStarts(base, tenant, id string) (map[string]int64, error) {
	spans, err := tempoSpans(base, tenant, id)
	if err != nil {
		return nil, err
	}
	starts := map[string]int64{}
	for _, s := range spans {
		ns, err := strconv.ParseInt(s.Start, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("trace %s: span %q starts at %q: %w", id, s.Name, s.Start, err)
		}
		starts[s.Name] = ns
	}
	return starts, nil
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
