package logstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/wal"
)

func TestBloomFalsePositives(t *testing.T) {
	b := newBloom(1000)
	for i := 0; i < 1000; i++ {
		b.add(fmt.Sprintf("%032x", i))
	}
	for i := 0; i < 1000; i++ {
		if !b.has(fmt.Sprintf("%032x", i)) {
			t.Fatalf("false negative for %d", i)
		}
	}
	fp := 0
	for i := 1000; i < 101000; i++ {
		if b.has(fmt.Sprintf("%032x", i)) {
			fp++
		}
	}
	if fp > 100 { // 0.1 %
		t.Fatalf("%d false positives in 100000", fp)
	}
}

func TestChunkRoundTrip(t *testing.T) {
	lbs := labels.FromStrings("app", "x")
	es := []logql.Entry{{Timestamp: 5, Line: "a", Metadata: labels.FromStrings("trace_id", "t")}, {Timestamp: 7, Line: "", Metadata: labels.EmptyLabels()}}
	got, ges, err := decodeChunk(encodeChunk(lbs, es))
	if err != nil || !labels.Equal(got, lbs) || len(ges) != 2 || ges[0].Metadata.Get("trace_id") != "t" || ges[1].Timestamp != 7 {
		t.Fatalf("%v %v %v", got, ges, err)
	}
	for _, bad := range []string{"SPLC\x01garbage", "SPLC\x02garbage", "SPLC\x03"} {
		if _, _, err := decodeChunk([]byte(bad)); err == nil {
			t.Fatalf("corrupt chunk %q decoded", bad)
		}
	}
}

// encodeChunkV1 is how releases before the columnar layout wrote chunks (version 1, rows).
func encodeChunkV1(lbs labels.Labels, es []logql.Entry) []byte {
	var e encbuf
	e.labels(lbs)
	e.entries(es)
	return zenc.EncodeAll(e.b, append([]byte(nil), chunkMagicV1...))
}

// TestChunkVersionsReadAlike: a chunk written in the row layout of earlier releases (version 1, from the
// committed fixture and encoded afresh) and the same entries in the column layout (version 2) decode to the
// same entries and answer the same selections.
func TestChunkVersionsReadAlike(t *testing.T) {
	lbs := labels.FromStrings("app", "x", "env", "prod")
	var es []logql.Entry
	for i := 0; i < 300; i++ {
		md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i/10), "detected_level", []string{"info", "error"}[i%7/6])
		if i%50 == 0 {
			md = labels.EmptyLabels()
		}
		es = append(es, logql.Entry{Timestamp: 1_700_000_000_000_000_000 + int64(i)*int64(time.Millisecond) - int64(i%3), Line: fmt.Sprintf("level=%s msg=\"request %d\" took=%dms", md.Get("detected_level"), i, i%17), Metadata: md})
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Timestamp < es[j].Timestamp })
	fixture, err := os.ReadFile("testdata/chunk-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if v1 := encodeChunkV1(lbs, es); !bytes.Equal(v1, fixture) {
		t.Fatal("version 1 encoding differs from testdata/chunk-v1.bin")
	}
	v2 := encodeChunk(lbs, es)
	if !bytes.HasPrefix(v2, chunkMagic) || bytes.HasPrefix(v2, chunkMagicV1) {
		t.Fatalf("new chunks are not written as version 2: %q", v2[:5])
	}
	sels := []logql.SelectParams{
		{Start: math.MinInt64, End: math.MaxInt64},
		{Start: es[100].Timestamp, End: es[200].Timestamp},
		{Start: math.MinInt64, End: math.MaxInt64, TraceID: fmt.Sprintf("%032x", 7)},
		{Start: math.MinInt64, End: math.MaxInt64, LineFilter: func(l string) bool { return strings.Contains(l, "error") }},
	}
	for _, obj := range [][]byte{fixture, v2} {
		gl, ges, err := decodeChunk(obj)
		if err != nil || !labels.Equal(gl, lbs) || len(ges) != len(es) {
			t.Fatalf("%q: %v, %d entries, %v", obj[:5], gl, len(ges), err)
		}
		for i := range es {
			if ges[i].Timestamp != es[i].Timestamp || ges[i].Line != es[i].Line || !labels.Equal(ges[i].Metadata, es[i].Metadata) {
				t.Fatalf("%q entry %d: %+v, want %+v", obj[:5], i, ges[i], es[i])
			}
		}
		pl, err := decompressChunk(obj)
		if err != nil {
			t.Fatal(err)
		}
		for k, sel := range sels {
			var skipped int64
			sel.Skipped = func(n, _ int64) { skipped += n }
			got, err := decodeSelected(pl, &sel)
			if err != nil {
				t.Fatal(err)
			}
			var want []logql.Entry
			var wantSkipped int64
			for _, e := range es {
				if e.Timestamp < sel.Start || e.Timestamp >= sel.End || sel.TraceID != "" && e.Metadata.Get("trace_id") != sel.TraceID {
					continue
				}
				if sel.LineFilter != nil && !sel.LineFilter(e.Line) {
					wantSkipped++
					continue
				}
				want = append(want, e)
			}
			if len(got) != len(want) || skipped != wantSkipped || len(want) == 0 {
				t.Fatalf("%q selection %d: %d entries (%d skipped), want %d (%d)", obj[:5], k, len(got), skipped, len(want), wantSkipped)
			}
			for i := range want {
				if got[i].Timestamp != want[i].Timestamp || got[i].Line != want[i].Line || !labels.Equal(got[i].Metadata, want[i].Metadata) {
					t.Fatalf("%q selection %d entry %d: %+v, want %+v", obj[:5], k, i, got[i], want[i])
				}
			}
		}
	}
	if len(v2) >= len(fixture) {
		t.Errorf("columns take %d bytes, rows %d: want fewer", len(v2), len(fixture))
	}
}

