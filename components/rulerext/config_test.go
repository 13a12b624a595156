package rulerext

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/extension/extensiontest"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id      component.ID
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{id: component.NewID(Type), check: func(t *testing.T, c *Config) {
			if c.Metrics.String() != "sprout_metrics" || c.API.String() != "sprout_api" || !c.Alertmanager.Enabled ||
				!c.Alertmanager.ReceiversFirewallBlockPrivateAddresses || c.Alertmanager.ReceiversFirewallOperatorConfig {
				t.Errorf("defaults = %+v", c)
			}
			if c.PrometheusPrefixRules != "logql" {
				t.Errorf("prometheus_prefix_rules default = %q", c.PrometheusPrefixRules)
			}
			if got := c.bucketConfig().Filesystem.Dir; got != filepath.Join("data", "ruler", "bucket") {
				t.Errorf("default bucket dir = %q", got)
			}
		}},
		{id: component.NewIDWithName(Type, "full"), check: func(t *testing.T, c *Config) {
			if c.RulePath != "/etc/sprout/rules" || c.EvaluationInterval != 30*time.Second || c.Storage.S3.Bucket != "rules" ||
				!strings.Contains(c.Alertmanager.Config, "receiver: ops") || c.Metrics.Name() != "main" {
				t.Errorf("config = %+v", c)
			}
		}},
		{id: component.NewIDWithName(Type, "external"), check: func(t *testing.T, c *Config) {
			if c.AlertmanagerURL != "http://alertmanager:9093" || c.Alertmanager.Enabled {
				t.Errorf("config = %+v", c)
			}
		}},
		{id: component.NewIDWithName(Type, "logql"), check: func(t *testing.T, c *Config) {
			if !c.LogQL.Enabled || c.LogQL.Logs.String() != "sprout_logs/main" || c.LogQL.RulePath != "/etc/loki/rules" {
				t.Errorf("logql = %+v", c.LogQL)
			}
			if deps := newRulerExtension(c, extensiontest.NewNopSettings(Type)).Dependencies(); len(deps) != 3 || deps[2].String() != "sprout_logs/main" {
				t.Errorf("dependencies = %v", deps)
			}
		}},
		{id: component.NewIDWithName(Type, "no_logql"), check: func(t *testing.T, c *Config) {
			if deps := newRulerExtension(c, extensiontest.NewNopSettings(Type)).Dependencies(); len(deps) != 2 {
				t.Errorf("dependencies without LogQL = %v", deps)
			}
		}},
		{id: component.NewIDWithName(Type, "firewall"), check: func(t *testing.T, c *Config) {
			p, err := c.Alertmanager.Firewall()
			if err != nil {
				t.Fatal(err)
			}
			if !p.BlockPrivateAddresses || !c.Alertmanager.ReceiversFirewallOperatorConfig || len(p.BlockCIDRNetworks) != 1 || len(p.AllowCIDRNetworks) != 2 {
				t.Errorf("firewall = %+v", p)
			}
			if p.CheckHost("10.20.1.1") != nil || p.CheckHost("192.168.1.7") != nil || p.CheckHost("192.168.1.8") == nil || p.CheckHost("203.0.113.9") == nil {
				t.Errorf("firewall decisions wrong: %+v", p)
			}
		}},
		{id: component.NewIDWithName(Type, "firewall_off"), check: func(t *testing.T, c *Config) {
			if p, _ := c.Alertmanager.Firewall(); p.Enabled() {
				t.Errorf("firewall = %+v, want off", p)
			}
		}},
		{id: component.NewIDWithName(Type, "bad_firewall"), wantErr: `alertmanager.receivers_firewall_allow_cidr_networks[1]: "10.0.0.0/33"`},
		{id: component.NewIDWithName(Type, "mimir_prefix"), check: func(t *testing.T, c *Config) {
			if c.PrometheusPrefixRules != "promql" {
				t.Errorf("prometheus_prefix_rules = %q", c.PrometheusPrefixRules)
			}
		}},
		{id: component.NewIDWithName(Type, "bad_prefix_rules"), wantErr: `prometheus_prefix_rules: "both" is neither "logql" nor "promql"`},
		{id: component.NewIDWithName(Type, "bad_interval"), wantErr: "evaluation_interval: must be positive"},
		{id: component.NewIDWithName(Type, "bad_am_url"), wantErr: "alertmanager_url:"},
		{id: component.NewIDWithName(Type, "both_am_configs"), wantErr: "set config_file or config, not both"},
		{id: component.NewIDWithName(Type, "bad_storage"), wantErr: `storage: backend: unknown backend "gcs"`},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			sub, err := cm.Sub(tt.id.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			err = confmap.Validate(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			tt.check(t, cfg)
		})
	}
}
