package logstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/sprout-otel/sprout/internal/logql"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// TestSealedHeadsAnswerAlike pushes the same lines into a store whose heads stay decoded and into one that
// seals them into compressed blocks every few hundred bytes, and checks that every API answers the same:
// log queries both ways with and without limits and filters, trace-id lookups, metric queries, stats, volume,
// series and labels; then the same after a flush that cuts some heads and keeps others.
func TestSealedHeadsAnswerAlike(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	fill := func(e *env) {
		for i := 0; i < 120; i++ {
			var ps []PushStream
			for s := 0; s < 3; s++ {
				sec := i*3 + s - 300
				if i%17 == 5 {
					sec -= 40 // out of order
				}
				md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i/4))
				if i%5 == 0 {
					md = labels.EmptyLabels()
				}
				line := fmt.Sprintf("level=%s svc=%d n=%d msg=\"request %d\"", []string{"info", "error", "warn"}[i%3], s, i, i*7)
				es := []logql.Entry{{Timestamp: ts(sec), Line: line, Metadata: md}}
				if i%11 == 0 {
					es = append(es, es[0]) // an exact duplicate, dropped
				}
				ps = append(ps, PushStream{Labels: labels.FromStrings("app", fmt.Sprint("a", s), "env", "prod"), Entries: es})
			}
			if err := e.store.Push(context.Background(), tenant.Default, ps); err != nil {
				t.Fatal(err)
			}
		}
	}
	queries := []url.Values{}
	for _, q := range []string{`{env="prod"}`, `{app="a1"}`, `{env="prod"} |= "error"`, `{env="prod"} | trace_id="0000000000000000000000000000000a"`,
		`{env="prod"} |= "request 7" | logfmt | level="info"`} {
		for _, dir := range []string{"backward", "forward"} {
			for _, limit := range []string{"7", "1000"} {
				queries = append(queries, url.Values{"query": {q}, "direction": {dir}, "limit": {limit}})
			}
		}
	}
	for _, q := range []string{`sum by (app) (count_over_time({env="prod"} |= "error" [1m]))`, `rate({app="a2"}[2m])`, `sum(bytes_over_time({env="prod"}[5m]))`} {
		queries = append(queries, url.Values{"query": {q}, "step": {"60"}})
	}
	// Stats are compared while everything is in heads; over chunks, what a limited query's parallel readers
	// skip before the cutoff depends on timing, so only the results are. A limited query or a trace-id lookup
	// skips sealed blocks (beyond the cutoff, or without the trace id in their filter) that an unsealed tail
	// has to read, so their stats differ by design: only their results are compared.
	answers := func(e *env, stats bool) []byte {
		var out bytes.Buffer
		rng := url.Values{"start": {fmt.Sprint(ts(-600))}, "end": {fmt.Sprint(ts(600))}}
		for _, q := range queries {
			v := url.Values{}
			for k, x := range q {
				v[k] = x
			}
			for k, x := range rng {
				v[k] = x
			}
			code, b := e.get("/loki/api/v1/query_range", v)
			if !stats || q.Get("limit") == "7" || strings.Contains(q.Get("query"), "trace_id") {
				b = dropStats(t, b)
			}
			fmt.Fprintf(&out, "%s %d %s\n", q.Encode(), code, normalize(t, b))
		}
		narrow := url.Values{"query": {`{env="prod"}`}, "start": {fmt.Sprint(ts(-250))}, "end": {fmt.Sprint(ts(-100))}}
		for _, path := range []string{"/loki/api/v1/index/stats", "/loki/api/v1/index/volume", "/loki/api/v1/series", "/loki/api/v1/labels"} {
			for _, v := range []url.Values{narrow, rng} {
				if path == "/loki/api/v1/series" {
					v = url.Values{"match[]": {`{env="prod"}`}, "start": v["start"], "end": v["end"]}
				}
				if path != "/loki/api/v1/series" && path != "/loki/api/v1/labels" && v["query"] == nil {
					v = url.Values{"query": {`{env="prod"}`}, "start": v["start"], "end": v["end"]}
				}
				code, b := e.get(path, v)
				fmt.Fprintf(&out, "%s %s %d %s\n", path, v.Encode(), code, normalize(t, b))
			}
		}
		return out.Bytes()
	}
	run := func(block int) (before, after []byte, sealed int) {
		headBlockBytes = block
		e := newEnv(t, func(c *Config) { c.ChunkTargetSize = 4096 })
		defer e.close()
		fill(e)
		for _, st := range e.store.tenant(tenant.Default).matchStreams(nil) {
			st.mu.Lock()
			sealed += len(st.blocks)
			st.mu.Unlock()
		}
		before = answers(e, true)
		if err := e.store.Flush(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		return before, answers(e, false), sealed
	}
	plainBefore, plainAfter, n := run(1 << 30)
	if n != 0 {
		t.Fatalf("%d blocks with sealing off", n)
	}
	sealedBefore, sealedAfter, n := run(300)
	if n < 10 {
		t.Fatalf("only %d blocks sealed", n)
	}
	if !bytes.Equal(plainBefore, sealedBefore) {
		t.Errorf("answers differ with sealed heads:\n%s", diffLines(plainBefore, sealedBefore))
	}
	if !bytes.Equal(plainAfter, sealedAfter) {
		t.Errorf("answers differ with sealed heads after a flush:\n%s", diffLines(plainAfter, sealedAfter))
	}
}

