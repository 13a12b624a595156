package uiext

import (
	"fmt"
	"net/url"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configtls"
)

// Config is the `sprout_ui` extension's configuration.
type Config struct {
	// API is the sprout_api extension the UI is mounted on.
	API component.ID `mapstructure:"api"`

	// Tempo, Prometheus and Loki are the APIs the UI queries. A data source without a URL (the default) is
	// Sprout's own store on this port; one with a URL is a remote cluster that this extension proxies
	// server-side under /ui/proxy/<name>/, so the browser only ever calls this origin and never sees the
	// tenant or credentials.
	Tempo      DataSource `mapstructure:"tempo"`
	Prometheus DataSource `mapstructure:"prometheus"`
	Loki       DataSource `mapstructure:"loki"`
	// Alertmanager is where the alerts page reads silences: its URL is the base of Alertmanager's v2 API, e.g.
	// http://mimir:8080/alertmanager (Mimir serves it beside, not under, its Prometheus prefix). Without a URL
	// the silences are read from <prometheus>/alertmanager: Sprout's embedded Alertmanager when prometheus is
	// this server, else the remote prometheus data source's.
	Alertmanager DataSource `mapstructure:"alertmanager"`

	// TempoURL, PrometheusURL, LokiURL and AlertmanagerURL are shorthand for tempo.url, prometheus.url, loki.url
	// and alertmanager.url.
	TempoURL        string `mapstructure:"tempo_url"`
	PrometheusURL   string `mapstructure:"prometheus_url"`
	LokiURL         string `mapstructure:"loki_url"`
	AlertmanagerURL string `mapstructure:"alertmanager_url"`

	// OrgID, when set, is the tenant: the page sends it as X-Scope-OrgID to Sprout's own stores, and it is
	// the default tenant of every proxied data source.
	OrgID string `mapstructure:"org_id"`
}

// DataSource is one remote API reached through the UI's proxy, configured as Grafana's data sources are.
type DataSource struct {
	// URL is the API's base URL, e.g. http://tempo:3200 or http://mimir:8080/prometheus.
	URL string `mapstructure:"url"`
	// Tenant is sent as X-Scope-OrgID on every proxied request; empty means org_id.
	Tenant string `mapstructure:"tenant"`
	// Auth is added to every proxied request.
	Auth AuthConfig `mapstructure:"auth"`
	// TLS configures the connection to URL when it is https.
	TLS configtls.ClientConfig `mapstructure:"tls"`
	// Timeout bounds one proxied request, from sending it to the last byte of the answer.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxResponseSize is the largest answer passed on to the page, in bytes; a larger one is a 502.
	MaxResponseSize int64 `mapstructure:"max_response_size"`
	// MaxConcurrent is how many proxied requests to this data source run at once; more wait up to 10 s.
	MaxConcurrent int `mapstructure:"max_concurrent"`
}

// AuthConfig is HTTP basic auth or a bearer token, at most one of the two.
type AuthConfig struct {
	Basic       BasicAuth           `mapstructure:"basic"`
	BearerToken configopaque.String `mapstructure:"bearer_token"`
}

// BasicAuth is a username and password for HTTP basic auth.
type BasicAuth struct {
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
}

func defaultDataSource() DataSource {
	return DataSource{TLS: configtls.NewDefaultClientConfig(), Timeout: time.Minute, MaxResponseSize: 64 << 20, MaxConcurrent: 16}
}

// dataSources lists the data sources with their names and effective URLs (url, or the *_url shorthand), in a
// fixed order.
func (c *Config) dataSources() []namedSource {
	return []namedSource{
		{"tempo", "tempo_url", &c.Tempo, c.TempoURL, pick(c.Tempo.URL, c.TempoURL)},
		{"prometheus", "prometheus_url", &c.Prometheus, c.PrometheusURL, pick(c.Prometheus.URL, c.PrometheusURL)},
		{"loki", "loki_url", &c.Loki, c.LokiURL, pick(c.Loki.URL, c.LokiURL)},
		{"alertmanager", "alertmanager_url", &c.Alertmanager, c.AlertmanagerURL, pick(c.Alertmanager.URL, c.AlertmanagerURL)},
	}
}

type namedSource struct {
	name, shorthand string
	ds              *DataSource
	short           string // the *_url shorthand's value
	url             string // the effective URL
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	for _, s := range c.dataSources() {
		if err := s.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (s namedSource) validate() error {
	if s.ds.URL != "" && s.short != "" && s.ds.URL != s.short {
		return fmt.Errorf("%s: %s.url and %s disagree; set one of them", s.name, s.name, s.shorthand)
	}
	field := s.name + ".url"
	if s.ds.URL == "" {
		field = s.shorthand
	}
	if s.url == "" {
		return nil
	}
	u, err := url.Parse(s.url)
	if err != nil {
		return fmt.Errorf("%s: %q is not a URL: %w", field, s.url, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q must be an absolute http(s) URL such as http://tempo:3200, or empty for this server", field, s.url)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s: %q must not have a query or fragment", field, s.url)
	}
	if u.User != nil {
		return fmt.Errorf("%s: %q must not carry credentials; use %s.auth.basic", field, s.url, s.name)
	}
	d := s.ds
	switch {
	case d.Timeout <= 0:
		return fmt.Errorf("%s.timeout: must be positive", s.name)
	case d.MaxResponseSize <= 0:
		return fmt.Errorf("%s.max_response_size: must be positive", s.name)
	case d.MaxConcurrent <= 0:
		return fmt.Errorf("%s.max_concurrent: must be positive", s.name)
	case d.Auth.BearerToken != "" && (d.Auth.Basic.Username != "" || d.Auth.Basic.Password != ""):
		return fmt.Errorf("%s.auth: set basic or bearer_token, not both", s.name)
	case d.Auth.Basic.Username == "" && d.Auth.Basic.Password != "":
		return fmt.Errorf("%s.auth.basic.username: must be set with a password", s.name)
	}
	if err := d.TLS.Validate(); err != nil {
		return fmt.Errorf("%s.tls: %w", s.name, err)
	}
	return nil
}
