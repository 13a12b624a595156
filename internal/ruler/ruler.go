// Package ruler evaluates Prometheus recording and alerting rules per tenant against Sprout's metrics store,
// with Prometheus' own rules engine, and LogQL rules (as Loki's ruler) against the log store with its LogQL
// engine. Rules come from a directory of rule files (LogQL ones under its logql/ subdirectory) and from the
// Mimir/Cortex and Loki ruler APIs (kept in the bucket). Recording rules write back into the store; firing and resolved
// alerts go to a Notifier (Sprout's embedded Alertmanager or an external one).
//
// It owns rule loading, the per-tenant rule managers and the ruler HTTP APIs. It must not store samples itself
// (the metrics store does) nor route notifications (the Alertmanager does).
package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"go.yaml.in/yaml/v3"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// Store is what the ruler needs from the metrics store: a tenant's storage (queried by rules, appended to by
// recording rules and the ALERTS series) and the PromQL engine.
type Store interface {
	Tenant(ctx context.Context, id string) (storage.Storage, error)
	QueryEngine() *promql.Engine
}

// Notifier receives a tenant's alerts as the rules engine sends them: firing ones every resend delay, and
// resolved ones with EndsAt set.
type Notifier interface {
	Notify(tenantID string, alerts []*rules.Alert, generatorURL string)
}

// Options configure a Ruler.
type Options struct {
	// RulePath is a directory of rule files: <RulePath>/<tenant>/*.yaml for each tenant, and
	// <RulePath>/*.yaml for the default tenant. Empty: no rule files.
	RulePath string
	// Rules holds the groups uploaded over the ruler API. Nil: the API is read-only and empty.
	Rules *RuleStore
	// LogQLRulePath is a directory of LogQL rule files laid out as RulePath is (Loki's local rule storage:
	// <dir>/<tenant>/*.yaml). Empty: <RulePath>/logql when RulePath is set.
	LogQLRulePath string
	// LogQLRules holds the LogQL groups uploaded over Loki's ruler API. Nil: that API is read-only and empty.
	LogQLRules *RuleStore
	// Logs evaluates LogQL rules; nil makes every LogQL rule fail with an error saying so.
	Logs  LogStore
	Store Store
	// Notifier gets the alerts; nil drops them (rules still evaluate and write ALERTS).
	Notifier Notifier
	// EvaluationInterval is the default group interval (default 1m).
	EvaluationInterval time.Duration
	// PollInterval is how often rule files and the bucket are re-read (default 1m). API changes apply at once.
	PollInterval time.Duration
	// ResendDelay is how often a firing alert is re-sent to the Alertmanager (default 1m).
	ResendDelay time.Duration
	// ExternalURL is used in alerts' generator URLs.
	ExternalURL string
	// PrometheusPrefixRules is the language of the groups /prometheus/api/v1/rules and /alerts list: LogQL (the
	// default) as Loki serves them, or PromQL as Mimir does (see Routes).
	PrometheusPrefixRules Lang
	Logger                *slog.Logger
	Registerer            prometheus.Registerer
}

// Ruler runs the rule managers of all tenants that have rules.
type Ruler struct {
	opts    Options
	metrics *rules.Metrics

	loadErrors   *prometheus.GaugeVec
	loadFailures *prometheus.CounterVec

	mu      sync.Mutex
	tenants map[tenantKey]*tenantRules

	syncMu sync.Mutex // one sync at a time
	stop   chan struct{}
	wg     sync.WaitGroup
}

// tenantKey names one rule manager: a tenant's rules of one language.
type tenantKey struct {
	lang Lang
	id   string
}

type tenantRules struct {
	mgr    *rules.Manager
	loader *memLoader
	errs   []error
	cancel context.CancelFunc
	done   chan struct{}
}

