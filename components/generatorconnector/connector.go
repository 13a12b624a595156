package generatorconnector

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/generator"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// tickInterval is how often pending edges are checked for expiry. It bounds how late past `wait` an unpaired
// span is resolved, not the metrics' resolution.
const tickInterval = time.Second

type generatorConnector struct {
	cfg    *Config
	logger *zap.Logger
	next   consumer.Metrics

	gen        *generator.Generator
	stop       chan struct{}
	done       chan struct{}
	collectors []prometheus.Collector
	reg        prometheus.Registerer
	flushMu    sync.Mutex // one emission at a time: the loop's and Shutdown's
	// inFlight holds the tenants whose last hand-off downstream has not returned (a slow or retried write of a
	// large tenant); handoffs counts the running hand-offs, for Shutdown.
	flightMu sync.Mutex
	inFlight map[string]bool
	handoffs sync.WaitGroup
	now      func() time.Time
	tenants  tenant.Policy
}

func newConnector(set connector.Settings, cfg *Config, next consumer.Metrics) *generatorConnector {
	return &generatorConnector{cfg: cfg, logger: set.Logger, next: next, now: time.Now}
}

func (c *generatorConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

func (c *generatorConnector) Start(_ context.Context, host component.Host) error {
	c.tenants = apiserver.TenantPolicy(host)
	gcfg := c.cfg.Config
	gcfg.MaxTenants = c.tenants.MaxTenants
	if !c.tenants.Multitenancy {
		gcfg.MaxActiveSeriesPerTenant = 0 // one tenant: max_active_series is its limit
	}
	gen, err := generator.New(gcfg, c.logger)
	if err != nil {
		return err
	}
	c.gen = gen
	if srv, err := apiserver.FromHost(host, c.cfg.API); err != nil {
		c.logger.Warn("sprout_generator: API extension not found, running without its own metrics", zap.Error(err))
	} else {
		c.register(srv.Registerer())
	}
	c.stop = make(chan struct{})
	c.done = make(chan struct{})
	go c.loop()
	return nil
}

func (c *generatorConnector) register(reg prometheus.Registerer) {
	stat := func() generator.Stats { return c.gen.Stats() }
	c.collectors = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sprout_generator_active_series", Help: "Series the metrics generator holds in memory.",
		}, func() float64 { return float64(stat().ActiveSeries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sprout_generator_series_refused_total",
			Help: "Series updates refused because max_active_series was reached.",
		}, func() float64 { return float64(stat().RefusedSeries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sprout_generator_pending_edges", Help: "Service-graph half edges waiting for their other half.",
		}, func() float64 { return float64(stat().PendingEdges) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sprout_generator_wal_bytes", Help: "Bytes in the generator's WAL since its last checkpoint.",
		}, func() float64 { return float64(stat().WALSizeBytes) }),
	}
	c.reg = reg
	for _, col := range c.collectors {
		if err := reg.Register(col); err != nil {
			// A second sprout_generator instance: the first one's figures are served.
			c.logger.Debug("sprout_generator: metric already registered", zap.Error(err))
		}
	}
}

func (c *generatorConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	tid, err := c.tenants.FromPipeline(ctx)
	if err != nil {
		return err // the same refusal as the trace store's: no span of an unnamed tenant feeds its metrics
	}
	err = c.gen.Consume(tid, c.now(), td)
	return refusal.Consumer(err) // max_tenants: ResourceExhausted, not retried
}

func (c *generatorConnector) loop() {
	defer close(c.done)
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	flush := time.NewTicker(c.cfg.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			if err := c.gen.Tick(c.now()); err != nil && !errors.Is(err, generator.ErrClosed) {
				c.logger.Error("sprout_generator: tick failed", zap.Error(err))
			}
		case <-flush.C:
			c.flush(context.Background())
		}
	}
}

// flush hands every tenant's cumulative metrics downstream, each tenant in its own goroutine, so that one
// tenant's slow or retried write (tens of thousands of series, a rate limit) does not hold back another's. A
// tenant whose previous hand-off is still running is skipped this time. Neither a skipped nor a failed hand-off
// loses anything but exemplars: the next flush carries the same cumulative values.
func (c *generatorConnector) flush(ctx context.Context) {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	for _, tm := range c.gen.Collect(c.now()) {
		c.flightMu.Lock()
		if c.inFlight == nil {
			c.inFlight = map[string]bool{}
		}
		busy := c.inFlight[tm.Tenant]
		c.inFlight[tm.Tenant] = true
		c.flightMu.Unlock()
		if busy {
			c.logger.Debug("sprout_generator: the tenant's last metrics are still being written; skipped", zap.String("tenant", tm.Tenant))
			continue
		}
		c.handoffs.Add(1)
		go func(tm generator.TenantMetrics) {
			defer c.handoffs.Done()
			tctx := client.NewContext(ctx, client.Info{
				Metadata: client.NewMetadata(map[string][]string{tenant.Header: {tm.Tenant}}),
			})
			tctx = tenant.WithTenant(tctx, tm.Tenant)
			if err := c.next.ConsumeMetrics(tctx, tm.Metrics); err != nil {
				c.logger.Warn("sprout_generator: downstream refused generated metrics",
					zap.String("tenant", tm.Tenant), zap.Error(err))
			}
			c.flightMu.Lock()
			delete(c.inFlight, tm.Tenant)
			c.flightMu.Unlock()
		}(tm)
	}
}

// waitHandoffs waits for the running hand-offs, or for ctx.
func (c *generatorConnector) waitHandoffs(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.handoffs.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *generatorConnector) Shutdown(ctx context.Context) error {
	if c.gen == nil {
		return nil
	}
	if c.stop != nil {
		close(c.stop)
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Downstream components shut down after this one, so a last emission still reaches them: after the loop's
	// hand-offs, so that no tenant is skipped.
	if err := c.waitHandoffs(ctx); err != nil {
		return err
	}
	c.flush(ctx)
	if err := c.waitHandoffs(ctx); err != nil {
		return err
	}
	if c.reg != nil {
		for _, col := range c.collectors {
			c.reg.Unregister(col)
		}
	}
	err := c.gen.Close()
	c.gen = nil
	return err
}
