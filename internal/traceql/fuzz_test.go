package traceql

import "testing"

// FuzzParse checks that no query text makes the parser or the evaluator panic, and that every error carries a
// position.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{}`, `{ name = "x" }`, `{ .a = 1 && span.b =~ "c.*" } >> { resource.service.name != nil }`,
		`{ } | count() > 2 | select(span.x)`, `{ duration > 1.5s } ~ { kind = server }`,
		`({ a.b = 1 } | avg(duration) > 1ms) || { status = error }`, `{ } | rate() by (name)`,
		"{ span.\"a b\" = `raw` }", `{ -1 < span.x ^ 2 }`, `{ } !<< { }`, `{ resource.service.name = "frontend" && duration > 50ms }`, `{ name = "a" } || { kind = client }`,
	} {
		f.Add(s)
	}
	tr := testTrace()
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			if pe, ok := err.(*ParseError); !ok || pe.Pos.Line < 1 || pe.Pos.Col < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		if len(q.Eval(tr)) > 0 && !prefilterPasses(q.Prefilter(), tr) {
			t.Fatalf("%q matches the trace but its prefilter rules it out", s)
		}
		if prefilterPasses(q.Prefilter(), tr) && !domainPasses(q.Prefilter(), tr) {
			t.Fatalf("%q: the prefilter lets a span through but the domain check rules the group out", s)
		}
	})
}
