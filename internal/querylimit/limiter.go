// Package querylimit holds the budgets every query API of Sprout runs under: a per-request timeout whose
// context reaches every loop of the evaluation, per-tenant and store-wide concurrency with a short bounded
// queue, the checks a query must pass before it is evaluated (points per series, subqueries included), and the
// share of the processors all queries compute on (Processors: one is kept for ingest while data arrives).
//
// It owns admission only: it decides whether and when a query may start, how long it may run and on how many
// processors. It must not
// evaluate queries nor know a store's data; each store's API calls Admit first and answers the refusal in its
// own API's error format (refusals are *refusal.Error).
package querylimit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// Config is the admission part of a store's query limits. The trace and log stores embed it in their `limits`
// section (with `mapstructure:",squash"`); the metrics store has the same keys and copies them, as its
// query_timeout of 0 stands for a day.
type Config struct {
	// QueryTimeout bounds one query from admission to answer (Prometheus' query.timeout, Loki's and Tempo's
	// query_timeout).
	QueryTimeout time.Duration `mapstructure:"query_timeout"`
	// MaxConcurrent is how many queries of all tenants run at once in this store (Prometheus'
	// query.max-concurrency, Loki's querier.max_concurrent, Tempo's max_concurrent_queries).
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxConcurrentPerTenant is how many queries of one tenant run at once; 0 (or more than MaxConcurrent)
	// means MaxConcurrent, so that lowering max_concurrent alone is enough.
	MaxConcurrentPerTenant int `mapstructure:"max_concurrent_per_tenant"`
	// MaxOutstandingPerTenant is how many queries of one tenant may wait for a slot (the query schedulers'
	// max_outstanding_requests_per_tenant). A query beyond it is refused at once with 429.
	MaxOutstandingPerTenant int `mapstructure:"max_outstanding_per_tenant"`
	// MaxQueueWait is how long a query waits for a slot before it is refused (429 when its tenant's own
	// slots were busy, 503 when the store's were).
	MaxQueueWait time.Duration `mapstructure:"max_queue_wait"`
}

// Validate names the first bad field; prefix is the section the keys live in (e.g. "limits.").
func (c Config) Validate(prefix string) error {
	switch {
	case c.QueryTimeout <= 0:
		return fmt.Errorf("%squery_timeout: must be positive", prefix)
	case c.MaxConcurrent <= 0:
		return fmt.Errorf("%smax_concurrent: must be positive", prefix)
	case c.MaxConcurrentPerTenant < 0:
		return fmt.Errorf("%smax_concurrent_per_tenant: must not be negative (0: max_concurrent)", prefix)
	case c.MaxOutstandingPerTenant < 0:
		return fmt.Errorf("%smax_outstanding_per_tenant: must not be negative (0: no queue)", prefix)
	case c.MaxQueueWait < 0:
		return fmt.Errorf("%smax_queue_wait: must not be negative", prefix)
	}
	return nil
}

// Gate is a check every query passes before it queues; a process-wide memory governor plugs in here. It
// returns nil to admit, or an error (a *refusal.Error to answer 429/503 with Retry-After).
type Gate func(ctx context.Context, tenant string) error

// Limiter admits queries of one store. The zero value is not usable; use New.
type Limiter struct {
	cfg   Config
	gate  Gate
	procs *Processors

	mu      sync.Mutex
	running int
	tenants map[string]*tenantState
	waiters []*waiter         // FIFO
	refused map[string]uint64 // by limit
}

type tenantState struct {
	running, waiting int
}

type waiter struct {
	tenant string
	ready  chan struct{} // closed when the slot is granted
}

// New returns a Limiter for cfg (which must have passed Validate).
func New(cfg Config) *Limiter {
	if cfg.MaxConcurrentPerTenant == 0 || cfg.MaxConcurrentPerTenant > cfg.MaxConcurrent {
		cfg.MaxConcurrentPerTenant = cfg.MaxConcurrent
	}
	return &Limiter{cfg: cfg, procs: Shared(), tenants: map[string]*tenantState{}, refused: map[string]uint64{}}
}

// Processors is what the admitted queries compute on (Shared unless a test set another).
func (l *Limiter) Processors() *Processors { return l.procs }

// SetProcessors makes the queries admitted from now on compute on p; for tests, before the limiter is used.
func (l *Limiter) SetProcessors(p *Processors) { l.procs = p }

// SetGate installs g, consulted first by every Admit (nil removes it).
func (l *Limiter) SetGate(g Gate) {
	l.mu.Lock()
	l.gate = g
	l.mu.Unlock()
}

