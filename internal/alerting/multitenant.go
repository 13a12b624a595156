package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/egress"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// UserConfig is a tenant's Alertmanager configuration as Mimir's API takes it: an Alertmanager configuration
// file and the notification templates it uses, by file name.
type UserConfig struct {
	TemplateFiles      map[string]string `yaml:"template_files"`
	AlertmanagerConfig string            `yaml:"alertmanager_config"`
}

// ErrNoConfig is returned for a tenant that has no configuration of its own.
var ErrNoConfig = errors.New("alertmanager config not found")

// MultiOptions configure a MultiTenant Alertmanager.
type MultiOptions struct {
	// Fallback is the configuration of tenants that have not set their own: ConfigFile or ConfigYAML, else
	// DefaultConfig. Its Retention, MaintenanceInterval, ExternalURL and Logger apply to every tenant; DataDir is
	// the parent of the tenants' state directories.
	Fallback Options
	// Bucket keeps the tenants' configurations under alertmanager/<tenant>. Nil: only the fallback is used and
	// the config API answers 501.
	Bucket bucket.Bucket
	// MaxTenants bounds the number of tenants' Alertmanagers (sprout_api's max_tenants; 0: no limit).
	MaxTenants int
	// Firewall is the address policy of the receivers of tenants' own configurations: checked when one is
	// uploaded (400 naming the URL) and at every dial. Nil: none.
	Firewall *egress.Policy
	// FirewallOperatorConfig holds the fallback configuration (the operator's) to Firewall too, at every dial.
	FirewallOperatorConfig bool
}

// MultiTenant is one embedded Alertmanager per tenant, as Mimir's multi-tenant Alertmanager: each tenant has its
// own configuration (set over the API and kept in the bucket; the fallback until it sets one), alerts,
// silences and notification log (under <data_dir>/tenants/<tenant>). A tenant's Alertmanager starts on its first
// request or alert. Nothing of one tenant is visible to another.
type MultiTenant struct {
	opts       MultiOptions
	tenantsDir string // <data_dir>/tenants
	fallback   *config.Config
	reg        prometheus.Registerer

	mu     sync.Mutex
	ams    map[string]*Alertmanager
	closed bool
}

// configKey is where a tenant's configuration is kept in the bucket.
func configKey(tenantID string) string { return "alertmanager/" + tenantID }

// NewMultiTenant checks the fallback configuration; tenants' Alertmanagers start on demand.
func NewMultiTenant(o MultiOptions) (*MultiTenant, error) {
	if o.Fallback.DataDir == "" {
		return nil, errors.New("alertmanager: data dir must be set")
	}
	if o.Fallback.Logger == nil {
		o.Fallback.Logger = slog.New(slog.DiscardHandler)
	}
	reg := o.Fallback.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	fb, err := LoadConfig(o.Fallback)
	if err != nil {
		return nil, err
	}
	tdir, err := migrateState(o.Fallback.DataDir)
	if err != nil {
		return nil, err
	}
	return &MultiTenant{opts: o, tenantsDir: tdir, fallback: fb, reg: reg, ams: map[string]*Alertmanager{}}, nil
}

