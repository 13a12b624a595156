package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/testutil"
)

// ingest runs writers for every signal (workers of each) until stop() is called; stop waits for them.
func ingest(c *client, env []string, api, prefix, metric, job string, workers int, a *acked) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	grpcAddr := envValue(env, "SPROUT_OTLP_GRPC_ENDPOINT")
	for w := 0; w < workers; w++ {
		wg.Add(3)
		go func() { defer wg.Done(); c.sendTraces(ctx, grpcAddr, prefix, w, a) }()
		go func() { defer wg.Done(); c.sendSamples(ctx, api, metric, w, a) }()
		go func() { defer wg.Done(); c.sendLines(ctx, api, job, w, a) }()
	}
	return func() { cancel(); wg.Wait() }
}

// waitAcked waits (bounded) until each signal has at least n more acknowledgements than at the call.
func waitAcked(t *testing.T, a *acked, n int, timeout time.Duration) {
	t.Helper()
	t0, s0, l0 := a.counts()
	err := poll(timeout, func() error {
		t1, s1, l1 := a.counts()
		if t1-t0 < n || s1-s0 < n || l1-l0 < n {
			return fmt.Errorf("acknowledged so far: %d traces, %d samples, %d lines; refusals %v", t1-t0, s1-s0, l1-l0, a.refused)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("traffic did not flow: %v", err)
	}
}

// walFiles lists every WAL segment of every store under the data directory, by store.
func walFiles(t *testing.T, dataDir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	_ = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dataDir, p)
		parts := strings.Split(rel, string(filepath.Separator))
		inWAL := false
		for _, part := range parts[:len(parts)-1] {
			if part == "wal" {
				inWAL = true
			}
		}
		if parts[0] == "generator" && (strings.HasPrefix(d.Name(), "wal-") || strings.HasSuffix(d.Name(), ".wal")) {
			inWAL = true
		}
		if inWAL && !strings.Contains(rel, "checkpoint") {
			if info, err := d.Info(); err == nil && info.Size() > 64 {
				out[parts[0]] = append(out[parts[0]], p)
			}
		}
		return nil
	})
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// flipMiddle inverts 16 bytes in the middle of a file.
func flipMiddle(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(b) / 2
	for i := mid; i < mid+16 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// foundFigures counts what of a is still readable, without failing the test: for faults that destroy data on
// purpose, where the figure is the measurement.
func foundFigures(t *testing.T, c *client, api, metric, job string, a *acked) (ft, fs, fl int) {
	t.Helper()
	ft, _ = c.countTraces(t, api, a.traces)
	if got, err := c.seriesIDs(api, metric); err == nil {
		fs, _ = countIn(a.samples, got)
	} else {
		t.Errorf("series: %v", err)
	}
	if got, err := c.logLines(api, job); err == nil {
		fl, _ = countIn(a.lines, got)
	} else {
		t.Errorf("log lines: %v", err)
	}
	return ft, fs, fl
}

// TestCorruptWALOnStart writes to every store, kills the process (so that the data is only in the WALs),
// flips 16 bytes in the middle of a WAL segment of each store (traces, metrics, logs, generator) and restarts:
// the process must start, report the damage in its log, serve what is before the damage and take new writes.
func TestCorruptWALOnStart(t *testing.T) {
	env, api := defaultEnv(t)
	dataDir := envValue(env, "SPROUT_DATA")
	c := &client{}
	a := &acked{}
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)
	stop := ingest(c, env, api, "w", "sprout_walcorrupt", "walcorrupt", 2, a)
	waitAcked(t, a, 300, 60*time.Second)
	p.kill()
	stop()

	files := walFiles(t, dataDir)
	for _, store := range []string{"traces", "metrics", "logs", "generator"} {
		if len(files[store]) == 0 {
			t.Errorf("no WAL segment found for %s under %s", store, dataDir)
			continue
		}
		// The largest segment holds most of the data; corrupt its middle.
		big, size := "", int64(-1)
		for _, f := range files[store] {
			if info, err := os.Stat(f); err == nil && info.Size() > size {
				big, size = f, info.Size()
			}
		}
		flipMiddle(t, big)
		t.Logf("corrupted %s WAL segment %s (%d bytes) in the middle", store, strings.TrimPrefix(big, dataDir), size)
	}

	p = startSprout(t, env)
	p.waitHTTP(api+"/ready", 120*time.Second)
	nt, ns, nl := a.counts()
	ft, fs, fl := foundFigures(t, c, api, "sprout_walcorrupt", "walcorrupt", a)
	t.Logf("FIGURE corrupt WAL: traces acknowledged %d found %d; samples acknowledged %d found %d; log lines acknowledged %d found %d",
		nt, ft, ns, fs, nl, fl)
	if ft == 0 || fs == 0 || fl == 0 {
		t.Errorf("a store served nothing after a corrupted segment: traces %d, samples %d, lines %d", ft, fs, fl)
	}
	// Each store names the damage in its own log lines.
	reported := regexp.MustCompile(`(?i)corrupt|checksum|crc|torn|invalid record|repair`)
	for _, comp := range []string{"sprout_traces", "sprout_metrics", "sprout_logs", "sprout_generator"} {
		var said string
		for _, l := range strings.Split(p.logs.String(), "\n") {
			msg := regexp.MustCompile(`"msg":"([^"]*)"`).FindStringSubmatch(l)
			if strings.Contains(l, `"otelcol.component.id":"`+comp+`"`) && msg != nil && reported.MatchString(msg[1]) {
				said = l
				break
			}
		}
		if said == "" {
			t.Errorf("%s did not report the corrupt WAL segment in its log", comp)
			continue
		}
		if m := regexp.MustCompile(`"msg":"([^"]*)"`).FindStringSubmatch(said); m != nil {
			t.Logf("%s reported: %s", comp, m[1])
		}
	}
	// New writes after the damage are taken and readable.
	after := &acked{}
	stop = ingest(c, env, api, "x", "sprout_walcorrupt_after", "walcorrupt-after", 1, after)
	waitAcked(t, after, 20, 30*time.Second)
	stop()
	verifyAll(t, c, "writes after a corrupt WAL", api, "sprout_walcorrupt_after", "walcorrupt-after", after)
}