// FuzzDecodeStored feeds arbitrary bytes to the WAL record and chunk payload decoders (both layouts), which
// read files that a crash or a bad disk may have damaged.
func FuzzDecodeStored(f *testing.F) {
	es := []logql.Entry{{Timestamp: 1, Line: "a", Metadata: labels.FromStrings("trace_id", "t")}, {Timestamp: 2, Line: "b", Metadata: labels.FromStrings("trace_id", "t")}}
	f.Add(encodeWALRecord(&walRecord{tenant: "x", streams: []walStream{{labels: labels.FromStrings("a", "b"), entries: es}}}))
	var e encbuf
	e.labels(labels.FromStrings("a", "b"))
	e.entries(es)
	f.Add(e.b)
	var c encbuf
	c.payload(labels.FromStrings("a", "b"), es)
	f.Add(c.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeWALRecord(b)
		sel := logql.SelectParams{End: 1 << 62, TraceID: "t", LineFilter: func(string) bool { return true }}
		_, _ = decodeSelected(payload{s: string(b)}, &sel)
		_, _ = decodeSelected(payload{s: string(b), cols: true}, &sel)
		_, _, _ = decodeChunk(append(append([]byte(nil), chunkMagicV1...), b...))
		_, _, _ = decodeChunk(append(append([]byte(nil), chunkMagic...), b...))
		_, _, _ = decodeChunk(zenc.EncodeAll(b, append([]byte(nil), chunkMagic...)))
	})
}

