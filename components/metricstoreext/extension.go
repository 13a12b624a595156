package metricstoreext

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/components/storebridge"
	"github.com/sprout-otel/sprout/internal/metricstore"
	"github.com/sprout-otel/sprout/internal/querylimit"
)

// Extension is the running `sprout_metrics` extension. Besides the Collector's lifecycle it offers the ruler
// what it needs: Tenant (a tenant's queryable and appendable storage), QueryEngine, and hooks to serve
// /api/v1/rules and /api/v1/alerts from the ruler's state (SetRulesRetriever, SetAlertmanagerRetriever).
type Extension struct {
	cfg   *Config
	set   extension.Settings
	store storebridge.Holder[*metricstore.Store]

	// mu guards the ruler's hooks and where they are mounted; the ruler may set them before or after Start.
	mu          sync.Mutex
	srv         *apiserver.Server
	rules       metricstore.RulesRetrieverFunc
	ams         metricstore.AlertmanagerRetrieverFunc
	rulesRouted bool
}

func newExtension(cfg *Config, set extension.Settings) *Extension {
	return &Extension{cfg: cfg, set: set}
}

// Holder is the extension's store, for the sprout_metrics exporter.
func (e *Extension) Holder() *storebridge.Holder[*metricstore.Store] { return &e.store }

// Start opens the store (replaying WALs) and mounts the API.
func (e *Extension) Start(ctx context.Context, host component.Host) error {
	store, srv, err := e.store.Start(host, e.cfg.API, e.set.Logger, "metrics", func(srv *apiserver.Server) (*metricstore.Store, error) {
		opts := metricstore.Options{Logger: e.set.Logger, Version: e.set.BuildInfo.Version}
		if srv != nil {
			opts.Registerer, opts.Gatherer = srv.Registerer(), srv.Gatherer()
		}
		return metricstore.Open(ctx, e.cfg.Config, opts)
	})
	if err != nil {
		return fmt.Errorf("sprout_metrics: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.srv = srv
	if e.rules != nil {
		store.SetRulesRetriever(e.rules)
	}
	if e.ams != nil {
		store.SetAlertmanagerRetriever(e.ams)
	}
	if srv != nil {
		api := &metricstore.API{Store: store, Tenant: srv.Tenant}
		api.Register(srv)
		if e.rules != nil {
			e.mountRulesLocked(store)
		}
	}
	return nil
}

func (e *Extension) mountRulesLocked(store *metricstore.Store) {
	if e.rulesRouted || e.srv == nil {
		return
	}
	api := &metricstore.API{Store: store, Tenant: e.srv.Tenant}
	api.RegisterRules(e.srv)
	e.rulesRouted = true
}

// Shutdown closes the store; heads stay in their WALs.
func (e *Extension) Shutdown(context.Context) error {
	return e.store.Shutdown((*metricstore.Store).Close)
}

// Store is the running store, or nil before Start and after Shutdown.
func (e *Extension) Store() *metricstore.Store { return e.store.Get() }

var errNotStarted = errors.New("sprout_metrics extension is not started")

// Tenant returns the tenant's storage: queries span the head, local blocks and bucket blocks; appends go
// through the tenant's limits into its WAL (and on to remote write). Do not Close it: the store owns it.
func (e *Extension) Tenant(ctx context.Context, id string) (storage.Storage, error) {
	s := e.Store()
	if s == nil {
		return nil, errNotStarted
	}
	return s.Tenant(ctx, id)
}

// QueryEngine is the PromQL engine the store's API uses (with its limits: max samples, timeout).
func (e *Extension) QueryEngine() *promql.Engine {
	s := e.Store()
	if s == nil {
		return nil
	}
	return s.Engine()
}

// PromQLBudget is the points budget of the store's queries; the ruler checks uploaded rules against it.
func (e *Extension) PromQLBudget() querylimit.PromQLBudget {
	s := e.Store()
	if s == nil {
		return querylimit.PromQLBudget{}
	}
	return s.PromQLBudget()
}

// SetRulesRetriever makes the store serve /api/v1/rules and /api/v1/alerts (and the /prometheus prefixed
// paths) with Prometheus' own rendering of f's rules. Without a call those paths are left unregistered, so a
// ruler may mount handlers of its own there instead; do one or the other, not both.
func (e *Extension) SetRulesRetriever(f func(ctx context.Context, tenant string) v1.RulesRetriever) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rules = f
	if st := e.Store(); st != nil {
		st.SetRulesRetriever(f)
		e.mountRulesLocked(st)
	}
}

// SetBuildInfoFeatures makes /api/v1/status/buildinfo report Mimir's application and these feature flags (see
// metricstore.Store.SetBuildInfoFeatures); the ruler calls it once the store has started.
func (e *Extension) SetBuildInfoFeatures(features map[string]string) {
	if s := e.Store(); s != nil {
		s.SetBuildInfoFeatures(features)
	}
}

// SetAlertmanagerRetriever makes /api/v1/alertmanagers list f's Alertmanagers.
func (e *Extension) SetAlertmanagerRetriever(f func(ctx context.Context, tenant string) v1.AlertmanagerRetriever) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ams = f
	if st := e.Store(); st != nil {
		st.SetAlertmanagerRetriever(f)
	}
}