// New builds a Ruler; Start begins evaluating.
func New(o Options) (*Ruler, error) {
	if o.Store == nil {
		return nil, errors.New("ruler: a metrics store is required")
	}
	if o.EvaluationInterval <= 0 {
		o.EvaluationInterval = time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Minute
	}
	if o.ResendDelay <= 0 {
		o.ResendDelay = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LogQLRulePath == "" && o.RulePath != "" {
		o.LogQLRulePath = filepath.Join(o.RulePath, logqlDir)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	r := &Ruler{
		opts:    o,
		metrics: rules.NewGroupMetrics(o.Registerer),
		loadErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sprout_ruler_rule_load_errors",
			Help: "Rule groups or files that could not be loaded at the last sync, by tenant and query language.",
		}, []string{"tenant", "language"}),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sprout_ruler_groups_load_failures_total",
			Help: "Syncs at which a tenant's rules could not be read or applied (logged; the other tenants' rules ran), by tenant.",
		}, []string{"tenant"}),
		tenants: map[tenantKey]*tenantRules{},
		stop:    make(chan struct{}),
	}
	for _, c := range []prometheus.Collector{r.loadErrors, r.loadFailures} {
		if err := o.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("ruler: register metrics: %w", err)
		}
	}
	return r, nil
}

// Start loads the rules once and keeps re-reading them every poll interval until Stop. Only a failure to read
// the rule sources at all (rule_path, the bucket) is returned: one tenant's rules that cannot be read or applied
// (a group an earlier release stored under an id now refused, a tenant beyond max_tenants, an unreadable
// object) are logged and counted in sprout_ruler_groups_load_failures_total, and every other tenant starts.
func (r *Ruler) Start(ctx context.Context) error {
	if err := r.Sync(ctx); err != nil {
		return err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.opts.PollInterval)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), r.opts.PollInterval)
				if err := r.Sync(ctx); err != nil {
					r.opts.Logger.Error("rule sync failed", "err", err)
				}
				cancel()
			}
		}
	}()
	return nil
}

// Stop stops every rule manager.
func (r *Ruler) Stop() {
	select {
	case <-r.stop:
		return
	default:
		close(r.stop)
	}
	r.wg.Wait()
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, t := range r.tenants {
		t.close()
		delete(r.tenants, id)
	}
}

func (t *tenantRules) close() {
	t.mgr.Stop()
	<-t.done
	t.cancel()
}

// source is one rule file (or API namespace) of a tenant.
type source struct {
	id      string // file path, or namespace name for API rules
	content []byte
}

// Sync re-reads all rule sources and applies them. It is called at start, every poll interval and after an
// API change. Bad rules are logged and counted, never returned: they must not stop the good ones.
func (r *Ruler) Sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	srcs, err := r.collect(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	for id := range r.tenants {
		if _, ok := srcs[id]; !ok {
			srcs[id] = nil // no rules any more: stop its manager
		}
	}
	r.mu.Unlock()
	keys := make([]tenantKey, 0, len(srcs))
	for k := range srcs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].id != keys[j].id {
			return keys[i].id < keys[j].id
		}
		return keys[i].lang < keys[j].lang
	})
	for _, k := range keys {
		if err := r.apply(ctx, k, srcs[k]); err != nil {
			r.tenantFailed(k.id, err)
		}
	}
	return nil
}

// tenantFailed logs and counts one tenant's rules that could not be read or applied.
func (r *Ruler) tenantFailed(id string, err error) {
	r.loadFailures.WithLabelValues(id).Inc()
	r.opts.Logger.Error("tenant's rules not loaded; the other tenants' rules run, retried at the next sync", "tenant", id, "err", err)
}

