package tracestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
	"github.com/sprout-otel/sprout/internal/traceql"
	"github.com/sprout-otel/sprout/internal/wal"
)

const tn = "single-tenant"

var baseTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func tid(n int) pcommon.TraceID {
	var id pcommon.TraceID
	id[0] = 0x0a
	id[14] = byte(n >> 8)
	id[15] = byte(n)
	return id
}

func sid(trace, span int) pcommon.SpanID {
	return pcommon.SpanID{0xb0, byte(trace >> 8), byte(trace), 0, 0, 0, byte(span >> 8), byte(span)}
}

// makeTrace builds one trace of n spans: a server root in "frontend", children in "backend".
func makeTrace(td ptrace.Traces, trace, n int, start time.Time) {
	fe := td.ResourceSpans().AppendEmpty()
	fe.Resource().Attributes().PutStr("service.name", "frontend")
	fe.Resource().Attributes().PutStr("cloud.region", "eu-west-1")
	fss := fe.ScopeSpans().AppendEmpty()
	fss.Scope().SetName("sprout-test")
	fss.Scope().SetVersion("1.0")
	be := td.ResourceSpans().AppendEmpty()
	be.Resource().Attributes().PutStr("service.name", "backend")
	bss := be.ScopeSpans().AppendEmpty()
	for i := 0; i < n; i++ {
		var sp ptrace.Span
		if i == 0 {
			sp = fss.Spans().AppendEmpty()
			sp.SetName("GET /checkout")
			sp.SetKind(ptrace.SpanKindServer)
			sp.Attributes().PutInt("http.status_code", 200)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(n) * 100 * time.Millisecond)))
		} else {
			sp = bss.Spans().AppendEmpty()
			sp.SetName(fmt.Sprintf("step-%d", i))
			sp.SetKind(ptrace.SpanKindInternal)
			sp.SetParentSpanID(sid(trace, 0))
			sp.Attributes().PutStr("step", fmt.Sprint(i))
			if i%3 == 0 {
				sp.Status().SetCode(ptrace.StatusCodeError)
				sp.Status().SetMessage("boom")
			}
			st := start.Add(time.Duration(i) * 10 * time.Millisecond)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(st))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(st.Add(time.Duration(i) * 50 * time.Millisecond)))
		}
		sp.SetTraceID(tid(trace))
		sp.SetSpanID(sid(trace, i))
	}
}

func batch(first, count, spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := first; i < first+count; i++ {
		makeTrace(td, i, spans, baseTime.Add(time.Duration(i)*time.Second))
	}
	return td
}