// migrateState brings the state directory to its layout, <dir>/tenants/<tenant>/{silences,nflog,templates},
// and returns <dir>/tenants. It moves the tenants' directories of the layout before (<dir>/<tenant>), and the
// state of Sprout's earliest single Alertmanager (the files <dir>/silences and <dir>/nflog) to the default
// tenant, so that silences survive both upgrades. Only regular files are that earliest state: directories of
// those names are tenants named "silences" and "nflog".
func migrateState(dir string) (string, error) {
	tdir, err := tenant.Layout(dir, func(_ string, isDir bool) []string {
		if isDir {
			return []string{""}
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("alertmanager: %w", err)
	}
	for _, f := range []string{"silences", "nflog"} {
		old, dst := filepath.Join(dir, f), filepath.Join(tdir, tenant.Default, f)
		if st, err := os.Stat(old); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", fmt.Errorf("alertmanager: migrate %s: %w", old, err)
		}
		if err := os.Rename(old, dst); err != nil {
			return "", fmt.Errorf("alertmanager: migrate %s: %w", old, err)
		}
	}
	return tdir, nil
}

// Get returns the tenant's running Alertmanager, starting it with its stored configuration (or the fallback).
func (m *MultiTenant) Get(ctx context.Context, tenantID string) (*Alertmanager, error) {
	if err := tenant.Validate(tenantID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("alertmanager: stopped")
	}
	if am := m.ams[tenantID]; am != nil {
		return am, nil
	}
	if err := tenant.CheckCount(tenantID, len(m.ams), m.opts.MaxTenants, "Alertmanager"); err != nil {
		return nil, err
	}
	conf, err := m.tenantConfig(ctx, tenantID)
	if err != nil {
		m.opts.Fallback.Logger.Error("tenant Alertmanager config unusable; running the fallback", "tenant", tenantID, "err", err)
		conf = m.fallback
	}
	o := m.opts.Fallback
	o.DataDir = filepath.Join(m.tenantsDir, tenantID)
	o.Logger = o.Logger.With("tenant", tenantID)
	o.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenantID}, m.reg)
	o.Firewall = m.firewallFor
	am, err := NewWithConfig(o, conf)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", tenantID, err)
	}
	m.ams[tenantID] = am
	return am, nil
}

// tenantConfig is the tenant's stored configuration, parsed, with its templates written out; the fallback if
// it has none.
func (m *MultiTenant) tenantConfig(ctx context.Context, tenantID string) (*config.Config, error) {
	uc, err := m.GetConfig(ctx, tenantID)
	if errors.Is(err, ErrNoConfig) || errors.Is(err, errNoBucket) {
		return m.fallback, nil
	}
	if err != nil {
		return nil, err
	}
	return m.materialize(tenantID, uc)
}

var errNoBucket = errors.New("the Alertmanager has no configuration storage")

// GetConfig reads the tenant's own configuration; ErrNoConfig if it has none.
func (m *MultiTenant) GetConfig(ctx context.Context, tenantID string) (UserConfig, error) {
	var uc UserConfig
	if m.opts.Bucket == nil {
		return uc, errNoBucket
	}
	b, err := bucket.ReadAll(ctx, m.opts.Bucket, configKey(tenantID))
	if err != nil {
		if m.opts.Bucket.IsObjNotFoundErr(err) {
			return uc, ErrNoConfig
		}
		return uc, fmt.Errorf("read alertmanager config of tenant %s: %w", tenantID, err)
	}
	if err := yaml.Unmarshal(b, &uc); err != nil {
		return uc, fmt.Errorf("decode alertmanager config of tenant %s: %w", tenantID, err)
	}
	return uc, nil
}

// ValidateUserConfig checks a tenant configuration without applying it. Besides Alertmanager's own checks, a
// tenant may not reference files on Sprout's disk (any *_file setting) and template file names must be plain
// names.
func ValidateUserConfig(uc UserConfig) (*config.Config, error) {
	if strings.TrimSpace(uc.AlertmanagerConfig) == "" {
		return nil, errors.New("alertmanager_config must not be empty")
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(uc.AlertmanagerConfig), &doc); err != nil {
		return nil, fmt.Errorf("alertmanager_config: %w", err)
	}
	if key, line := fileReference(&doc); key != "" {
		return nil, fmt.Errorf("alertmanager_config: line %d: %s: a tenant configuration may not read files from the server's disk", line, key)
	}
	conf, err := config.Load(uc.AlertmanagerConfig)
	if err != nil {
		return nil, fmt.Errorf("alertmanager_config: %w", err)
	}
	tmpl, err := template.New()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(uc.TemplateFiles))
	for name := range uc.TemplateFiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := validTemplateName(name); err != nil {
			return nil, err
		}
		if err := tmpl.Parse(strings.NewReader(uc.TemplateFiles[name])); err != nil {
			return nil, fmt.Errorf("template_files: %s: %w", name, err)
		}
	}
	// Build every receiver as the Alertmanager will, so that what would fail to apply is refused now.
	for _, rcv := range conf.Receivers {
		if _, err := receiver.BuildReceiverIntegrations(rcv, tmpl, slog.New(slog.DiscardHandler)); err != nil {
			return nil, fmt.Errorf("alertmanager_config: receiver %q: %w", rcv.Name, err)
		}
	}
	return conf, nil
}