func dropStats(t *testing.T, b []byte) []byte {
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	if d, ok := v["data"].(map[string]any); ok {
		delete(d, "stats")
	}
	out, _ := json.Marshal(v)
	return out
}

func diffLines(a, b []byte) string {
	al, bl := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(al) && i < len(bl); i++ {
		if !bytes.Equal(al[i], bl[i]) {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines vs %d", len(al), len(bl))
}

// TestBlocksToChunks checks that re-encoding sealed head blocks gives, byte for byte, the chunk payloads that
// encoding the sorted decoded entries gives, split where writeChunks splits, with the same summaries.
func TestBlocksToChunks(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	headBlockBytes = 500
	lbs := labels.FromStrings("app", "a", "env", "prod")
	for _, tc := range []struct {
		name     string
		target   int
		outOfOrd bool
	}{
		{"one part", 1 << 20, false},
		{"split into parts", 1200, false},
		{"line over the target", 30, false},
		{"out of order", 1 << 20, true},
		{"out of order, split", 1000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stream{lbs: lbs}
			var all []logql.Entry
			for i := 0; i < 300; i++ {
				md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i/7), "detected_level", "info")
				if i%9 == 0 {
					md = labels.EmptyLabels()
				}
				sec := i
				if tc.outOfOrd && i == 150 {
					sec = 3
				}
				e := logql.Entry{Timestamp: ts(sec), Line: fmt.Sprintf("line %d %s", i, strings.Repeat("y", i%40)), Metadata: md}
				st.append([]logql.Entry{e}, testNow)
				all = append(all, e)
			}
			st.seal()
			if len(st.blocks) < 3 {
				t.Fatalf("%d blocks", len(st.blocks))
			}
			parts, err := blocksToChunks(lbs, st.blocks, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			sort.SliceStable(all, func(i, j int) bool { return all[i].Timestamp < all[j].Timestamp })
			var want []rawChunk
			for es := all; len(es) > 0; {
				n, size := 0, 0
				for n < len(es) && (n == 0 || size+len(es[n].Line) <= tc.target) {
					size += len(es[n].Line)
					n++
				}
				e := encbuf{}
				e.payload(lbs, es[:n])
				c := rawChunk{raw: e.b, minT: es[0].Timestamp, maxT: es[n-1].Timestamp, n: n, lineBytes: size, traces: map[string]struct{}{}}
				for _, en := range es[:n] {
					if id := en.Metadata.Get("trace_id"); id != "" {
						c.traces[id] = struct{}{}
					}
				}
				want = append(want, c)
				es = es[n:]
			}
			if len(parts) != len(want) {
				t.Fatalf("%d parts, want %d", len(parts), len(want))
			}
			for i := range want {
				g, w := parts[i], want[i]
				if !bytes.Equal(g.raw, w.raw) || g.minT != w.minT || g.maxT != w.maxT || g.n != w.n || g.lineBytes != w.lineBytes || len(g.traces) != len(w.traces) {
					t.Fatalf("part %d: n=%d/%d lineBytes=%d/%d minT=%d/%d maxT=%d/%d traces=%d/%d raw equal=%v", i, g.n, w.n, g.lineBytes, w.lineBytes, g.minT, w.minT, g.maxT, w.maxT, len(g.traces), len(w.traces), bytes.Equal(g.raw, w.raw))
				}
				for id := range w.traces {
					if _, ok := g.traces[id]; !ok {
						t.Fatalf("part %d lacks trace %s", i, id)
					}
				}
			}
		})
	}
}

