package querylimit

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Processors shares the machine's processors between the queries of every store, and keeps one for ingest
// while data is arriving.
//
// Go reads a connection that became readable only when one of its processors looks for work, or at the
// runtime's network poll every 10 ms: while queries keep every processor busy, each push waits up to that long
// before it is even read, whatever its own cost (a 2-core server pushed to every 5 ms answered in 0.5 ms at p50
// beside one busy query goroutine, and in 38 ms beside two). So the goroutines of all queries together compute on
// at most all processors but one while pushes keep arriving, and on all of them once nothing has arrived for
// ingestIdle. A query's goroutines hold a processor while they compute and give it back while they wait for
// each other (Pause); at their cancellation checks (Checkpoint) they hand it over when the share shrank or
// another query waits, so that a long query does not hold back a short one by more than a slice.
type Processors struct {
	total      int
	lastIngest atomic.Int64 // unix nanoseconds

	mu    sync.Mutex
	busy  int
	queue []chan struct{} // FIFO
}

const (
	// ingestIdle is how long after the last push queries may use every processor again.
	ingestIdle = time.Second
	// slice is how long a query goroutine computes before it looks whether to hand its processor over.
	slice = time.Millisecond
)

// NewProcessors shares total processors (at least 1).
func NewProcessors(total int) *Processors { return &Processors{total: max(1, total)} }

var shared = sync.OnceValue(func() *Processors { return NewProcessors(runtime.GOMAXPROCS(0)) })

// Shared is the process' Processors: every store's queries and pushes use it.
func Shared() *Processors { return shared() }

// Ingesting records that data is arriving; every store's push path calls it.
func (p *Processors) Ingesting() { p.lastIngest.Store(time.Now().UnixNano()) }

// Limit is how many processors queries may hold now.
func (p *Processors) Limit() int {
	if p.total > 1 && time.Since(time.Unix(0, p.lastIngest.Load())) < ingestIdle {
		return p.total - 1
	}
	return p.total
}

// Busy is how many processors queries hold.
func (p *Processors) Busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.busy
}

// Acquire waits for a processor, first come first served; it returns ctx's error if ctx ends first.
func (p *Processors) Acquire(ctx context.Context) error {
	p.mu.Lock()
	if len(p.queue) == 0 && p.busy < p.Limit() {
		p.busy++
		p.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	p.queue = append(p.queue, ch)
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, c := range p.queue {
			if c == ch {
				p.queue = append(p.queue[:i], p.queue[i+1:]...)
				return ctx.Err()
			}
		}
		// Granted as ctx ended: give it to the next.
		p.busy--
		p.grant()
		return ctx.Err()
	}
}

// Release gives a processor back.
func (p *Processors) Release() {
	p.mu.Lock()
	p.busy--
	p.grant()
	p.mu.Unlock()
}

// grant hands free processors to waiters in order; p.mu is held.
func (p *Processors) grant() {
	for len(p.queue) > 0 && p.busy < p.Limit() {
		p.busy++
		close(p.queue[0])
		p.queue = p.queue[1:]
	}
}

// contended reports whether a holder should hand its processor over: queries hold more than their share, or
// one waits.
func (p *Processors) contended() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) > 0 || p.busy > p.Limit()
}

// hold is one goroutine's claim on a processor, carried in its context. Its operations are atomic, so that a
// helper goroutine that checks its parent's context by mistake neither leaks a processor nor frees one twice.
type hold struct {
	p      *Processors
	held   atomic.Bool
	closed atomic.Bool
	since  atomic.Int64 // when the processor was taken or last kept, unix nanoseconds
}

type holdKey struct{}

func withHold(ctx context.Context, p *Processors) (context.Context, *hold) {
	h := &hold{p: p}
	return context.WithValue(ctx, holdKey{}, h), h
}

func holdOf(ctx context.Context) *hold {
	h, _ := ctx.Value(holdKey{}).(*hold)
	return h
}

func (h *hold) take(ctx context.Context) error {
	if err := h.p.Acquire(ctx); err != nil {
		return err
	}
	if h.closed.Load() || !h.held.CompareAndSwap(false, true) {
		h.p.Release()
		return nil
	}
	h.since.Store(time.Now().UnixNano())
	return nil
}

func (h *hold) drop() {
	if h.held.CompareAndSwap(true, false) {
		h.p.Release()
	}
}

func (h *hold) close() {
	h.closed.Store(true)
	h.drop()
}

// Checkpoint is where a query's loop checks for cancellation: it returns ctx's error, and, for a query admitted
// by a Limiter (or a helper started with Enter), takes a processor if the goroutine holds none and hands it over
// after a slice when the share shrank or another query waits. Call it from the goroutine that owns ctx.
func Checkpoint(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := holdOf(ctx)
	if h == nil || h.closed.Load() {
		return nil
	}
	if !h.held.Load() {
		return h.take(ctx)
	}
	now := time.Now().UnixNano()
	if time.Duration(now-h.since.Load()) < slice {
		return nil
	}
	h.since.Store(now)
	if h.p.contended() {
		h.drop()
		return h.take(ctx)
	}
	return nil
}

// Pause gives back the processor of ctx's goroutine before it waits for another goroutine of its query (which
// needs a processor to make progress); its next Checkpoint takes one again.
func Pause(ctx context.Context) {
	if h := holdOf(ctx); h != nil {
		h.drop()
	}
}

// Enter starts a helper goroutine of a query (a chunk decoder, a shard, a block's scan) on a processor of p:
// it waits for one and returns the context the helper computes under (its Checkpoints hand the processor over)
// and the function that gives it back. The helper must use the returned context, not its parent's.
func Enter(ctx context.Context, p *Processors) (context.Context, func(), error) {
	hctx, h := withHold(ctx, p)
	if err := h.take(hctx); err != nil {
		return nil, nil, err
	}
	return hctx, h.close, nil
}

// Receive takes the next value from ch, which another goroutine of ctx's query feeds: if none is ready, it
// first gives back the caller's processor (Pause), which the feeding goroutine may need.
func Receive[T any](ctx context.Context, ch <-chan T) (T, bool) {
	select {
	case v, ok := <-ch:
		return v, ok
	default:
	}
	Pause(ctx)
	v, ok := <-ch
	return v, ok
}
