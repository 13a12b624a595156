package tracestore

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestSearchPushdownSameAsMemory runs searches over traces in memory (every span evaluated) and again over the
// same traces in a block (column prefilter first): both must find the same traces.
func TestSearchPushdownSameAsMemory(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rowsPerRG   int64
		flushEvery  int // push this many batches per block (0: one block at the end)
		wantSkipped bool
	}{
		{name: "one block, one row group", rowsPerRG: 50_000},
		{name: "row groups of 7 spans, traces across their edges", rowsPerRG: 7, wantSkipped: true},
		{name: "many blocks of small row groups", rowsPerRG: 5, flushEvery: 4, wantSkipped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := rowsPerGroup
			rowsPerGroup = tc.rowsPerRG
			defer func() { rowsPerGroup = old }()
			testPushdownSameAsMemory(t, tc.flushEvery, tc.wantSkipped)
		})
	}
}

func testPushdownSameAsMemory(t *testing.T, flushEvery int, wantSkipped bool) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	var batches []ptrace.Traces
	for i := 0; i < 60; i += 20 {
		batches = append(batches, batch(i, 20, 1+i%7))
	}
	for i := 60; i < 90; i++ {
		batches = append(batches, batch(i, 1, 1+i%9))
	}
	for _, b := range batches {
		if err := s.Push(ctx, tn, b); err != nil {
			t.Fatal(err)
		}
	}
	queries := []string{
		`{ resource.service.name = "backend" && duration > 200ms }`,
		`{ resource.service.name = "nobody" }`,
		`{ name = "step-5" } && { status = error }`,
		`{ name = "GET /checkout" } > { name =~ "step-[12]" }`,
		`{ kind = server && duration >= 500ms } || { name = "step-8" }`,
		`{ span.step = "3" }`,
		`{ !(name = "GET /checkout") && duration < 100ms }`,
		`{ name = "step-8" }`,
		`{ kind = server } >> { name = "step-6" && status = error }`,
		`{ duration > 799ms }`,
	}
	run := func() map[string]string {
		out := map[string]string{}
		for _, q := range queries {
			res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, q), Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, tr := range res.Traces {
				ids = append(ids, tr.TraceID.String())
			}
			sort.Strings(ids)
			out[q] = fmt.Sprint(ids)
		}
		return out
	}
	mem := run()
	if flushEvery > 0 {
		// the same data again, as blocks of a few batches each (a fresh store: no live traces to merge with)
		_ = s.Close(ctx)
		s = openStore(t, testConfig(t.TempDir()))
		defer s.Close(ctx)
		for i, b := range batches {
			if err := s.Push(ctx, tn, b); err != nil {
				t.Fatal(err)
			}
			if (i+1)%flushEvery == 0 {
				if err := s.CutAndFlush(ctx, true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	if n := len(s.lookupInstance(tn).snapshot()); n != 0 {
		t.Fatalf("%d traces still in memory", n)
	}
	blk := run()
	for _, q := range queries {
		if mem[q] != blk[q] {
			t.Errorf("%s:\n memory %s\n block  %s", q, mem[q], blk[q])
		}
	}
	if mem[queries[0]] == "[]" || mem[queries[2]] == "[]" {
		t.Fatalf("test data matches nothing: %v", mem)
	}
	skipped := testutil.ToFloat64(s.m.searchRowGroupsSkipped) + testutil.ToFloat64(s.m.searchBlocksSkipped)
	if wantSkipped && skipped == 0 {
		t.Errorf("no row group or block was skipped")
	}
	t.Logf("%d blocks; skipped %v row groups, %v blocks", len(s.lookupInstance(tn).blockList()),
		testutil.ToFloat64(s.m.searchRowGroupsSkipped), testutil.ToFloat64(s.m.searchBlocksSkipped))
}

// TestCandidatesEmittedPerRowGroup: a block's candidates come out row group by row group, in trace id order,
// together the same as all at once; a consumer that has enough stops the scan at the first batch.
func TestCandidatesEmittedPerRowGroup(t *testing.T) {
	old := rowsPerGroup
	rowsPerGroup = 7
	defer func() { rowsPerGroup = old }()
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	for i := 0; i < 60; i += 20 {
		if err := s.Push(ctx, tn, batch(i, 20, 1+i%7)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CutAndFlush(ctx, true); err != nil {
		t.Fatal(err)
	}
	in := s.lookupInstance(tn)
	blocks := in.blockList()
	if len(blocks) != 1 {
		t.Fatalf("%d blocks, want 1", len(blocks))
	}
	b := blocks[0]
	pf := mustQuery(t, `{ name = "step-2" }`).Prefilter()
	all, err := in.candidates(ctx, b, pf)
	if err != nil {
		t.Fatal(err)
	}
	var got []indexEntry
	batches := 0
	if err := in.candidatesEach(ctx, b, pf, func(es []indexEntry) bool {
		batches++
		got = append(got, es...)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("per row group %v, all at once %v", got, all)
	}
	if batches < 2 {
		t.Fatalf("%d batches of candidates from a block of %d-row groups", batches, rowsPerGroup)
	}
	calls := 0
	if err := in.candidatesEach(ctx, b, pf, func([]indexEntry) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the scan went on after the consumer stopped: %d calls", calls)
	}
	res, err := s.Search(ctx, tn, SearchRequest{Query: mustQuery(t, `{ name = "step-2" }`), Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Traces) != 3 {
		t.Fatalf("search with limit 3 found %d traces", len(res.Traces))
	}
}
