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
		`{ } | rate() with(sample=true)`, `{ } | histogram_over_time(duration) by (name) with(sample=0.1)`,
		`{ } | compare({ status = error }, 10, 1, 2)`, `{ } | rate() by (name) | topk(2) | bottomk(1) > 0.5`,
		`({ nestedSetParent < 0 } &>> { status = error }) || ({ nestedSetParent < 0 }) | select(nestedSetLeft, nestedSetRight)`,
		`{ } &> { } &< { } &~ { } &<< { }`, `{ status = error } | select(event.exception.message) with(most_recent=true)`,
		`{ event:name = "exception" && event:timeSinceStart > 1ms && link:traceID != nil && event.attempt = 2 }`,
		`{ span:childCount > 1 } | quantile_over_time(duration, .9, 0.5) with(exemplars=3, debug="x", job_size=-1)`,
		`{ link:traceID = nil }`, `{ .a = 1 || status = nil }`,
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
		if pf := q.Prefilter(); pf != nil && pf.Len() <= 64 {
			m := pf.NewMatcher()
			for k := range tr.Spans {
				c := columnsOf(&tr.Spans[k])
				for round := 0; round < 2; round++ { // the second round answers from the memo
					got := m.Mask(c, 1<<pf.Len()-1)
					for i := 0; i < pf.Len(); i++ {
						if want := pf.Maybe(i, c); want != (got&(1<<i) != 0) {
							t.Fatalf("%q: Matcher says %v for predicate %d of span %d, Maybe says %v", s, !want, i, k, want)
						}
					}
				}
			}
		}
		if prefilterPasses(q.Prefilter(), tr) && !domainPasses(q.Prefilter(), tr) {
			t.Fatalf("%q: the prefilter lets a span through but the domain check rules the group out", s)
		}
	})
}
