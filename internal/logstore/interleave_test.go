package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"

	"github.com/sprout-otel/sprout/internal/logql"
)

// countingBucket counts the objects read from it.
type countingBucket struct {
	objstore.Bucket
	gets atomic.Int64
}

func (b *countingBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.gets.Add(1)
	return b.Bucket.Get(ctx, name)
}

// interleavedBatch is lines i..i+n-1 of sender w: each sender writes one stream from its own stretch of time
// (sender w from ts(-500+100w), a line every 10 ms), as the benchmark runner's senders do.
func interleavedBatch(w, i, n int) []PushStream {
	ps := PushStream{Labels: labels.FromStrings("job", "mix")}
	for k := i; k < i+n; k++ {
		word := "ok"
		if k%3 == 0 {
			word = "timeout"
		}
		ps.Entries = append(ps.Entries, logql.Entry{
			Timestamp: ts(-500+100*w) + int64(k)*int64(10*time.Millisecond),
			Line:      fmt.Sprintf("sender=%d n=%d msg=%s", w, k, word),
			Metadata:  labels.FromStrings("trace_id", fmt.Sprintf("%032x", w*100000+k/10)),
		})
	}
	return []PushStream{ps}
}

// TestInterleavedSendersCountFromSummaries: four senders push into one stream from four stretches of time, so
// that every chunk's [minT, maxT] covers the others' while no two chunks share a timestamp. The chunks are
// counted from their index entries (no object read), and the count stays each line once when the same entries
// come again through a retried push, a replay after an unclean stop, a crash between upload and checkpoint, and
// compaction; every answer equals the entry path's.
func TestInterleavedSendersCountFromSummaries(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	headBlockBytes = 600
	e := newEnv(t, func(c *Config) {
		c.ChunkTargetSize = 16 << 10
		c.MinFreeDiskBytes = 0
		c.Limits.IngestionRateMB = 1024
		c.Limits.IngestionBurstSizeMB = 1024
	})
	cb := &countingBucket{Bucket: e.bkt}
	e.store.Close(context.Background())
	e.bkt = cb
	e.open()
	push := func(ps []PushStream) {
		t.Helper()
		if err := e.store.Push(context.Background(), "t1", ps); err != nil {
			t.Fatal(err)
		}
	}
	const senders, perPush, rounds = 4, 20, 30
	total := 0
	for r := 0; r < rounds; r++ {
		for w := 0; w < senders; w++ {
			push(interleavedBatch(w, r*perPush, perPush))
			total += perPush
		}
		if r%6 == 5 {
			if err := e.store.Flush(context.Background(), true); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := e.store.tenantIfExists("t1").matchStreams([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "mix")})[0]
	st.mu.Lock()
	chunks := append([]*chunkMeta(nil), st.chunks...)
	hs := headSpans(st.blocks, st.tail)
	st.mu.Unlock()
	if len(chunks) < 5 {
		t.Fatalf("%d chunks; the test wants several", len(chunks))
	}
	// By [minT, maxT] alone every chunk would share time with another, and none could be counted from its
	// summary.
	var plain []*chunkMeta
	for _, c := range chunks {
		plain = append(plain, &chunkMeta{MinT: c.MinT, MaxT: c.MaxT})
	}
	pd := newDedup(plain, nil)
	for i, c := range plain {
		if !pd.overlaps(c.spans()) {
			t.Fatalf("chunk %d's time range meets no other's: the senders do not interleave", i)
		}
	}
	if dd := newDedup(chunks, hs); dd != nil {
		t.Fatalf("the sources' spans meet in %v; the senders' stretches of time should keep them apart", dd.windows)
	}

	q := e.store.Querier("t1").(*querier)
	eval := func(qr logql.Querier, query string, start, end, step int64) []logql.Series {
		t.Helper()
		expr, err := logql.ParseSampleExpr(query)
		if err != nil {
			t.Fatal(err)
		}
		var stats logql.Stats
		res, _, err := (&logql.Engine{}).EvalRange(context.Background(), qr, expr, start, end, step, &stats)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return res
	}
	check := func(stage string, fromSummaries bool) {
		t.Helper()
		before := cb.gets.Load()
		all := eval(q, `sum(count_over_time({job="mix"}[20m]))`, ts(0), ts(0), 0)
		if len(all) != 1 || all[0].Points[0].V != float64(total) {
			t.Fatalf("%s: count of every line %v, want %d", stage, all, total)
		}
		if read := cb.gets.Load() - before; fromSummaries && read != 0 {
			t.Errorf("%s: the count of every line read %d chunk objects, want none (summaries)", stage, read)
		}
		for _, query := range []string{
			`sum(count_over_time({job="mix"}[20m]))`,
			`sum by (job) (count_over_time({job="mix"} |= "timeout" [1m]))`,
			`sum by (job) (bytes_over_time({job="mix"} != "timeout" [30s]))`,
			`sum by (trace_id) (count_over_time({job="mix"}[5m]))`,
		} {
			got, want := eval(q, query, ts(-600), ts(0), int64(time.Minute)), eval(entriesOnly{q}, query, ts(-600), ts(0), int64(time.Minute))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: %s: counted %v, line by line %v", stage, query, got, want)
			}
		}
	}
	check("interleaved senders", true)

	// A retried push: sender 1's third push again, whose first copy is in a chunk.
	push(interleavedBatch(1, 2*perPush, perPush))
	check("after a retried push", false)

	// An unclean stop: the WAL replays the retried push into the head again.
	e.bkt = nil
	e.open()
	q = e.store.Querier("t1").(*querier)
	check("after replay", false)

	// A crash between a flush's upload and its checkpoint: the replay must not add the flushed lines again.
	push(interleavedBatch(2, 0, perPush)) // one more retry, of a line in the oldest chunk
	crash := errors.New("injected crash after index upload")
	e.store.afterIndexHook = func() error { return crash }
	if err := e.store.Flush(context.Background(), true); !errors.Is(err, crash) {
		t.Fatalf("flush: %v, want the injected crash", err)
	}
	e.bkt = nil
	e.open()
	q = e.store.Querier("t1").(*querier)
	check("after a crash between upload and checkpoint", false)

	// Compaction merges the small chunks, dropping the copies it finds among them.
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("after compaction", false)
	e.close()
}

