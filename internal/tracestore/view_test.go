package tracestore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestViewHoldsCompactedBlocks: a query that took its view before a compaction still reads the input blocks; their
// files are deleted once it lets go, by the next pass.
func TestViewHoldsCompactedBlocks(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.Compaction.MinInputBlocks = 3
	s := openStore(t, cfg)
	defer s.Close(ctx)
	s.now = func() time.Time { return baseTime.Add(time.Hour) }
	for i := 0; i < 3; i++ {
		if err := s.Push(ctx, tn, batch(1+10*i, 3, 4)); err != nil {
			t.Fatal(err)
		}
		if err := s.CutAndFlush(ctx, true); err != nil {
			t.Fatal(err)
		}
	}
	in := s.lookupInstance(tn)
	objects := func() int {
		n := 0
		_ = s.bkt.Iter(ctx, tn+"/blocks/", func(string) error { n++; return nil })
		return n
	}
	held, release := in.view(nil)
	if len(held) != 3 {
		t.Fatalf("view of %d blocks, want 3", len(held))
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(in.blockList()); n != 1 {
		t.Fatalf("%d blocks listed after compaction, want 1", n)
	}
	if n := objects(); n != 4 {
		t.Fatalf("%d blocks in the bucket while a view holds the inputs, want 4", n)
	}
	for _, b := range held {
		spans, err := in.findInBlock(ctx, b, tid(11))
		if err != nil {
			t.Fatalf("reading a held block after compaction: %v", err)
		}
		if b == held[1] && len(spans) != 4 {
			t.Fatalf("trace 11 has %d spans in its held block, want 4", len(spans))
		}
	}
	release()
	release() // a second release changes nothing
	if n := objects(); n != 4 {
		t.Fatalf("%d blocks before the next pass, want 4", n)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := objects(); n != 1 {
		t.Fatalf("%d blocks in the bucket after release and a pass, want 1", n)
	}
	if n := countSpans(t, s, 21); n != 4 {
		t.Fatalf("trace 21 has %d spans after compaction", n)
	}
}

// TestQueriesDuringFlushAndCompaction: while traces move from memory into blocks and blocks are compacted, every
// trace is found by id and a count counts each span once (before the view, a count could see a trace both in
// memory and in its new block, or miss blocks deleted under it).
func TestQueriesDuringFlushAndCompaction(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t.TempDir())
	cfg.Compaction.MinInputBlocks = 2
	s := openStore(t, cfg)
	defer s.Close(ctx)
	s.now = func() time.Time { return baseTime.Add(time.Hour) }
	const rounds, perRound, spans = 12, 4, 3
	var pushed atomic.Int64 // traces acknowledged and not being pushed
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, 100)
	wg.Add(1)
	go func() {
		defer wg.Done()
		q := mustQuery(t, `{ } | count_over_time()`)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := pushed.Load()
			res, err := s.QueryRange(ctx, tn, MetricsRequest{Query: q, Start: baseTime, End: baseTime.Add(time.Duration(rounds*perRound+10) * time.Second), Step: time.Hour})
			if err != nil {
				errs <- err.Error()
				return
			}
			var got float64
			for _, sr := range res.Series {
				for _, v := range sr.Values {
					got += v
				}
			}
			if after := pushed.Load(); got < float64(n*spans) || got > float64(after*spans) {
				errs <- fmt.Sprintf("count %v outside [%d, %d]", got, n*spans, after*spans)
				return
			}
			for i := int64(1); i <= n; i++ {
				if c := countSpans(t, s, int(i)); c != spans {
					errs <- fmt.Sprintf("trace %d has %d spans", i, c)
					return
				}
			}
		}
	}()
	for r := 0; r < rounds; r++ {
		if err := s.Push(ctx, tn, batch(r*perRound+1, perRound, spans)); err != nil {
			t.Fatal(err)
		}
		pushed.Add(perRound)
		if err := s.CutAndFlush(ctx, true); err != nil {
			t.Fatal(err)
		}
		if err := s.Compact(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
