package tracestore

import (
	"context"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/querylimit"
)

// With one processor for every query, a search over many blocks, whose candidates helper goroutines compute
// ahead of it, still completes and finds what it finds with every processor: the search gives its processor back
// while it waits for them.
func TestSearchOnOneProcessor(t *testing.T) {
	old := rowsPerGroup
	rowsPerGroup = 5
	defer func() { rowsPerGroup = old }()
	ctx := context.Background()
	s := openStore(t, testConfig(t.TempDir()))
	defer s.Close(ctx)
	for i := 0; i < 40; i++ {
		if err := s.Push(ctx, tn, batch(i, 1, 1+i%9)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%4 == 0 {
			if err := s.CutAndFlush(ctx, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	search := func(q string) int {
		qctx, release, err := s.QueryLimiter().Admit(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		qctx, cancel := context.WithTimeout(qctx, 30*time.Second) // a deadlock would show as a timeout
		defer cancel()
		res, err := s.Search(qctx, tn, SearchRequest{Query: mustQuery(t, q), Limit: 1000})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return len(res.Traces)
	}
	queries := []string{`{ name = "step-5" }`, `{ kind = server } >> { name = "step-6" && status = error }`, `{ duration > 1ms }`}
	want := map[string]int{}
	for _, q := range queries {
		want[q] = search(q)
	}
	if want[queries[0]] == 0 {
		t.Fatalf("test data matches nothing: %v", want)
	}
	procs := querylimit.NewProcessors(1)
	s.QueryLimiter().SetProcessors(procs)
	for _, q := range queries {
		if got := search(q); got != want[q] {
			t.Errorf("%s: %d traces on one processor, %d with all", q, got, want[q])
		}
	}
	// Helpers that were reading ahead when a query ended give theirs back as they stop.
	for deadline := time.Now().Add(10 * time.Second); procs.Busy() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d processors still held after the searches", procs.Busy())
		}
	}
}