// TestSIGTERMUnderLoad stops the process with SIGTERM while 4 writers per signal push as fast as they can: it
// must exit within SPROUT_SHUTDOWN_TIMEOUT (25 s by default, as ECS waits 30 s before SIGKILL), and after a
// restart every acknowledged item is there.
func TestSIGTERMUnderLoad(t *testing.T) {
	env, api := defaultEnv(t)
	c := &client{}
	a := &acked{}
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)
	stop := ingest(c, env, api, "s", "sprout_sigterm", "sigterm", 4, a)
	waitAcked(t, a, 500, 60*time.Second)
	start := time.Now()
	err := p.stop(30 * time.Second)
	took := time.Since(start)
	stop()
	if err != nil {
		t.Fatalf("SIGTERM under load: %v", err)
	}
	t.Logf("FIGURE SIGTERM under load: exited in %s (deadline 25s)", took.Round(10*time.Millisecond))
	if took > 25*time.Second {
		t.Errorf("exit took %s, more than the 25 s shutdown deadline", took)
	}
	p = startSprout(t, env)
	p.waitHTTP(api+"/ready", 120*time.Second)
	verifyAll(t, c, "SIGTERM under load", api, "sprout_sigterm", "sigterm", a)
}

// TestDiskFull runs the stores on a 160 MiB tmpfs, fills it while writers push, and checks that writes are
// refused with a clear error (no crash, no acknowledgement of what was not written) by every store's
// min_free_disk_bytes check before any WAL meets the full disk, that they are taken again once space is freed,
// and that everything acknowledged is readable after a restart (the metric store's WAL, written into a full
// disk, used to be repaired at the restart by dropping every sample after its half-written record).
func TestDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	env, api := defaultEnv(t)
	env = setEnv(env, "SPROUT_DATA", dir)
	c := &client{}
	a := &acked{}
	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 60*time.Second)

	// Leave about 2 MiB free, so that the writers reach the end quickly.
	filler := filepath.Join(dir, "filler")
	fillTo(t, filler, dir, 2<<20)
	stop := ingest(c, env, api, "d", "sprout_diskfull", "diskfull", 2, a)
	// Wait until every signal has been refused for lack of space, or the deadline.
	full := poll(90*time.Second, func() error {
		fillTo(t, filler+"2", dir, 0) // take whatever the stores freed (rotations), so the disk stays full
		a.mu.Lock()
		defer a.mu.Unlock()
		var tr, sm, ln int
		for k, n := range a.refused {
			switch {
			case strings.HasPrefix(k, "traces:"):
				tr += n
			case strings.HasPrefix(k, "samples:"):
				sm += n
			case strings.HasPrefix(k, "lines:"):
				ln += n
			}
		}
		if tr < 5 || sm < 5 || ln < 5 {
			return fmt.Errorf("refusals so far: %v", a.refused)
		}
		return nil
	})
	if ok, err := p.exited(); ok {
		stop()
		t.Fatalf("sprout exited on a full disk: %v", err)
	}
	a.mu.Lock()
	refusedFull := map[string]int{}
	for k, v := range a.refused {
		refusedFull[k] = v
	}
	a.mu.Unlock()
	t.Logf("refusals on a full disk: %v (err %v)", refusedFull, full)
	if full != nil {
		t.Errorf("not every signal was refused on a full disk: %v", full)
	}
	for _, sig := range []string{"traces", "samples", "lines"} {
		guarded := false
		for k := range refusedFull {
			guarded = guarded || strings.HasPrefix(k, sig+":") && strings.Contains(k, "disk nearly full")
		}
		if !guarded {
			t.Errorf("%s were not refused by min_free_disk_bytes before the disk was full: %v", sig, refusedFull)
		}
	}
	for k := range refusedFull {
		if strings.HasSuffix(k, ": connection") {
			continue
		}
		if !regexp.MustCompile(`(?i)space|full|ENOSPC|507|ResourceExhausted|Unavailable|Internal`).MatchString(k) {
			t.Errorf("refusal does not say why: %q", k)
		}
	}

	// Free the space: writes are taken again.
	_ = os.Remove(filler)
	_ = os.Remove(filler + "2")
	t0, s0, l0 := a.counts()
	if err := poll(60*time.Second, func() error {
		t1, s1, l1 := a.counts()
		if t1-t0 < 20 || s1-s0 < 20 || l1-l0 < 20 {
			return fmt.Errorf("acknowledged since space was freed: %d traces, %d samples, %d lines", t1-t0, s1-s0, l1-l0)
		}
		return nil
	}); err != nil {
		t.Errorf("writes did not resume after freeing space: %v; refusals %v", err, a.refused)
	}
	stop()
	if ok, err := p.exited(); ok {
		t.Fatalf("sprout exited: %v", err)
	}
	p.kill()
	p = startSprout(t, env)
	p.waitHTTP(api+"/ready", 120*time.Second)
	verifyAll(t, c, "disk full then freed", api, "sprout_diskfull", "diskfull", a)
}