func TestSpansOf(t *testing.T) {
	for _, tc := range []struct {
		ts   []int64
		want [][2]int64
	}{
		{nil, nil},
		{[]int64{5}, [][2]int64{{5, 5}}},
		{[]int64{5, 5, 5}, [][2]int64{{5, 5}}},
		{[]int64{1, 2, 3, 10, 11, 30}, [][2]int64{{1, 1}, {2, 2}, {3, 3}, {10, 10}, {11, 11}, {30, 30}}},
		// Nine gaps: the seven largest (of 100) are cut, those of 5 and 95 not.
		{[]int64{0, 100, 200, 205, 300, 400, 500, 600, 700, 800}, [][2]int64{{0, 0}, {100, 100}, {200, 300}, {400, 400}, {500, 500}, {600, 600}, {700, 700}, {800, 800}}},
		// Equal timestamps stay in one span, whatever the gaps.
		{[]int64{1, 1, 1, 2, 2, 9, 9}, [][2]int64{{1, 1}, {2, 2}, {9, 9}}},
	} {
		got := spansOf(len(tc.ts), func(i int) int64 { return tc.ts[i] })
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%v: spans %v, want %v", tc.ts, got, tc.want)
		}
		if len(tc.ts) > 0 && !validSpans(got, tc.ts[0], tc.ts[len(tc.ts)-1]) {
			t.Errorf("%v: spans %v not valid", tc.ts, got)
		}
	}
	for _, tc := range []struct {
		ss         [][2]int64
		minT, maxT int64
		ok         bool
	}{
		{[][2]int64{{1, 3}, {5, 9}}, 1, 9, true},
		{nil, 1, 9, false},
		{[][2]int64{{1, 3}, {3, 9}}, 1, 9, false},
		{[][2]int64{{1, 3}, {5, 8}}, 1, 9, false},
		{[][2]int64{{2, 3}, {5, 9}}, 1, 9, false},
		{[][2]int64{{1, 3}, {9, 5}}, 1, 5, false},
		{[][2]int64{{5, 9}, {1, 3}}, 5, 3, false},
	} {
		if got := validSpans(tc.ss, tc.minT, tc.maxT); got != tc.ok {
			t.Errorf("validSpans(%v, %d, %d) = %v, want %v", tc.ss, tc.minT, tc.maxT, got, tc.ok)
		}
	}
}