// TestBlockRecord: a sealed block's WAL record decodes to the block's entries, whatever dst held before.
func TestBlockRecord(t *testing.T) {
	st := &stream{lbs: labels.FromStrings("job", "a")}
	var es []logql.Entry
	for i := 0; i < 50; i++ {
		md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i/3))
		if i%7 == 0 {
			md = labels.EmptyLabels()
		}
		es = append(es, logql.Entry{Timestamp: int64(1000 - i*(i%3)), Line: fmt.Sprintf("line %d %s", i, strings.Repeat("x", i)), Metadata: md})
	}
	st.tail = es
	st.seal()
	want, err := allBlockEntries(st.blocks)
	if err != nil {
		t.Fatal(err)
	}
	for _, dst := range [][]byte{nil, []byte("stale bytes of an earlier record"), make([]byte, 0, 1<<16)} {
		rec, err := appendBlockRecord(dst[:0], "tenant-1", st.lbs, &st.blocks[0])
		if err != nil {
			t.Fatal(err)
		}
		r, err := decodeWALRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		if r.tenant != "tenant-1" || len(r.streams) != 1 || !labels.Equal(r.streams[0].labels, st.lbs) {
			t.Fatalf("record of tenant %q with %d streams", r.tenant, len(r.streams))
		}
		if got := r.streams[0].entries; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("entries\n%v\nwant\n%v", got, want)
		}
	}
	if _, err := appendBlockRecord(nil, "t", st.lbs, &headBlock{data: []byte{0xff}}); err == nil {
		t.Fatal("a damaged block made a record")
	}
}

// TestCheckpointOfSealedHeads writes a checkpoint while heads hold sealed blocks and an open tail (none due for
// a cut), pushes more, reopens without closing (as after kill -9), and checks every line of both tenants is
// there once, with its time, text and metadata, and that the checkpoint replaced the segments before it.
func TestCheckpointOfSealedHeads(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	headBlockBytes = 300
	e := newEnv(t, func(c *Config) { c.MaxHeadBytes = 2000; c.ChunkTargetSize = 1 << 20 })
	want := map[string][]string{}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			tid := []string{"t1", "t2"}[i%2]
			sec := i
			if i%13 == 4 {
				sec -= 30 // out of order
			}
			md := labels.FromStrings("trace_id", fmt.Sprintf("%032x", i/5))
			if i%6 == 0 {
				md = labels.EmptyLabels()
			}
			e2 := logql.Entry{Timestamp: ts(sec), Line: fmt.Sprintf("level=info n=%d msg=%q", i, strings.Repeat("y", i%40)), Metadata: md}
			lbs := labels.FromStrings("job", fmt.Sprint("j", i%3))
			if err := e.store.Push(context.Background(), tid, []PushStream{{Labels: lbs, Entries: []logql.Entry{e2}}}); err != nil {
				t.Fatal(err)
			}
			want[tid] = append(want[tid], fmt.Sprint(lbs.Get("job"), e2.Timestamp, e2.Line, md.Get("trace_id")))
		}
	}
	push(0, 150)
	if err := e.store.flush(context.Background(), false, false); err != nil {
		t.Fatal(err)
	}
	cps, _ := filepath.Glob(filepath.Join(e.cfg.DataDir, "wal", "checkpoint.*"))
	if len(cps) != 1 {
		t.Fatalf("checkpoints %v, want one", cps)
	}
	if n := len(e.store.TenantIDs()); n != 2 {
		t.Fatalf("%d tenants", n)
	}
	for _, st := range e.store.tenant("t1").streams {
		for _, s := range st {
			if len(s.chunks) != 0 {
				t.Fatal("a head was cut; the test wants them all in the checkpoint")
			}
		}
	}
	push(150, 200)
	e.bkt = nil
	e.open()
	for tid, w := range want {
		sel, _ := logql.ParseLogSelector(`{job=~"j.*"}`)
		var st logql.Stats
		res, err := e.store.Engine().SelectLogs(context.Background(), e.store.Querier(tid), logql.LogQuery{Expr: sel, Start: ts(-100), End: ts(10000), Limit: 10000, Direction: logql.Forward}, &st)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range res {
			for _, en := range s.Entries {
				// The answer's stream carries the structured metadata among its labels.
				got = append(got, fmt.Sprint(s.Labels.Get("job"), en.Timestamp, en.Line, s.Labels.Get("trace_id")))
			}
		}
		sort.Strings(got)
		sort.Strings(w)
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Fatalf("tenant %s after replay: %d lines, want %d\n%s", tid, len(got), len(w), strings.Join(got, "\n"))
		}
	}
}