// SyncTenant re-reads and applies one tenant's rules, for API changes.
func (r *Ruler) SyncTenant(ctx context.Context, id string) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	srcs, err := r.collect(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range Langs {
		k := tenantKey{lang: l, id: id}
		if err := r.apply(ctx, k, srcs[k]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Ruler) collect(ctx context.Context) (map[tenantKey][]source, error) {
	srcs := map[tenantKey][]source{}
	if r.opts.RulePath != "" {
		if err := r.collectFiles(srcs, PromQL, r.opts.RulePath); err != nil {
			return nil, err
		}
	}
	if r.opts.LogQLRulePath != "" {
		if err := r.collectFiles(srcs, LogQL, r.opts.LogQLRulePath); err != nil {
			return nil, err
		}
	}
	for _, l := range Langs {
		if err := r.collectStore(ctx, srcs, l, r.ruleStore(l)); err != nil {
			return nil, err
		}
	}
	return srcs, nil
}

// ruleStore is the store of API-managed rules of a language, nil if none.
func (r *Ruler) ruleStore(l Lang) *RuleStore {
	if l == LogQL {
		return r.opts.LogQLRules
	}
	return r.opts.Rules
}

func (r *Ruler) collectStore(ctx context.Context, srcs map[tenantKey][]source, l Lang, st *RuleStore) error {
	if st == nil {
		return nil
	}
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, id := range tenants {
		if err := tenant.Validate(id); err != nil {
			// Stored by an earlier release that accepted the id; it stays in the bucket for the operator.
			r.tenantFailed(id, fmt.Errorf("stored %s rules skipped: %w", l, err))
			continue
		}
		nss, err := st.Namespaces(ctx, id, "")
		if err != nil {
			r.tenantFailed(id, err)
			continue
		}
		for ns, groups := range nss {
			b, err := yaml.Marshal(rulefmt.RuleGroups{Groups: groups})
			if err != nil {
				return fmt.Errorf("encode namespace %s of tenant %s: %w", ns, id, err)
			}
			k := tenantKey{lang: l, id: id}
			srcs[k] = append(srcs[k], source{id: ns, content: b})
		}
	}
	return nil
}

// logqlDir is the subdirectory of rule_path that holds LogQL rule files (unless logql_rule_path is set).
const logqlDir = "logql"

func isRuleFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// collectFiles reads a rule directory: <dir>/*.yaml for the default tenant and <dir>/<tenant>/*.yaml. In the
// PromQL directory, the LogQL subdirectory is not a tenant.
func (r *Ruler) collectFiles(srcs map[tenantKey][]source, l Lang, dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if l == PromQL {
				r.opts.Logger.Warn("rule_path does not exist; no rule files loaded", "rule_path", dir)
			}
			return nil
		}
		return fmt.Errorf("read rule directory %s: %w", dir, err)
	}
	add := func(id, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			r.opts.Logger.Error("cannot read rule file", "file", path, "err", err)
			return
		}
		k := tenantKey{lang: l, id: id}
		srcs[k] = append(srcs[k], source{id: path, content: b})
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch {
		case !e.IsDir() && isRuleFile(e.Name()):
			add(tenant.Default, p)
		case e.IsDir():
			if l == PromQL && filepath.Clean(p) == filepath.Clean(r.opts.LogQLRulePath) {
				continue
			}
			if err := tenant.Validate(e.Name()); err != nil {
				r.opts.Logger.Warn("skipping rule directory that is not a valid tenant id", "dir", p, "err", err)
				continue
			}
			files, err := os.ReadDir(p)
			if err != nil {
				return fmt.Errorf("read rule directory %s: %w", p, err)
			}
			for _, f := range files {
				if !f.IsDir() && isRuleFile(f.Name()) {
					add(e.Name(), filepath.Join(p, f.Name()))
				}
			}
		}
	}
	return nil
}

// apply parses a tenant's sources and hands the groups that are valid to its rule manager, creating or
// stopping the manager as needed.
func (r *Ruler) apply(ctx context.Context, k tenantKey, srcs []source) error {
	id := k.id
	r.mu.Lock()
	t := r.tenants[k]
	r.mu.Unlock()
	if len(srcs) == 0 {
		if t != nil {
			t.close()
			r.mu.Lock()
			delete(r.tenants, k)
			r.mu.Unlock()
			r.loadErrors.DeleteLabelValues(id, string(k.lang))
		}
		return nil
	}
	logger := r.opts.Logger.With("tenant", id, "language", string(k.lang))
	groups := make(map[string]*rulefmt.RuleGroups, len(srcs))
	files := make([]string, 0, len(srcs))
	var loadErrs []error
	for _, s := range srcs {
		rgs, errs := ParseRuleFileLang(k.lang, s.id, s.content, logger)
		loadErrs = append(loadErrs, errs...)
		groups[s.id] = rgs
		files = append(files, s.id)
	}
	sort.Strings(files)
	if t == nil {
		var err error
		if t, err = r.newTenant(ctx, k, logger); err != nil {
			return err
		}
	}
	if !sameErrors(t.errs, loadErrs) {
		for _, e := range loadErrs {
			logger.Error("rule group not loaded; the tenant's other groups keep running", "err", e)
		}
	}
	r.loadErrors.WithLabelValues(id, string(k.lang)).Set(float64(len(loadErrs)))
	t.loader.set(groups)
	if err := t.mgr.Update(r.opts.EvaluationInterval, files, labels.EmptyLabels(), r.opts.ExternalURL, nil); err != nil {
		return fmt.Errorf("tenant %s: apply %s rules: %w", id, k.lang, err)
	}
	r.mu.Lock()
	t.errs = loadErrs
	r.mu.Unlock()
	return nil
}