// fillTo grows file f until the file system of dir has at most leave bytes free (best effort).
func fillTo(t *testing.T, f, dir string, leave int64) {
	t.Helper()
	out, err := exec.Command("df", "-B1", "--output=avail", dir).Output()
	if err != nil {
		t.Fatalf("df: %v", err)
	}
	fields := strings.Fields(string(out))
	var avail int64
	fmt.Sscan(fields[len(fields)-1], &avail)
	n := avail - leave
	if n <= 0 {
		return
	}
	fh, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer fh.Close()
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(int64(len(buf)), n)
		if _, err := fh.Write(buf[:k]); err != nil {
			return
		}
		n -= k
	}
}

// listFiles returns the regular files under dir (recursively) with their sizes.
func listFiles(dir string) map[string]int64 {
	out := map[string]int64{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				out[p] = info.Size()
			}
		}
		return nil
	})
	return out
}

// TestCorruptBlockOnStart writes two rounds of traces and log lines, each ended by SIGTERM (which flushes
// them into blocks and chunks in the bucket), corrupts the first round's trace block and log chunks, and
// restarts: the process must start, the second round must be served in full, and queries that touch the
// damaged data must answer (an error naming it or a partial answer), never crash the process.
func TestCorruptBlockOnStart(t *testing.T) {
	env, api := defaultEnv(t)
	dataDir := envValue(env, "SPROUT_DATA")
	c := &client{}
	rounds := []*acked{{}, {}}
	var firstRound map[string]int64
	for r, a := range rounds {
		p := startSprout(t, env)
		p.waitHTTP(api+"/ready", 60*time.Second)
		stop := ingest(c, env, api, fmt.Sprintf("b%d", r), fmt.Sprintf("sprout_block_r%d", r), fmt.Sprintf("block-r%d", r), 1, a)
		waitAcked(t, a, 200, 60*time.Second)
		stop()
		if err := p.stop(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		if r == 0 {
			firstRound = listFiles(dataDir)
		}
	}
	// The first round's block and chunks: files under the traces' blocks and the logs' bucket that existed
	// after round one.
	var traceBlock, logChunks []string
	for p := range firstRound {
		rel := strings.TrimPrefix(p, dataDir+"/")
		switch {
		case strings.HasPrefix(rel, "traces/blocks/") && !strings.HasSuffix(p, "meta.json"):
			traceBlock = append(traceBlock, p)
		case strings.HasPrefix(rel, "logs/bucket/") && strings.Contains(rel, "/chunks/"):
			logChunks = append(logChunks, p)
		}
	}
	if len(traceBlock) == 0 || len(logChunks) == 0 {
		files := make([]string, 0, len(firstRound))
		for p := range firstRound {
			files = append(files, strings.TrimPrefix(p, dataDir+"/"))
		}
		sort.Strings(files)
		t.Fatalf("no trace block (%d files) or log chunk (%d files) after the first round; files: %v", len(traceBlock), len(logChunks), files)
	}
	for _, f := range append(traceBlock, logChunks...) {
		flipMiddle(t, f)
		t.Logf("corrupted %s", strings.TrimPrefix(f, dataDir))
	}
	// Metrics blocks are cut every block_duration (at least a minute), longer than this test: write TSDB blocks,
	// a damaged and a good one on local disk and in the bucket.
	writeMetricBlocks(t, dataDir)

	p := startSprout(t, env)
	p.waitHTTP(api+"/ready", 120*time.Second)
	// Round two is served in full.
	n1t, _, n1l := rounds[1].counts()
	f1t, _ := c.countTraces(t, api, rounds[1].traces)
	got, err := c.logLines(api, "block-r1")
	if err != nil {
		t.Fatalf("round two's log lines: %v", err)
	}
	f1l, _ := countIn(rounds[1].lines, got)
	// Round one: whatever is still readable; the queries must answer.
	n0t, _, n0l := rounds[0].counts()
	f0t, _ := c.countTraces(t, api, rounds[0].traces)
	code, body := c.get(api + "/api/traces/" + rounds[0].traces[0])
	t.Logf("trace by id in the damaged block: %d %s", code, firstLine(body))
	if code >= 500 {
		t.Errorf("trace by id in a damaged block: %d %s; want the block skipped (404 or what other blocks hold)", code, firstLine(body))
	}
	var f0l int
	if got, err := c.logLines(api, "block-r0"); err == nil {
		f0l, _ = countIn(rounds[0].lines, got)
	} else {
		t.Errorf("a log query over a damaged chunk: %v; want the chunk skipped", err)
	}
	// One query over both rounds' streams answers with the intact round.
	q := url.Values{"query": {`{job=~"block-r.*"}`}, "limit": {"5000"}, "start": {fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())}}
	code, body = c.get(api + "/loki/api/v1/query_range?" + q.Encode())
	if code != 200 || !strings.Contains(body, "block-r1 cycle") {
		t.Errorf("log query over damaged and intact chunks: %d %s", code, firstLine(body))
	}
	code, body = c.get(api + "/api/search?q=" + url.QueryEscape(`{ resource.service.name = "fault-test" }`) + "&limit=10000")
	if code != 200 {
		t.Errorf("search over a damaged block: %d %s", code, firstLine(body))
	}
	t.Logf("FIGURE corrupt block: damaged round: traces acknowledged %d found %d, log lines acknowledged %d found %d; intact round: traces acknowledged %d found %d, log lines acknowledged %d found %d",
		n0t, f0t, n0l, f0l, n1t, f1t, n1l, f1l)
	mp, mt := checkMetricBlocks(t, c, api)
	t.Logf("FIGURE corrupt metrics blocks: %d of %d checks passed (good blocks served, damaged ones left out, local and bucket)", mp, mt)
	if f1t != n1t || f1l != n1l {
		t.Errorf("the intact round was not served in full: traces %d/%d, lines %d/%d", f1t, n1t, f1l, n1l)
	}
	if ok, err := p.exited(); ok {
		t.Fatalf("sprout exited after reading a damaged block: %v", err)
	}
	var said []string
	for _, l := range strings.Split(p.logs.String(), "\n") {
		if m := regexp.MustCompile(`"msg":"([^"]*)"`).FindStringSubmatch(l); m != nil && strings.Contains(l, `"level":"error"`) {
			said = append(said, m[1])
		}
	}
	for _, want := range []string{"Trace block is unreadable", "Log chunk is unreadable", "Metrics block is unreadable", "Metrics block in the bucket is unreadable"} {
		if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("not reported: %q (errors logged: %q)", want, said)
		}
	}
	t.Logf("reported: %q", said[:min(len(said), 6)])
}

