package rulerext

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/collector/component"

	"github.com/sprout-otel/sprout/internal/bucket"
	"github.com/sprout-otel/sprout/internal/egress"
	"github.com/sprout-otel/sprout/internal/ruler"
)

// Config is the `sprout_ruler` extension's configuration.
type Config struct {
	// API is the sprout_api extension that serves the ruler and Alertmanager APIs.
	API component.ID `mapstructure:"api"`
	// Metrics is the sprout_metrics extension whose store the rules query and write to.
	Metrics component.ID `mapstructure:"metrics"`

	// RulePath is a directory of Prometheus rule files: <rule_path>/<tenant>/*.yaml, and <rule_path>/*.yaml for
	// the default tenant. Empty: only rules uploaded over the ruler API.
	RulePath string `mapstructure:"rule_path"`
	// DataDir keeps the Alertmanager's silences and notification log, and the rule bucket by default.
	DataDir string `mapstructure:"data_dir"`
	// EvaluationInterval is the interval of groups that do not set their own.
	EvaluationInterval time.Duration `mapstructure:"evaluation_interval"`
	// PollInterval is how often rule files and the rule bucket are re-read.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// ResendDelay is how often firing alerts are re-sent to the Alertmanager.
	ResendDelay time.Duration `mapstructure:"resend_delay"`
	// ExternalURL is Sprout's URL as users reach it, for alert generator URLs and notification links.
	ExternalURL string `mapstructure:"external_url"`
	// Storage is where rules uploaded over the ruler API are kept (rules/<tenant>/<namespace>/<group>).
	// The filesystem directory defaults to <data_dir>/bucket.
	Storage bucket.Config `mapstructure:"storage"`

	// LogQL configures LogQL rules over the log store (Loki's ruler role).
	LogQL LogQLConfig `mapstructure:"logql"`
	// PrometheusPrefixRules is the language of the groups /prometheus/api/v1/rules and /prometheus/api/v1/alerts
	// list: "logql" as Loki serves that path (Grafana reads a Loki data source's rules there), or "promql" as
	// Mimir serves it (for a Prometheus data source at http://host:3200/prometheus). /api/v1/rules always lists
	// PromQL groups.
	PrometheusPrefixRules string `mapstructure:"prometheus_prefix_rules"`

	// AlertmanagerURL sends alerts to an external Alertmanager (its base URL, e.g. http://alertmanager:9093 or
	// http://mimir:8080/alertmanager) instead of the embedded one.
	AlertmanagerURL string `mapstructure:"alertmanager_url"`
	// Alertmanager is the embedded Alertmanager.
	Alertmanager AlertmanagerConfig `mapstructure:"alertmanager"`
}

// LogQLConfig configures LogQL rules: alerting and recording rule groups whose expressions are LogQL metric
// queries, evaluated against the log store. They come from <rule_path>/logql (Loki's local rule storage layout:
// <dir>/<tenant>/*.yaml, <dir>/*.yaml for the default tenant) and from Loki's ruler API, /loki/api/v1/rules.
type LogQLConfig struct {
	// Enabled evaluates LogQL rules; it makes the ruler depend on the log store extension.
	Enabled bool `mapstructure:"enabled"`
	// Logs is the sprout_logs extension whose store LogQL rules query.
	Logs component.ID `mapstructure:"logs"`
	// RulePath is the directory of LogQL rule files; empty: <rule_path>/logql.
	RulePath string `mapstructure:"rule_path"`
}

