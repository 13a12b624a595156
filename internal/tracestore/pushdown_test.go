package tracestore

import (
	"context"
	"fmt"
	"sort"
	"testing"
)

// TestSearchPushdownSameAsMemory runs searches over traces in memory (every span evaluated) and again over the
// same traces in a block (column prefilter first): both must find the same traces.
func TestSearchPushdownSameAsMemory(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Shutdown(ctx)
	for i := 0; i < 60; i += 20 {
		if err := s.Push(ctx, tn, batch(i, 20, 1+i%7)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 60; i < 90; i++ {
		if err := s.Push(ctx, tn, batch(i, 1, 1+i%9)); err != nil {
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
}
