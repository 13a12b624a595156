// Package storebridge is the one bridge between a Collector pipeline and a Sprout store, shared by the
// sprout_traces, sprout_metrics and sprout_logs components and shaped after Jaeger v2's storage extension and
// storage exporter: the extension owns the store (a Holder: opened at Start, handed out under its lock, closed
// at Shutdown) and mounts its API on sprout_api; the exporter names the extension with its `store` key, finds
// it at start, and writes each batch into it for the batch's tenant, refused or not by the process's tenant
// policy and memory governor, with the store's refusals shaped for the pipelines by refusal.Consumer.
//
// It must not know any store's data, configuration or API: each component passes what differs (how to open,
// write and close its store, which routes to mount) as functions.
package storebridge

import (
	"context"
	"errors"
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

// Store is what the bridge needs of every store: the process's tenant limit and query gate, which the
// sprout_api extension owns, are applied to it before it serves anything.
type Store interface {
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
	open  bool
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
	h.store, h.open = st, true
	h.mu.Unlock()
	if srv != nil {
		srv.AddReadinessCheck(name, h.ready(name))
	}
	return st, srv, nil
}

func (h *Holder[S]) ready(name string) func() error {
	return func() error {
		if _, ok := h.Get(); !ok {
			return fmt.Errorf("the %s store is not open", name)
		}
		return nil
	}
}

// Get returns the open store, and false before Start and after Shutdown.
func (h *Holder[S]) Get() (S, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.store, h.open
}

// Shutdown lets go of the store and closes it with close; a store never opened is not closed.
func (h *Holder[S]) Shutdown(close func(S) error) error {
	h.mu.Lock()
	st, open := h.store, h.open
	var zero S
	h.store, h.open = zero, false
	h.mu.Unlock()
	if !open {
		return nil
	}
	return close(st)
}

// Provider is a store extension as its exporter sees it.
type Provider[S Store] interface {
	component.Component
	// Holder is the extension's store.
	Holder() *Holder[S]
}

// Key is the exporter configuration key that names the store extension to write into, the same in the three
// store exporters (as Jaeger v2's storage exporter names its storage extension).
const Key = "store"

// ExporterConfig is the configuration every store exporter shares; exporters embed it (squashed).
type ExporterConfig struct {
	// Store is the store extension to write into.
	Store component.ID `mapstructure:"store"`
}

// Check names the field that is wrong: store must name an extension of type typ. (Not Validate: each
// exporter's own Validate calls it with its type.)
func (c ExporterConfig) Check(typ component.Type) error {
	if c.Store.Type() != typ {
		return fmt.Errorf("%s: %q is not a %s extension", Key, c.Store, typ)
	}
	return nil
}

// Alias makes old, an earlier spelling of the store key, set store: it returns conf with old renamed, and
// whether it was used. Setting both is an error, so that no config silently means two things.
func Alias(conf *confmap.Conf, old string) (*confmap.Conf, bool, error) {
	if conf == nil || !conf.IsSet(old) {
		return conf, false, nil
	}
	if conf.IsSet(Key) {
		return nil, false, fmt.Errorf("%s: deprecated spelling of %s; set only %s", old, Key, Key)
	}
	m := conf.ToStringMap()
	m[Key] = m[old]
	delete(m, old)
	return confmap.NewFromStringMap(m), true, nil
}

// Exporter is what a store exporter holds from start on: its extension's store, and the process's tenant
// policy and memory governor.
type Exporter[S Store] struct {
	typ     component.Type
	id      component.ID
	holder  *Holder[S]
	tenants tenant.Policy
	gov     *memguard.Governor
}

// NewExporter is the exporter part of a component of type typ that writes into the extension cfg names.
func NewExporter[S Store](typ component.Type, cfg ExporterConfig) *Exporter[S] {
	return &Exporter[S]{typ: typ, id: cfg.Store}
}

// Start finds the store extension on host (it must be configured under extensions and service.extensions) and
// the process's tenant policy and memory governor.
func (x *Exporter[S]) Start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[x.id]
	if !ok {
		return fmt.Errorf("%s exporter: %s: extension %q is not configured: add it under extensions and service.extensions", x.typ, Key, x.id)
	}
	p, ok := ext.(Provider[S])
	if !ok {
		return fmt.Errorf("%s exporter: %s: extension %q is not a %s extension", x.typ, Key, x.id, x.typ)
	}
	x.holder = p.Holder()
	x.tenants = apiserver.TenantPolicy(host)
	x.gov = apiserver.MemoryGovernor(host)
	return nil
}

// errNotStarted is retryable: the store opens at start and the exporter's batch can wait for it.
var errNotStarted = errors.New("the store is not running")

// Push writes one batch with write, given the open store and the batch's tenant. The batch is refused first
// when its tenant is refused (Unauthenticated, PermissionDenied, InvalidArgument: 401 / 403 / 400 on OTLP HTTP)
// and when the memory governor, which sees the three signals at once, is past its ingest limit (retryable:
// UNAVAILABLE with RetryInfo, 503 with Retry-After). Errors are shaped by refusal.Consumer: permanent unless
// sending the batch again may succeed.
func (x *Exporter[S]) Push(ctx context.Context, write func(st S, tenantID string) error) error {
	st, ok := x.holder.Get()
	if !ok {
		return fmt.Errorf("%s: %w", x.typ, errNotStarted)
	}
	tid, err := x.tenants.FromPipeline(ctx)
	if err != nil {
		return err
	}
	if err := x.gov.Check(memguard.Ingest); err != nil {
		return refusal.Consumer(err)
	}
	return refusal.Consumer(write(st, tid))
}
