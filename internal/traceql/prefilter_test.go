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

// domainOf is the exact domain of a trace's spans.
func domainOf(t *Trace) *Domain {
	d := &Domain{Known: ColName | ColService | ColDuration | ColKind | ColStatus, MinDuration: 1 << 62, MaxDuration: -1 << 62}
	for k := range t.Spans {
		c := columnsOf(&t.Spans[k])
		d.Names = append(d.Names, c.Name)
		d.Services = append(d.Services, c.Service)
		d.Kinds = append(d.Kinds, c.Kind)
		d.Statuses = append(d.Statuses, c.Status)
		d.MinDuration = min(d.MinDuration, c.Duration)
		d.MaxDuration = max(d.MaxDuration, c.Duration)
	}
	return d
}

// domainPasses says whether the trace's spans, taken as one group, get past the prefilter by their domain.
func domainPasses(p *Prefilter, t *Trace) bool {
	if p == nil {
		return true
	}
	d := domainOf(t)
	for i := 0; i < p.Len(); i++ {
		if !p.MaybeIn(i, d) {
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
		// domainLoose: the domain check (value sets and duration range of all spans together) cannot rule the
		// trace out although the per-span prefilter does
		domainLoose bool
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
		if passes && !domainPasses(p, tr) {
			t.Errorf("%s: a span passes the prefilter but the domain of all spans rules them out", tc.q)
		}
		if dp, want := domainPasses(p, tr), !tc.prunes || tc.domainLoose; dp != want {
			t.Errorf("%s: domain passes=%v, want %v", tc.q, dp, want)
		}
	}
}