// Config is the limiter's configuration, with defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// Admit waits for a slot for one query of tenant. On success it returns a context that carries the query
// timeout and is cancelled when the request's context is (the client left), and a release function the caller
// must call once the query is answered. The query's loops pass that context to Checkpoint, which shares the
// processors with other queries and with ingest. On refusal the error is a *refusal.Error; when ctx ends while waiting it is
// ctx's error.
func (l *Limiter) Admit(ctx context.Context, tenant string) (context.Context, func(), error) {
	l.mu.Lock()
	gate := l.gate
	l.mu.Unlock()
	if gate != nil {
		if err := gate(ctx, tenant); err != nil {
			limit := "gate"
			if r, ok := refusal.As(err); ok && r.Limit != "" {
				limit = r.Limit
			}
			l.mu.Lock()
			l.refused[limit]++
			l.mu.Unlock()
			return nil, nil, err
		}
	}
	l.mu.Lock()
	ts := l.tenant(tenant)
	// Every waiter that fits was granted when a slot freed (grant runs under the same lock), so a query that
	// fits now overtakes no one who could run.
	if l.fits(ts) {
		l.start(ts)
		l.mu.Unlock()
		return l.admitted(ctx, tenant)
	}
	if ts.waiting >= l.cfg.MaxOutstandingPerTenant {
		l.refused["max_outstanding_per_tenant"]++
		l.mu.Unlock()
		return nil, nil, l.refusal(refusal.RateLimited, "max_outstanding_per_tenant",
			fmt.Sprintf("too many outstanding queries for tenant %q: %d running, %d waiting", tenant, ts.running, ts.waiting))
	}
	w := &waiter{tenant: tenant, ready: make(chan struct{})}
	ts.waiting++
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	var timeout <-chan time.Time
	if l.cfg.MaxQueueWait > 0 {
		t := time.NewTimer(l.cfg.MaxQueueWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-w.ready:
		return l.admitted(ctx, tenant)
	case <-ctx.Done():
		if l.abandon(w) {
			return nil, nil, ctx.Err()
		}
		// Granted while the client left: give the slot back.
		l.release(tenant)
		return nil, nil, ctx.Err()
	case <-timeout:
		if !l.abandon(w) {
			return l.admitted(ctx, tenant) // granted at the same moment
		}
		l.mu.Lock()
		ts := l.tenant(tenant)
		own := ts.running >= l.cfg.MaxConcurrentPerTenant
		running := ts.running
		if own {
			l.refused["max_concurrent_per_tenant"]++
		} else {
			l.refused["max_concurrent"]++
		}
		l.mu.Unlock()
		if own {
			return nil, nil, l.refusal(refusal.RateLimited, "max_concurrent_per_tenant",
				fmt.Sprintf("query waited %s for a slot: tenant %q already runs %d queries", l.cfg.MaxQueueWait, tenant, running))
		}
		return nil, nil, l.refusal(refusal.Overloaded, "max_concurrent",
			fmt.Sprintf("query waited %s for a slot: the store already runs %d queries", l.cfg.MaxQueueWait, l.cfg.MaxConcurrent))
	}
}

// refusal is a query refused before it ran: its tenant's queue was full or its wait too long (RateLimited, 429),
// or the store as a whole was busy (Overloaded, 503). Both are worth retrying after the queue wait.
func (l *Limiter) refusal(r refusal.Reason, limit, msg string) *refusal.Error {
	ref := refusal.New(r, limit, "%s", msg)
	ref.RetryAfter = max(time.Second, l.cfg.MaxQueueWait)
	return ref
}

func (l *Limiter) admitted(ctx context.Context, tenant string) (context.Context, func(), error) {
	qctx, cancel := context.WithTimeout(ctx, l.cfg.QueryTimeout)
	// The query's own goroutine takes a processor at its first Checkpoint (see Processors).
	qctx, h := withHold(qctx, l.procs)
	var once sync.Once
	return qctx, func() {
		once.Do(func() {
			h.close()
			cancel()
			l.release(tenant)
		})
	}, nil
}

// tenant returns the state of id, creating it; l.mu is held.
func (l *Limiter) tenant(id string) *tenantState {
	ts := l.tenants[id]
	if ts == nil {
		ts = &tenantState{}
		l.tenants[id] = ts
	}
	return ts
}

func (l *Limiter) fits(ts *tenantState) bool {
	return l.running < l.cfg.MaxConcurrent && ts.running < l.cfg.MaxConcurrentPerTenant
}

func (l *Limiter) start(ts *tenantState) {
	l.running++
	ts.running++
}

// abandon removes w from the queue; false means it was granted already.
func (l *Limiter) abandon(w *waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			ts := l.tenant(w.tenant)
			ts.waiting--
			l.forget(w.tenant, ts)
			return true
		}
	}
	return false
}

func (l *Limiter) release(tenant string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.tenant(tenant)
	ts.running--
	l.running--
	l.grant()
	l.forget(tenant, ts)
}

// grant starts the oldest waiters that fit; a waiter whose tenant is at its own cap does not hold up the
// others. l.mu is held.
func (l *Limiter) grant() {
	for i := 0; i < len(l.waiters) && l.running < l.cfg.MaxConcurrent; {
		w := l.waiters[i]
		ts := l.tenant(w.tenant)
		if !l.fits(ts) {
			i++
			continue
		}
		l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
		ts.waiting--
		l.start(ts)
		close(w.ready)
	}
}

func (l *Limiter) forget(id string, ts *tenantState) {
	if ts.running == 0 && ts.waiting == 0 {
		delete(l.tenants, id)
	}
}

// Stats are the limiter's current figures, for tests and metrics.
type Stats struct {
	Running, Waiting int
}

// Stats returns what runs and waits now.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Running: l.running, Waiting: len(l.waiters)}
}
