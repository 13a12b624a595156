package tracestore

import (
	"context"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestSearchJoinsSplitTrace: a trace whose spans arrived on both sides of a block cut (root and first children
// in a block, the other children in a second block and in memory) is searched whole, as TraceByID returns it:
// every span is in the answer of { }, and conditions that need spans of several parts match, also when no
// part alone passes the column prefilter; then the same once every part is in a block.
func TestSearchJoinsSplitTrace(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	parts := splitTrace(9)
	for i, p := range parts {
		if err := s.Push(ctx, tn, p); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := s.CutAndFlush(ctx, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(s.lookupInstance(tn).blockList()); n != 2 {
		t.Fatalf("%d blocks, want 2 (and the rest in memory)", n)
	}
	checkSplitSearch(t, s)
	// The same with the last part in a third block: the trace now lies only in blocks.
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if in := s.lookupInstance(tn); len(in.blockList()) != 3 || len(in.snapshot()) != 0 {
		t.Fatalf("%d blocks, %d traces in memory; want 3 and none", len(in.blockList()), len(in.snapshot()))
	}
	checkSplitSearch(t, s)
}

// splitTrace returns one trace of n spans (makeTrace: the root "GET /checkout", then step-1 ..) in three parts:
// the root, step-1 and step-2; step-3 to step-5; the rest.
func splitTrace(n int) [3]ptrace.Traces {
	full := ptrace.NewTraces()
	makeTrace(full, 1, n, baseTime) // root "GET /checkout", then step-1 .. step-8 (errors at 3 and 6)
	parts := [3]ptrace.Traces{ptrace.NewTraces(), ptrace.NewTraces(), ptrace.NewTraces()}
	for i := 0; i < full.ResourceSpans().Len(); i++ {
		rs := full.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			for k := 0; k < ss.Spans().Len(); k++ {
				sp := ss.Spans().At(k)
				n := 0 // the root and step-1, step-2 first
				switch sp.Name() {
				case "step-3", "step-4", "step-5":
					n = 1
				case "step-6", "step-7", "step-8":
					n = 2
				}
				dst := parts[n].ResourceSpans().AppendEmpty()
				rs.Resource().CopyTo(dst.Resource())
				dss := dst.ScopeSpans().AppendEmpty()
				ss.Scope().CopyTo(dss.Scope())
				sp.CopyTo(dss.Spans().AppendEmpty())
			}
		}
	}
	return parts
}

func checkSplitSearch(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for _, c := range []struct {
		q     string
		spans int // spans in the answer, 0: no match
	}{
		{`{ }`, 9},
		{`{ status = error }`, 2},
		{`{ span.http.status_code = 200 } > { status = error }`, 2},
		{`{ name = "GET /checkout" } > { name = "step-7" }`, 1}, // root in one place, step-7 in another: no part has both
		{`{ name = "step-4" } && { name = "step-1" }`, 2},
		{`{ span.step = "1" } && { span.step = "7" }`, 2},
		{`{ span.step = "2" } ~ { span.step = "8" }`, 1},
		{`{ } | count() = 9`, 9},
		{`{ status = error } | count() > 1`, 2},
		{`{ name = "GET /checkout" } !> { name = "step-8" }`, 0},
	} {
		res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, c.q), SpansPerSpanSet: 100})
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, m := range res.Traces {
			for _, ss := range m.SpanSets {
				got += len(ss.Spans)
			}
		}
		if got != c.spans || len(res.Traces) > 1 {
			t.Errorf("%s: %d traces, %d spans; want %d spans of the one trace", c.q, len(res.Traces), got, c.spans)
		}
	}
}

// TestMetricsJoinsSplitTrace is TestSearchJoinsSplitTrace for TraceQL metrics: the spanset part of a metrics
// query sees the whole trace, whatever places hold its parts, and counts each span once.
func TestMetricsJoinsSplitTrace(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	parts := splitTrace(9)
	for i, p := range parts {
		if err := s.Push(ctx, tn, p); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if err := s.CutAndFlush(ctx, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkSplitMetrics(t, s)
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if in := s.lookupInstance(tn); len(in.blockList()) != 3 || len(in.snapshot()) != 0 {
		t.Fatalf("%d blocks, %d traces in memory; want 3 and none", len(in.blockList()), len(in.snapshot()))
	}
	checkSplitMetrics(t, s)
}

func checkSplitMetrics(t *testing.T, s *Store) {
	t.Helper()
	for _, c := range []struct {
		q    string
		want float64 // count_over_time over one step; 0: no series
	}{
		{`{ } | count_over_time()`, 9},
		{`{ status = error } | count_over_time()`, 2},
		{`{ span.http.status_code = 200 } > { status = error } | count_over_time()`, 2},
		{`{ name = "GET /checkout" } > { name = "step-7" } | count_over_time()`, 1},
		{`{ name = "step-4" } && { name = "step-1" } | count_over_time()`, 2},
		{`{ span.step = "2" } ~ { span.step = "8" } | count_over_time()`, 1},
		{`{ } | count() = 9 | count_over_time()`, 9},
		{`{ status = error } | count() > 1 | count_over_time()`, 2},
		{`{ name = "GET /checkout" } !> { name = "step-8" } | count_over_time()`, 0},
	} {
		res, err := s.QueryRange(context.Background(), tn, MetricsRequest{Query: mustQuery(t, c.q),
			Start: baseTime.Add(-time.Hour), End: baseTime.Add(time.Hour), Step: 2 * time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", c.q, err)
		}
		got := 0.0
		for _, ser := range res.Series {
			for _, v := range ser.Values {
				if !math.IsNaN(v) {
					got += v
				}
			}
		}
		if got != c.want {
			t.Errorf("%s: %v spans counted in %d series, want %v", c.q, got, len(res.Series), c.want)
		}
	}
}