func sameErrors(a, b []error) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Error() != b[i].Error() {
			return false
		}
	}
	return true
}

func (r *Ruler) newTenant(ctx context.Context, k tenantKey, logger *slog.Logger) (*tenantRules, error) {
	id := k.id
	st, err := r.opts.Store.Tenant(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: open metrics storage: %w", id, err)
	}
	mctx, cancel := context.WithCancel(tenant.WithTenant(context.Background(), id))
	loader := &memLoader{parser: parserFor(k.lang)}
	queryFunc := rules.EngineQueryFunc(r.opts.Store.QueryEngine(), st)
	genURL := generatorURL
	if k.lang == LogQL {
		queryFunc = logqlQueryFunc(r.opts.Logs, id)
		genURL = logqlGeneratorURL
	}
	notify := func(_ context.Context, expr string, alerts ...*rules.Alert) {
		if r.opts.Notifier != nil && len(alerts) > 0 {
			r.opts.Notifier.Notify(id, alerts, genURL(r.opts.ExternalURL, expr))
		}
	}
	mgr := rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		QueryFunc:            queryFunc,
		NotifyFunc:           notify,
		Context:              mctx,
		Appendable:           st,
		Queryable:            st,
		Logger:               logger,
		OutageTolerance:      time.Hour,
		ForGracePeriod:       10 * time.Minute,
		ResendDelay:          r.opts.ResendDelay,
		GroupLoader:          loader,
		Metrics:              r.metrics,
		RestoreNewRuleGroups: true,
	})
	t := &tenantRules{mgr: mgr, loader: loader, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(t.done); mgr.Run() }()
	r.mu.Lock()
	r.tenants[k] = t
	r.mu.Unlock()
	return t, nil
}

func generatorURL(base, expr string) string {
	return strings.TrimRight(base, "/") + "/graph?g0.expr=" + url.QueryEscape(expr) + "&g0.tab=1"
}

// logqlGeneratorURL links a LogQL alert to the log store's query API, which answers the rule's query.
func logqlGeneratorURL(base, expr string) string {
	return strings.TrimRight(base, "/") + "/loki/api/v1/query?query=" + url.QueryEscape(unquoteLogQL(expr))
}

// memLoader hands the rules manager groups that were already parsed and filtered, so that one bad group never
// makes the manager reject a whole update.
type memLoader struct {
	parser parser.Parser
	mu     sync.Mutex
	groups map[string]*rulefmt.RuleGroups
}

func (l *memLoader) set(g map[string]*rulefmt.RuleGroups) {
	l.mu.Lock()
	l.groups = g
	l.mu.Unlock()
}

func (l *memLoader) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if g, ok := l.groups[identifier]; ok {
		return g, nil
	}
	return &rulefmt.RuleGroups{}, nil
}

func (l *memLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// Group is a running rule group and the language of its expressions.
type Group struct {
	*rules.Group
	Lang Lang
}

// TenantRules is a snapshot of one tenant's rule state for the APIs.
type TenantRules struct {
	Groups []Group
	Errors []error
}

// Rules returns the tenant's running groups of every language (PromQL first) and the errors of their last load.
func (r *Ruler) Rules(id string) TenantRules {
	var out TenantRules
	for _, l := range Langs {
		r.mu.Lock()
		t := r.tenants[tenantKey{lang: l, id: id}]
		var errs []error
		if t != nil {
			errs = t.errs
		}
		r.mu.Unlock()
		if t == nil {
			continue
		}
		for _, g := range t.mgr.RuleGroups() {
			out.Groups = append(out.Groups, Group{Group: g, Lang: l})
		}
		out.Errors = append(out.Errors, errs...)
	}
	return out
}

// RuleStore is the store of API-managed PromQL rules, nil if none.
func (r *Ruler) RuleStore() *RuleStore { return r.opts.Rules }
