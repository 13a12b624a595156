package traceql

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// The constructs Tempo 3 added or that Grafana's Traces Drilldown sends: union structural operators, nested set
// intrinsics, hints, histogram_over_time, compare, topk/bottomk and metrics filters.

func TestEvalTempo3(t *testing.T) {
	tr := testTrace()
	// The nested set numbering of testTrace, worked by hand (depth first, children in stored order):
	// GET /api [1,10] parent -1; db query [2,3] parent 1; handle [4,9] parent 1; cache [5,6] parent 4;
	// compute [7,8] parent 4.
	tests := []struct {
		q    string
		want string
	}{
		{`{ name = "GET /api" } &>> { kind = internal }`, "GET /api,cache,compute"},
		{`{ name = "handle" } &> { }`, "cache,compute,handle"},
		{`{ name = "cache" } &< { }`, "cache,handle"},
		{`{ name = "cache" } &<< { }`, "GET /api,cache,handle"},
		{`{ name = "cache" } &~ { }`, "cache,compute"},
		{`{ kind = server } &> { status = error }`, "GET /api,db query"},
		{`{ name = "db query" } &>> { }`, ""},
		{`({ nestedSetParent < 0 } &>> { status = error }) || ({ nestedSetParent < 0 })`, "GET /api,db query"},
		{`{ nestedSetParent < 0 }`, "GET /api"},
		{`{ nestedSetParent = -1 }`, "GET /api"},
		{`{ nestedSetLeft = 5 }`, "cache"},
		{`{ nestedSetRight = 9 }`, "handle"},
		{`{ nestedSetParent = 4 }`, "cache,compute"},
		{`{ nestedSetLeft > 1 && nestedSetRight < 9 }`, "cache,compute,db query"},
		{`{ span:childCount = 2 }`, "GET /api,handle"},
		{`{ span:childCount = 0 }`, "cache,compute,db query"},
		{`{ status = error } | select(resource.service.name, event.exception.message) with(most_recent=true)`, "db query"},
		{`{ } | count() > 4 with(most_recent=true, sample=0.1)`, "GET /api,cache,compute,db query,handle"},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := names(q.Eval(tr)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNestedSetOrphans: spans whose parent never arrived are outside the numbering, as in Tempo.
func TestNestedSetOrphans(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	root := ss.AppendEmpty()
	root.SetSpanID(pcommon.SpanID{1})
	root.SetName("root")
	orphan := ss.AppendEmpty()
	orphan.SetSpanID(pcommon.SpanID{2})
	orphan.SetParentSpanID(pcommon.SpanID{9})
	orphan.SetName("orphan")
	tr := FromTraces(pcommon.TraceID{7}, td)
	for q, want := range map[string]string{
		`{ nestedSetLeft = 0 && nestedSetRight = 0 && nestedSetParent = 0 }`:  "orphan",
		`{ nestedSetLeft = 1 && nestedSetRight = 2 && nestedSetParent = -1 }`: "root",
	} {
		pq, err := Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(pq.Eval(tr)); got != want {
			t.Errorf("%s: got %q, want %q", q, got, want)
		}
	}
}

func TestHints(t *testing.T) {
	q, err := Parse(`{ } | rate() by (name) with(sample=true, exemplars=5, most_recent=false, job_size=1.5, debug="x", span_sample=0.1, time_overlap_cutoff=2s) with(exemplars=7)`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Metrics == nil || q.Metrics.Fn != "rate" || len(q.Metrics.By) != 1 {
		t.Fatalf("metrics = %+v", q.Metrics)
	}
	if len(q.Hints) != 8 {
		t.Fatalf("hints = %+v", q.Hints)
	}
	if !q.HintBool("sample") || q.HintBool("most_recent") {
		t.Fatalf("sample/most_recent wrong: %+v", q.Hints)
	}
	if n, ok := q.HintInt("exemplars"); !ok || n != 7 {
		t.Fatalf("exemplars = %d %v, want the last one, 7", n, ok)
	}
	if v, _ := q.Hint("span_sample"); v.Type != TypeFloat || v.F != 0.1 {
		t.Fatalf("span_sample = %v", v)
	}
	if v, _ := q.Hint("time_overlap_cutoff"); v.Type != TypeDuration || time.Duration(v.N) != 2*time.Second {
		t.Fatalf("time_overlap_cutoff = %v", v)
	}
	if v, _ := q.Hint("debug"); v.Type != TypeString || v.S != "x" {
		t.Fatalf("debug = %v", v)
	}
	if q, err := Parse(`{ } | rate() with(sample=.25)`); err != nil || q.Hints[0].Value != NewFloat(0.25) {
		t.Fatalf("sample=.25: %v %+v", err, q)
	}
	s, err := Parse(`{ status = error } | select(span.x) with(most_recent=true)`)
	if err != nil || !s.HintBool("most_recent") || s.Metrics != nil {
		t.Fatalf("search with hint: %v %+v", err, s)
	}
}

func TestMetricsParseTempo3(t *testing.T) {
	q, err := Parse(`{ resource.service.name = "a" } | histogram_over_time(duration) by (span.x) with(sample=true)`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Metrics.Fn != "histogram_over_time" || q.Metrics.Attr == nil || q.Metrics.Attr.Intrinsic != IntrinsicDuration || len(q.Metrics.By) != 1 {
		t.Fatalf("histogram: %+v", q.Metrics)
	}
	q, err = Parse(`{ } | compare({ status = error && duration >= 1s }, 10, 1700000000000000000, 1700000060000000000)`)
	if err != nil {
		t.Fatal(err)
	}
	m := q.Metrics
	if m.Fn != "compare" || m.Compare == nil || m.TopN != 10 || m.CompareStart != 1700000000000000000 || m.CompareEnd != 1700000060000000000 {
		t.Fatalf("compare: %+v", m)
	}
	q, err = Parse(`{ } | compare({ status = error })`)
	if err != nil || q.Metrics.TopN != 10 || q.Metrics.CompareStart != 0 {
		t.Fatalf("compare defaults: %v %+v", err, q.Metrics)
	}
	q, err = Parse(`{ } | compare({}, 3)`)
	if err != nil || q.Metrics.TopN != 3 {
		t.Fatalf("compare topN: %v %+v", err, q.Metrics)
	}
	q, err = Parse(`{ } | rate() by (name) | topk(2) | bottomk(1) > 0.5 <= 2s with(sample=true)`)
	if err != nil {
		t.Fatal(err)
	}
	want := []SecondStage{{Fn: "topk", K: 2}, {Fn: "bottomk", K: 1}, {Fn: "filter", Op: OpGt, Value: 0.5}, {Fn: "filter", Op: OpLte, Value: 2}}
	if len(q.Second) != len(want) {
		t.Fatalf("second stages = %+v", q.Second)
	}
	for i := range want {
		if q.Second[i] != want[i] {
			t.Fatalf("second stage %d = %+v, want %+v", i, q.Second[i], want[i])
		}
	}
	if !q.HintBool("sample") {
		t.Fatal("hint after second stages lost")
	}
}

// TestParseErrorsTempo3: malformed hints and new functions fail with the position of the fault.
func TestParseErrorsTempo3(t *testing.T) {
	tests := []struct {
		q    string
		pos  Pos
		want string
	}{
		{`{ } | rate() with(sample)`, Pos{1, 25}, "expected '='"},
		{`{ } | rate() with(sample=)`, Pos{1, 26}, "expected a literal"},
		{`{ } | rate() with(=1)`, Pos{1, 19}, "expected a hint name"},
		{`{ } | rate() with(a=1`, Pos{1, 22}, "expected ')'"},
		{`{ } | rate() with(a=span.x)`, Pos{1, 21}, "expected a literal"},
		{`{ } | rate() with a=1`, Pos{1, 19}, "expected '('"},
		{`{ } with(sample=true) | rate()`, Pos{1, 23}, "unexpected '|'"},
		{`{ } | topk(3)`, Pos{1, 7}, "must follow a metrics function"},
		{`{ } | rate() | topk(0)`, Pos{1, 21}, "positive integer"},
		{`{ } | rate() | select(name)`, Pos{1, 16}, "only topk(n) or bottomk(n)"},
		{`{ } | compare(name = "x")`, Pos{1, 15}, "spanset filter"},
		{`{ } | compare({ }, 1, 2)`, Pos{1, 24}, "got 2 numbers"},
		{`{ } | compare({ }, "x")`, Pos{1, 20}, "integer argument"},
		{`{ } | compare({ }) by (name)`, Pos{1, 20}, "takes no by"},
		{`{ } | histogram_over_time()`, Pos{1, 27}, "expected a value"},
		{`{ nestedSetLeft = "a" }`, Pos{1, 17}, "cannot compare"},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			_, err := Parse(tc.q)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error is %T", err)
			}
			if !strings.Contains(pe.Msg, tc.want) || pe.Pos != tc.pos {
				t.Fatalf("error %q at %v, want %q at %v", pe.Msg, pe.Pos, tc.want, tc.pos)
			}
		})
	}
}

// TestShownIntrinsics: a search shows with each span the span-level intrinsics of the filters that span
// satisfies, as Tempo does.
func TestShownIntrinsics(t *testing.T) {
	tr := testTrace()
	byName := map[string]*Span{}
	for i := range tr.Spans {
		byName[tr.Spans[i].Span.Name()] = &tr.Spans[i]
	}
	tests := []struct {
		q, span, want string
	}{
		{`{ kind = server } > { name = "handle" }`, "handle", "kind"},
		{`{ kind = server } > { name = "db query" }`, "db query", ""},
		{`{ nestedSetParent < 0 && status = unset } &>> { status = error }`, "GET /api", "nestedSetParent,status"},
		{`{ nestedSetParent < 0 && status = unset } &>> { status = error }`, "db query", "status"},
		{`{ duration > 1ms && name = "cache" && span:childCount = 0 }`, "cache", "span:childCount"},
	}
	for _, tc := range tests {
		q, err := Parse(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range q.ShownIntrinsics(tr, byName[tc.span]) {
			got = append(got, a.Text)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s, span %s: %v, want %s", tc.q, tc.span, got, tc.want)
		}
	}
}

// TestEventsAndLinks: event and link fields hold one value per event (link); a comparison holds when it holds
// for one of them.
func TestEventsAndLinks(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	base := time.Unix(1700000000, 0)
	sp := ss.AppendEmpty()
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("with-events")
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(10 * time.Millisecond)))
	e1 := sp.Events().AppendEmpty()
	e1.SetName("start")
	e1.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Millisecond)))
	e1.Attributes().PutInt("attempt", 1)
	e2 := sp.Events().AppendEmpty()
	e2.SetName("exception")
	e2.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(5 * time.Millisecond)))
	e2.Attributes().PutStr("exception.type", "Boom")
	e2.Attributes().PutInt("attempt", 2)
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{9, 9})
	l.SetSpanID(pcommon.SpanID{7})
	l.Attributes().PutStr("kind", "follows")
	plain := ss.AppendEmpty()
	plain.SetSpanID(pcommon.SpanID{2})
	plain.SetParentSpanID(pcommon.SpanID{1})
	plain.SetName("plain")
	tr := FromTraces(pcommon.TraceID{8}, td)
	tests := []struct{ q, want string }{
		{`{ event:name = "exception" }`, "with-events"},
		{`{ event:name = "start" }`, "with-events"},
		{`{ event:name = "nope" }`, ""},
		{`{ event.exception.type = "Boom" }`, "with-events"},
		{`{ event.attempt = 2 }`, "with-events"},
		{`{ event.attempt > 1 && event:name = "start" }`, "with-events"},
		{`{ event:timeSinceStart > 4ms }`, "with-events"},
		{`{ event:timeSinceStart > 6ms }`, ""},
		{`{ event.attempt = nil }`, ""},         // as Tempo: no event lacks it, and a span without events does not match
		{`{ event.nope = nil }`, "with-events"}, // one of its events has attributes, none named nope
		{`{ event.nope != nil }`, ""},
		{`{ link:traceID = "09090000000000000000000000000000" }`, "with-events"},
		{`{ link:spanID = "0700000000000000" }`, "with-events"},
		{`{ link.kind = "follows" }`, "with-events"},
		{`{ link:spanID != nil }`, "with-events"},
	}
	for _, tc := range tests {
		q, err := Parse(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if got := names(q.Eval(tr)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.q, got, tc.want)
		}
	}
}

