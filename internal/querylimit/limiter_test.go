package querylimit

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sprout-otel/sprout/internal/refusal"
)

func testConfig() Config {
	return Config{QueryTimeout: time.Minute, MaxConcurrent: 3, MaxConcurrentPerTenant: 2, MaxOutstandingPerTenant: 1, MaxQueueWait: time.Hour}
}

// admitNow admits a query that must run at once.
func admitNow(t *testing.T, l *Limiter, tenant string) func() {
	t.Helper()
	_, release, err := l.Admit(context.Background(), tenant)
	if err != nil {
		t.Fatalf("admit %s: %v", tenant, err)
	}
	return release
}

// waitFor polls the limiter until its figures are want (queued waiters are goroutines).
func waitFor(t *testing.T, l *Limiter, want Stats) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", l.Stats(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

type admitted struct {
	release func()
	err     error
}

func admitAsync(l *Limiter, ctx context.Context, tenant string) chan admitted {
	ch := make(chan admitted, 1)
	go func() {
		_, release, err := l.Admit(ctx, tenant)
		ch <- admitted{release, err}
	}()
	return ch
}

func TestLimiterRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    func(*Config)
		setup  []string // tenants of queries admitted first
		queued []string // tenants of queries left waiting
		tenant string   // the query under test
		status int
		limit  string
	}{
		{name: "tenant queue full", setup: []string{"a", "a"}, queued: []string{"a"}, tenant: "a", status: http.StatusTooManyRequests, limit: "max_outstanding_per_tenant"},
		{name: "no queue at all", cfg: func(c *Config) { c.MaxOutstandingPerTenant = 0 }, setup: []string{"a", "a"}, tenant: "a", status: http.StatusTooManyRequests, limit: "max_outstanding_per_tenant"},
		{name: "tenant at its own cap waits, then 429", cfg: func(c *Config) { c.MaxQueueWait = time.Millisecond }, setup: []string{"a", "a"}, tenant: "a", status: http.StatusTooManyRequests, limit: "max_concurrent_per_tenant"},
		{name: "store full waits, then 503", cfg: func(c *Config) { c.MaxQueueWait = time.Millisecond }, setup: []string{"a", "a", "b"}, tenant: "c", status: http.StatusServiceUnavailable, limit: "max_concurrent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			l := New(cfg)
			for _, id := range tc.setup {
				defer admitNow(t, l, id)()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i, id := range tc.queued {
				_ = admitAsync(l, ctx, id)
				waitFor(t, l, Stats{Running: len(tc.setup), Waiting: i + 1})
			}
			_, _, err := l.Admit(context.Background(), tc.tenant)
			ref, ok := refusal.As(err)
			if !ok {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if ref.HTTPStatus() != tc.status || ref.Limit != tc.limit || !strings.Contains(err.Error(), tc.limit) {
				t.Fatalf("refusal %d %s (%v), want %d %s", ref.HTTPStatus(), ref.Limit, err, tc.status, tc.limit)
			}
			l.mu.Lock()
			n := l.refused[tc.limit]
			l.mu.Unlock()
			if n != 1 {
				t.Errorf("refusals counted under %q: %d, want 1", tc.limit, n)
			}
			if got := testutil.CollectAndCount(l.Collector("metrics"), "sprout_query_refused_total"); got != 1 {
				t.Errorf("%d sprout_query_refused_total series, want 1", got)
			}
			h := http.Header{}
			refusal.SetHeaders(h, err)
			if h.Get("Retry-After") == "" || h.Get("Retry-After") == "0" {
				t.Errorf("Retry-After = %q", h.Get("Retry-After"))
			}
		})
	}
}

