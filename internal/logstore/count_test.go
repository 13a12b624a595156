package logstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logql"
)

// entriesOnly hides a querier's Counter: the engine then reads every line through SelectLogs, the reference
// the counting path must equal.
type entriesOnly struct{ q *querier }

func (e entriesOnly) SelectLogs(ctx context.Context, p logql.SelectParams, fn func(labels.Labels, logql.Entry) error) error {
	return e.q.SelectLogs(ctx, p, fn)
}
func (entriesOnly) AppliesLineFilter() bool { return true }

var countT0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()

func countSec(i int) int64 { return countT0 + int64(i)*int64(time.Second) }

// countFixture is lines lo..hi-1 of the counting tests' streams: stream a at every second with a trace id, and
// on every third line a level and on every seventh an "app" (the stream label's name) in structured metadata;
// stream b at every other second with no metadata.
func countFixture(lo, hi int) []PushStream {
	a := PushStream{Labels: labels.FromStrings("app", "a", "env", "t")}
	b := PushStream{Labels: labels.FromStrings("app", "b", "env", "t")}
	for i := lo; i < hi; i++ {
		word := "ok"
		if i%4 == 0 {
			word = "timeout"
		}
		md := []string{"trace_id", fmt.Sprintf("%032x", i/5)}
		if i%3 == 0 {
			md = append(md, "level", []string{"info", "warn"}[i%2])
		}
		if i%7 == 0 {
			md = append(md, "app", "from-metadata")
		}
		a.Entries = append(a.Entries, logql.Entry{Timestamp: countSec(i), Line: fmt.Sprintf(`{"n":%d,"msg":"%s"}`, i, word), Metadata: labels.FromStrings(md...)})
		if i%2 == 0 {
			b.Entries = append(b.Entries, logql.Entry{Timestamp: countSec(i), Line: fmt.Sprintf("n=%d %s", i, word), Metadata: labels.EmptyLabels()})
		}
	}
	return []PushStream{a, b}
}

