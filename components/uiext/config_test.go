package uiext

import (
	"path/filepath"
	"testing"

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
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{id: component.NewID(Type), want: &Config{API: api}},
		{id: component.NewIDWithName(Type, "remote"), want: &Config{API: api, TempoURL: "https://tempo.example.com",
			PrometheusURL: "http://mimir.internal:8080/prometheus", LokiURL: "http://loki:3100", OrgID: "team-a"}},
		{id: component.NewIDWithName(Type, "bad_scheme"), wantErr: "tempo_url"},
		{id: component.NewIDWithName(Type, "relative"), wantErr: "loki_url"},
		{id: component.NewIDWithName(Type, "query"), wantErr: "prometheus_url"},
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
