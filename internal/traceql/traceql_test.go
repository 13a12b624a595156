package traceql

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// testTrace builds:
//
//	frontend: GET /api (server, 100ms, root)
//	├── frontend: db query (client, 30ms, error "timeout", db.system=postgres)
//	└── backend: handle (server, 60ms, http.status_code=500)
//	    ├── backend: cache (internal, 5ms, cache.hit=true)
//	    └── backend: compute (internal, 40ms, ratio=0.5)
func testTrace() *Trace {
	td := ptrace.NewTraces()
	tid := pcommon.TraceID{1, 2, 3}
	base := time.Unix(1700000000, 0)
	add := func(svc string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("deployment.environment", "prod")
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	mk := func(ss ptrace.SpanSlice, id, parent byte, name string, kind ptrace.SpanKind, off, dur time.Duration) ptrace.Span {
		s := ss.AppendEmpty()
		s.SetTraceID(tid)
		s.SetSpanID(pcommon.SpanID{id})
		if parent != 0 {
			s.SetParentSpanID(pcommon.SpanID{parent})
		}
		s.SetName(name)
		s.SetKind(kind)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(off)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(off + dur)))
		return s
	}
	fe := add("frontend")
	mk(fe, 1, 0, "GET /api", ptrace.SpanKindServer, 0, 100*time.Millisecond)
	db := mk(fe, 2, 1, "db query", ptrace.SpanKindClient, 5*time.Millisecond, 30*time.Millisecond)
	db.Status().SetCode(ptrace.StatusCodeError)
	db.Status().SetMessage("timeout")
	db.Attributes().PutStr("db.system", "postgres")
	be := add("backend")
	h := mk(be, 3, 1, "handle", ptrace.SpanKindServer, 35*time.Millisecond, 60*time.Millisecond)
	h.Attributes().PutInt("http.status_code", 500)
	h.Attributes().PutStr("foo bar", "quoted")
	c := mk(be, 4, 3, "cache", ptrace.SpanKindInternal, 36*time.Millisecond, 5*time.Millisecond)
	c.Attributes().PutBool("cache.hit", true)
	cp := mk(be, 5, 3, "compute", ptrace.SpanKindInternal, 45*time.Millisecond, 40*time.Millisecond)
	cp.Attributes().PutDouble("ratio", 0.5)
	return FromTraces(tid, td)
}

// FromTraces is a test helper turning pdata into a Trace.
func FromTraces(id pcommon.TraceID, td ptrace.Traces) *Trace {
	var spans []Span
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		res := NewResource(rs.Resource())
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				spans = append(spans, Span{Span: ss.Spans().At(k), Resource: res, Scope: ss.Scope()})
			}
		}
	}
	return NewTrace(id, spans)
}

func names(sets []Spanset) string {
	var out []string
	for _, ss := range sets {
		var n []string
		for _, s := range ss.Spans {
			n = append(n, s.Span.Name())
		}
		sort.Strings(n)
		out = append(out, strings.Join(n, ","))
	}
	return strings.Join(out, " | ")
}