// TestHeadBlockTraceBloom: a trace-id lookup skips the sealed head blocks whose filter lacks the id (here the
// skipped block's data is not even valid: decoding it would fail), and finds the id in the block that has it.
func TestHeadBlockTraceBloom(t *testing.T) {
	es := func(ids ...string) []logql.Entry {
		var out []logql.Entry
		for i, id := range ids {
			out = append(out, logql.Entry{Timestamp: int64(i + 1), Line: "line " + id, Metadata: labels.FromStrings("trace_id", id)})
		}
		return out
	}
	st := &stream{}
	st.tail = es("aa", "bb", "aa")
	for _, e := range st.tail {
		st.tailBytes += len(e.Line)
	}
	st.seal()
	good := st.blocks[0]
	if !good.traces.has("aa") || !good.traces.has("bb") {
		t.Fatal("the sealed block's filter lacks one of its trace ids")
	}
	if traceBloom(es()) != nil || traceBloom([]logql.Entry{{Timestamp: 1, Line: "x"}}) != nil {
		t.Error("a block without trace ids got a filter")
	}
	bad := headBlock{data: []byte{0xff, 0xff}, n: 1, minT: 1, maxT: 3, traces: traceBloom(es("cc"))}
	p := &logql.SelectParams{Start: 0, End: 10, TraceID: "aa"}
	got, err := headEntries([]headBlock{bad, good}, nil, p)
	if err != nil {
		t.Fatalf("the lookup decoded a block whose filter lacks the trace id: %v", err)
	}
	if len(got) != 2 {
		t.Errorf("found %d entries of trace aa, want 2", len(got))
	}
	p.TraceID = "cc"
	if _, err := headEntries([]headBlock{bad, good}, nil, p); err == nil {
		t.Error("the block that may hold trace cc was not read")
	}
}

// TestLimitedQuerySkipsOldHeadBlocks: a backward query with a limit reads the newest sealed blocks and skips
// those wholly older than the entries it already keeps (here an old block whose data would not even decode);
// a forward query has to read that block first, and says it cannot.
func TestLimitedQuerySkipsOldHeadBlocks(t *testing.T) {
	defer func(old int) { headBlockBytes = old }(headBlockBytes)
	headBlockBytes = 200
	e := newEnv(t, nil)
	defer e.close()
	for i := 0; i < 60; i++ {
		ps := []PushStream{{Labels: labels.FromStrings("app", "a"), Entries: []logql.Entry{{Timestamp: ts(i), Line: fmt.Sprintf("line %d of the stream", i)}}}}
		if err := e.store.Push(context.Background(), tenant.Default, ps); err != nil {
			t.Fatal(err)
		}
	}
	sts := e.store.tenant(tenant.Default).matchStreams(nil)
	if len(sts) != 1 {
		t.Fatalf("%d streams", len(sts))
	}
	st := sts[0]
	st.mu.Lock()
	if len(st.blocks) < 3 {
		st.mu.Unlock()
		t.Fatalf("only %d sealed blocks", len(st.blocks))
	}
	st.blocks = append([]headBlock{{data: []byte{0xff, 0xff}, n: 1, minT: ts(-100), maxT: ts(-90)}}, st.blocks...)
	st.mu.Unlock()
	q := func(dir string) (int, []byte) {
		return e.get("/loki/api/v1/query_range", url.Values{"query": {`{app="a"}`}, "direction": {dir}, "limit": {"5"},
			"start": {fmt.Sprint(ts(-200))}, "end": {fmt.Sprint(ts(100))}})
	}
	if code, b := q("backward"); code != 200 || !strings.Contains(string(b), "line 59 of the stream") {
		t.Errorf("backward, limit 5: %d %s", code, b)
	}
	if code, _ := q("forward"); code == 200 {
		t.Error("forward, limit 5: the oldest block was not read")
	}
	st.mu.Lock()
	st.blocks = st.blocks[1:] // the store's close writes every block to its WAL checkpoint
	st.mu.Unlock()
}
