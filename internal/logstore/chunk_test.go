package logstore

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

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
	if _, _, err := decodeChunk([]byte("SPLC\x01garbage")); err == nil {
		t.Fatal("corrupt chunk decoded")
	}
}

// FuzzDecodeStored feeds arbitrary bytes to the WAL record and chunk payload decoders, which read files that a
// crash or a bad disk may have damaged.
func FuzzDecodeStored(f *testing.F) {
	es := []logql.Entry{{Timestamp: 1, Line: "a", Metadata: labels.FromStrings("trace_id", "t")}, {Timestamp: 2, Line: "b", Metadata: labels.FromStrings("trace_id", "t")}}
	f.Add(encodeWALRecord(&walRecord{tenant: "x", streams: []walStream{{labels: labels.FromStrings("a", "b"), entries: es}}}))
	var e encbuf
	e.labels(labels.FromStrings("a", "b"))
	e.entries(es)
	f.Add(e.b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeWALRecord(b)
		_, _ = decodeSelected(string(b), &logql.SelectParams{End: 1 << 62, TraceID: "t", LineFilter: func(string) bool { return true }})
		_, _, _ = decodeChunk(append(append([]byte(nil), chunkMagic...), b...))
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
