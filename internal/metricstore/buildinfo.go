package metricstore

import (
	"encoding/json"
	"maps"
	"net/http"
	"runtime"
)

// BuildInfoApplication is the application /api/v1/status/buildinfo names once features are set. Grafana's
// alerting reads the answer to classify a Prometheus data source: without "features" it is vanilla Prometheus,
// whose rules it shows read-only; with application "Grafana Mimir" and features.ruler_config_api "true" it
// manages the rules through the Mimir ruler API (/config/v1/rules below the data source's address), and an
// Alertmanager data source with that application gets Mimir's lazily created configuration. The string is the
// one Grafana compares with; Sprout serves those APIs (see the ruler).
const BuildInfoApplication = "Grafana Mimir"

// SetBuildInfoFeatures makes /api/v1/status/buildinfo report application BuildInfoApplication and these Mimir
// feature flags ("ruler_config_api", "alertmanager_config_api", "query_sharding", "federated_rules", each
// "true" or "false"), as Mimir does. The ruler sets them when it serves those APIs; nil removes them.
func (s *Store) SetBuildInfoFeatures(features map[string]string) {
	if features == nil {
		s.features.Store(nil)
		return
	}
	f := maps.Clone(features)
	s.features.Store(&f)
}

// buildInfo is Prometheus' /api/v1/status/buildinfo data, with Mimir's two fields added: Prometheus clients
// ignore fields they do not know.
type buildInfo struct {
	Application string            `json:"application,omitempty"`
	Version     string            `json:"version"`
	Revision    string            `json:"revision"`
	Branch      string            `json:"branch"`
	BuildUser   string            `json:"buildUser"`
	BuildDate   string            `json:"buildDate"`
	GoVersion   string            `json:"goVersion"`
	Features    map[string]string `json:"features,omitempty"`
}

// serveBuildInfo answers /api/v1/status/buildinfo as Prometheus does (GET only; its router answers other
// methods 405), plus Mimir's application and features when the ruler set them.
func (s *Store) serveBuildInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, OPTIONS")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	bi := buildInfo{Version: PrometheusVersion, Revision: "sprout", Branch: s.version, GoVersion: runtime.Version()}
	if f := s.features.Load(); f != nil {
		bi.Application = BuildInfoApplication
		bi.Features = *f
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Status string    `json:"status"`
		Data   buildInfo `json:"data"`
	}{"success", bi})
}
