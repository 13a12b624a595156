// Package rulerext is the `sprout_ruler` extension: Sprout's ruler and Alertmanager roles (Mimir's ruler and
// multi-tenant Alertmanager, Loki's ruler). It evaluates PromQL rules against the `sprout_metrics` store and
// LogQL rules against the `sprout_logs` store, serves the Mimir/Cortex and Loki ruler APIs and Prometheus'
// rules and alerts API on `sprout_api`, and runs one embedded Alertmanager per tenant (v2 API under
// /alertmanager, Mimir's configuration API under /alertmanager/api/v1/alerts) or sends alerts to an external one.
package rulerext

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/alerting"
	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/logstore"
	"github.com/sprout-otel/sprout/internal/metricstore"
	"github.com/sprout-otel/sprout/internal/ruler"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// buildInfoFeatures is the metrics store extension's door to the feature flags its buildinfo reports.
type buildInfoFeatures interface {
	SetBuildInfoFeatures(features map[string]string)
}

// AlertmanagerPrefix is where the embedded Alertmanager is served: amtool --alertmanager.url=http://host:3200/alertmanager.
const AlertmanagerPrefix = "/alertmanager"

type rulerExtension struct {
	cfg    *Config
	logger *zap.Logger

	ruler  *ruler.Ruler
	am     *alerting.MultiTenant
	sender *ruler.AlertmanagerSender
	bkt    bucket.Bucket

	maxTenants int // sprout_api's max_tenants, for the Alertmanagers
}

func newRulerExtension(cfg *Config, set extension.Settings) *rulerExtension {
	return &rulerExtension{cfg: cfg, logger: set.Logger}
}

// Dependencies makes the Collector start the API server, the metrics store and (with LogQL rules) the log store
// before the ruler.
func (e *rulerExtension) Dependencies() []component.ID {
	deps := []component.ID{e.cfg.API, e.cfg.Metrics}
	if e.cfg.LogQL.Enabled {
		deps = append(deps, e.cfg.LogQL.Logs)
	}
	return deps
}

// logStoreExtension is what the sprout_logs extension offers the ruler.
type logStoreExtension interface {
	Store() *logstore.Store
}

// logStore finds the log store LogQL rules query; nil (LogQL rules then report that they cannot run) when
// LogQL rules are disabled or the extension is missing.
func (e *rulerExtension) logStore(host component.Host) ruler.LogStore {
	if !e.cfg.LogQL.Enabled {
		return nil
	}
	ext, ok := host.GetExtensions()[e.cfg.LogQL.Logs].(logStoreExtension)
	if !ok || ext.Store() == nil {
		e.logger.Warn("sprout_ruler: the log store extension is not configured or not started; LogQL rules will fail until it is", zap.String("logs", e.cfg.LogQL.Logs.String()))
		return nil
	}
	return ext.Store()
}