func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.WAL.Fsync = wal.FsyncNever
	cfg.Compaction.Interval = time.Hour
	cfg.Compaction.BlockRetention = 0
	return cfg
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustQuery(t testing.TB, q string) *traceql.Query {
	t.Helper()
	pq, err := traceql.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

func countSpans(t testing.TB, s *Store, trace int) int {
	t.Helper()
	td, err := s.TraceByID(context.Background(), tn, tid(trace), TimeRange{})
	if errors.Is(err, ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return td.SpanCount()
}

func TestIngestQuerySearch(t *testing.T) {
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(context.Background())
	ctx := context.Background()
	if err := s.Push(ctx, tn, batch(1, 3, 5)); err != nil {
		t.Fatal(err)
	}
	// by id at once, without waiting for any cut
	if n := countSpans(t, s, 2); n != 5 {
		t.Fatalf("trace 2 has %d spans, want 5", n)
	}
	if n := countSpans(t, s, 9); n != 0 {
		t.Fatalf("unknown trace has %d spans", n)
	}
	res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, `{ resource.service.name = "backend" && status = error }`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 3 {
		t.Fatalf("search found %d traces, want 3", len(res.Traces))
	}
	m := res.Traces[0]
	if m.TraceID != tid(3) || m.RootServiceName != "frontend" || m.RootTraceName != "GET /checkout" {
		t.Fatalf("first match = %+v (want newest trace first)", m)
	}
	if len(m.SpanSets) != 1 || m.SpanSets[0].Matched != 1 || m.SpanSets[0].Spans[0].Name != "step-3" {
		t.Fatalf("spansets = %+v", m.SpanSets)
	}
	// the same trace pushed again (a client retry) is deduplicated by span id
	if err := s.Push(ctx, tn, batch(2, 1, 5)); err != nil {
		t.Fatal(err)
	}
	if n := countSpans(t, s, 2); n != 5 {
		t.Fatalf("after retry trace 2 has %d spans, want 5", n)
	}
	// a tenant is separate
	if err := s.Push(ctx, "other", batch(50, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if n := countSpans(t, s, 50); n != 0 {
		t.Fatalf("tenant leak: %d spans of tenant other seen by %s", n, tn)
	}
	if err := s.Push(ctx, "../etc", batch(50, 1, 2)); !permanent(err) {
		t.Fatalf("bad tenant: %v", err)
	}
}

func TestLimits(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Limits.MaxBytesPerTrace = 600
	cfg.Limits.MaxSearchDuration = time.Hour
	s := openStore(t, cfg)
	defer s.Close(context.Background())
	ctx := context.Background()
	td := batch(1, 1, 2)           // small trace: accepted
	makeTrace(td, 2, 40, baseTime) // large trace: refused
	err := s.Push(ctx, tn, td)
	if le, ok := refusal.As(err); !ok || le.Limit != "max_bytes_per_trace" || !permanent(err) {
		t.Fatalf("err = %v, want a max_bytes_per_trace limit error", err)
	}
	if n := countSpans(t, s, 1); n != 2 {
		t.Fatalf("the small trace has %d spans, want 2 (the rest of the batch is kept)", n)
	}
	if n := countSpans(t, s, 2); n != 0 {
		t.Fatalf("the large trace has %d spans, want 0", n)
	}
	_, err = s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, "{}"), Range: TimeRange{Start: baseTime, End: baseTime.Add(2 * time.Hour)}})
	if le, ok := refusal.As(err); !ok || le.Limit != "max_search_duration" {
		t.Fatalf("err = %v, want max_search_duration", err)
	}
}

func TestWALReplayAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	if err := s.Push(context.Background(), tn, batch(1, 10, 4)); err != nil {
		t.Fatal(err)
	}
	// crash: no Close, no flush; only file handles are released
	s.closeNoFlush()
	s2 := openStore(t, testConfig(dir))
	defer s2.Close(context.Background())
	for i := 1; i <= 10; i++ {
		if n := countSpans(t, s2, i); n != 4 {
			t.Fatalf("after replay trace %d has %d spans, want 4", i, n)
		}
	}
}

