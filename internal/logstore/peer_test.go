package logstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// Tests against Loki's own clients, built from Loki's public source (docs/logs.md says how). CI cannot install
// them, so they run only when the variables point at the binaries:
//
//	SPROUT_PEER_PROMTAIL=/path/to/promtail SPROUT_PEER_LOGCLI=/path/to/logcli \
//	  go test -count=1 -run Peer -v ./internal/logstore/

// newRealTimeEnv is newEnv on the wall clock: real clients stamp lines with the time they read them.
func newRealTimeEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, clk: &clock{t: testNow}, bcfg: fsBucket(t, filepath.Join(dir, "bucket")), realTime: true}
	e.cfg = DefaultConfig()
	e.cfg.DataDir = filepath.Join(dir, "data")
	e.cfg.FlushCheckPeriod = time.Hour
	e.cfg.CompactionInterval = time.Hour
	e.open()
	return e
}

// peerLine is one line the client tests write: logfmt with a timestamp and trace context.
type peerLine struct {
	ts      time.Time
	level   string
	traceID string
	spanID  string
	msg     string
}

func (l peerLine) String() string {
	return fmt.Sprintf("ts=%s level=%s trace_id=%s span_id=%s msg=%q", l.ts.UTC().Format(time.RFC3339Nano), l.level, l.traceID, l.spanID, l.msg)
}

func peerLines(base time.Time, from, to int) []peerLine {
	var out []peerLine
	for i := from; i < to; i++ {
		lvl := "info"
		if i%3 == 0 {
			lvl = "error"
		}
		out = append(out, peerLine{ts: base.Add(time.Duration(i) * time.Second), level: lvl,
			traceID: fmt.Sprintf("%032x", 0xabc000+i/2), spanID: fmt.Sprintf("%016x", 0xdef000+i), msg: fmt.Sprintf("order %d placed", i)})
	}
	return out
}

func appendLines(t *testing.T, path string, ls []peerLine) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		fmt.Fprintln(f, l.String())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// storeLines asks Sprout's API (not the client under test) which lines of the stream it holds.
func (e *env) storeLines(q string, start, end time.Time) ([]streamResult, error) {
	code, body := e.get("/loki/api/v1/query_range", url.Values{"query": {q}, "start": {fmt.Sprint(start.UnixNano())},
		"end": {fmt.Sprint(end.UnixNano())}, "limit": {"1000"}, "direction": {"forward"}})
	if code != 200 {
		return nil, fmt.Errorf("query_range: %d %s", code, body)
	}
	var r queryResp
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var sr []streamResult
	err := json.Unmarshal(r.Data.Result, &sr)
	return sr, err
}

const promtailConfig = `server:
  disable: true
positions:
  filename: %[1]s/positions.yaml
  sync_period: 100ms
clients:
  - url: %[2]s/loki/api/v1/push
    tenant_id: peer
    batchwait: 100ms
    backoff_config: {min_period: 50ms, max_period: 500ms, max_retries: 20}
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          service_name: checkout
          __path__: %[1]s/logs/*.log
    pipeline_stages:
      - logfmt:
          mapping: {ts: "", level: "", trace_id: "", span_id: ""}
      - timestamp:
          source: ts
          format: RFC3339Nano
      - labels:
          level:
      - structured_metadata:
          trace_id:
          span_id:
`

// TestPeerPromtailThenLogcli: Promtail tails a file and pushes it into Sprout in Loki's snappy protobuf with
// structured metadata; then (with SPROUT_PEER_LOGCLI) logcli reads it back with every command it has.
func TestPeerPromtailThenLogcli(t *testing.T) {
	promtail := testutil.PeerBinary(t, "SPROUT_PEER_PROMTAIL")
	e := newRealTimeEnv(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "promtail.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(promtailConfig, dir, e.srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	logFile := filepath.Join(dir, "logs", "app.log")
	first := peerLines(base, 0, 10)
	appendLines(t, logFile, first)

	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, promtail, "-config.file="+cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("promtail output:\n%s", out.String())
		}
	})
	e.waitForLines(t, "peer", len(first))
	// Lines appended after Promtail started are tailed too.
	more := peerLines(base, 10, 15)
	appendLines(t, logFile, more)
	all := append(first, more...)
	sr := e.waitForLines(t, "peer", len(all))
	checkPushed(t, sr, all)

	if os.Getenv("SPROUT_PEER_LOGCLI") != "" {
		runLogcli(t, e, "peer", all, func(ls []peerLine) { appendLines(t, logFile, ls) })
	}
}

