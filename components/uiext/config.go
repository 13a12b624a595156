package uiext

import (
	"fmt"
	"net/url"

	"go.opentelemetry.io/collector/component"
)

// Config is the `sprout_ui` extension's configuration.
type Config struct {
	// API is the sprout_api extension the UI is mounted on.
	API component.ID `mapstructure:"api"`

	// TempoURL, PrometheusURL and LokiURL are the base URLs of the APIs the UI queries, e.g.
	// "https://tempo.example.com". Empty (the default) means the same origin: Sprout's own stores.
	TempoURL      string `mapstructure:"tempo_url"`
	PrometheusURL string `mapstructure:"prometheus_url"`
	LokiURL       string `mapstructure:"loki_url"`

	// OrgID, when set, is sent by the UI as X-Scope-OrgID on every query (multi-tenant servers).
	OrgID string `mapstructure:"org_id"`
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	for _, f := range []struct{ name, v string }{{"tempo_url", c.TempoURL}, {"prometheus_url", c.PrometheusURL}, {"loki_url", c.LokiURL}} {
		if f.v == "" {
			continue
		}
		u, err := url.Parse(f.v)
		if err != nil {
			return fmt.Errorf("%s: %q is not a URL: %w", f.name, f.v, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: %q must be an absolute http(s) URL such as http://tempo:3200, or empty for this server", f.name, f.v)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%s: %q must not have a query or fragment", f.name, f.v)
		}
	}
	return nil
}