func validTemplateName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return fmt.Errorf("template_files: %q is not a plain file name", name)
	}
	return nil
}

// fileReference finds a mapping key naming a local file (password_file, bearer_token_file, ca_file, …).
func fileReference(n *yaml.Node) (string, int) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if strings.HasSuffix(k.Value, "_file") || strings.HasSuffix(k.Value, "_files") {
				return k.Value, k.Line
			}
		}
	}
	for _, c := range n.Content {
		if k, l := fileReference(c); k != "" {
			return k, l
		}
	}
	return "", 0
}

// materialize parses a tenant configuration and writes its templates to <data_dir>/tenants/<tenant>/templates, where
// the configuration's `templates` globs are resolved (they cannot reach outside it).
func (m *MultiTenant) materialize(tenantID string, uc UserConfig) (*config.Config, error) {
	conf, err := ValidateUserConfig(uc)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(m.tenantsDir, tenantID, "templates")
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("reset templates of tenant %s: %w", tenantID, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("templates of tenant %s: %w", tenantID, err)
	}
	names := make([]string, 0, len(uc.TemplateFiles))
	for name, text := range uc.TemplateFiles {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write template %s of tenant %s: %w", name, tenantID, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	globs := make([]string, 0, len(conf.Templates)+len(names))
	for _, g := range conf.Templates {
		globs = append(globs, filepath.Join(dir, filepath.Clean("/"+g)))
	}
	for _, n := range names {
		globs = append(globs, filepath.Join(dir, n))
	}
	conf.Templates = globs
	return conf, nil
}

// firewallFor is the address policy the receivers of conf dial through: the operator's fallback configuration is
// trusted unless FirewallOperatorConfig; every tenant configuration is held to it.
func (m *MultiTenant) firewallFor(conf *config.Config) *egress.Policy {
	if conf == m.fallback && !m.opts.FirewallOperatorConfig {
		return nil
	}
	return m.opts.Firewall
}

// SetConfig validates, stores and applies a tenant's configuration.
func (m *MultiTenant) SetConfig(ctx context.Context, tenantID string, uc UserConfig) error {
	if m.opts.Bucket == nil {
		return errNoBucket
	}
	if err := tenant.Validate(tenantID); err != nil {
		return err
	}
	m.mu.Lock()
	err := error(nil)
	if m.ams[tenantID] == nil {
		err = tenant.CheckCount(tenantID, len(m.ams), m.opts.MaxTenants, "Alertmanager")
	}
	m.mu.Unlock()
	if err != nil {
		return err // refused now rather than stored for an Alertmanager that could not start
	}
	conf, err := ValidateUserConfig(uc)
	if err != nil {
		return &BadConfigError{err}
	}
	if err := CheckReceivers(ctx, conf, m.opts.Firewall); err != nil {
		return &BadConfigError{fmt.Errorf("alertmanager_config: %w", err)}
	}
	b, err := yaml.Marshal(uc)
	if err != nil {
		return err
	}
	if err := m.opts.Bucket.Upload(ctx, configKey(tenantID), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("store alertmanager config of tenant %s: %w", tenantID, err)
	}
	return m.reload(ctx, tenantID)
}

// DeleteConfig removes a tenant's configuration; its Alertmanager goes back to the fallback.
func (m *MultiTenant) DeleteConfig(ctx context.Context, tenantID string) error {
	if m.opts.Bucket == nil {
		return errNoBucket
	}
	if err := m.opts.Bucket.Delete(ctx, configKey(tenantID)); err != nil && !m.opts.Bucket.IsObjNotFoundErr(err) {
		return fmt.Errorf("delete alertmanager config of tenant %s: %w", tenantID, err)
	}
	return m.reload(ctx, tenantID)
}

// reload applies the tenant's current configuration to its running Alertmanager, if it runs.
func (m *MultiTenant) reload(ctx context.Context, tenantID string) error {
	m.mu.Lock()
	am := m.ams[tenantID]
	m.mu.Unlock()
	if am == nil {
		return nil // applied when it starts
	}
	conf, err := m.tenantConfig(ctx, tenantID)
	if err != nil {
		return err
	}
	return am.ApplyConfig(conf)
}

// Stop stops every tenant's Alertmanager, writing their state snapshots.
func (m *MultiTenant) Stop() {
	m.mu.Lock()
	m.closed = true
	ams := m.ams
	m.ams = map[string]*Alertmanager{}
	m.mu.Unlock()
	for _, am := range ams {
		am.Stop()
	}
}

// BadConfigError is a configuration the API must refuse with 400.
type BadConfigError struct{ err error }

func (e *BadConfigError) Error() string { return "invalid alertmanager config: " + e.err.Error() }
func (e *BadConfigError) Unwrap() error { return e.err }

// TenantFunc resolves the tenant of a request, or answers it itself and returns false.
type TenantFunc func(w http.ResponseWriter, r *http.Request) (string, bool)

// Handler serves the v2 API of the request's tenant's Alertmanager, paths starting at /api/v2/.
func (m *MultiTenant) Handler(tenantOf TenantFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := tenantOf(w, r)
		if !ok {
			return
		}
		am, err := m.Get(r.Context(), id)
		if err != nil {
			// A malformed id or a tenant beyond max_tenants is the client's (400); anything else is ours.
			http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusServiceUnavailable))
			return
		}
		am.Handler().ServeHTTP(w, r)
	})
}

