package tracestore

import (
	"context"
	"testing"
)

// TestMemorySummaryRulesOutLiveTraces: a search whose prefilter no span in memory can satisfy reads no trace in
// memory; one that some span may satisfy still finds its traces; the summary starts afresh once memory is empty.
func TestMemorySummaryRulesOutLiveTraces(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	if err := s.Push(ctx, tn, batch(1, 4, 5)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q         string
		wantFound int
		wantBytes bool // inspected bytes > 0: traces in memory were read
		wantMem   bool // the memory summary lets the search into memory at all
	}{
		{q: `{ resource.service.name = "nobody" }`, wantFound: 0, wantBytes: false, wantMem: false},
		{q: `{ duration > 1h }`, wantFound: 0, wantBytes: false, wantMem: false},
		{q: `{ resource.service.name = "backend" && status = error }`, wantFound: 4, wantBytes: true, wantMem: true},
		{q: `{ name = "GET /checkout" }`, wantFound: 4, wantBytes: true, wantMem: true},
	} {
		in, err := s.instance(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if got := memMaybe(mustQuery(t, tc.q).Prefilter(), in.memDomain()); got != tc.wantMem {
			t.Errorf("%s: memory summary says maybe=%v, want %v", tc.q, got, tc.wantMem)
		}
		res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, tc.q), Limit: 100})
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if len(res.Traces) != tc.wantFound {
			t.Errorf("%s: found %d traces, want %d", tc.q, len(res.Traces), tc.wantFound)
		}
		if got := res.Metrics.InspectedBytes > 0; got != tc.wantBytes {
			t.Errorf("%s: inspected %d bytes in memory, want reads=%v", tc.q, res.Metrics.InspectedBytes, tc.wantBytes)
		}
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, in := range s.instances() {
		in.mu.RLock()
		n, live, pending := in.memStats.n, len(in.live), len(in.pending)
		in.mu.RUnlock()
		if live == 0 && pending == 0 && n != 0 {
			t.Errorf("tenant %s: memory is empty but its summary still counts %d spans", in.tenant, n)
		}
	}
}