func TestEval(t *testing.T) {
	tr := testTrace()
	tests := []struct {
		q    string
		want string // span names per spanset, "" = no match
	}{
		{`{}`, "GET /api,cache,compute,db query,handle"},
		{`{ name = "handle" }`, "handle"},
		{`{ span:name = "handle" }`, "handle"},
		{`{ name != "handle" && kind = internal }`, "cache,compute"},
		{`{ name =~ "c.*" }`, "cache,compute"},
		{`{ name !~ "c.*" }`, "GET /api,db query,handle"},
		{`{ status = error }`, "db query"},
		{`{ status != error }`, "GET /api,cache,compute,handle"},
		{`{ statusMessage = "timeout" }`, "db query"},
		{`{ kind = server }`, "GET /api,handle"},
		{`{ duration > 50ms }`, "GET /api,handle"},
		{`{ duration >= 40ms && duration <= 60ms }`, "compute,handle"},
		{`{ duration < 10ms }`, "cache"},
		{`{ rootName = "GET /api" && name = "cache" }`, "cache"},
		{`{ rootServiceName = "frontend" && resource.service.name = "backend" }`, "cache,compute,handle"},
		{`{ trace:rootService = "frontend" && name = "cache" }`, "cache"},
		{`{ traceDuration > 90ms && name = "cache" }`, "cache"},
		{`{ traceDuration > 1s }`, ""},
		{`{ span.http.status_code = 500 }`, "handle"},
		{`{ span.http.status_code >= 400 && span.http.status_code < 600 }`, "handle"},
		{`{ span.http.status_code = "500" }`, ""},
		{`{ .http.status_code = 500 }`, "handle"},
		{`{ .service.name = "frontend" }`, "GET /api,db query"},
		{`{ resource.service.name = "frontend" && span.db.system = "postgres" }`, "db query"},
		{`{ span."foo bar" = "quoted" }`, "handle"},
		{`{ span.cache.hit = true }`, "cache"},
		{`{ span.cache.hit }`, "cache"},
		{`{ span.ratio > 0.4 }`, "compute"},
		{`{ span.ratio = 0.5 }`, "compute"},
		{`{ span.missing = nil && name = "cache" }`, "cache"},
		{`{ span.db.system != nil }`, "db query"},
		{`{ span.missing = "x" }`, ""},
		{`{ span.missing != "x" }`, ""},
		{`{ resource.deployment.environment = "prod" && name = "handle" }`, "handle"},
		{`{ name = "cache" || name = "compute" }`, "cache,compute"},
		{`{ (name = "cache" || name = "compute") && duration > 10ms }`, "compute"},
		{`{ !(name = "cache") && kind = internal }`, "compute"},
		{`{ duration * 2 > 100ms }`, "GET /api,handle"},
		{`{ span.http.status_code - 100 = 400 }`, "handle"},
		{`{ name = "cache" } && { name = "compute" }`, "cache,compute"},
		{`{ name = "cache" } && { name = "nope" }`, ""},
		{`{ name = "cache" } || { name = "nope" }`, "cache"},
		{`{ name = "nope" } || { name = "nope2" }`, ""},
		// structural
		{`{ name = "GET /api" } > { }`, "db query,handle"},
		{`{ name = "GET /api" } >> { kind = internal }`, "cache,compute"},
		{`{ name = "GET /api" } > { kind = internal }`, ""},
		{`{ name = "cache" } < { }`, "handle"},
		{`{ name = "cache" } << { }`, "GET /api,handle"},
		{`{ name = "cache" } ~ { }`, "compute"},
		{`{ name = "db query" } ~ { }`, "handle"},
		{`{ name = "GET /api" } ~ { }`, ""},
		{`{ name = "GET /api" } !> { }`, "GET /api,cache,compute"},
		{`{ resource.service.name = "frontend" } >> { span.ratio > 0 } > { }`, ""},
		{`{ resource.service.name = "frontend" } > { resource.service.name = "backend" } > { }`, "cache,compute"},
		{`({ name = "handle" } > { }) && { status = error }`, "cache,compute,db query"},
		// pipelines
		{`{ } | count() > 4`, "GET /api,cache,compute,db query,handle"},
		{`{ } | count() > 5`, ""},
		{`{ kind = internal } | count() = 2`, "cache,compute"},
		{`{ kind = internal } | avg(duration) > 20ms`, "cache,compute"},
		{`{ kind = internal } | avg(duration) > 30ms`, ""},
		{`{ } | max(duration) >= 100ms`, "GET /api,cache,compute,db query,handle"},
		{`{ } | min(duration) = 5ms`, "GET /api,cache,compute,db query,handle"},
		{`{ } | sum(duration) = 235ms`, "GET /api,cache,compute,db query,handle"},
		{`{ } | sum(span.http.status_code) = 500`, "GET /api,cache,compute,db query,handle"},
		{`{ } | by(resource.service.name) | count() = 2`, "GET /api,db query"},
		{`{ } | by(resource.service.name) | count() > 1`, "GET /api,db query | cache,compute,handle"},
		{`{ } | by(kind) | coalesce()`, "GET /api,cache,compute,db query,handle"},
		{`{ kind = server } | { duration > 80ms }`, "GET /api"},
		{`{ } | select(span.http.status_code, resource.service.name)`, "GET /api,cache,compute,db query,handle"},
		{`({ kind = internal } | count() > 1) && { status = error }`, "cache,compute,db query"},
		{`{ } | count() * 2 > 9`, "GET /api,cache,compute,db query,handle"},
		{`{ } | rate() by (resource.service.name)`, "GET /api,cache,compute,db query,handle"},
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

func TestScalarAndSelect(t *testing.T) {
	tr := testTrace()
	q, err := Parse(`{ kind = internal } | avg(duration) > 1ms | select(span.ratio)`)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Eval(tr)
	if len(res) != 1 {
		t.Fatalf("got %d spansets", len(res))
	}
	if res[0].Scalar.Type != TypeDuration || time.Duration(res[0].Scalar.N) != 22500*time.Microsecond {
		t.Fatalf("scalar = %v", res[0].Scalar)
	}
	if len(res[0].Select) != 1 || res[0].Select[0].Name != "ratio" {
		t.Fatalf("select = %+v", res[0].Select)
	}
	if got := q.Attributes(); len(got) != 1 || got[0].Text != "span.ratio" {
		t.Fatalf("attributes = %+v", got)
	}
}

func TestMetricsParse(t *testing.T) {
	q, err := Parse(`{ kind = server } | quantile_over_time(duration, .5, .99) by (resource.service.name)`)
	if err != nil || len(q.Metrics.Quantiles) != 2 || q.Metrics.Quantiles[0] != 0.5 || q.Metrics.Quantiles[1] != 0.99 {
		t.Fatalf("'.5, .99' are quantiles in quantile_over_time: %v %+v", err, q)
	}
	if _, err := Parse(`{ } | quantile_over_time(duration, .foo)`); err == nil {
		t.Fatal("'.foo' is not a quantile")
	}
	q, err = Parse(`{ kind = server } | quantile_over_time(duration, 0.5, 0.99) by (resource.service.name, name)`)
	if err != nil {
		t.Fatal(err)
	}
	m := q.Metrics
	if m == nil || m.Fn != "quantile_over_time" || len(m.Quantiles) != 2 || len(m.By) != 2 || m.Attr.Intrinsic != IntrinsicDuration {
		t.Fatalf("metrics = %+v", m)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		q    string
		want string
	}{
		{`{ name = }`, "parse error at line 1, col 10: expected a value"},
		{`{ name = "x"`, "parse error at line 1, col 13: expected '}', found end of query"},
		{`{ nme = "x" }`, "parse error at line 1, col 3: unknown identifier \"nme\""},
		{`{ status = 200 }`, "parse error at line 1, col 10: cannot compare status (status) with 200 (int)"},
		{`{ duration > "x" }`, "parse error at line 1, col 12: cannot compare duration"},
		{`{ name =~ "(" }`, "parse error at line 1, col 11: invalid regular expression"},
		{`{ name = "x }`, "parse error at line 1, col 10: unterminated string"},
		{"{ name = \"x\" }\n| cnt() > 1", "parse error at line 2, col 3: expected a spanset filter"},
		{`{ duration > 5xs }`, "parse error at line 1, col 14: invalid duration \"5xs\""},
		{`{ } | count() `, "parse error at line 1, col 15: expected a comparison"},
		{`{ } | avg() > 1`, "parse error at line 1, col 11: avg() needs an argument"},
		{`{ span:nope = 1 }`, "parse error at line 1, col 3: unknown intrinsic span:nope"},
		{`{ 1 + 1 }`, "parse error at line 1, col 1: a spanset filter must be a condition"},
		{`{ } { }`, "parse error at line 1, col 5: unexpected '{'"},
		{`{ name = "a" } | rate() | count() > 1`, "only topk(n) or bottomk(n) may follow"},
		{`count() > 1`, "parse error at line 1, col 1: expected '{'"},
		{`{ name = 99999999999999999999 }`, "invalid integer"},
		{`{ name # 1 }`, "parse error at line 1, col 8: unexpected character '#'"},
		{`{ event:name = nil }`, "event:name=nil is not valid because intrinsics cannot be nil"}, // Tempo's text
		{`{ span.a = "x" && status = nil }`, "status=nil is not valid because intrinsics cannot be nil"},
		{strings.Repeat("(", 300) + "{}" + strings.Repeat(")", 300), "nested too deeply"},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			_, err := Parse(tc.q)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, want *ParseError", err)
			}
			if pe.Pos.Line < 1 || pe.Pos.Col < 1 {
				t.Fatalf("error %q has no position", err)
			}
		})
	}
}

