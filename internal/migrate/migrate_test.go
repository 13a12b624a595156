package migrate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/logstore"
	"github.com/sprout-otel/sprout/internal/testutil"
)

var fixtureStart = time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)

func TestRunCopiesEverySignal(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	o := f.options(s, filepath.Join(t.TempDir(), "cp.json"))
	var out bytes.Buffer
	o.Progress = &out
	counts, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	spans, lines, samples, dups := s.counts()
	if spans != f.spans || lines != f.lines || samples != f.samples || dups != 0 {
		t.Fatalf("target got %d spans, %d lines, %d samples (%d duplicates); stored %d, %d, %d", spans, lines, samples, dups, f.spans, f.lines, f.samples)
	}
	want := map[string]int64{Traces: int64(f.spans), Metrics: int64(f.samples), Logs: int64(f.lines)}
	for _, c := range counts {
		if c.Items != want[c.Signal] || c.Skipped != 0 {
			t.Errorf("%s: count %+v, want %d items", c.Signal, c, want[c.Signal])
		}
	}
	if s.tenants["moved"] != s.requests || len(s.tenants) != 1 {
		t.Errorf("X-Scope-OrgID of requests: %v, want only the target tenant", s.tenants)
	}
	// What trace by id returns from Sprout is what the target got: attributes, scope, events, links.
	var got ptrace.Span
	var res, scopeName string
	for _, td := range s.traces {
		rs := td.ResourceSpans().At(0)
		got = rs.ScopeSpans().At(0).Spans().At(0)
		v, _ := rs.Resource().Attributes().Get("deployment.environment")
		res, scopeName = v.Str(), rs.ScopeSpans().At(0).Scope().Version()
		break
	}
	if res != "prod" || scopeName != "1.2.3" || got.Events().Len() != 1 || got.Links().Len() != 1 || got.Attributes().Len() != 1 || got.StartTimestamp() == 0 {
		t.Errorf("span lost fields: resource env %q, scope version %q, %d events, %d links, %d attributes", res, scopeName, got.Events().Len(), got.Links().Len(), got.Attributes().Len())
	}
	for k := range s.lines {
		if !strings.Contains(k, `"trace_id":"ab`) || !strings.Contains(k, `"user":"u`) {
			t.Fatalf("line without its structured metadata: %s", k)
		}
		break
	}
}

func TestSecondRunSendsNothing(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	o := f.options(s, filepath.Join(t.TempDir(), "cp.json"))
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	before := s.requests
	counts, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if s.requests != before {
		t.Fatalf("second run sent %d requests", s.requests-before)
	}
	for _, c := range counts {
		if c.Items != 0 || c.SkippedUnits == 0 {
			t.Errorf("second run %s: %+v, want nothing sent and every unit skipped", c.Signal, c)
		}
	}
}

// TestKillAndResume kills runs at several points (the context ends while a request is in flight, as SIGTERM or
// a kill would) and resumes each time: in the end the target has every item exactly once.
func TestKillAndResume(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	cp := filepath.Join(t.TempDir(), "cp.json")
	o := f.options(s, cp)
	kills := 0
	for _, killAt := range []int{2, 5, 11, 19, 27, 34} {
		ctx, cancel := context.WithCancel(context.Background())
		s.before = func(n int, r *http.Request) int {
			if n == killAt {
				// The server notices a closed connection only once the body is read.
				_, _ = io.Copy(io.Discard, r.Body)
				cancel()
				select { // the client gives up: the request is never taken
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return http.StatusServiceUnavailable
			}
			return 0
		}
		_, err := Run(ctx, o)
		cancel()
		if err == nil {
			break // finished before the kill point
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("kill at request %d: %v", killAt, err)
		}
		kills++
	}
	if kills < 5 {
		t.Fatalf("only %d runs were killed; the fixture is too small for the kill points", kills)
	}
	s.before = nil
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	spans, lines, samples, dups := s.counts()
	if spans != f.spans || lines != f.lines || samples != f.samples || dups != 0 {
		t.Fatalf("after kills and resumes the target has %d spans, %d lines, %d samples (%d duplicates); stored %d, %d, %d", spans, lines, samples, dups, f.spans, f.lines, f.samples)
	}
}

func TestTargetErrors(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	for _, tc := range []struct {
		name    string
		status  func(n int) int
		wantErr string // "" must succeed
		retries bool
	}{
		{"unavailable then fine", func(n int) int { return map[bool]int{true: 503}[n <= 2] }, "", true},
		{"rate limited then fine", func(n int) int { return map[bool]int{true: 429}[n == 1] }, "", true},
		{"wrong credentials", func(int) int { return 401 }, "401 Unauthorized: refused by test (check the target tenant and credentials", false},
		{"bad request", func(int) int { return 400 }, "400 Bad Request: refused by test", false},
		{"down for good", func(int) int { return 502 }, "gave up after retrying", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t)
			s.before = func(n int, _ *http.Request) int { return tc.status(n) }
			o := f.options(s, "")
			o.Signals = []string{Logs}
			o.Retry = RetryPolicy{Initial: time.Second, Max: 4 * time.Second, MaxElapsed: 30 * time.Second}
			clock := time.Unix(0, 0) // retries wait on a fake clock: no timing in the outcome
			o.now = func() time.Time { return clock }
			o.sleep = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
			counts, err := Run(context.Background(), o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, lines, _, dups := s.counts(); lines != f.lines || dups != 0 {
					t.Fatalf("%d lines (%d duplicates), want %d", lines, dups, f.lines)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "loki "+s.srv.URL) {
				t.Fatalf("error %v, want one naming the target and %q", err, tc.wantErr)
			}
			if got := counts[0].Retries > 0; got != tc.retries {
				t.Errorf("retries %d, want retried: %v", counts[0].Retries, tc.retries)
			}
		})
	}
}