// FuzzSpansOf: whatever the timestamps, every one lies in a span and the spans are valid.
func FuzzSpansOf(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 201, 7})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts := make([]int64, len(b))
		for i, x := range b {
			ts[i] = int64(x) * int64(x)
		}
		ss, _ := spansOfUnsorted(ts, nil)
		if len(ts) == 0 {
			if ss != nil {
				t.Fatalf("spans %v of nothing", ss)
			}
			return
		}
		lo, hi := ts[0], ts[0]
		for _, x := range ts {
			lo, hi = min(lo, x), max(hi, x)
			in := false
			for _, s := range ss {
				in = in || s[0] <= x && x <= s[1]
			}
			if !in {
				t.Fatalf("%d lies in none of %v", x, ss)
			}
		}
		if !validSpans(ss, lo, hi) {
			t.Fatalf("spans %v of %v not valid", ss, ts)
		}
	})
}

// TestInterleavedLineByLine: two senders interleave line by line in one stream, one a push behind the other, so
// every chunk's spans meet the next one's and the read compares them. Each line is counted once, by the counting
// path and the entry path alike: after a retried push of a flushed line, after compaction, and when a crash
// leaves compaction's merged chunk and its inputs both listed.
func TestInterleavedLineByLine(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.ChunkTargetSize = 8 << 10
		c.MinFreeDiskBytes = 0
		c.Limits.IngestionRateMB = 1024
		c.Limits.IngestionBurstSizeMB = 1024
	})
	cb := &countingBucket{Bucket: e.bkt}
	e.store.Close(context.Background())
	e.bkt = cb
	e.open()
	batch := func(w, r int) []PushStream {
		ps := PushStream{Labels: labels.FromStrings("job", "fine")}
		for k := r * 20; k < r*20+20; k++ {
			ps.Entries = append(ps.Entries, logql.Entry{Timestamp: ts(-500) + int64(2*k+w)*int64(time.Millisecond),
				Line: fmt.Sprintf("sender=%d n=%d", w, k)})
		}
		return []PushStream{ps}
	}
	push := func(ps []PushStream) {
		t.Helper()
		if err := e.store.Push(context.Background(), "t1", ps); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		t.Helper()
		if err := e.store.Flush(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	const rounds = 24
	total := 0
	for r := 0; r <= rounds; r++ {
		if r < rounds {
			push(batch(0, r))
			total += 20
		}
		if r > 0 {
			push(batch(1, r-1)) // a push behind: older than sender 0's newest line
			total += 20
		}
		if r%4 == 3 {
			flush()
		}
	}
	flush()
	chunks := func() []*chunkMeta {
		st := e.store.tenantIfExists("t1").matchStreams([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "fine")})[0]
		st.mu.Lock()
		defer st.mu.Unlock()
		return append([]*chunkMeta(nil), st.chunks...)
	}
	cs := chunks()
	if len(cs) < 5 {
		t.Fatalf("%d chunks; the test wants several", len(cs))
	}
	if newDedup(cs, nil) == nil {
		t.Fatal("the chunks' spans do not meet: the senders do not interleave")
	}
	q := e.store.Querier("t1").(*querier)
	count := func(stage string) {
		t.Helper()
		expr, err := logql.ParseSampleExpr(`sum(count_over_time({job="fine"}[20m]))`)
		if err != nil {
			t.Fatal(err)
		}
		for _, qr := range []logql.Querier{q, entriesOnly{q}} {
			var stats logql.Stats
			res, _, err := (&logql.Engine{}).EvalRange(context.Background(), qr, expr, ts(0), ts(0), 0, &stats)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 1 || res[0].Points[0].V != float64(total) {
				t.Fatalf("%s: count %v, want %d", stage, res, total)
			}
		}
	}
	count("interleaved chunks")

	// A retried push of a flushed line.
	push(batch(1, 5))
	flush()
	after := chunks()
	count("after a retried push")

	// Compaction, and a crash that leaves its inputs listed too (the new index written, the old index files not
	// yet deleted).
	saved := map[string][]byte{}
	bdir := filepath.Join(e.dir, "bucket")
	if err := filepath.WalkDir(bdir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			saved[p], err = os.ReadFile(p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := map[string]bool{}
	for _, c := range after {
		before[c.Key] = true
	}
	merged := 0
	for _, c := range chunks() {
		if !before[c.Key] {
			merged++
		}
	}
	if merged == 0 {
		t.Fatal("compaction merged nothing; the test wants a merged chunk")
	}
	count("after compaction")
	for p, b := range saved {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.bkt = nil
	e.open()
	q = e.store.Querier("t1").(*querier)
	if n := len(chunks()); n <= len(after) {
		t.Fatalf("%d chunks after the simulated crash, want the merged chunks and their inputs (more than %d)", n, len(after))
	}
	count("after a crash between compaction's index and its deletes")
	e.close()
}

// TestRepeatOfPreviousLine: the push path drops an entry equal in time, line and structured metadata to the
// one just before it in the stream, and keeps one that differs in its metadata only (Loki 3.7's ingester:
// validateEntries compares the three).
func TestRepeatOfPreviousLine(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MinFreeDiskBytes = 0 })
	defer e.close()
	md := labels.FromStrings
	x := func(m labels.Labels) logql.Entry { return logql.Entry{Timestamp: ts(-10), Line: "same", Metadata: m} }
	if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: md("job", "rep"), Entries: []logql.Entry{
		x(md("trace_id", "a")), x(md("trace_id", "a")), x(md("trace_id", "b")), x(md("trace_id", "b")), x(labels.EmptyLabels()),
	}}}); err != nil {
		t.Fatal(err)
	}
	expr, err := logql.ParseSampleExpr(`sum(count_over_time({job="rep"}[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	var st logql.Stats
	res, _, err := (&logql.Engine{}).EvalRange(context.Background(), e.store.Querier("t1"), expr, ts(0), ts(0), 0, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Points[0].V != 3 {
		t.Fatalf("count %v, want 3 (a, b, no metadata)", res)
	}
}

// TestRetryWithinHeadWrittenOnce: a push retried while its first copy is still in the head, with other lines
// between the two, is written to the chunk once, as Loki's head block keeps it once; lines of the same time
// that differ in line or metadata are kept.
func TestRetryWithinHeadWrittenOnce(t *testing.T) {
	e, batch, push := retryFixture(t)
	defer e.close()
	md := labels.FromStrings
	push(batch...)
	push(logql.Entry{Timestamp: ts(-25), Line: "between"})
	push(batch...)                                                                  // the retry
	push(logql.Entry{Timestamp: ts(-30), Line: "a", Metadata: md("trace_id", "2")}) // same time and line, other metadata
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	st := e.store.tenantIfExists("t1").matchStreams([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "retry")})[0]
	if len(st.chunks) != 1 || st.chunks[0].Entries != 5 {
		t.Fatalf("chunks %v, want one of 5 entries", st.chunks)
	}
	expr, err := logql.ParseSampleExpr(`sum(count_over_time({job="retry"}[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	var stats logql.Stats
	res, _, err := (&logql.Engine{}).EvalRange(context.Background(), e.store.Querier("t1"), expr, ts(0), ts(0), 0, &stats)
	if err != nil || len(res) != 1 || res[0].Points[0].V != 5 {
		t.Fatalf("count %v (%v), want 5", res, err)
	}
}

// TestRetryIntoHeadReadOnce: a push retried while its first copy is in the head (the answer was lost, or the
// process restarted and replayed it) is read once, whether the copies lie in the open tail, in one sealed
// block and the tail, or in two blocks; as Loki's head block keeps the entry once.
func TestRetryIntoHeadReadOnce(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	e, a, push := retryFixture(t)
	defer e.close()
	want := 3
	check := func(stage string) {
		t.Helper()
		expr, err := logql.ParseSampleExpr(`sum(count_over_time({job="retry"}[5m]))`)
		if err != nil {
			t.Fatal(err)
		}
		q := e.store.Querier("t1").(*querier)
		for _, qr := range []logql.Querier{q, entriesOnly{q}} {
			var stats logql.Stats
			res, _, err := (&logql.Engine{}).EvalRange(context.Background(), qr, expr, ts(0), ts(0), 0, &stats)
			if err != nil || len(res) != 1 || res[0].Points[0].V != float64(want) {
				t.Fatalf("%s: count %v (%v), want %d", stage, res, err, want)
			}
		}
		if _, sr := e.queryRange(`{job="retry"}`, "X-Scope-OrgID", "t1"); countLines(sr) != want {
			t.Fatalf("%s: log query %v, want %d lines", stage, lines(sr), want)
		}
	}
	push(a...)
	push(logql.Entry{Timestamp: ts(-25), Line: "between"})
	want++
	push(a...) // in the tail with its first copy
	check("both copies in the tail")
	e.bkt = nil
	e.open() // unclean: the replay puts both pushes in the head again
	push(a...)
	check("retried after a replay")
	headBlockBytes = 1 // every push is sealed on its own
	push(a...)
	push(logql.Entry{Timestamp: ts(-24), Line: "after"})
	want++
	push(a...)
	check("copies in sealed blocks and the tail")
	if err := e.store.Flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	check("after the cut")
}

func TestDedupTail(t *testing.T) {
	md := labels.FromStrings
	x := func(ts int64, line string, m ...string) logql.Entry {
		return logql.Entry{Timestamp: ts, Line: line, Metadata: md(m...)}
	}
	for _, tc := range []struct {
		in   []logql.Entry
		want int
	}{
		{nil, 0},
		{[]logql.Entry{x(1, "a"), x(2, "a"), x(1, "b")}, 3},
		{[]logql.Entry{x(1, "a"), x(1, "b"), x(1, "a")}, 2},
		{[]logql.Entry{x(1, "a", "k", "v"), x(1, "a", "k", "w"), x(1, "a", "k", "v"), x(1, "a")}, 3},
	} {
		got := dedupTail(tc.in)
		if len(got) != tc.want {
			t.Errorf("%v: kept %v, want %d", tc.in, got, tc.want)
		}
		if len(got) == len(tc.in) && len(got) > 0 && &got[0] != &tc.in[0] {
			t.Errorf("%v: copied a tail without repeats", tc.in)
		}
	}
}

// retryFixture is a store with one batch of three entries for the retry tests (two share a timestamp, two a
// line and metadata) and a push of entries to its stream {job="retry"} of tenant t1.
func retryFixture(t *testing.T) (*env, []logql.Entry, func(...logql.Entry)) {
	e := newEnv(t, func(c *Config) { c.MinFreeDiskBytes = 0 })
	md := labels.FromStrings
	batch := []logql.Entry{
		{Timestamp: ts(-30), Line: "a", Metadata: md("trace_id", "1")},
		{Timestamp: ts(-30), Line: "b"},
		{Timestamp: ts(-20), Line: "a", Metadata: md("trace_id", "1")},
	}
	push := func(es ...logql.Entry) {
		t.Helper()
		if err := e.store.Push(context.Background(), "t1", []PushStream{{Labels: md("job", "retry"), Entries: es}}); err != nil {
			t.Fatal(err)
		}
	}
	return e, batch, push
}