// TestLimitedQueryReadsOnlyWhatItNeeds checks log queries with a limit against the expected newest (backward)
// or oldest (forward) matching lines over many chunks of interleaved streams plus heads, and that the store
// stopped early: far fewer lines processed than stored.
func TestLimitedQueryReadsOnlyWhatItNeeds(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 2048; c.WAL.Fsync = wal.FsyncNever })
	const n = 3000
	var all []logql.Entry
	for i := 0; i < n; i++ {
		word := "plain"
		if i%7 == 0 {
			word = "needle"
		}
		en := logql.Entry{Timestamp: ts(-500) + int64(i)*int64(100*time.Millisecond), Line: fmt.Sprintf("line %05d %s", i, word)}
		all = append(all, en)
		if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: labels.FromStrings("job", fmt.Sprint("j", i%3)), Entries: []logql.Entry{en}}}); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 && i < n-500 { // the last 500 stay in the heads
			if err := e.store.Flush(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		q     string
		match func(string) bool
	}{
		{`{job=~"j.*"}`, func(string) bool { return true }},
		{`{job=~"j.*"} |= "needle"`, func(l string) bool { return strings.Contains(l, "needle") }},
		{`{job="j1"} |= "needle"`, nil},
	} {
		for _, dir := range []logql.Direction{logql.Backward, logql.Forward} {
			for _, limit := range []int{1, 7, 150} {
				var want []string
				for i, en := range all {
					if tc.match == nil && i%3 == 1 && strings.Contains(en.Line, "needle") || tc.match != nil && tc.match(en.Line) {
						want = append(want, en.Line)
					}
				}
				if dir == logql.Backward {
					slices.Reverse(want)
				}
				want = want[:min(limit, len(want))]
				sel, err := logql.ParseLogSelector(tc.q)
				if err != nil {
					t.Fatal(err)
				}
				var st logql.Stats
				res, err := e.store.Engine().SelectLogs(context.Background(), e.store.Querier("t1"), logql.LogQuery{Expr: sel, Start: ts(-1000), End: ts(1000), Limit: limit, Direction: dir}, &st)
				if err != nil {
					t.Fatal(err)
				}
				var got []logql.ResultEntry
				for _, s := range res {
					got = append(got, s.Entries...)
				}
				sort.Slice(got, func(i, j int) bool {
					if dir == logql.Forward {
						return got[i].Timestamp < got[j].Timestamp
					}
					return got[i].Timestamp > got[j].Timestamp
				})
				var gotLines []string
				for _, g := range got {
					gotLines = append(gotLines, g.Line)
				}
				if !slices.Equal(gotLines, want) {
					t.Errorf("%s dir=%d limit=%d: got %v, want %v", tc.q, dir, limit, gotLines, want)
				}
				if limit <= 7 && st.TotalLinesProcessed > n/2 {
					t.Errorf("%s dir=%d limit=%d: processed %d of %d lines; want an early stop", tc.q, dir, limit, st.TotalLinesProcessed, n)
				}
			}
		}
	}
}

// TestSumOverManyMetadataSeries: with a trace_id per line every line is its own series before the sum (as
// structured metadata joins the labels); sum by (...) must still answer, as Grafana's log-volume query needs.
func TestSumOverManyMetadataSeries(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.WAL.Fsync = wal.FsyncNever })
	var ps PushStream
	ps.Labels = labels.FromStrings("job", "a")
	const n = 7000
	for i := 0; i < n; i++ {
		ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(-100) + int64(i), Line: "l", Metadata: labels.FromStrings("trace_id", fmt.Sprintf("%032x", i))})
	}
	if err := e.store.Push(context.Background(), "t1", []PushStream{ps}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`sum by (job) (count_over_time({job="a"}[1h]))`, `sum(rate({job="a"}[1h])) * 3600`} {
		expr, err := logql.ParseExpr(q)
		if err != nil {
			t.Fatal(err)
		}
		var st logql.Stats
		res, _, err := e.store.Engine().EvalRange(context.Background(), e.store.Querier("t1"), expr.(logql.SampleExpr), ts(0), ts(0), 0, &st)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(res) != 1 || res[0].Points[0].V != n {
			t.Fatalf("%s: %v, want one series of %d", q, res, n)
		}
	}
}