func TestUnreachableTargetIsNamed(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	o := f.options(s, "")
	o.Signals = []string{Traces}
	o.Traces.Endpoint = "http://127.0.0.1:1/v1/traces"
	clock := time.Unix(0, 0)
	o.now = func() time.Time { return clock }
	o.sleep = func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil }
	_, err := Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "OTLP http://127.0.0.1:1/v1/traces: unreachable") {
		t.Fatalf("error %v, want it to name the unreachable target", err)
	}
}

// TestMetricBlocks writes the metrics as blocks into a bucket in Mimir's layout (filesystem, and S3 through a
// real S3 server) and reads them back with the TSDB: every sample, one block per window, and a second run (after
// the checkpoint is lost) writes the same block names again instead of adding blocks.
func TestMetricBlocks(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	for _, backend := range []string{bucket.BackendFilesystem, bucket.BackendS3} {
		t.Run(backend, func(t *testing.T) {
			s := newSink(t)
			o := f.options(s, "")
			o.Signals = []string{Metrics}
			o.Metrics.RemoteWrite = ""
			target := t.TempDir()
			cfg := bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: target}}
			if backend == bucket.BackendS3 {
				srv := testutil.StartS3(t)
				srv.MakeBucket("mimir-blocks")
				cfg = bucket.Config{Backend: bucket.BackendS3, Prefix: "blocks", S3: bucket.S3Config{Bucket: "mimir-blocks", Endpoint: srv.Endpoint,
					Insecure: true, ForcePathStyle: true, AccessKey: srv.AccessKey, SecretKey: configopaque.String(srv.SecretKey)}}
			}
			o.Metrics.TargetBucket = &cfg
			for run := 0; run < 2; run++ {
				if _, err := Run(context.Background(), o); err != nil {
					t.Fatal(err)
				}
			}
			if backend == bucket.BackendS3 { // read the bucket back into a directory
				bkt, err := bucket.New(context.Background(), cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := download(context.Background(), bkt, "", target); err != nil {
					t.Fatal(err)
				}
				_ = bkt.Close()
			}
			checkBlocks(t, filepath.Join(target, "moved"), 4, f.samples) // 09:00-15:00 in 2h windows: 08-10, 10-12, 12-14, 14-16
		})
	}
}

func checkBlocks(t *testing.T, dir string, wantBlocks, wantSamples int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != wantBlocks {
		t.Fatalf("%d blocks in the target after two runs, want %d", len(ents), wantBlocks)
	}
	n := 0
	for _, e := range ents {
		b, err := tsdb.OpenBlock(nil, filepath.Join(dir, e.Name()), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(dir, e.Name(), "meta.json"))
		if !bytes.Contains(raw, []byte(`"thanos"`)) || !bytes.Contains(raw, []byte(`"source": "sprout-migrate"`)) || !bytes.Contains(raw, []byte(`"rel_path": "chunks/000001"`)) {
			t.Errorf("meta.json without the thanos section:\n%s", raw)
		}
		q, _ := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() != chunkenc.ValNone {
				n++
			}
		}
		_ = q.Close()
		_ = b.Close()
	}
	if n != wantSamples {
		t.Fatalf("blocks hold %d samples, stored %d", n, wantSamples)
	}
}