func TestLimiterQueueOrderAndTenants(t *testing.T) {
	l := New(testConfig()) // 3 in all, 2 per tenant, 1 waiting per tenant
	a1 := admitNow(t, l, "a")
	a2 := admitNow(t, l, "a")
	// a is at its cap: its third query waits, while b still runs at once.
	wa := admitAsync(l, context.Background(), "a")
	waitFor(t, l, Stats{Running: 2, Waiting: 1})
	b1 := admitNow(t, l, "b")
	// The store is full: b's next query waits behind a's.
	wb := admitAsync(l, context.Background(), "b")
	waitFor(t, l, Stats{Running: 3, Waiting: 2})
	// b's slot frees: a is still at its cap, so b's waiter (not a's) takes it.
	b1()
	got := <-wb
	if got.err != nil {
		t.Fatal(got.err)
	}
	waitFor(t, l, Stats{Running: 3, Waiting: 1})
	// a's slot frees: a's waiter runs.
	a1()
	if got := <-wa; got.err != nil {
		t.Fatal(got.err)
	} else {
		got.release()
	}
	got.release()
	got.release() // twice is harmless
	a2()
	waitFor(t, l, Stats{})
}

func TestLimiterCancelWhileQueued(t *testing.T) {
	l := New(testConfig())
	r1, r2 := admitNow(t, l, "a"), admitNow(t, l, "a")
	ctx, cancel := context.WithCancel(context.Background())
	w := admitAsync(l, ctx, "a")
	waitFor(t, l, Stats{Running: 2, Waiting: 1})
	cancel() // the client left while waiting
	if got := <-w; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", got.err)
	}
	waitFor(t, l, Stats{Running: 2})
	r1()
	r2()
	waitFor(t, l, Stats{})
}

func TestLimiterContext(t *testing.T) {
	cfg := testConfig()
	cfg.QueryTimeout = time.Hour
	l := New(cfg)
	parent, cancel := context.WithCancel(context.Background())
	ctx, release, err := l.Admit(parent, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Hour {
		t.Errorf("deadline %v %v, want the query timeout", d, ok)
	}
	cancel() // the client left: the query's context ends with it
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("query context err %v after the request's was cancelled", ctx.Err())
	}
}

func TestPerTenantCappedToStore(t *testing.T) {
	cfg := testConfig()
	cfg.MaxConcurrentPerTenant = 10
	if got := New(cfg).Config().MaxConcurrentPerTenant; got != cfg.MaxConcurrent {
		t.Fatalf("per-tenant %d, want max_concurrent %d", got, cfg.MaxConcurrent)
	}
}

func TestLimiterGate(t *testing.T) {
	l := New(testConfig())
	refuse := refusal.New(refusal.Overloaded, "memory", "queries' memory share is used up")
	l.SetGate(func(context.Context, string) error { return refuse })
	if _, _, err := l.Admit(context.Background(), "a"); err != refuse {
		t.Fatalf("err = %v, want the gate's refusal", err)
	}
	if l.Stats() != (Stats{}) {
		t.Fatalf("a refused query holds a slot: %+v", l.Stats())
	}
	l.SetGate(nil)
	admitNow(t, l, "a")()
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.QueryTimeout = 0 }, "limits.query_timeout"},
		{func(c *Config) { c.MaxConcurrent = 0 }, "limits.max_concurrent"},
		{func(c *Config) { c.MaxConcurrentPerTenant = 4 }, ""}, // capped to max_concurrent
		{func(c *Config) { c.MaxConcurrentPerTenant = -1 }, "limits.max_concurrent_per_tenant"},
		{func(c *Config) { c.MaxOutstandingPerTenant = -1 }, "limits.max_outstanding_per_tenant"},
		{func(c *Config) { c.MaxQueueWait = -1 }, "limits.max_queue_wait"},
	} {
		c := testConfig()
		tc.mod(&c)
		err := c.Validate("limits.")
		if (err == nil) != (tc.want == "") || err != nil && !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", c, err, tc.want)
		}
	}
}

// The three stores register their limiters on one registry.
func TestCollectorsSideBySide(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, s := range []string{"metrics", "logs", "traces"} {
		if err := reg.Register(New(testConfig()).Collector(s)); err != nil {
			t.Fatalf("register %s: %v", s, err)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "sprout_query_running"); err != nil || n != 3 {
		t.Fatalf("%d sprout_query_running series (%v), want 3", n, err)
	}
}