// Start implements component.Component.
func (e *rulerExtension) Start(ctx context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[e.cfg.Metrics]
	if !ok {
		return fmt.Errorf("sprout_ruler: metrics extension %q is not configured: add it under extensions and service.extensions", e.cfg.Metrics)
	}
	store, ok := ext.(ruler.Store)
	if !ok {
		return fmt.Errorf("sprout_ruler: extension %q is not a metrics store (it has no Tenant and QueryEngine methods)", e.cfg.Metrics)
	}
	srv, err := apiserver.FromHost(host, e.cfg.API)
	if err != nil {
		e.logger.Warn("sprout_ruler runs without HTTP APIs", zap.Error(err))
		srv = nil
	}
	var reg prometheus.Registerer = prometheus.NewRegistry()
	if srv != nil {
		reg = srv.Registerer()
	}
	slogger := slog.New(zapslog.NewHandler(e.logger.Core()))
	e.maxTenants = apiserver.TenantPolicy(host).MaxTenants

	e.bkt, err = bucket.New(ctx, e.cfg.bucketConfig(), e.logger)
	if err != nil {
		e.shutdown()
		return fmt.Errorf("sprout_ruler: rule storage: %w", err)
	}
	if err := e.startAlerting(srv, reg, slogger); err != nil {
		e.shutdown()
		return err
	}
	var notifier ruler.Notifier
	if e.sender != nil {
		notifier = e.sender
	}
	e.ruler, err = ruler.New(ruler.Options{
		RulePath:              e.cfg.RulePath,
		Rules:                 ruler.NewRuleStore(e.bkt),
		LogQLRulePath:         e.cfg.LogQL.RulePath,
		LogQLRules:            ruler.NewLogQLRuleStore(e.bkt),
		Logs:                  e.logStore(host),
		Store:                 store,
		Notifier:              notifier,
		EvaluationInterval:    e.cfg.EvaluationInterval,
		PollInterval:          e.cfg.PollInterval,
		ResendDelay:           e.cfg.ResendDelay,
		ExternalURL:           e.cfg.ExternalURL,
		PrometheusPrefixRules: ruler.Lang(e.cfg.PrometheusPrefixRules),
		Logger:                slogger.With("component", "ruler"),
		Registerer:            reg,
	})
	if err != nil {
		e.shutdown()
		return err
	}
	if err := e.ruler.Start(ctx); err != nil {
		e.shutdown()
		return fmt.Errorf("sprout_ruler: load rules: %w", err)
	}
	if f, ok := ext.(buildInfoFeatures); ok && srv != nil {
		// Grafana's alerting manages the rules of a Prometheus data source only if its buildinfo says Mimir.
		f.SetBuildInfoFeatures(map[string]string{
			"ruler_config_api":        "true",
			"alertmanager_config_api": strconv.FormatBool(e.am != nil),
			"query_sharding":          "false",
			"federated_rules":         "false",
		})
	}
	if srv != nil {
		api := &ruler.API{Ruler: e.ruler, Tenant: srv.Tenant}
		api.Register(rulesMux{srv: srv, logger: e.logger})
	}
	return nil
}

func (e *rulerExtension) startAlerting(srv *apiserver.Server, reg prometheus.Registerer, slogger *slog.Logger) error {
	var err error
	if e.cfg.Alertmanager.Enabled {
		firewall, ferr := e.cfg.Alertmanager.Firewall()
		if ferr != nil {
			return fmt.Errorf("sprout_ruler: %w", ferr)
		}
		e.am, err = alerting.NewMultiTenant(alerting.MultiOptions{
			Fallback: alerting.Options{
				ConfigFile:  e.cfg.Alertmanager.ConfigFile,
				ConfigYAML:  e.cfg.Alertmanager.Config,
				DataDir:     filepath.Join(e.cfg.DataDir, "alertmanager"),
				Retention:   e.cfg.Alertmanager.Retention,
				ExternalURL: strings.TrimRight(e.cfg.ExternalURL, "/") + AlertmanagerPrefix,
				Logger:      slogger.With("component", "alertmanager"),
				Registerer:  reg,
			},
			Bucket:                 e.bkt,
			MaxTenants:             e.maxTenants,
			Firewall:               firewall,
			FirewallOperatorConfig: e.cfg.Alertmanager.ReceiversFirewallOperatorConfig,
		})
		if err != nil {
			return fmt.Errorf("sprout_ruler: %w", err)
		}
		if srv != nil {
			// The v2 API takes JSON (silences, alerts); Mimir's configuration API takes YAML.
			v2 := srv.RequireContentType(http.StripPrefix(AlertmanagerPrefix, e.am.Handler(alerting.TenantFunc(srv.Tenant))), apiserver.JSONTypes...)
			handle(srv, e.logger, AlertmanagerPrefix+"/api/v2/", v2)
			get, set, del := e.am.ConfigHandlers(alerting.TenantFunc(srv.Tenant))
			set = srv.RequireContentType(set, apiserver.YAMLTypes...)
			// Mimir serves its configuration API at /api/v1/alerts, where Prometheus serves its alerts view, and
			// Grafana reads both relative to a data source's address: GET /api/v1/alerts is Prometheus' here (the
			// ruler's route), and the whole configuration API is also under /alertmanager, so that a Grafana
			// Alertmanager data source of Mimir type at http://host:3200/alertmanager finds it (with the v2 API at
			// /alertmanager/alertmanager/api/v2, the path it builds). POST and DELETE stay at the root, where
			// nothing else answers them, for mimirtool.
			handle(srv, e.logger, "GET "+AlertmanagerPrefix+"/api/v1/alerts", get)
			for _, base := range []string{"", AlertmanagerPrefix} {
				handle(srv, e.logger, "POST "+base+"/api/v1/alerts", set)
				handle(srv, e.logger, "DELETE "+base+"/api/v1/alerts", del)
			}
			handle(srv, e.logger, AlertmanagerPrefix+AlertmanagerPrefix+"/api/v2/", http.StripPrefix(AlertmanagerPrefix, v2))
			// That data source asks <url>/api/v1/status/buildinfo whether the Alertmanager is Mimir's, whose
			// configuration a tenant without one reads as the fallback (Grafana's lazyConfigInit) rather than an error.
			handle(srv, e.logger, "GET "+AlertmanagerPrefix+"/api/v1/status/buildinfo", http.HandlerFunc(alertmanagerBuildInfo))
		}
	}
	switch {
	case e.cfg.AlertmanagerURL != "":
		e.sender, err = ruler.NewAlertmanagerSender(e.cfg.AlertmanagerURL, nil, slogger.With("component", "notifier"), reg)
	case e.am != nil:
		// In process, each tenant's ruler reaches its own Alertmanager through the X-Scope-OrgID the sender sets.
		e.sender, err = ruler.NewAlertmanagerSender("http://embedded"+AlertmanagerPrefix, ruler.HandlerClient(http.StripPrefix(AlertmanagerPrefix, e.am.Handler(senderTenant))), slogger.With("component", "notifier"), reg)
	default:
		e.logger.Warn("sprout_ruler: no Alertmanager (alertmanager.enabled is false and alertmanager_url is empty); alerts are evaluated but not sent")
	}
	return err
}