// TestRangeSelects migrates the middle two hours only: items outside are not sent.
func TestRangeSelects(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	o := f.options(s, "")
	o.From, o.To = f.start.Add(2*time.Hour), f.start.Add(4*time.Hour)
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	spans, lines, samples, _ := s.counts()
	// Traces start every 10 minutes, lines every 3 minutes per stream, samples every 30 s per series.
	if spans != 12*3 || lines != 3*40 || samples != 4*240 {
		t.Fatalf("2h of the fixture: %d spans, %d lines, %d samples; want 36, 120, 960", spans, lines, samples)
	}
}

func TestCheckpointOfAnotherRun(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	s := newSink(t)
	cp := filepath.Join(t.TempDir(), "cp.json")
	o := f.options(s, cp)
	o.Signals = []string{Logs}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.From = o.From.Add(time.Minute) }, "--from"},
		{func(o *Options) { o.Tenant = "other" }, "tenant"},
		{func(o *Options) { o.Logs.Endpoint = "http://elsewhere:3100" }, "signals or targets"},
		{func(o *Options) { o.BatchItems = 7 }, "--batch-size"},
	} {
		o2 := o
		tc.change(&o2)
		_, err := Run(context.Background(), o2)
		if err == nil || !strings.Contains(err.Error(), "belongs to another migration ("+tc.want+" differs)") {
			t.Errorf("error %v, want one naming %q", err, tc.want)
		}
	}
	// A range relative to now moves between runs: with RangeFromCheckpoint the resumed run keeps the first's.
	o2 := o
	o2.From, o2.To, o2.RangeFromCheckpoint = o.From.Add(time.Minute), o.To.Add(time.Minute), true
	before := s.requests
	counts, err := Run(context.Background(), o2)
	if err != nil || s.requests != before || counts[0].Items != 0 || counts[0].SkippedUnits == 0 {
		t.Fatalf("resumed run with a moved relative range: %v, %+v, %d requests", err, counts, s.requests-before)
	}
}

// TestProgressLine: on a terminal the progress line is redrawn in place and cleared at the end; elsewhere
// nothing is written but retry notices.
func TestProgressLine(t *testing.T) {
	f := writeFixture(t, fixtureStart)
	for _, tty := range []bool{true, false} {
		s := newSink(t)
		s.before = func(n int, _ *http.Request) int { return map[bool]int{true: 503}[n == 2] }
		o := f.options(s, "")
		o.Signals = []string{Logs}
		var out bytes.Buffer
		o.Progress, o.ProgressTTY = &out, tty
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		got := out.String()
		if !strings.Contains(got, "503 Service Unavailable: refused by test; retrying in") {
			t.Errorf("tty %v: no retry notice in %q", tty, got)
		}
		if hasLine := strings.Contains(got, "\r\033[Klogs: 1/3 chunks, 100 lines sent"); hasLine != tty {
			t.Errorf("tty %v: progress line present %v in %q", tty, hasLine, got)
		}
		if tty && !strings.HasSuffix(got, "\r\033[K") && !strings.HasSuffix(got, "\n") {
			t.Errorf("progress line not cleared at the end: %q", got)
		}
	}
}