// AlertmanagerConfig configures the embedded Alertmanager.
type AlertmanagerConfig struct {
	// Enabled runs the embedded Alertmanager and serves its v2 API under /alertmanager/api/v2.
	Enabled bool `mapstructure:"enabled"`
	// ConfigFile is an Alertmanager configuration file.
	ConfigFile string `mapstructure:"config_file"`
	// Config is an inline Alertmanager configuration (YAML), used when config_file is empty.
	Config string `mapstructure:"config"`
	// Retention is how long expired silences and notification log entries are kept.
	Retention time.Duration `mapstructure:"retention"`

	// The receivers firewall (Mimir's alertmanager_receivers_firewall_* limits): the addresses that receivers
	// of tenants' configurations (uploaded to /api/v1/alerts) may connect to, checked at upload and at every
	// dial. ReceiversFirewallBlockPrivateAddresses refuses loopback, private, link-local (the cloud metadata
	// address), shared, multicast and unspecified addresses.
	ReceiversFirewallBlockPrivateAddresses bool `mapstructure:"receivers_firewall_block_private_addresses"`
	// ReceiversFirewallBlockCIDRNetworks refuses these networks too.
	ReceiversFirewallBlockCIDRNetworks []string `mapstructure:"receivers_firewall_block_cidr_networks"`
	// ReceiversFirewallAllowCIDRNetworks are exceptions to both blocks (e.g. an in-house webhook relay).
	ReceiversFirewallAllowCIDRNetworks []string `mapstructure:"receivers_firewall_allow_cidr_networks"`
	// ReceiversFirewallOperatorConfig holds the operator's own configuration (config_file, config) to the
	// firewall as well; off, it is trusted.
	ReceiversFirewallOperatorConfig bool `mapstructure:"receivers_firewall_operator_config"`
}

// firewallSetting is what a refusal names as the way to allow an address.
const firewallSetting = "sprout_ruler alertmanager.receivers_firewall_allow_cidr_networks"

// Firewall is the receivers' address policy this configuration describes.
func (c *AlertmanagerConfig) Firewall() (*egress.Policy, error) {
	block, err := egress.ParseCIDRs("alertmanager.receivers_firewall_block_cidr_networks", c.ReceiversFirewallBlockCIDRNetworks)
	if err != nil {
		return nil, err
	}
	allow, err := egress.ParseCIDRs("alertmanager.receivers_firewall_allow_cidr_networks", c.ReceiversFirewallAllowCIDRNetworks)
	if err != nil {
		return nil, err
	}
	return &egress.Policy{
		BlockPrivateAddresses: c.ReceiversFirewallBlockPrivateAddresses,
		BlockCIDRNetworks:     block,
		AllowCIDRNetworks:     allow,
		Setting:               firewallSetting,
	}, nil
}

func (c *Config) bucketConfig() bucket.Config {
	b := c.Storage
	if (b.Backend == "" || b.Backend == bucket.BackendFilesystem) && b.Filesystem.Dir == "" {
		b.Filesystem.Dir = filepath.Join(c.DataDir, "bucket")
	}
	return b
}

// Validate names the field that is wrong.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir: must be set")
	}
	if c.EvaluationInterval <= 0 {
		return errors.New("evaluation_interval: must be positive")
	}
	if c.PollInterval <= 0 {
		return errors.New("poll_interval: must be positive")
	}
	if c.ResendDelay < 0 {
		return errors.New("resend_delay: must not be negative")
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("external_url: %q is not an http(s) URL", c.ExternalURL)
		}
	}
	if c.AlertmanagerURL != "" {
		if u, err := url.Parse(c.AlertmanagerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("alertmanager_url: %q is not an http(s) URL", c.AlertmanagerURL)
		}
	}
	if c.PrometheusPrefixRules != string(ruler.LogQL) && c.PrometheusPrefixRules != string(ruler.PromQL) {
		return fmt.Errorf("prometheus_prefix_rules: %q is neither %q nor %q", c.PrometheusPrefixRules, ruler.LogQL, ruler.PromQL)
	}
	if c.Alertmanager.ConfigFile != "" && c.Alertmanager.Config != "" {
		return errors.New("alertmanager: set config_file or config, not both")
	}
	if c.Alertmanager.ConfigFile != "" {
		if _, err := os.Stat(c.Alertmanager.ConfigFile); err != nil {
			return fmt.Errorf("alertmanager.config_file: %w", err)
		}
	}
	if c.Alertmanager.Retention < 0 {
		return errors.New("alertmanager.retention: must not be negative")
	}
	if _, err := c.Alertmanager.Firewall(); err != nil {
		return err
	}
	bc := c.bucketConfig()
	if err := bc.Validate(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