// rulesMux mounts the ruler's routes on srv: a POST (a rule group, YAML) behind the content-type wall, so that a
// text/plain or form POST from a web page cannot store one, and a conflict logged (see handle).
type rulesMux struct {
	srv    *apiserver.Server
	logger *zap.Logger
}

func (m rulesMux) Handle(pattern string, h http.Handler) {
	if strings.HasPrefix(pattern, "POST ") {
		h = m.srv.RequireContentType(h, apiserver.YAMLTypes...)
	}
	handle(m.srv, m.logger, pattern, h)
}

// handle mounts a route, and turns a pattern another component already registered into a logged warning
// instead of the ServeMux panic, so that overlapping APIs (e.g. a metrics store that also serves
// /api/v1/rules) fail soft and visibly.
func handle(srv *apiserver.Server, logger *zap.Logger, pattern string, h http.Handler) {
	defer func() {
		if v := recover(); v != nil {
			logger.Warn("sprout_ruler: route not registered, another component serves it", zap.String("pattern", pattern), zap.Any("conflict", v))
		}
	}()
	srv.Handle(pattern, h)
}

// alertmanagerBuildInfo answers Mimir's buildinfo for the Alertmanager role.
func alertmanagerBuildInfo(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
		"application": metricstore.BuildInfoApplication, "version": metricstore.PrometheusVersion, "revision": "sprout",
		"branch": "", "goVersion": runtime.Version(),
		"features": map[string]string{"alertmanager_config_api": "true", "ruler_config_api": "true"},
	}})
}

// senderTenant trusts the tenant header of the in-process sender's requests.
func senderTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.Header.Get(tenant.Header)
	if err := tenant.Validate(id); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return id, true
}

// Shutdown implements component.Component.
func (e *rulerExtension) Shutdown(context.Context) error {
	e.shutdown()
	return nil
}

func (e *rulerExtension) shutdown() {
	if e.ruler != nil {
		e.ruler.Stop()
	}
	if e.sender != nil {
		e.sender.Stop()
	}
	if e.am != nil {
		e.am.Stop()
	}
	if e.bkt != nil {
		_ = e.bkt.Close()
	}
}