// TestDuplicateAcrossChunkAndHead: an entry pushed again once its first copy is in a chunk (a retried push after
// a restart) lies in a chunk and in the head; as Loki, queries read it once, metric queries included, while an
// entry of the same time with another line is kept.
func TestDuplicateAcrossChunkAndHead(t *testing.T) {
	e := newEnv(t, nil)
	defer e.close()
	st := labels.FromStrings("job", "dup")
	push := func(es ...logql.Entry) {
		t.Helper()
		if err := e.store.Push(context.Background(), "single-tenant", []PushStream{{Labels: st, Entries: es}}); err != nil {
			t.Fatal(err)
		}
	}
	a := logql.Entry{Timestamp: ts(-30), Line: "retried ☕ line"}
	push(a, logql.Entry{Timestamp: ts(-20), Line: "older"})
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	push(a, logql.Entry{Timestamp: ts(-30), Line: "same time, other line"}, logql.Entry{Timestamp: ts(-10), Line: "newer"})
	if _, sr := e.queryRange(`{job="dup"}`); countLines(sr) != 4 {
		t.Fatalf("log query: %v, want 4 lines", lines(sr))
	}
	code, body := e.get("/loki/api/v1/query", url.Values{"query": {`sum(count_over_time({job="dup"}[5m]))`}, "time": {fmt.Sprint(ts(0))}})
	if code != 200 || !strings.Contains(string(body), `"4"]`) {
		t.Fatalf("metric query: %d %s, want 4", code, body)
	}
}

// TestChunkCacheKeepsObjects: the cache holds objects as given, within its size, and refuses one larger than a
// quarter of it.
func TestChunkCacheKeepsObjects(t *testing.T) {
	c := newChunkCache(100)
	for i := 0; i < 10; i++ {
		c.put(fmt.Sprint("k", i), make([]byte, 20))
		if c.size > c.max {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i+1, c.size, c.max)
		}
	}
	if _, ok := c.get("k9"); !ok {
		t.Fatal("newest object evicted")
	}
	c.put("big", make([]byte, 26))
	if _, ok := c.get("big"); ok {
		t.Fatal("object over a quarter of the cache kept")
	}
	c.drop("k9")
	if _, ok := c.get("k9"); ok || c.size != 80 {
		t.Fatalf("after drop: found=%v size=%d, want 80", ok, c.size)
	}
	var none *chunkCache
	none.put("x", []byte("y"))
	if _, ok := none.get("x"); ok {
		t.Fatal("nil cache answered")
	}
}

// TestChunkCacheOnlyForRemoteBuckets: a filesystem bucket's chunks are left to the page cache; another bucket's
// are cached as compressed objects, and a query reads them back from the cache (the object deleted from the
// bucket meanwhile) with the same answer.
func TestChunkCacheOnlyForRemoteBuckets(t *testing.T) {
	if c := newObjectCache(objstore.NewInMemBucket(), 0); c != nil {
		t.Fatal("chunk_cache_size 0 made a cache")
	}
	fs := newEnv(t, nil)
	if fs.store.cache != nil {
		t.Fatal("filesystem bucket got a chunk cache")
	}
	for _, size := range []int{64 << 20, 0} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			dir := t.TempDir()
			e := &env{t: t, dir: dir, clk: &clock{t: testNow}, bkt: objstore.NewInMemBucket()}
			e.cfg = DefaultConfig()
			e.cfg.DataDir, e.cfg.FlushCheckPeriod, e.cfg.CompactionInterval, e.cfg.ChunkCacheSize = dir, time.Hour, time.Hour, size
			e.open()
			ps := PushStream{Labels: labels.FromStrings("app", "a")}
			for i := 0; i < 200; i++ {
				ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(i), Line: fmt.Sprintf("line %d status=%d", i, 200+i%2)})
			}
			ctx := context.Background()
			if err := e.store.Push(ctx, "single-tenant", []PushStream{ps}); err != nil {
				t.Fatal(err)
			}
			if err := e.store.Flush(ctx, true); err != nil {
				t.Fatal(err)
			}
			if _, sr := e.queryRange(`{app="a"} |= "status=201"`); countLines(sr) != 100 {
				t.Fatalf("first read: %d lines", countLines(sr))
			}
			var keys []string
			_ = e.bkt.Iter(ctx, "single-tenant/chunks/", func(k string) error { keys = append(keys, k); return nil }, objstore.WithRecursiveIter())
			if len(keys) == 0 {
				t.Fatal("no chunk uploaded")
			}
			for _, k := range keys {
				if err := e.bkt.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			want := 100
			if size == 0 {
				want = 0 // nothing cached: the deleted chunks are skipped
			}
			if _, sr := e.queryRange(`{app="a"} |= "status=201"`); countLines(sr) != want {
				t.Fatalf("after the objects were deleted: %d lines, want %d", countLines(sr), want)
			}
		})
	}
}

