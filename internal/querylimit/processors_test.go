package querylimit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestProcessorsKeepOneForIngest(t *testing.T) {
	for _, tc := range []struct {
		total, idle, ingesting int
	}{
		{total: 1, idle: 1, ingesting: 1}, // one processor: queries keep it, nothing else is possible
		{total: 2, idle: 2, ingesting: 1},
		{total: 8, idle: 8, ingesting: 7},
	} {
		p := NewProcessors(tc.total)
		if got := p.Limit(); got != tc.idle {
			t.Errorf("total %d, no ingest: limit %d, want %d", tc.total, got, tc.idle)
		}
		p.Ingesting()
		if got := p.Limit(); got != tc.ingesting {
			t.Errorf("total %d, ingesting: limit %d, want %d", tc.total, got, tc.ingesting)
		}
		p.lastIngest.Store(time.Now().Add(-2 * ingestIdle).UnixNano())
		if got := p.Limit(); got != tc.idle {
			t.Errorf("total %d, ingest stopped: limit %d, want %d", tc.total, got, tc.idle)
		}
	}
}

func TestProcessorsFirstComeFirstServed(t *testing.T) {
	p := NewProcessors(1)
	ctx := context.Background()
	if err := p.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, 3)
	for i := 0; i < 3; i++ {
		go func() {
			if err := p.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			order <- i
			p.Release()
		}()
		waitUntil(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.queue) == i+1 })
	}
	p.Release()
	for want := 0; want < 3; want++ {
		if got := <-order; got != want {
			t.Fatalf("waiter %d served, want %d", got, want)
		}
	}
	if b := p.Busy(); b != 0 {
		t.Fatalf("busy %d after every release", b)
	}
}

func TestProcessorsWaiterLeaves(t *testing.T) {
	p := NewProcessors(1)
	if err := p.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Acquire(ctx) }()
	waitUntil(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.queue) == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire after cancel: %v", err)
	}
	p.Release()
	if b, q := p.Busy(), len(p.queue); b != 0 || q != 0 {
		t.Fatalf("busy %d, queue %d after the waiter left", b, q)
	}
}

// A query that computes hands its processor to a waiting one after a slice, at a Checkpoint, and takes it back
// when that one pauses.
func TestCheckpointHandsOver(t *testing.T) {
	p := NewProcessors(1)
	l := New(Config{QueryTimeout: time.Minute, MaxConcurrent: 4})
	l.SetProcessors(p)
	long, releaseLong, err := l.Admit(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := Checkpoint(long); err != nil {
		t.Fatal(err)
	}
	if b := p.Busy(); b != 1 {
		t.Fatalf("busy %d after the first checkpoint, want 1", b)
	}
	short, releaseShort, err := l.Admit(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	took := make(chan struct{})
	go func() {
		if err := Checkpoint(short); err != nil { // waits: the long query holds the only processor
			t.Error(err)
		}
		close(took)
		releaseShort()
	}()
	waitUntil(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.queue) == 1 })
	select {
	case <-took:
		t.Fatal("the short query computed while the long one held the only processor")
	default:
	}
	holdOf(long).since.Store(time.Now().Add(-2 * slice).UnixNano())
	if err := Checkpoint(long); err != nil { // hands over, waits until the short query is done, takes it back
		t.Fatal(err)
	}
	<-took
	if b := p.Busy(); b != 1 {
		t.Fatalf("busy %d after the hand-over, want 1 (the long query's)", b)
	}
	releaseLong()
	if b := p.Busy(); b != 0 {
		t.Fatalf("busy %d after both released", b)
	}
}

// A helper entered beside its paused parent computes on the only processor; the parent's next checkpoint waits
// for the helper to finish.
func TestEnterWhileParentPauses(t *testing.T) {
	p := NewProcessors(1)
	l := New(Config{QueryTimeout: time.Minute, MaxConcurrent: 4})
	l.SetProcessors(p)
	ctx, release, err := l.Admit(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	res := make(chan int)
	go func() {
		hctx, done, err := Enter(ctx, p)
		if err != nil {
			t.Error(err)
			return
		}
		defer done()
		if err := Checkpoint(hctx); err != nil {
			t.Error(err)
		}
		res <- p.Busy()
	}()
	Pause(ctx)
	if b := <-res; b != 1 {
		t.Fatalf("busy %d while the helper computes, want 1", b)
	}
	if err := Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if b := p.Busy(); b != 1 {
		t.Fatalf("busy %d after the parent's checkpoint, want 1", b)
	}
}

// A helper that checks its parent's context by mistake neither leaks a processor nor frees one twice.
func TestHoldIsSafeAcrossGoroutines(t *testing.T) {
	p := NewProcessors(2)
	l := New(Config{QueryTimeout: time.Minute, MaxConcurrent: 4})
	l.SetProcessors(p)
	ctx, release, err := l.Admit(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			for j := 0; j < 200; j++ {
				_ = Checkpoint(ctx)
				if j%3 == 0 {
					Pause(ctx)
				}
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	if b := p.Busy(); b > 1 {
		t.Fatalf("busy %d for one query", b)
	}
	release()
	if err := Checkpoint(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("checkpoint after release: %v", err)
	}
	if b := p.Busy(); b != 0 {
		t.Fatalf("busy %d after release", b)
	}
}

func TestCheckpointWithoutAdmission(t *testing.T) {
	// The ruler and internal callers evaluate without a Limiter: checkpoints only check cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	if err := Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	Pause(ctx)
	cancel()
	if err := Checkpoint(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("checkpoint after cancel: %v", err)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