func TestWALTornTail(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	if err := s.Push(context.Background(), tn, batch(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	s.closeNoFlush()
	// a record being written when the process died
	segs, _ := filepath.Glob(filepath.Join(dir, tenant.LayoutDir, tn, "wal", "*.wal"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 9, 9})
	f.Close()
	s2 := openStore(t, testConfig(dir))
	defer s2.Close(context.Background())
	if n := countSpans(t, s2, 2); n != 3 {
		t.Fatalf("trace 2 has %d spans after torn-tail replay, want 3", n)
	}
}

// TestWALCopyMidIngest copies the WAL directory while writers are running (as kill -9 would leave it) and
// checks that every span acknowledged before the copy started is found after replaying the copy.
func TestWALCopyMidIngest(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	s := openStore(t, cfg)
	defer s.Close(context.Background())
	var (
		acked   sync.Map // trace number -> true
		next    atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		started = make(chan struct{})
		once    sync.Once
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := int(next.Add(1))
				if err := s.Push(context.Background(), tn, batch(n, 1, 3)); err != nil {
					t.Error(err)
					return
				}
				acked.Store(n, true)
				if n > 200 {
					once.Do(func() { close(started) })
				}
			}
		}()
	}
	<-started
	var before []int
	acked.Range(func(k, _ any) bool { before = append(before, k.(int)); return true })
	copyDir := t.TempDir()
	copyTree(t, filepath.Join(dir, tenant.LayoutDir, tn), filepath.Join(copyDir, tn)) // the earlier layout: moved at open
	close(stop)
	wg.Wait()
	s2 := openStore(t, testConfig(copyDir))
	defer s2.Close(context.Background())
	for _, n := range before {
		if got := countSpans(t, s2, n); got != 3 {
			t.Fatalf("acked trace %d has %d spans in the replayed copy, want 3", n, got)
		}
	}
	t.Logf("%d acknowledged traces found after replaying a mid-ingest copy", len(before))
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		src, err := os.Open(p)
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a segment removed meanwhile
			}
			return err
		}
		defer src.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = io.Copy(out, src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testBlockRoundTrip(t *testing.T, cfg Config) {
	ctx := context.Background()
	s := openStore(t, cfg)
	if err := s.Push(ctx, tn, batch(1, 20, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	in := s.lookupInstance(tn)
	if len(in.blockList()) != 1 || len(in.snapshot()) != 0 {
		t.Fatalf("blocks = %d, in memory = %d after flush", len(in.blockList()), len(in.snapshot()))
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, tenant.LayoutDir, tn, "wal", "*.wal"))
	if len(segs) > 1 {
		t.Fatalf("WAL segments %v remain after their traces are in a block", segs)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// a fresh process reads the block from the bucket
	s2 := openStore(t, cfg)
	defer s2.Close(ctx)
	b := s2.lookupInstance(tn).blockList()
	if len(b) != 1 || b[0].meta.Spans != 120 || b[0].meta.Traces != 20 {
		t.Fatalf("blocks after reopen: %+v", b)
	}
	td, err := s2.TraceByID(ctx, tn, tid(7), TimeRange{})
	if err != nil {
		t.Fatal(err)
	}
	if td.SpanCount() != 6 || td.ResourceSpans().Len() != 2 {
		t.Fatalf("trace 7 from block: %d spans in %d resources", td.SpanCount(), td.ResourceSpans().Len())
	}
	// exact round trip of what was sent
	want := batch(7, 1, 6)
	wantJSON, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(want)
	gotJSON, _ := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if string(wantJSON) != string(gotJSON) {
		t.Fatalf("round trip differs:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if _, err := s2.TraceByID(ctx, tn, tid(99), TimeRange{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown trace: %v", err)
	}
	res, err := s2.Search(ctx, tn, SearchRequest{Query: mustQuery(t, `{ name = "step-5" } | count() = 1`), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 20 {
		t.Fatalf("search over the block found %d traces, want 20", len(res.Traces))
	}
	vals, err := s2.TagValues(ctx, tn, "resource.service.name", nil, TimeRange{}, 0)
	if err != nil || len(vals) != 2 {
		t.Fatalf("tag values %v %v", vals, err)
	}
}

func TestBlockRoundTripFilesystem(t *testing.T) {
	testBlockRoundTrip(t, testConfig(t.TempDir()))
}

func TestBlockRoundTripS3(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.MakeBucket("traces")
	cfg := testConfig(t.TempDir())
	cfg.Storage = bucket.Config{Backend: bucket.BackendS3, Prefix: "sprout", S3: bucket.S3Config{
		Bucket: "traces", Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true, Insecure: true,
		AccessKey: srv.AccessKey, SecretKey: configopaqueString(srv.SecretKey)}}
	testBlockRoundTrip(t, cfg)
}

func TestFlushAllOnShutdown(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	s := openStore(t, cfg)
	if err := s.Push(ctx, tn, batch(1, 3, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, tenant.LayoutDir, tn, "wal", "*.wal"))
	if len(segs) != 0 {
		t.Fatalf("WAL segments %v left after a flushing shutdown", segs)
	}
	s2 := openStore(t, cfg)
	defer s2.Close(ctx)
	if n := countSpans(t, s2, 3); n != 2 {
		t.Fatalf("trace 3 has %d spans after restart", n)
	}
}

func TestCutAfterIdle(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	s := openStore(t, cfg)
	defer s.Close(ctx)
	now := baseTime
	s.now = func() time.Time { return now }
	if err := s.Push(ctx, tn, batch(1, 2, 2)); err != nil {
		t.Fatal(err)
	}
	in := s.lookupInstance(tn)
	now = now.Add(cfg.TraceIdlePeriod - time.Second)
	_ = s.CutAndFlush(ctx, false)
	if len(in.live) != 2 {
		t.Fatalf("traces cut before they were idle: live=%d", len(in.live))
	}
	now = now.Add(2 * time.Second)
	_ = s.CutAndFlush(ctx, false)
	if len(in.live) != 0 || len(in.pending) != 2 || len(in.blockList()) != 0 {
		t.Fatalf("after idle: live=%d pending=%d blocks=%d", len(in.live), len(in.pending), len(in.blockList()))
	}
	now = now.Add(cfg.MaxBlockDuration)
	_ = s.CutAndFlush(ctx, false)
	if len(in.pending) != 0 || len(in.blockList()) != 1 {
		t.Fatalf("after max_block_duration: pending=%d blocks=%d", len(in.pending), len(in.blockList()))
	}
	if n := countSpans(t, s, 2); n != 2 {
		t.Fatalf("trace 2 has %d spans from its block", n)
	}
}

func TestCompactionDedupeAndRetention(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.Compaction.MinInputBlocks = 3
	cfg.Compaction.BlockRetention = 720 * time.Hour
	s := openStore(t, cfg)
	defer s.Close(ctx)
	s.now = func() time.Time { return baseTime.Add(time.Hour) }
	// the same traces three times (client retries landing in different blocks), plus one new trace each time
	for i := 0; i < 3; i++ {
		if err := s.Push(ctx, tn, batch(1, 5, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.Push(ctx, tn, batch(100+i, 1, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.CutAndFlush(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	in := s.lookupInstance(tn)
	if n := len(in.blockList()); n != 3 {
		t.Fatalf("%d blocks before compaction, want 3", n)
	}
	// queries dedupe across blocks already
	if n := countSpans(t, s, 3); n != 4 {
		t.Fatalf("trace 3 has %d spans before compaction", n)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	blocks := in.blockList()
	if len(blocks) != 1 {
		t.Fatalf("%d blocks after compaction, want 1", len(blocks))
	}
	if blocks[0].meta.Spans != 8*4 || blocks[0].meta.Traces != 8 || blocks[0].meta.Level != 1 {
		t.Fatalf("compacted block: spans=%d traces=%d level=%d, want 32, 8, 1", blocks[0].meta.Spans, blocks[0].meta.Traces, blocks[0].meta.Level)
	}
	var objects []string
	_ = s.bkt.Iter(ctx, tn+"/blocks/", func(n string) error { objects = append(objects, n); return nil })
	if len(objects) != 1 {
		t.Fatalf("bucket holds %v after compaction, want one block", objects)
	}
	if n := countSpans(t, s, 101); n != 4 {
		t.Fatalf("trace 101 has %d spans after compaction", n)
	}
	// retention: the block's newest span is from baseTime; move the clock past 720h
	s.now = func() time.Time { return baseTime.Add(719 * time.Hour) }
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if len(in.blockList()) != 1 {
		t.Fatal("block deleted before block_retention")
	}
	s.now = func() time.Time { return baseTime.Add(722 * time.Hour) }
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if len(in.blockList()) != 0 {
		t.Fatal("block kept past block_retention")
	}
	objects = nil
	_ = s.bkt.Iter(ctx, tn+"/blocks/", func(n string) error { objects = append(objects, n); return nil })
	if n := countSpans(t, s, 3); n != 0 {
		t.Fatalf("expired trace still has %d spans", n)
	}
}

// TestCompactionMaxInputBlocks: a merge reads at most max_input_blocks blocks, and one pass keeps merging until
// fewer than min_input_blocks small blocks are left.
func TestCompactionMaxInputBlocks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		maxInputs, wantLevel int
	}{
		{maxInputs: 0, wantLevel: 1}, // no bound: the seven blocks in one merge
		{maxInputs: 7, wantLevel: 1},
		{maxInputs: 3, wantLevel: 3}, // 3 -> 1, then (1 + 2) -> 1 twice
	} {
		t.Run(fmt.Sprint(tc.maxInputs), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Compaction.MinInputBlocks = 2
			cfg.Compaction.MaxInputBlocks = tc.maxInputs
			s := openStore(t, cfg)
			defer s.Close(ctx)
			s.now = func() time.Time { return baseTime.Add(time.Hour) }
			for i := 0; i < 7; i++ {
				if err := s.Push(ctx, tn, batch(10*i, 3, 4)); err != nil {
					t.Fatal(err)
				}
				if err := s.CutAndFlush(ctx, true); err != nil {
					t.Fatal(err)
				}
			}
			in := s.lookupInstance(tn)
			if n := len(in.blockList()); n != 7 {
				t.Fatalf("%d blocks before compaction, want 7", n)
			}
			if err := s.Compact(ctx); err != nil {
				t.Fatal(err)
			}
			blocks := in.blockList()
			if len(blocks) != 1 {
				t.Fatalf("%d blocks after one pass, want 1", len(blocks))
			}
			if b := blocks[0]; b.meta.Spans != 7*3*4 || b.meta.Traces != 7*3 || b.meta.Level != tc.wantLevel {
				t.Fatalf("compacted block: spans=%d traces=%d level=%d, want %d, %d, %d", b.meta.Spans, b.meta.Traces, b.meta.Level,
					7*3*4, 7*3, tc.wantLevel)
			}
			for i := 0; i < 7; i++ {
				if n := countSpans(t, s, 10*i+2); n != 4 {
					t.Fatalf("trace %d has %d spans after compaction, want 4", 10*i+2, n)
				}
			}
		})
	}
}

func TestParseTraceID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		want string
	}{
		{"0a000000000000000000000000000001", true, "0a000000000000000000000000000001"},
		{"ABC", true, "00000000000000000000000000000abc"},
		{"", false, ""},
		{"xyz", false, ""},
		{"0a0000000000000000000000000000012", false, ""},
		{"12 4", false, ""},
	} {
		id, err := ParseTraceID(tc.in)
		if (err == nil) != tc.ok || (tc.ok && id.String() != tc.want) {
			t.Errorf("ParseTraceID(%q) = %s, %v", tc.in, id, err)
		}
	}
}

func TestRangeCache(t *testing.T) {
	c := newRangeCache(400)
	c.put("a", 0, bytes.Repeat([]byte{1}, 100))
	c.put("a", 100, bytes.Repeat([]byte{2}, 100))
	c.put("b", 0, bytes.Repeat([]byte{3}, 101)) // larger than a quarter of the budget: not kept
	p := make([]byte, 100)
	if !c.get("a", 0, p) || p[99] != 1 {
		t.Fatalf("range a@0 not cached: %v", p[:4])
	}
	if c.get("b", 0, make([]byte, 101)) {
		t.Fatal("an over-size range was kept")
	}
	if c.get("a", 0, make([]byte, 50)) {
		t.Fatal("a range of another length was served")
	}
	for i := int64(2); i < 5; i++ { // a@0 was used last, so a@100 is the one evicted
		c.put("c", i*100, bytes.Repeat([]byte{byte(i)}, 100))
	}
	if c.get("a", 100, p) {
		t.Fatal("the least recently used range was not evicted")
	}
	if !c.get("a", 0, p) || c.used > c.budget {
		t.Fatalf("a@0 evicted or over budget: used %d", c.used)
	}
	c.drop("c")
	if c.get("c", 200, p) || c.used != 100 {
		t.Fatalf("drop left ranges: used %d", c.used)
	}
	var nilCache *rangeCache
	nilCache.put("x", 0, p)
	if nilCache.get("x", 0, p) {
		t.Fatal("a nil cache served a range")
	}
}

// TestReadCacheS3 reads a trace twice from a block in S3: the second read is served from the range cache.
func TestReadCacheS3(t *testing.T) {
	srv := testutil.StartS3(t)
	srv.MakeBucket("traces")
	cfg := testConfig(t.TempDir())
	cfg.Storage = bucket.Config{Backend: bucket.BackendS3, S3: bucket.S3Config{
		Bucket: "traces", Endpoint: srv.Endpoint, Region: "us-east-1", ForcePathStyle: true, Insecure: true,
		AccessKey: srv.AccessKey, SecretKey: configopaqueString(srv.SecretKey)}}
	ctx := context.Background()
	s := openStore(t, cfg)
	defer s.Close(ctx)
	if err := s.Push(ctx, tn, batch(1, 20, 4)); err != nil {
		t.Fatal(err)
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := countSpans(t, s, 7); n != 4 {
		t.Fatalf("trace 7 has %d spans", n)
	}
	h0 := s.cache.hits
	if n := countSpans(t, s, 7); n != 4 {
		t.Fatalf("trace 7 has %d spans on the second read", n)
	}
	if s.cache.hits == h0 {
		t.Fatalf("the second read was not served from the cache (hits %d, misses %d)", s.cache.hits, s.cache.misses)
	}
}

// TestWALOfEarlierRelease replays a data directory written by the release before the shared WAL (segments named
// with 16 digits, testdata/wal-v1): every span it acknowledged is there, and the segment is renamed.
func TestWALOfEarlierRelease(t *testing.T) {
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "wal-v1"), dir)
	s := openStore(t, testConfig(dir))
	defer s.Close(context.Background())
	for trace, spans := range map[int]int{1: 4, 2: 4, 3: 4, 4: 2, 5: 2} {
		if n := countSpans(t, s, trace); n != spans {
			t.Errorf("trace %d has %d spans after replaying the earlier release's WAL, want %d", trace, n, spans)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, tenant.LayoutDir, tn, "wal", wal.SegmentName(1))); err != nil {
		t.Errorf("segment of the earlier release not renamed: %v", err)
	}
}

// TestDeprecatedSyncKey: the key sync of earlier releases still sets the policy, and a warning says so.
func TestDeprecatedSyncKey(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.WAL.Sync = "batch"
	cfg.WAL.SyncInterval = 2 * time.Second
	core, logs := observer.New(zap.WarnLevel)
	s, err := Open(context.Background(), cfg, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if fsync, interval, _ := cfg.WAL.Effective(); fsync != wal.FsyncInterval || interval != 2*time.Second {
		t.Errorf("effective policy %s %v, want interval 2s", fsync, interval)
	}
	if n := logs.FilterMessageSnippet("deprecated").Len(); n != 2 {
		t.Errorf("%d deprecation warnings, want 2 (sync, sync_interval): %v", n, logs.All())
	}
}

// TestPickInputs: the lowest level with min_input_blocks small blocks goes first, oldest first, at most
// max_input_blocks of them; blocks of mixed levels are merged only when no level has enough.
func TestPickInputs(t *testing.T) {
	blk := func(name string, level int, size int64) *block {
		return &block{meta: blockMeta{ULID: name, Level: level, Size: size}}
	}
	c := CompactionConfig{MaxBlockBytes: 100, MinInputBlocks: 2, MaxInputBlocks: 3}
	for _, tc := range []struct {
		name   string
		blocks []*block
		want   string
	}{
		{"level 0 first, oldest first, at most 3",
			[]*block{blk("a1", 1, 10), blk("b0", 0, 10), blk("c1", 1, 10), blk("d0", 0, 10), blk("e0", 0, 10), blk("f0", 0, 10)}, "b0 d0 e0"},
		{"level 1 when level 0 has one", []*block{blk("a1", 1, 10), blk("b0", 0, 10), blk("c1", 1, 10)}, "a1 c1"},
		{"large blocks are left out", []*block{blk("a0", 0, 100), blk("b0", 0, 10), blk("c0", 0, 10)}, "b0 c0"},
		{"mixed levels when no level has enough", []*block{blk("a2", 2, 10), blk("b0", 0, 10), blk("c1", 1, 10)}, "a2 b0 c1"},
		{"stops before max_block_bytes", []*block{blk("a0", 0, 60), blk("b0", 0, 30), blk("c0", 0, 30)}, "a0 b0"},
		{"too few", []*block{blk("a0", 0, 10), blk("b0", 0, 100)}, ""},
	} {
		var got []string
		for _, b := range c.pickInputs(tc.blocks) {
			got = append(got, b.meta.ULID)
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%s: picked %q, want %q", tc.name, g, tc.want)
		}
	}
}
