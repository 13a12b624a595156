// Package storebridge is the one bridge between a Collector pipeline and a Sprout store, shared by the
// sprout_traces, sprout_metrics and sprout_logs components after Jaeger v2's storage extension and exporter:
// the extension owns the store (a Holder: opened at Start, handed out under its lock, closed at Shutdown); the
// exporter names the extension with its `store` key, finds it at start, and writes each batch into it for the
// batch's tenant. It must not know any store's data, configuration or API: each component passes what differs
// (how to open, write and close its store) as functions.
package storebridge

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Store is what the bridge needs of every store (a pointer; nil is no store): the process's tenant limit and
// query gate, which the sprout_api extension owns, are applied to it before it serves anything.
type Store interface {
	comparable
	SetMaxTenants(n int)
	QueryLimiter() *querylimit.Limiter
}

// starter is a store with background loops (flush, compaction) to start once it is configured.
type starter interface{ Start() }

// Holder holds an extension's store. Every read goes through its lock: an exporter's batch, a query and
// Shutdown may run at once.
type Holder[S Store] struct {
	mu    sync.RWMutex
	store S
}

// Start is the start-up every store extension shares. It finds the sprout_api extension api (nil, with a
// warning, when there is none: the store then runs without its API), opens the store with open (given that
// server, or nil), applies the process's max_tenants and query gate, starts the store's loops, holds it, and adds
// a readiness check named name that passes while the store is open.
func (h *Holder[S]) Start(host component.Host, api component.ID, logger *zap.Logger, name string,
	open func(srv *apiserver.Server) (S, error),
) (S, *apiserver.Server, error) {
	var zero S
	srv, err := apiserver.FromHost(host, api)
	if err != nil {
		logger.Warn("The "+name+" store runs without its HTTP API", zap.Error(err))
		srv = nil
	}
	st, err := open(srv)
	if err != nil {
		return zero, nil, err
	}
	st.SetMaxTenants(apiserver.TenantPolicy(host).MaxTenants)
	st.QueryLimiter().SetGate(apiserver.QueryGate(host))
	if s, ok := any(st).(starter); ok {
		s.Start()
	}
	h.mu.Lock()
	h.store = st
	h.mu.Unlock()
	if srv != nil {
		srv.AddReadinessCheck(name, h.ready(name))
	}
	return st, srv, nil
}

func (h *Holder[S]) ready(name string) func() error {
	return func() error {
		var none S
		if h.Get() == none {
			return fmt.Errorf("the %s store is not open", name)
		}
		return nil
	}
}

// Get returns the open store, or nil before Start and after Shutdown.
func (h *Holder[S]) Get() S {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.store
}

// Shutdown lets go of the store and closes it with close; a store never opened is not closed.
func (h *Holder[S]) Shutdown(close func(S) error) error {
	var none S
	h.mu.Lock()
	st := h.store
	h.store = none
	h.mu.Unlock()
	if st == none {
		return nil
	}
	return close(st)
}

// Provider is a store extension as its exporter sees it.
type Provider[S Store] interface {
	Holder() *Holder[S]
}

// Key is the key that names the store extension in the three store exporters' configurations.
const Key = "store"

// ExporterConfig is the configuration every store exporter shares (exporters with more keys embed it, squashed).
type ExporterConfig struct {
	// Store is the store extension to write into.
	Store component.ID `mapstructure:"store"`
	typ   component.Type
	alias string // the deprecated spelling of Key the configuration used
}

// NewExporterConfig is the default configuration of the exporter of type typ: the extension of that type.
func NewExporterConfig(typ component.Type) ExporterConfig {
	return ExporterConfig{Store: component.NewID(typ), typ: typ}
}

// Validate names the field that is wrong.
func (c *ExporterConfig) Validate() error {
	if c.Store.Type() != c.typ {
		return fmt.Errorf("%s: %q is not a %s extension", Key, c.Store, c.typ)
	}
	return nil
}

// UnmarshalAlias unmarshals conf into cfg, the exporter's whole configuration (which embeds c), taking old as
// an earlier spelling of Key; the exporter logs it as deprecated at start. Setting both is an error, so that no
// config silently means two things.
func (c *ExporterConfig) UnmarshalAlias(conf *confmap.Conf, old string, cfg any) error {
	if !conf.IsSet(old) {
		return conf.Unmarshal(cfg)
	}
	if conf.IsSet(Key) {
		return fmt.Errorf("%s: deprecated spelling of %s; set only %s", old, Key, Key)
	}
	m := conf.ToStringMap()
	m[Key] = m[old]
	delete(m, old)
	if err := confmap.NewFromStringMap(m).Unmarshal(cfg); err != nil {
		return err
	}
	c.alias = old
	return nil
}

// Exporter is what a store exporter holds from start on: its extension's store, and the process's tenant
// policy and memory governor.
type Exporter[S Store] struct {
	cfg     ExporterConfig
	logger  *zap.Logger
	holder  *Holder[S]
	tenants tenant.Policy
	gov     *memguard.Governor
}

// NewExporter is the exporter part of a store exporter configured by cfg.
func NewExporter[S Store](cfg ExporterConfig, logger *zap.Logger) *Exporter[S] {
	return &Exporter[S]{cfg: cfg, logger: logger}
}

// Start finds the store extension (configured under extensions and service.extensions), the process's tenant
// policy and its memory governor.
func (x *Exporter[S]) Start(_ context.Context, host component.Host) error {
	if x.cfg.alias != "" {
		x.logger.Warn(fmt.Sprintf("The %s exporter's key %s is deprecated; call it %s", x.cfg.typ, x.cfg.alias, Key))
	}
	ext, ok := host.GetExtensions()[x.cfg.Store]
	if !ok {
		return fmt.Errorf("%s exporter: %s: extension %q is not configured: add it under extensions and service.extensions", x.cfg.typ, Key, x.cfg.Store)
	}
	p, ok := ext.(Provider[S])
	if !ok {
		return fmt.Errorf("%s exporter: %s: extension %q is not a %s extension", x.cfg.typ, Key, x.cfg.Store, x.cfg.typ)
	}
	x.holder, x.tenants, x.gov = p.Holder(), apiserver.TenantPolicy(host), apiserver.MemoryGovernor(host)
	return nil
}

// Consume is the push function of exporter x for data of type D: write, often the store's own method, writes a
// batch for a tenant. The batch is refused first when its tenant is refused (Unauthenticated, PermissionDenied,
// InvalidArgument) and when the memory governor, which sees the three signals at once, is past its ingest limit
// (retryable: UNAVAILABLE with RetryInfo). Errors are shaped by refusal.Consumer: permanent unless sending the
// batch again may succeed. A store not open (yet, or any more) is retryable.
func Consume[S Store, D any](x *Exporter[S], write func(st S, ctx context.Context, tenantID string, data D) error) func(context.Context, D) error {
	return func(ctx context.Context, data D) error {
		var none S
		st := x.holder.Get()
		if st == none {
			return fmt.Errorf("%s: the store is not running", x.cfg.typ)
		}
		tid, err := x.tenants.FromPipeline(ctx)
		if err != nil {
			return err
		}
		if err := x.gov.Check(memguard.Ingest); err != nil {
			return refusal.Consumer(err)
		}
		return refusal.Consumer(write(st, ctx, tid, data))
	}
}