// TestStructuralDetachedAndRoots: as Tempo's nested sets, a span whose parent never arrived (and its subtree)
// stands in no structural relation, and root spans are siblings of one another (found by tests/diff against
// Tempo 3.0.3).
func TestStructuralDetachedAndRoots(t *testing.T) {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	base := time.Unix(1700000000, 0)
	add := func(id, parent byte, name string) {
		sp := ss.AppendEmpty()
		sp.SetSpanID(pcommon.SpanID{id})
		if parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{parent})
		}
		sp.SetName(name)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(id) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Second)))
	}
	add(1, 0, "R1")
	add(2, 1, "C")
	add(3, 0, "R2")
	add(4, 9, "O") // parent 9 never arrived
	add(5, 4, "O1")
	tr := FromTraces(pcommon.TraceID{8}, td)
	for _, tc := range []struct{ q, want string }{
		{`{ } > { }`, "C"},
		{`{ } >> { }`, "C"},
		{`{ } < { }`, "R1"},
		{`{ } ~ { }`, "R1,R2"},
		{`{ name = "R1" } ~ { }`, "R2"},
		{`{ name = "O" } > { }`, ""},
		{`{ } > { name = "O1" }`, ""},
		{`{ name = "O" } &> { }`, ""},
		{`{ name = "O1" }`, "O1"},
	} {
		q, err := Parse(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if got := names(q.Eval(tr)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.q, got, tc.want)
		}
	}
}