func TestEmptyQueryMatchesAll(t *testing.T) {
	q, err := Parse("  ")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(q.Eval(testTrace())); got != 1 {
		t.Fatalf("got %d spansets", got)
	}
}

func BenchmarkEval(b *testing.B) {
	tr := testTrace()
	q, err := Parse(`{ resource.service.name = "backend" && duration > 10ms } >> { span.ratio > 0.1 } | count() > 0`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		q.Eval(tr)
	}
}

// TestByLabelName: a metrics series is labelled by the canonical name of an intrinsic (Tempo 3.0.3 answers
// by(span:name) with series labelled name), an attribute as written.
func TestByLabelName(t *testing.T) {
	for _, c := range []struct{ by, want string }{
		{"span:name", "name"}, {"name", "name"}, {"span:status", "status"}, {"span:kind", "kind"},
		{"span:duration", "duration"}, {"span:statusMessage", "statusMessage"}, {"trace:rootName", "rootName"},
		{"trace:rootService", "rootServiceName"}, {"trace:duration", "traceDuration"}, {"span:childCount", "span:childCount"},
		{"instrumentation:name", "instrumentation:name"}, {"event:name", "event:name"},
		{"resource.service.name", "resource.service.name"}, {".http.url", ".http.url"}, {`span."a b"`, `span."a b"`},
	} {
		q, err := Parse(`{ } | rate() by (` + c.by + `)`)
		if err != nil {
			t.Fatalf("%s: %v", c.by, err)
		}
		if got := q.Metrics.By[0].LabelName(); got != c.want {
			t.Errorf("by(%s): label %q, want %q", c.by, got, c.want)
		}
	}
}

