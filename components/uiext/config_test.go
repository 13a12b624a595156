package uiext

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/sprout-otel/sprout/components/apiserver"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	api := component.NewID(apiserver.Type)
	d := defaultDataSource()
	tempo := defaultDataSource()
	tempo.URL, tempo.Tenant, tempo.Timeout = "https://tempo.example.com", "team-b", 30*time.Second
	tempo.Auth.Basic = BasicAuth{Username: "ui", Password: "s3cret"}
	tempo.TLS.InsecureSkipVerify = true
	prom := defaultDataSource()
	prom.URL, prom.Auth.BearerToken, prom.MaxResponseSize, prom.MaxConcurrent = "http://mimir:8080/prometheus", "tok", 1<<20, 4
	am := defaultDataSource()
	am.URL, am.Tenant = "http://mimir:8080/alertmanager", "team-c"
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(Type), want: &Config{API: api, Tempo: d, Prometheus: d, Loki: d, Alertmanager: d}},
		{id: component.NewIDWithName(Type, "remote"), want: &Config{API: api, Tempo: d, Prometheus: d, Loki: d, Alertmanager: d,
			TempoURL: "https://tempo.example.com", PrometheusURL: "http://mimir.internal:8080/prometheus", LokiURL: "http://loki:3100", OrgID: "team-a"}},
		{id: component.NewIDWithName(Type, "full"), want: &Config{API: api, Tempo: tempo, Prometheus: prom, Loki: d, Alertmanager: am}},
		{id: component.NewIDWithName(Type, "bad_scheme"), wantErr: "tempo_url"},
		{id: component.NewIDWithName(Type, "bad_alertmanager"), wantErr: "alertmanager_url"},
		{id: component.NewIDWithName(Type, "relative"), wantErr: "loki_url"},
		{id: component.NewIDWithName(Type, "query"), wantErr: "prometheus_url"},
		{id: component.NewIDWithName(Type, "disagree"), wantErr: "tempo.url and tempo_url disagree"},
		{id: component.NewIDWithName(Type, "userinfo"), wantErr: "loki.url"},
		{id: component.NewIDWithName(Type, "both_auth"), wantErr: "loki.auth: set basic or bearer_token, not both"},
		{id: component.NewIDWithName(Type, "password_only"), wantErr: "tempo.auth.basic.username"},
		{id: component.NewIDWithName(Type, "zero_timeout"), wantErr: "prometheus.timeout"},
		{id: component.NewIDWithName(Type, "zero_size"), wantErr: "loki.max_response_size"},
		{id: component.NewIDWithName(Type, "zero_concurrent"), wantErr: "tempo.max_concurrent"},
		{id: component.NewIDWithName(Type, "bad_tls"), wantErr: "tempo.tls"},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}
