package testutil

import (
	"strings"
	"testing"
	"time"

	"github.com/sprout-otel/sprout/internal/peerconfig"
)

// The environment variables that name the peer binaries. The peers are built from their public sources
// outside the repository; tests that need one skip when its variable is unset.
const (
	EnvTempo      = "SPROUT_PEER_TEMPO"
	EnvLoki       = "SPROUT_PEER_LOKI"
	EnvPrometheus = "SPROUT_PEER_PROMETHEUS"
)

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
		Ports:      peerconfig.TempoPorts,
		FixedPorts: opts.Ports,
		Config:     peerconfig.Tempo,
		Overlay:    overlay,
		Args:       []string{"-config.file={{.Config}}"},
		Ready:      `{{.URL "http"}}/ready`,
		Timeout:    2 * time.Minute,
	})}
}

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
		Ports:      peerconfig.LokiPorts,
		FixedPorts: opts.Ports,
		Config:     peerconfig.Loki,
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

// StartAlertmanager runs Alertmanager (bin, e.g. Debian's prometheus-alertmanager) alone, not clustered, with
// its API under /alertmanager as Mimir serves it, and a route that sends nowhere; it returns the base URL
// (…/alertmanager) once /-/ready answers.
func StartAlertmanager(t testing.TB, bin string) string {
	t.Helper()
	p := StartPeer(t, PeerSpec{
		Name:       "alertmanager",
		Bin:        bin,
		Ports:      []string{"http"},
		ConfigFile: "alertmanager.yml",
		Config:     "route:\n  receiver: none\nreceivers:\n  - name: none\n",
		Args: []string{"--config.file={{.Config}}", "--storage.path={{.Dir}}/data", `--web.listen-address={{.Addr "http"}}`,
			"--web.route-prefix=/alertmanager", "--cluster.listen-address="},
		Ready:   `{{.URL "http"}}/alertmanager/-/ready`,
		Timeout: time.Minute,
	})
	return p.URL("http") + "/alertmanager"
}

// joinYAML puts two YAML documents of top-level keys together (neither may repeat the other's keys).
func joinYAML(a, b string) string {
	if strings.TrimSpace(b) == "" {
		return a
	}
	return a + "\n" + b
}