// s3Overlay puts every store's blocks in one S3 bucket (under a prefix per store) and makes the trace and log
// stores cut blocks and chunks within seconds, so that uploads happen during the test.
const s3Overlay = `extensions:
  sprout_traces:
    trace_idle_period: 1s
    flush_interval: 1s
    max_block_duration: 3s
    storage: &s3
      backend: s3
      prefix: traces
      s3: {bucket: sprout, endpoint: "%[1]s", region: us-east-1, force_path_style: true, insecure: true, access_key: "%[2]s", secret_key: "%[3]s"}
  sprout_logs:
    flush_check_period: 1s
    chunk_idle_period: 1s
    max_chunk_age: 3s
    storage:
      backend: s3
      prefix: logs
      s3: {bucket: sprout, endpoint: "%[1]s", region: us-east-1, force_path_style: true, insecure: true, access_key: "%[2]s", secret_key: "%[3]s"}
  sprout_metrics:
    storage:
      backend: s3
      prefix: metrics
      ship_interval: 2s
      s3: {bucket: sprout, endpoint: "%[1]s", region: us-east-1, force_path_style: true, insecure: true, access_key: "%[2]s", secret_key: "%[3]s"}
`

// TestS3Outage stores blocks in a real S3 server (versitygw), stops it while the stores are cutting and
// uploading blocks under load, starts it again, and checks that uploads resume and that nothing acknowledged
// is lost after a restart (when the WALs are gone and the data is only in the bucket). The outage lasts 10 s
// in CI; SPROUT_FAULT_S3_DOWN=2m runs the long form.
func TestS3Outage(t *testing.T) {
	down := 10 * time.Second
	if v := os.Getenv("SPROUT_FAULT_S3_DOWN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SPROUT_FAULT_S3_DOWN=%q: %v", v, err)
		}
		down = d
	}
	s3 := testutil.StartS3(t)
	s3.MakeBucket("sprout")
	env, api := defaultEnv(t)
	overlay := filepath.Join(t.TempDir(), "s3.yaml")
	if err := os.WriteFile(overlay, []byte(strings.ReplaceAll(fmt.Sprintf(s3Overlay, s3.Endpoint, s3.AccessKey, s3.SecretKey), "storage: &s3", "storage:")), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", "sprout:all-in-one", "--config", overlay}
	// Paced writers: every trace is then looked up by id in S3-backed blocks, one request per block.
	c := &client{pace: 20 * time.Millisecond}
	a := &acked{}
	p := startSprout(t, env, args...)
	p.waitHTTP(api+"/ready", 60*time.Second)
	stop := ingest(c, env, api, "3", "sprout_s3", "s3", 1, a)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	objects := func(store string) int {
		n := 0
		for f := range listFiles(filepath.Join(s3.Dir, "sprout", store)) {
			if !strings.Contains(f, ".sgwtmp") {
				n++
			}
		}
		return n
	}
	if err := poll(60*time.Second, func() error {
		if objects("traces") == 0 || objects("logs") == 0 {
			return fmt.Errorf("objects in the bucket: traces %d, logs %d", objects("traces"), objects("logs"))
		}
		return nil
	}); err != nil {
		t.Fatalf("no uploads before the outage: %v", err)
	}
	s3.Stop()
	t0, s0, l0 := a.counts()
	outage := time.Now()
	time.Sleep(down) // the fault itself: the server is down for this long while writers push
	t1, s1, l1 := a.counts()
	t.Logf("during the %s outage: %d traces, %d samples, %d lines acknowledged", down, t1-t0, s1-s0, l1-l0)
	if ok, err := p.exited(); ok {
		t.Fatalf("sprout exited during the S3 outage: %v", err)
	}
	beforeT, beforeL := objects("traces"), objects("logs")
	s3.Start()
	t.Logf("S3 back after %s", time.Since(outage).Round(time.Second))
	if err := poll(90*time.Second, func() error {
		if objects("traces") <= beforeT || objects("logs") <= beforeL {
			return fmt.Errorf("objects: traces %d (before %d), logs %d (before %d)", objects("traces"), beforeT, objects("logs"), beforeL)
		}
		return nil
	}); err != nil {
		t.Errorf("uploads did not resume: %v", err)
	}
	stop()
	stop = nil
	if err := p.stop(30 * time.Second); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	p = startSprout(t, env, args...)
	p.waitHTTP(api+"/ready", 120*time.Second)
	verifyStart := time.Now()
	defer func() { t.Logf("verification took %s", time.Since(verifyStart).Round(time.Second)) }()
	verifyAll(t, c, fmt.Sprintf("S3 down %s during uploads", down), api, "sprout_s3", "s3", a)
}
