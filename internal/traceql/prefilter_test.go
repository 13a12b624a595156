package traceql

import "testing"

func columnsOf(s *Span) *Columns {
	return &Columns{Name: s.Span.Name(), Service: s.Resource.ServiceName, Duration: int64(s.DurationNanos()),
		Kind: int32(s.Span.Kind()), Status: int32(s.Span.Status().Code())}
}

// prefilterPasses says whether the trace gets past the prefilter: every predicate holds for some span.
func prefilterPasses(p *Prefilter, t *Trace) bool {
	if p == nil {
		return true
	}
	for i := 0; i < p.Len(); i++ {
		ok := false
		for k := range t.Spans {
			if p.Maybe(i, columnsOf(&t.Spans[k])) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func TestPrefilter(t *testing.T) {
	tr := testTrace()
	for _, tc := range []struct {
		q       string
		prunes  bool // the prefilter rules the test trace out
		noPrune bool // the query gives no prefilter at all
	}{
		{q: `{ resource.service.name = "frontend" && duration > 50ms }`},
		{q: `{ resource.service.name = "nope" && duration > 50ms }`, prunes: true},
		{q: `{ resource.service.name = "backend" && duration > 500ms }`, prunes: true},
		{q: `{ name = "cache" } && { status = error }`},
		{q: `{ name = "cache" } && { name = "missing" }`, prunes: true},
		{q: `{ name = "missing" } || { kind = client }`},
		{q: `{ name = "missing" } || { name = "gone" }`, prunes: true},
		{q: `{ name = "missing" } !> { name = "cache" }`},
		{q: `{ name = "missing" } > { name = "cache" }`, prunes: true},
		{q: `{ span.http.status_code = 500 }`, noPrune: true},
		{q: `{ .service.name = "frontend" }`, noPrune: true},
		{q: `{ resource.service.name =~ "front.*" } | count() > 1`},
		{q: `{ resource.service.name = 5 }`},
		{q: `{ !(name = "cache") && duration < 1ms }`, prunes: true},
		{q: `{ span.db.system = "postgres" || name = "x" }`},
		{q: `{ }`, noPrune: true},
	} {
		q, err := Parse(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		p := q.Prefilter()
		if (p == nil) != tc.noPrune {
			t.Errorf("%s: prefilter %v, want none=%v", tc.q, p, tc.noPrune)
			continue
		}
		passes := prefilterPasses(p, tr)
		if passes == tc.prunes {
			t.Errorf("%s: passes=%v, want %v", tc.q, passes, !tc.prunes)
		}
		if matched := len(q.Eval(tr)) > 0; matched && !passes {
			t.Errorf("%s: the query matches but the prefilter ruled the trace out", tc.q)
		}
	}
}