// TestEarlierReleaseData: a bucket written by an earlier release (row-layout chunks, plain JSON index files)
// beside this release's (column chunks, compressed index) is read as one; compaction rewrites the old chunks and
// consolidates every index file into one compressed file.
func TestEarlierReleaseData(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 1 << 20 })
	ctx := context.Background()
	dir := e.bcfg.Filesystem.Dir
	// What an earlier release left: one v1 chunk of stream old, listed in a plain JSON index file.
	oldLbs := labels.FromStrings("app", "old")
	var oldEs []logql.Entry
	for i := 0; i < 50; i++ {
		oldEs = append(oldEs, logql.Entry{Timestamp: ts(i), Line: fmt.Sprintf("old line %d", i), Metadata: labels.FromStrings("trace_id", "abc")})
	}
	obj := encodeChunkV1(oldLbs, oldEs)
	key := fmt.Sprintf("single-tenant/chunks/%016x/%d-%d-1-1", oldLbs.Hash(), oldEs[0].Timestamp, oldEs[49].Timestamp)
	if err := e.bkt.Upload(ctx, key, bytes.NewReader(obj)); err != nil {
		t.Fatal(err)
	}
	bl := newBloom(1)
	bl.add("abc")
	idx, _ := json.Marshal(indexFile{Chunks: []*chunkMeta{{Stream: oldLbs, Key: key, MinT: oldEs[0].Timestamp, MaxT: oldEs[49].Timestamp, Entries: 50, Bytes: 500, Size: len(obj), Bloom: bl}}})
	if err := e.bkt.Upload(ctx, "single-tenant/index/00000000000000000001-1.json", bytes.NewReader(idx)); err != nil {
		t.Fatal(err)
	}
	// And this release's data: stream new, flushed.
	ps := PushStream{Labels: labels.FromStrings("app", "new")}
	for i := 0; i < 50; i++ {
		ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(i), Line: fmt.Sprintf("new line %d", i), Metadata: labels.FromStrings("trace_id", "abc")})
	}
	if err := e.store.Push(ctx, "single-tenant", []PushStream{ps}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
	e.close()
	e.open()
	check := func(when string) {
		t.Helper()
		for q, want := range map[string]int{`{app=~".+"}`: 100, `{app="old"} |= "line 4"`: 11, `{app=~".+"} | trace_id="abc"`: 100} {
			if _, sr := e.queryRange(q); countLines(sr) != want {
				t.Fatalf("%s: %s gave %d lines, want %d", when, q, countLines(sr), want)
			}
		}
	}
	check("after restart")
	if err := e.store.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	check("after compaction")
	e.close()
	e.open()
	check("after compaction and restart")
	files, _ := filepath.Glob(filepath.Join(dir, "single-tenant", "index", "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], indexSuffix) {
		t.Fatalf("index files after consolidation: %v, want one %s", files, indexSuffix)
	}
}

// FuzzDecodeIndex feeds arbitrary bytes to the index file decoder, compressed and plain: a damaged index file
// must fail to load, not crash the store at start.
func FuzzDecodeIndex(f *testing.F) {
	b, _ := json.Marshal(indexFile{Chunks: []*chunkMeta{{Stream: labels.FromStrings("a", "b"), Key: "t/chunks/x/1-2-3-4", MinT: 1, MaxT: 2, Entries: 3, Bloom: newBloom(1)}}})
	f.Add(b, false)
	f.Add(zenc.EncodeAll(b, nil), true)
	f.Fuzz(func(t *testing.T, data []byte, compressed bool) {
		idx, err := decodeIndex(bytes.NewReader(data), compressed)
		if err == nil && idx == nil {
			t.Fatal("nil index without an error")
		}
	})
}

// TestDuplicateAcrossChunks: the same entry pushed again after each of two forced flushes lies in two chunks and
// in the head; chunks cut from overlapping pushes share a time range. As Loki, queries read each entry once,
// metric queries included, while entries of the same time with another line or other metadata are kept.
func TestDuplicateAcrossChunks(t *testing.T) {
	e := newEnv(t, nil)
	defer e.close()
	st := labels.FromStrings("job", "dup2")
	push := func(es ...logql.Entry) {
		t.Helper()
		if err := e.store.Push(context.Background(), "single-tenant", []PushStream{{Labels: st, Entries: es}}); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := e.store.Flush(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	a := logql.Entry{Timestamp: ts(-40), Line: "pushed three times ☕"}
	b := logql.Entry{Timestamp: ts(-35), Line: "in two chunks", Metadata: labels.FromStrings("trace_id", "t1")}
	push(a, b, logql.Entry{Timestamp: ts(-20), Line: "first chunk only"})
	flush()
	// The second chunk overlaps the first: [-40, -25] within [-40, -20].
	// (An entry equal in time, line and metadata to the one pushed just before it is dropped by the push path,
	// as Loki's ingester does: TestRepeatOfPreviousLine.)
	push(a, b, logql.Entry{Timestamp: ts(-40), Line: "same time, other line"},
		logql.Entry{Timestamp: ts(-35), Line: "in two chunks", Metadata: labels.FromStrings("trace_id", "t2")},
		logql.Entry{Timestamp: ts(-25), Line: "second chunk only"})
	flush()
	push(a, logql.Entry{Timestamp: ts(-10), Line: "head only"})
	s := e.store.tenantIfExists("single-tenant").matchStreams([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "dup2")})
	if len(s) != 1 || len(s[0].chunks) != 2 {
		t.Fatalf("want one stream with two chunks, got %d streams", len(s))
	}
	check := func(when string) {
		t.Helper()
		const want = 7 // a, b (t1), b (t2), other line, first only, second only, head only
		if _, sr := e.queryRange(`{job="dup2"}`); countLines(sr) != want {
			t.Fatalf("%s: log query: %v, want %d lines", when, lines(sr), want)
		}
		for q, v := range map[string]string{
			`sum(count_over_time({job="dup2"}[5m]))`:                                fmt.Sprint(want),
			`sum(count_over_time({job="dup2"} |= "three" [5m]))`:                    "1",
			`sum(bytes_over_time({job="dup2"} |= "three" [5m]))`:                    fmt.Sprint(len(a.Line)),
			`sum(count_over_time({job="dup2"} | trace_id="t1" [5m]))`:               "1",
			`sum(count_over_time({job="dup2"} |= "pushed" or "chunk" [5m]))`:        "5",
			`sum by (job) (count_over_time({job="dup2"} != "only" [5m] offset 0s))`: "4",
		} {
			code, body := e.get("/loki/api/v1/query", url.Values{"query": {q}, "time": {fmt.Sprint(ts(0))}})
			if code != 200 || !strings.Contains(string(body), `"`+v+`"]`) {
				t.Errorf("%s: %s: %d %s, want %s", when, q, code, body, v)
			}
		}
	}
	check("two chunks and the head")
	// Compaction merges the two small chunks into one, which holds each entry once.
	if err := e.store.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(s[0].chunks); n != 1 {
		t.Fatalf("after compaction: %d chunks, want 1", n)
	}
	check("after compaction")
}

// TestDedupWindows: only where two sources overlap is an entry looked up.
func TestDedupWindows(t *testing.T) {
	c := func(lo, hi int64) *chunkMeta { return &chunkMeta{MinT: lo, MaxT: hi} }
	for _, tc := range []struct {
		chunks     []*chunkMeta
		hmin, hmax int64
		want       [][2]int64
	}{
		{nil, 1, 5, nil},
		{[]*chunkMeta{c(1, 5)}, 1, 0, nil},
		{[]*chunkMeta{c(1, 5), c(6, 9)}, 10, 12, nil},
		{[]*chunkMeta{c(1, 5), c(5, 9)}, 1, 0, [][2]int64{{5, 5}}},
		{[]*chunkMeta{c(6, 9), c(1, 7)}, 8, 20, [][2]int64{{6, 7}, {8, 9}}},
		{[]*chunkMeta{c(6, 9), c(1, 8)}, 8, 20, [][2]int64{{6, 9}}},
		{[]*chunkMeta{c(1, 10), c(2, 3), c(5, 6)}, 20, 30, [][2]int64{{2, 3}, {5, 6}}},
		{[]*chunkMeta{c(1, 10), c(2, 30)}, 20, 40, [][2]int64{{2, 10}, {20, 30}}},
	} {
		var hs [][][2]int64
		if tc.hmin <= tc.hmax {
			hs = [][][2]int64{{{tc.hmin, tc.hmax}}}
		}
		d := newDedup(tc.chunks, hs)
		var got [][2]int64
		if d != nil {
			got = d.windows
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v head [%d,%d]: windows %v, want %v", tc.chunks, tc.hmin, tc.hmax, got, tc.want)
		}
	}
	d := newDedup([]*chunkMeta{c(1, 10), c(5, 20)}, nil)
	e := logql.Entry{Timestamp: 7, Line: "x"}
	if d.seen(e, 0) || d.seen(e, 0) {
		t.Fatal("an entry twice in one source is not a duplicate")
	}
	if !d.seen(e, 1) {
		t.Fatal("the entry from a second source is not dropped")
	}
	if d.seen(logql.Entry{Timestamp: 2, Line: "x"}, 0) || d.seen(logql.Entry{Timestamp: 2, Line: "x"}, 1) {
		t.Fatal("an entry outside the overlap was looked up")
	}
}

// TestDedupKeys: entries that differ in time, line or structured metadata are distinct; equal ones are one,
// however their metadata was built.
func TestDedupKeys(t *testing.T) {
	md := labels.FromStrings
	for _, tc := range []struct {
		name string
		a, b logql.Entry
		same bool
	}{
		{"equal", logql.Entry{Timestamp: 1, Line: "x", Metadata: md("trace_id", "a")}, logql.Entry{Timestamp: 1, Line: "x", Metadata: md("trace_id", "a")}, true},
		{"no metadata", logql.Entry{Timestamp: 1, Line: "x"}, logql.Entry{Timestamp: 1, Line: "x", Metadata: labels.EmptyLabels()}, true},
		{"time", logql.Entry{Timestamp: 1, Line: "x"}, logql.Entry{Timestamp: 2, Line: "x"}, false},
		{"line", logql.Entry{Timestamp: 1, Line: "x"}, logql.Entry{Timestamp: 1, Line: "y"}, false},
		{"metadata value", logql.Entry{Timestamp: 1, Line: "x", Metadata: md("k", "a")}, logql.Entry{Timestamp: 1, Line: "x", Metadata: md("k", "b")}, false},
		{"metadata or not", logql.Entry{Timestamp: 1, Line: "x", Metadata: md("k", "")}, logql.Entry{Timestamp: 1, Line: "x"}, false},
		{"name and value boundary", logql.Entry{Timestamp: 1, Line: "x", Metadata: md("a", "bc")}, logql.Entry{Timestamp: 1, Line: "x", Metadata: md("ab", "c")}, false},
		{"line and metadata boundary", logql.Entry{Timestamp: 1, Line: "xk", Metadata: md("v", "")}, logql.Entry{Timestamp: 1, Line: "x", Metadata: md("kv", "")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dedup{windows: [][2]int64{{0, 10}}, from: map[entryKey]int{}}
			d.seen(tc.a, 0)
			if got := d.seen(tc.b, 1); got != tc.same {
				t.Errorf("second entry seen = %v, want %v", got, tc.same)
			}
		})
	}
}