// maxConfigBytes bounds an uploaded configuration.
const maxConfigBytes = 4 << 20

// ConfigHandlers returns Mimir's Alertmanager configuration API for the request's tenant: GET (YAML, 404 if
// the tenant has none), POST (201; 400 with the reason) and DELETE (200) of /api/v1/alerts.
func (m *MultiTenant) ConfigHandlers(tenantOf TenantFunc) (get, set, del http.Handler) {
	get = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := tenantOf(w, r)
		if !ok {
			return
		}
		uc, err := m.GetConfig(r.Context(), id)
		if err != nil {
			configError(w, err)
			return
		}
		b, err := yaml.Marshal(uc)
		if err != nil {
			configError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b)
	})
	set = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := tenantOf(w, r)
		if !ok {
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigBytes+1))
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if len(body) > maxConfigBytes {
			http.Error(w, fmt.Sprintf("alertmanager config is larger than %d bytes", maxConfigBytes), http.StatusRequestEntityTooLarge)
			return
		}
		var uc UserConfig
		dec := yaml.NewDecoder(bytes.NewReader(body))
		dec.KnownFields(true)
		if err := dec.Decode(&uc); err != nil {
			http.Error(w, "invalid alertmanager config: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := m.SetConfig(r.Context(), id, uc); err != nil {
			configError(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	del = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := tenantOf(w, r)
		if !ok {
			return
		}
		if err := m.DeleteConfig(r.Context(), id); err != nil {
			configError(w, err)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return get, set, del
}

func configError(w http.ResponseWriter, err error) {
	var bad *BadConfigError
	_, refused := refusal.As(err)
	switch {
	case refused:
		http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusBadRequest))
	case errors.As(err, &bad):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrNoConfig):
		http.Error(w, err.Error(), http.StatusNotFound)
	case errors.Is(err, errNoBucket):
		http.Error(w, err.Error(), http.StatusNotImplemented)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