// TestMetricsBesideRunningTSDB reads a tenant's TSDB while it is open and being written, as beside a running
// Sprout: what was committed before the run moves, and the TSDB is not disturbed (it takes writes after).
func TestMetricsBesideRunningTSDB(t *testing.T) {
	dir := t.TempDir()
	db, err := tsdb.Open(filepath.Join(dir, fixtureTenant), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lset := labels.FromStrings("__name__", "up", "job", "live")
	app := db.Appender(context.Background())
	for i := 0; i < 100; i++ {
		if _, err := app.Append(0, lset, fixtureStart.Add(time.Duration(i)*time.Minute).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t)
	o := Options{Tenant: fixtureTenant, From: fixtureStart, To: fixtureStart.Add(3 * time.Hour), Signals: []string{Metrics},
		BatchItems: 30, Metrics: MetricsOptions{DataDir: dir, RemoteWrite: s.srv.URL + "/api/v1/write"}}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, _, samples, dups := s.counts(); samples != 100 || dups != 0 {
		t.Fatalf("%d samples (%d twice), want 100", samples, dups)
	}
	app = db.Appender(context.Background())
	if _, err := app.Append(0, lset, fixtureStart.Add(101*time.Minute).UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("the TSDB after migrate read it: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, fixtureTenant)); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "tmp_dbro_sandbox") {
				t.Errorf("migrate left %s in the TSDB directory", e.Name())
			}
		}
	}
}

// TestBatchBytesCap: long lines make pushes of about maxBatchBytes, whatever the batch size.
func TestBatchBytesCap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := logstore.DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "logs")
	cfg.Limits.RejectOldSamples = false
	cfg.Limits.IngestionRateMB, cfg.Limits.IngestionBurstSizeMB = 100, 100
	bc := bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: filepath.Join(dir, "bucket")}}
	bkt, err := bucket.New(ctx, bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := logstore.Open(ctx, cfg, bkt, logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 200<<10)
	var es []logql.Entry
	for i := 0; i < 30; i++ {
		es = append(es, logql.Entry{Timestamp: fixtureStart.Add(time.Duration(i) * time.Second).UnixNano(), Line: line + strconv.Itoa(i)})
	}
	if err := ls.Push(ctx, fixtureTenant, []logstore.PushStream{{Labels: labels.FromStrings("app", "big"), Entries: es}}); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s := newSink(t)
	counts, err := Run(ctx, Options{Tenant: fixtureTenant, From: fixtureStart, To: fixtureStart.Add(time.Hour), Signals: []string{Logs},
		BatchItems: 2000, Logs: LogsOptions{Source: bc, Endpoint: s.srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	if _, lines, _, _ := s.counts(); lines != 30 || counts[0].Requests < 3 || counts[0].Bytes/counts[0].Requests > maxBatchBytes+(256<<10) {
		t.Fatalf("%d lines in %d requests of %d bytes", lines, counts[0].Requests, counts[0].Bytes)
	}
}

// TestNativeHistograms: native histogram samples move by remote write and into blocks, with their counts.
func TestNativeHistograms(t *testing.T) {
	dir := t.TempDir()
	db, err := tsdb.Open(filepath.Join(dir, fixtureTenant), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lset := labels.FromStrings("__name__", "latency_seconds", "job", "api")
	app := db.Appender(context.Background())
	for i := 0; i < 50; i++ {
		h := &histogram.Histogram{Count: uint64(i + 1), Sum: float64(i), Schema: 0, ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(i + 1)}}
		if _, err := app.AppendHistogram(0, lset, fixtureStart.Add(time.Duration(i)*time.Minute).UnixMilli(), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := newSink(t)
	target := t.TempDir()
	o := Options{Tenant: fixtureTenant, From: fixtureStart, To: fixtureStart.Add(2 * time.Hour), Signals: []string{Metrics}, BatchItems: 20,
		Metrics: MetricsOptions{DataDir: dir, RemoteWrite: s.srv.URL + "/api/v1/write",
			TargetBucket: &bucket.Config{Backend: bucket.BackendFilesystem, Filesystem: bucket.FilesystemConfig{Dir: target}}}}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, _, samples, dups := s.counts(); samples != 50 || dups != 0 {
		t.Fatalf("remote write: %d histogram samples (%d twice), want 50", samples, dups)
	}
	if _, ok := s.samples[lset.String()+"|h"+strconv.FormatInt(fixtureStart.Add(49*time.Minute).UnixMilli(), 10)+"|50"]; !ok {
		t.Fatalf("the last histogram lost its count: %v", s.samples)
	}
	ents, _ := os.ReadDir(filepath.Join(target, fixtureTenant))
	n := 0
	for _, e := range ents {
		b, err := tsdb.OpenBlock(nil, filepath.Join(target, fixtureTenant, e.Name()), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := tsdb.NewBlockQuerier(b, b.MinTime(), b.MaxTime())
		ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "latency_seconds"))
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() == chunkenc.ValHistogram {
				n++
			}
		}
		_ = q.Close()
		_ = b.Close()
	}
	if n != 50 {
		t.Fatalf("blocks hold %d histogram samples, want 50", n)
	}
}
