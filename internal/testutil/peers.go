package testutil

import (
	"strings"
	"testing"
	"time"
)

// The environment variables that name the peer binaries. The peers are built from their public sources
// outside the repository; tests that need one skip when its variable is unset.
const (
	EnvTempo      = "SPROUT_PEER_TEMPO"
	EnvLoki       = "SPROUT_PEER_LOKI"
	EnvPrometheus = "SPROUT_PEER_PROMETHEUS"
)

// tempoConfig is Tempo as one process (target all) on the local filesystem, on loopback ports, with OTLP over
// HTTP and gRPC, streaming over HTTP (its gRPC API on the HTTP port) and no query end cut-off, so what was just
// pushed is searchable.
const tempoConfig = `
stream_over_http_enabled: true
target: all
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.Port "http"}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.Port "grpc"}}
  log_level: warn
distributor:
  receivers:
    otlp:
      protocols:
        http:
          endpoint: 127.0.0.1:{{.Port "otlp_http"}}
        grpc:
          endpoint: 127.0.0.1:{{.Port "otlp_grpc"}}
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {{.Port "memberlist"}}
  join_members: []
query_frontend:
  query_end_cutoff: 0s
live_store:
  wal:
    path: {{.Dir}}/live-store/traces
  shutdown_marker_dir: {{.Dir}}/live-store/shutdown-marker
block_builder:
  wal:
    path: {{.Dir}}/block-builder
backend_scheduler:
  local_work_path: {{.Dir}}/scheduler
storage:
  trace:
    backend: local
    wal:
      path: {{.Dir}}/wal
    local:
      path: {{.Dir}}/blocks
usage_report:
  reporting_enabled: false
`

// TempoOptions says how a test's Tempo differs from the usual one.
type TempoOptions struct {
	// MultiTenant turns on multitenancy_enabled: every request then needs X-Scope-OrgID.
	MultiTenant bool
	// Overlay is YAML merged over the config (see PeerSpec.Overlay).
	Overlay string
	// Ports fixes some of its ports by name (see PeerSpec.FixedPorts).
	Ports map[string]int
}

// Tempo is a running Tempo.
type Tempo struct{ *Peer }

// API is the base URL of Tempo's HTTP API (and of its gRPC streaming API, stream_over_http_enabled).
func (t Tempo) API() string { return t.URL("http") }

// OTLPHTTP is the URL that takes OTLP/HTTP traces.
func (t Tempo) OTLPHTTP() string { return t.URL("otlp_http") + "/v1/traces" }

// OTLPGRPC is the host:port that takes OTLP over gRPC.
func (t Tempo) OTLPGRPC() string { return t.Addr("otlp_grpc") }

// StartTempo runs Tempo (SPROUT_PEER_TEMPO) and returns it once /ready answers.
func StartTempo(t testing.TB, opts TempoOptions) Tempo {
	t.Helper()
	overlay := opts.Overlay
	if opts.MultiTenant {
		overlay = joinYAML("multitenancy_enabled: true", overlay)
	}
	return Tempo{StartPeer(t, PeerSpec{
		Name:       "tempo",
		Env:        EnvTempo,
		Ports:      []string{"http", "grpc", "otlp_http", "otlp_grpc", "memberlist"},
		FixedPorts: opts.Ports,
		Config:     tempoConfig,
		Overlay:    overlay,
		Args:       []string{"-config.file={{.Config}}"},
		Ready:      `{{.URL "http"}}/ready`,
		Timeout:    2 * time.Minute,
	})}
}

// lokiConfig is Loki as one process on the local filesystem (TSDB index, schema v13), its ring in memory, on
// loopback ports, taking old samples and structured metadata, without result caching.
const lokiConfig = `
auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.Port "http"}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.Port "grpc"}}
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: {{.Dir}}
  storage:
    filesystem:
      chunks_directory: {{.Dir}}/chunks
      rules_directory: {{.Dir}}/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2024-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index: {prefix: index_, period: 24h}
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
  volume_enabled: true
query_range:
  cache_results: false
pattern_ingester:
  enabled: false
analytics:
  reporting_enabled: false
memberlist:
  bind_port: {{.Port "memberlist"}}
`

// LokiOptions says how a test's Loki differs from the usual one.
type LokiOptions struct {
	// MultiTenant sets auth_enabled: every request then needs X-Scope-OrgID.
	MultiTenant bool
	// Overlay is YAML merged over the config (see PeerSpec.Overlay).
	Overlay string
	// Ports fixes some of its ports by name (see PeerSpec.FixedPorts).
	Ports map[string]int
}

// Loki is a running Loki.
type Loki struct{ *Peer }

// API is the base URL of Loki's HTTP API.
func (l Loki) API() string { return l.URL("http") }

// StartLoki runs Loki (SPROUT_PEER_LOKI) and returns it once /ready answers.
func StartLoki(t testing.TB, opts LokiOptions) Loki {
	t.Helper()
	overlay := opts.Overlay
	if opts.MultiTenant {
		overlay = joinYAML("auth_enabled: true", overlay)
	}
	return Loki{StartPeer(t, PeerSpec{
		Name:       "loki",
		Env:        EnvLoki,
		Ports:      []string{"http", "grpc", "memberlist"},
		FixedPorts: opts.Ports,
		Config:     lokiConfig,
		Overlay:    overlay,
		Args:       []string{"-config.file={{.Config}}", "-target=all"},
		Ready:      `{{.URL "http"}}/ready`,
		// Loki is ready once its ingester has joined its ring, which takes 15 s or more.
		Timeout: 3 * time.Minute,
	})}
}

// PrometheusOptions says how a test's Prometheus differs from the usual one.
type PrometheusOptions struct {
	// Bin is the binary; when empty, SPROUT_PEER_PROMETHEUS names it (tests that have always run Debian's
	// Prometheus pass RequireBinary(t, "prometheus")).
	Bin string
	// Config is the template of prometheus.yml (default: no scrape, a 1 h global interval).
	Config string
	// Args are added to the usual flags.
	Args []string
	// Ports fixes its port ("http") (see PeerSpec.FixedPorts).
	Ports map[string]int
}

// Prometheus is a running Prometheus.
type Prometheus struct{ *Peer }

// API is Prometheus' base URL.
func (p Prometheus) API() string { return p.URL("http") }

// StartPrometheus runs Prometheus with its remote-write receiver and exemplar storage on, and returns it once
// /-/ready answers.
func StartPrometheus(t testing.TB, opts PrometheusOptions) Prometheus {
	t.Helper()
	cfg := opts.Config
	if cfg == "" {
		cfg = "global:\n  scrape_interval: 1h\n"
	}
	return Prometheus{StartPeer(t, PeerSpec{
		Name:       "prometheus",
		Bin:        opts.Bin,
		Env:        EnvPrometheus,
		Ports:      []string{"http"},
		FixedPorts: opts.Ports,
		ConfigFile: "prometheus.yml",
		Config:     cfg,
		Args: append([]string{"--config.file={{.Config}}", "--storage.tsdb.path={{.Dir}}/data",
			`--web.listen-address={{.Addr "http"}}`, "--web.enable-remote-write-receiver",
			"--enable-feature=exemplar-storage"}, opts.Args...),
		Ready:   `{{.URL "http"}}/-/ready`,
		Timeout: time.Minute,
	})}
}

// joinYAML puts two YAML documents of top-level keys together (neither may repeat the other's keys).
func joinYAML(a, b string) string {
	if strings.TrimSpace(b) == "" {
		return a
	}
	return a + "\n" + b
}