// countStore holds lines 0..599 in chunks of about 40 lines of stream a, lines 200..229 pushed again after
// their chunks were flushed (and flushed again: two chunks with the same entries), and lines 600..699 in the
// head, in blocks of about ten lines of stream a, pushed out of order, with lines 560..579 again.
func countStore(t *testing.T) (*Store, bucket.Bucket) {
	t.Helper()
	dir := t.TempDir()
	bkt, err := bucket.New(context.Background(), fsBucket(t, filepath.Join(dir, "bucket")), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.ChunkTargetSize = 1024
	cfg.FlushCheckPeriod = time.Hour
	cfg.CompactionInterval = time.Hour
	cfg.Limits.RejectOldSamples = false
	cfg.Limits.CreationGracePeriod = 100 * 365 * 24 * time.Hour
	s, err := Open(context.Background(), cfg, bkt, Options{Now: func() time.Time { return time.Unix(0, countSec(700)) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	push := func(lo, hi int) {
		if err := s.Push(context.Background(), "t", countFixture(lo, hi)); err != nil {
			t.Fatal(err)
		}
	}
	flush := func() {
		if err := s.Flush(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	for lo := 0; lo < 600; lo += 150 {
		push(lo, lo+150)
		flush()
	}
	push(200, 230) // again, after their chunks were flushed
	flush()
	// The head: small sealed blocks, out of order, and lines that are in chunks already.
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	headBlockBytes = 300
	for _, r := range [][2]int{{650, 700}, {600, 650}, {560, 580}} {
		for lo := r[0]; lo < r[1]; lo += 10 {
			push(lo, lo+10)
		}
	}
	return s, bkt
}

func TestCountMatchesEntries(t *testing.T) {
	s, _ := countStore(t)
	q := s.Querier("t").(*querier)
	sec := int64(time.Second)
	for _, tc := range []struct {
		query      string
		start, end int // seconds from t0
		step       int64
	}{
		{`sum(count_over_time({env="t"}[20m]))`, 640, 640, 0},
		{`sum(count_over_time({env="t"}[1m]))`, 0, 700, 60},
		{`sum(count_over_time({env="t"}[90s]))`, 13, 660, 7},
		{`sum by (app) (count_over_time({env="t"}[1m]))`, 0, 700, 60},
		{`sum by (level) (count_over_time({app="a"}[2m]))`, 0, 700, 30},
		{`sum by (app, level, env) (rate({env="t"} |= "timeout" [90s]))`, 0, 700, 45},
		{`sum by (level, level) (count_over_time({env="t"}[1m]))`, 0, 700, 60},
		{`sum(bytes_over_time({env="t"} != "ok" [45s]))`, 0, 700, 20},
		{`sum by (env) (bytes_rate({app="a"}[2m]))`, 0, 700, 60},
		{`sum(count_over_time({env="t"} | json [5m]))`, 0, 700, 60},
		{`sum(count_over_time({env="t"}[1m] offset 30s))`, 0, 700, 60},
		{`sum(count_over_time({env="t"} |~ "time.ut" [10m]))`, 300, 640, 0},
		{`sum(count_over_time({app="nothing"}[10m]))`, 300, 640, 0},
		{`sum by (trace_id) (count_over_time({app="a"}[10s]))`, 100, 300, 10},
		{`sum(count_over_time({env="t"}[5s]))`, 540, 700, 5},
		{`sum by (level) (bytes_over_time({env="t"} |= "timeout" [17s]))`, 540, 700, 3},
		{`sum(count_over_time({env="t"}[100s]))`, 700, 700, 0},
		{`sum by (level, detected_level) (count_over_time({env="t"} | drop __error__[1m]))`, 0, 700, 60},
		{`sum by (level) (count_over_time({app="a"} | drop __error__, trace_id, app="from-metadata" [2m]))`, 0, 700, 60},
		{`sum by (level) (count_over_time({app="a"} | drop level [2m]))`, 0, 700, 60},
	} {
		t.Run(tc.query, func(t *testing.T) {
			expr, err := logql.ParseSampleExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			start, end := countSec(tc.start), countSec(tc.end)
			var stC, stE logql.Stats
			eng := &logql.Engine{}
			got, _, err := eng.EvalRange(context.Background(), q, expr, start, end, tc.step*sec, &stC)
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := eng.EvalRange(context.Background(), entriesOnly{q}, expr, start, end, tc.step*sec, &stE)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("counted:\n%v\nread line by line:\n%v", got, want)
			}
			if stC.TotalLinesProcessed != stE.TotalLinesProcessed || stC.TotalBytesProcessed != stE.TotalBytesProcessed {
				t.Errorf("processed %d lines, %d bytes; line by line %d, %d", stC.TotalLinesProcessed, stC.TotalBytesProcessed,
					stE.TotalLinesProcessed, stE.TotalBytesProcessed)
			}
		})
	}
}

// TestCountChunkEdges puts windows on the edges of stream a's chunks: exactly covering one, all but its first
// line, and ending one line before its last. Chunks that no other chunk overlaps and a window covers whole
// are answered from the index: with their objects removed they still count.
func TestCountChunkEdges(t *testing.T) {
	s, bkt := countStore(t)
	q := s.Querier("t").(*querier)
	td := s.tenantIfExists("t")
	st := td.matchStreams([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "app", "a")})[0]
	st.mu.Lock()
	chunks := append([]*chunkMeta(nil), st.chunks...)
	hs := headSpans(st.blocks, st.tail)
	blocks := len(st.blocks)
	st.mu.Unlock()
	if blocks < 5 {
		t.Fatalf("%d head blocks; the test wants several", blocks)
	}
	if len(chunks) < 10 {
		t.Fatalf("%d chunks; the test wants many", len(chunks))
	}
	sec := int64(time.Second)
	count := func(qr logql.Querier, at int64, rng int64) float64 {
		t.Helper()
		expr, err := logql.ParseSampleExpr(fmt.Sprintf(`sum(count_over_time({app="a"}[%ds]))`, rng))
		if err != nil {
			t.Fatal(err)
		}
		var stats logql.Stats
		res, _, err := (&logql.Engine{}).EvalRange(context.Background(), qr, expr, at, at, 0, &stats)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) == 0 {
			return 0
		}
		return res[0].Points[0].V
	}
	dd := newDedup(chunks, hs)
	var alone []*chunkMeta
	for _, c := range chunks {
		span := (c.MaxT - c.MinT) / sec
		for _, w := range []struct {
			name    string
			at, rng int64
		}{
			{"exact", c.MaxT, span + 1},
			{"all but the first line", c.MaxT, span},
			{"all but the last line", c.MaxT - sec, span},
			{"the chunk and one line either side", c.MaxT + sec, span + 3},
		} {
			if w.rng <= 0 {
				continue
			}
			if got, want := count(q, w.at, w.rng), count(entriesOnly{q}, w.at, w.rng); got != want {
				t.Errorf("chunk %d..%d s, %s: counted %v, line by line %v", (c.MinT-countT0)/sec, (c.MaxT-countT0)/sec, w.name, got, want)
			}
		}
		if got := count(q, c.MaxT, span+1); !dd.overlaps(c.spans()) && got != float64(c.Entries) {
			t.Errorf("chunk %d..%d s holds %d lines, counted %v", (c.MinT-countT0)/sec, (c.MaxT-countT0)/sec, c.Entries, got)
		}
		if !dd.overlaps(c.spans()) {
			alone = append(alone, c)
		}
	}
	if len(alone) == len(chunks) || len(alone) == 0 {
		t.Fatalf("%d of %d chunks overlap none; the test wants both kinds", len(alone), len(chunks))
	}
	for _, c := range chunks {
		if err := bkt.Delete(context.Background(), c.Key); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range alone {
		if got := count(q, c.MaxT, (c.MaxT-c.MinT)/sec+1); got != float64(c.Entries) {
			t.Errorf("chunk %d..%d s, object removed: counted %v, want %d from the index", (c.MinT-countT0)/sec, (c.MaxT-countT0)/sec, got, c.Entries)
		}
	}
}

// TestCountBudget: the counting path stops at the same limits as the line-by-line one.
func TestCountBudget(t *testing.T) {
	s, _ := countStore(t)
	q := s.Querier("t").(*querier)
	for _, tc := range []struct {
		name  string
		lim   logql.Limits
		query string
	}{
		{"max_query_bytes_read", logql.Limits{MaxBytesRead: 2000}, `sum(count_over_time({env="t"}[20m]))`},
		{"max_query_bytes_read, filtered", logql.Limits{MaxBytesRead: 2000}, `sum(count_over_time({env="t"} |= "timeout" [20m]))`},
		{"max_fetched_samples", logql.Limits{MaxSamples: 5}, `sum by (level) (count_over_time({env="t"}[1m]))`},
		{"max series", logql.Limits{MaxSeries: 1}, `sum by (trace_id) (count_over_time({env="t"}[1m]))`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := logql.ParseSampleExpr(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			for _, qr := range []logql.Querier{q, entriesOnly{q}} {
				var st logql.Stats
				_, _, err := (&logql.Engine{Limits: tc.lim}).EvalRange(context.Background(), qr, expr, countSec(0), countSec(700), 60*int64(time.Second), &st)
				if !errors.Is(err, logql.ErrLimit) {
					t.Errorf("%T: err = %v, want a limit", qr, err)
				}
			}
		})
	}
}

// TestDedupSameTimestamp: entries that share a timestamp but differ in line or metadata are all kept; an
// equal entry from another source is dropped, from the same source kept (a source holds no duplicates).
func TestDedupSameTimestamp(t *testing.T) {
	d := newDedup([]*chunkMeta{{MinT: 0, MaxT: 10}, {MinT: 5, MaxT: 20}}, nil)
	md := func(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
	for i, tc := range []struct {
		ts   int64
		line string
		meta labels.Labels
		src  int
		want bool
	}{
		{7, "a", md(), 0, false},
		{7, "b", md(), 0, false},
		{7, "a", md("k", "v"), 0, false},
		{7, "b", md(), 1, true},
		{7, "a", md("k", "v"), 1, true},
		{7, "a", md("k", "w"), 1, false},
		{7, "a", md(), 0, false},
		{7, "c", md(), 1, false},
		{7, "c", md(), 0, true},
		{3, "a", md(), 1, false}, // outside the overlap: never compared
		{3, "a", md(), 0, false},
	} {
		if got := d.seen(logql.Entry{Timestamp: tc.ts, Line: tc.line, Metadata: tc.meta}, tc.src); got != tc.want {
			t.Errorf("%d: seen(%d %q %v from %d) = %v, want %v", i, tc.ts, tc.line, tc.meta, tc.src, got, tc.want)
		}
	}
}