// TestPeerLogcli runs logcli against lines pushed in Loki's JSON format (no Promtail needed).
func TestPeerLogcli(t *testing.T) {
	testutil.PeerBinary(t, "SPROUT_PEER_LOGCLI")
	e := newRealTimeEnv(t)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	all := peerLines(base, 0, 15)
	push := func(ls []peerLine) {
		var vals []string
		for _, l := range ls {
			vals = append(vals, fmt.Sprintf(`["%d",%q,{"trace_id":%q,"span_id":%q}]`, l.ts.UnixNano(), l.String(), l.traceID, l.spanID))
		}
		byLevel := map[string][]string{}
		for i, l := range ls {
			byLevel[l.level] = append(byLevel[l.level], vals[i])
		}
		var streams []string
		for lvl, v := range byLevel {
			streams = append(streams, fmt.Sprintf(`{"stream":{"job":"app","service_name":"checkout","level":%q},"values":[%s]}`, lvl, strings.Join(v, ",")))
		}
		if code, body := e.post("/loki/api/v1/push", "application/json", jsonPush(streams...), "X-Scope-OrgID", "peer"); code != 204 {
			t.Fatalf("push: %d %s", code, body)
		}
	}
	push(all)
	runLogcli(t, e, "peer", all, push)
}

func (e *env) waitForLines(t *testing.T, tid string, n int) []streamResult {
	t.Helper()
	var sr []streamResult
	testutil.Eventually(t, 60*time.Second, func() error {
		code, body := e.get("/loki/api/v1/query_range", url.Values{"query": {`{service_name="checkout"}`},
			"start": {fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())}, "end": {fmt.Sprint(time.Now().Add(time.Minute).UnixNano())},
			"limit": {"1000"}, "direction": {"forward"}}, "X-Scope-OrgID", tid)
		if code != 200 {
			return fmt.Errorf("query_range: %d %s", code, body)
		}
		var r queryResp
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		sr = nil
		if err := json.Unmarshal(r.Data.Result, &sr); err != nil {
			return err
		}
		if got := countLines(sr); got < n {
			return fmt.Errorf("%d of %d lines stored", got, n)
		}
		return nil
	})
	return sr
}