// TestEachAttributeNames: compare() breaks down by every attribute under the name Tempo 3.0.3 gives it: scope
// attributes as instrumentation.x, names that cannot stand bare in quotes (span."foo bar").
func TestEachAttributeNames(t *testing.T) {
	tr := testTrace()
	sp := &tr.Spans[2] // handle
	sp.Scope.SetName("grpc")
	sp.Scope.Attributes().PutStr("language", "go")
	got := map[string]string{}
	EachAttribute(tr, sp, func(name string, v Static) { got[name] = v.String() })
	for name, want := range map[string]string{
		"name": "handle", "instrumentation:name": "grpc", "instrumentation.language": "go", `span."foo bar"`: "quoted",
		"span.http.status_code": "500", "resource.service.name": "backend",
	} {
		if v, ok := got[name]; !ok || !strings.Contains(v, want) {
			t.Errorf("%s: %q (present %v), want %q; all: %v", name, v, ok, want, got)
		}
	}
	if _, ok := got["span.foo bar"]; ok {
		t.Errorf("span.foo bar is not quoted: %v", got)
	}
}

// Tempo's validation errors keep Tempo's text (clients compare it), and still carry the position.
func TestValidationErrorKeepsTemposText(t *testing.T) {
	_, err := Parse(`{ name = nil }`)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *ParseError", err)
	}
	if got, want := err.Error(), "name=nil is not valid because intrinsics cannot be nil"; got != want {
		t.Fatalf("error %q, want Tempo's %q", got, want)
	}
	if pe.Pos != (Pos{Line: 1, Col: 8}) {
		t.Fatalf("position %+v, want line 1, col 8", pe.Pos)
	}
}