// checkPushed asserts that the stored streams hold exactly the written lines, with the pipeline's labels, the
// timestamps from the lines and trace and span ids as structured metadata (shown as labels, as Loki does).
func checkPushed(t *testing.T, sr []streamResult, want []peerLine) {
	t.Helper()
	byMsg := map[string]peerLine{}
	for _, l := range want {
		byMsg[l.String()] = l
	}
	seen := 0
	for _, s := range sr {
		for _, v := range s.Values {
			line := v[1].(string)
			l, ok := byMsg[line]
			if !ok {
				t.Errorf("unexpected line %q", line)
				continue
			}
			seen++
			if v[0].(string) != fmt.Sprint(l.ts.UnixNano()) {
				t.Errorf("%q: timestamp %s, want %d (from the line's ts)", line, v[0], l.ts.UnixNano())
			}
			if s.Stream["job"] != "app" || s.Stream["service_name"] != "checkout" || s.Stream["level"] != l.level ||
				s.Stream["trace_id"] != l.traceID || s.Stream["span_id"] != l.spanID || s.Stream["filename"] == "" {
				t.Errorf("%q: labels %v, want job, service_name, level=%s, filename, trace_id=%s, span_id=%s", line, s.Stream, l.level, l.traceID, l.spanID)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("stored %d lines, want %d", seen, len(want))
	}
}

// logcli runs one logcli command against the test server and returns its standard output.
func (e *env) logcli(t *testing.T, tid string, args ...string) string {
	t.Helper()
	bin := os.Getenv("SPROUT_PEER_LOGCLI")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--addr="+e.srv.URL, "--org-id="+tid)...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("logcli %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

type logcliEntry struct {
	Labels    map[string]string `json:"labels"`
	Line      string            `json:"line"`
	Timestamp time.Time         `json:"timestamp"`
}

func parseJSONL(t *testing.T, out string) []logcliEntry {
	t.Helper()
	var es []logcliEntry
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var en logcliEntry
		if err := json.Unmarshal([]byte(l), &en); err != nil {
			t.Fatalf("logcli jsonl line %q: %v", l, err)
		}
		es = append(es, en)
	}
	return es
}

// runLogcli checks logcli's query, instant-query, labels, series, stats, volume, detected-fields and --tail
// against lines already stored; more writes further lines for the tail.
func runLogcli(t *testing.T, e *env, tid string, all []peerLine, more func([]peerLine)) {
	from := all[0].ts.Add(-time.Minute).UTC().Format(time.RFC3339)
	to := all[len(all)-1].ts.Add(time.Minute).UTC().Format(time.RFC3339)
	rng := []string{"--from=" + from, "--to=" + to}

	t.Run("query", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"query", "-q", "--output=jsonl", "--limit=1000", "--forward", `{service_name="checkout"}`}, rng...)...)
		es := parseJSONL(t, out)
		if len(es) != len(all) {
			t.Fatalf("query: %d lines, want %d:\n%s", len(es), len(all), out)
		}
		for i, en := range es {
			w := all[i]
			if en.Line != w.String() || !en.Timestamp.Equal(w.ts) || en.Labels["trace_id"] != w.traceID || en.Labels["level"] != w.level {
				t.Errorf("line %d: %+v, want %q at %s with trace_id %s", i, en, w.String(), w.ts, w.traceID)
			}
		}
		// Backward with a limit: the newest lines.
		out = e.logcli(t, tid, append([]string{"query", "-q", "--output=raw", "--limit=3", `{service_name="checkout"}`}, rng...)...)
		got := strings.Split(strings.TrimSpace(out), "\n")
		if len(got) != 3 || got[0] != all[len(all)-1].String() || got[2] != all[len(all)-3].String() {
			t.Errorf("backward limit 3: %q", got)
		}
	})
	t.Run("trace id", func(t *testing.T) {
		id := all[4].traceID
		out := e.logcli(t, tid, append([]string{"query", "-q", "--output=raw", "--forward", `{service_name=~".+"} | trace_id="` + id + `"`}, rng...)...)
		var want []string
		for _, l := range all {
			if l.traceID == id {
				want = append(want, l.String())
			}
		}
		if got := strings.Split(strings.TrimSpace(out), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("trace %s: %q, want %q", id, got, want)
		}
		// A line filter and a parser on top.
		out = e.logcli(t, tid, append([]string{"query", "-q", "--output=raw", `{service_name="checkout"} |= "placed" | logfmt | level="error" | line_format "{{.msg}}"`}, rng...)...)
		if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != (len(all)+2)/3 {
			t.Errorf("error lines: %d (%q), want %d", n, out, (len(all)+2)/3)
		}
	})
	t.Run("instant-query", func(t *testing.T) {
		out := e.logcli(t, tid, "instant-query", "-q", "--now="+to, `sum by (level) (count_over_time({service_name="checkout"}[1h]))`)
		var v []struct {
			Metric map[string]string `json:"metric"`
			Value  []any             `json:"value"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("instant-query output %q: %v", out, err)
		}
		got := map[string]string{}
		for _, s := range v {
			got[s.Metric["level"]] = fmt.Sprint(s.Value[1])
		}
		errs := (len(all) + 2) / 3
		if got["error"] != fmt.Sprint(errs) || got["info"] != fmt.Sprint(len(all)-errs) {
			t.Errorf("instant-query: %v (%s)", got, out)
		}
		// A range metric query through `query`.
		out = e.logcli(t, tid, append([]string{"query", "-q", `sum(count_over_time({service_name="checkout"}[1m]))`, "--step=1m"}, rng...)...)
		if !strings.Contains(out, `"values"`) {
			t.Errorf("range metric query: %s", out)
		}
	})
	t.Run("labels", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"labels", "-q"}, rng...)...)
		names := strings.Fields(out)
		for _, n := range []string{"job", "level", "service_name"} {
			if !contains(names, n) {
				t.Errorf("labels: %q lacks %s", names, n)
			}
		}
		out = e.logcli(t, tid, append([]string{"labels", "-q", "level"}, rng...)...)
		if vals := strings.Fields(out); strings.Join(vals, ",") != "error,info" {
			t.Errorf("label values of level: %q", vals)
		}
	})
	t.Run("series", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"series", "-q", `{service_name="checkout"}`}, rng...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		sort.Strings(lines)
		if len(lines) < 2 || !strings.Contains(lines[0], `level="error"`) || !strings.Contains(lines[1], `level="info"`) || !strings.Contains(lines[0], `service_name="checkout"`) {
			t.Errorf("series: %q", lines)
		}
		out = e.logcli(t, tid, append([]string{"series", "-q", "--analyze-labels", `{service_name="checkout"}`}, rng...)...)
		if !strings.Contains(out, "level") || !strings.Contains(out, "Total Streams:") {
			t.Errorf("series --analyze-labels: %s", out)
		}
	})
	t.Run("stats", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"stats", "-q", `{service_name="checkout"}`}, rng...)...)
		if !strings.Contains(out, fmt.Sprintf("entries: %d", len(all))) || !strings.Contains(out, "streams: 2") {
			t.Errorf("stats: %s", out)
		}
	})
	t.Run("volume", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"volume", "-q", `{service_name="checkout"}`}, rng...)...)
		if !strings.Contains(out, `"service_name": "checkout"`) && !strings.Contains(out, `"service_name":"checkout"`) {
			t.Errorf("volume: %s", out)
		}
		out = e.logcli(t, tid, append([]string{"volume_range", "-q", "--step=1m", `{service_name="checkout"}`}, rng...)...)
		if !strings.Contains(out, `"values"`) {
			t.Errorf("volume_range: %s", out)
		}
	})
	t.Run("detected-fields", func(t *testing.T) {
		out := e.logcli(t, tid, append([]string{"detected-fields", "-q", `{service_name="checkout"}`}, rng...)...)
		if !strings.Contains(out, "trace_id") || !strings.Contains(out, "msg") {
			t.Errorf("detected-fields: %s", out)
		}
	})
	t.Run("tail", func(t *testing.T) {
		bin := os.Getenv("SPROUT_PEER_LOGCLI")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "query", "--tail", "-q", "--output=raw", "--addr="+e.srv.URL, "--org-id="+tid, "--delay-for=0", `{service_name="checkout"} |= "tailed"`)
		cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin"}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		want := peerLine{ts: time.Now().Truncate(time.Millisecond), level: "info", traceID: fmt.Sprintf("%032x", 0xfeed), spanID: fmt.Sprintf("%016x", 1), msg: "tailed line"}
		got := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				got <- sc.Text()
			}
			close(got)
		}()
		// logcli connects asynchronously: write until the line shows up.
		deadline := time.After(45 * time.Second)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		wrote := 0
		for {
			select {
			case l, ok := <-got:
				if !ok {
					t.Fatalf("logcli --tail ended: %s", stderr.String())
				}
				if l != want.String() {
					t.Fatalf("tail: got %q, want %q", l, want.String())
				}
				return
			case <-tick.C:
				if wrote == 0 {
					more([]peerLine{want})
					wrote++
				}
			case <-deadline:
				t.Fatalf("tail: nothing after 45s; stderr: %s", stderr.String())
			}
		}
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
