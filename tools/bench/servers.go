package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sprout-otel/sprout/internal/peerconfig"
)

// endpoints are where a started server takes load and answers queries.
type endpoints struct {
	Ingest string // OTLP gRPC host:port (traces), push URL (logs) or remote-write URL (metrics)
	Query  string // base URL of the query API
}

// system is one server under test: how to configure and start it in a fresh directory.
type system struct {
	Name   string // sprout, tempo, loki, victorialogs, prometheus, victoriametrics
	Signal string // traces, logs, metrics
	Bin    string
	Env    []string // KEY=VALUE added to the inherited environment
	// setup writes the server's config into dir and returns its arguments, its endpoints and its ready URL.
	setup func(dir string, ports []int) (args []string, ep endpoints, ready string, err error)
}

// server is a running system.
type server struct {
	sys  system
	cmd  *exec.Cmd
	dir  string
	ep   endpoints
	log  *os.File
	done chan error
	rss  *rssSampler // nil until the run starts sampling
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// freePorts returns n distinct free TCP ports below 32768 (above that, a peer's outgoing connections can hold
// the port), found by binding 127.0.0.1 and closing again.
func freePorts(n int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for try := 0; len(out) < n && try < 1000; try++ {
		p := 20000 + rand.IntN(12000)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, errors.New("no free ports below 32768")
	}
	return out, nil
}

// start configures and starts a system in dir and waits until it answers its ready URL.
func start(ctx context.Context, sys system, dir string, readyTimeout time.Duration) (*server, time.Duration, error) {
	ports, err := freePorts(6)
	if err != nil {
		return nil, 0, err
	}
	args, ep, ready, err := sys.setup(dir, ports)
	if err != nil {
		return nil, 0, fmt.Errorf("configure %s: %w", sys.Name, err)
	}
	logf, err := os.Create(filepath.Join(dir, sys.Name+".log"))
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(sys.Bin, args...)
	cmd.Dir = dir // relative paths of any default land in the measured directory
	if len(sys.Env) > 0 {
		cmd.Env = append(os.Environ(), sys.Env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, 0, fmt.Errorf("start %s: %w", sys.Bin, err)
	}
	s := &server{sys: sys, cmd: cmd, dir: dir, ep: ep, log: logf, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, 0, fmt.Errorf("%s exited before it was ready (%v): %s", sys.Name, err, s.tail())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ready, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Since(t0), nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill()
			return nil, 0, fmt.Errorf("%s not ready after %s: %s", sys.Name, readyTimeout, s.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail is the end of the server's log, for errors.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log.Name())
	return strings.TrimSpace(string(b[max(0, len(b)-1500):]))
}

// stop sends SIGTERM and waits up to grace before killing; it says whether the server exited by itself.
func (s *server) stop(grace time.Duration) (clean bool, took time.Duration) {
	t0 := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		clean = true
	case <-time.After(grace):
		s.kill()
	}
	s.log.Close()
	return clean, time.Since(t0)
}

func (s *server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

// dirBytes is the size of the files under dir (apparent size, as du -sb), leaving out the runner's own files.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if filepath.Dir(path) == dir && (strings.HasSuffix(path, ".log") || strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// version asks a binary for its version (each of these takes one of the flags tried) and keeps the first line.
func version(bin string) string {
	for _, flag := range []string{"--version", "-version"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, bin, flag).CombinedOutput()
		cancel()
		if err == nil && len(out) > 0 {
			return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	return "unknown"
}

func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}

func url(port int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }

// The systems. Each gets only the store under test, ingestion limits raised so that no limit decides the figure,
// query timeouts raised to 5 minutes on every system (so that the count over 10M items can finish; the latency
// figures do not depend on it), and everything under its run directory.

func sproutTraces(bin string) system {
	return system{Name: "sprout", Signal: "traces", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		cfg, err := writeFile(dir, "sprout.yaml", fmt.Sprintf(`extensions:
  sprout_api: {endpoint: "127.0.0.1:%[2]d"}
  sprout_traces: {data_dir: "%[1]s/traces", limits: {query_timeout: 5m}}
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:%[3]d"}}}
exporters:
  sprout_traces: {}
service:
  extensions: [sprout_api, sprout_traces]
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], exporters: [sprout_traces]}
`, dir, p[0], p[1]))
		return []string{"--config", cfg}, endpoints{Ingest: fmt.Sprintf("127.0.0.1:%d", p[1]), Query: url(p[0], "")}, url(p[0], "/ready"), err
	}}
}

func sproutLogs(bin string) system {
	return system{Name: "sprout", Signal: "logs", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		cfg, err := writeFile(dir, "sprout.yaml", fmt.Sprintf(`extensions:
  sprout_api: {endpoint: "127.0.0.1:%[2]d"}
  sprout_logs:
    data_dir: "%[1]s/logs"
    limits: {ingestion_rate_mb: 1024, ingestion_burst_size_mb: 1024, query_timeout: 5m}
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:%[3]d"}}}
exporters:
  sprout_logs: {}
service:
  extensions: [sprout_api, sprout_logs]
  telemetry: {metrics: {level: none}}
  pipelines:
    logs: {receivers: [otlp], exporters: [sprout_logs]}
`, dir, p[0], p[1]))
		return []string{"--config", cfg}, endpoints{Ingest: url(p[0], "/loki/api/v1/push"), Query: url(p[0], "")}, url(p[0], "/ready"), err
	}}
}

// sproutMetrics is Sprout's metrics store; cacheResults turns its results cache on (a key earlier binaries do
// not know).
func sproutMetrics(bin string, cacheResults bool) system {
	frontend := ""
	if cacheResults {
		frontend = "\n    frontend: {cache_results: true}"
	}
	return system{Name: "sprout", Signal: "metrics", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		cfg, err := writeFile(dir, "sprout.yaml", fmt.Sprintf(`extensions:
  sprout_api: {endpoint: "127.0.0.1:%[2]d"}
  sprout_metrics:
    data_dir: "%[1]s/metrics"
    storage: {filesystem: {dir: "%[1]s/metrics-bucket"}}
    limits: {ingestion_rate: 1000000000, ingestion_burst_size: 2000000000, max_global_series_per_user: 100000000, query_timeout: 5m}%[4]s
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:%[3]d"}}}
exporters:
  sprout_metrics: {}
service:
  extensions: [sprout_api, sprout_metrics]
  telemetry: {metrics: {level: none}}
  pipelines:
    metrics: {receivers: [otlp], exporters: [sprout_metrics]}
`, dir, p[0], p[1], frontend))
		return []string{"--config", cfg}, endpoints{Ingest: url(p[0], "/api/v1/write"), Query: url(p[0], "")}, url(p[0], "/ready"), err
	}}
}

// benchPorts names ports taken from the runner's free ports, in order, for a peer's shared config.
func benchPorts(names []string, p []int) map[string]int {
	m := map[string]int{}
	for i, n := range names {
		m[n] = p[i]
	}
	return m
}

// tempoBench is how the runner's Tempo differs from the tests' (internal/peerconfig): OTLP over gRPC only and
// no streaming over HTTP, as measured from the start; messages up to 64 MiB; ingestion limits raised; 5-minute
// query and write timeouts.
const tempoBench = `
stream_over_http_enabled: null
server:
  grpc_server_max_recv_msg_size: 67108864
  http_server_write_timeout: 5m
querier:
  search:
    query_timeout: 5m
distributor:
  receivers:
    otlp:
      protocols:
        http: null
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 1000000000
      burst_size_bytes: 1000000000
      max_traces_per_user: 100000000
`

// tempo: the single binary (target all) with local storage, as the peer tests run it, limits raised.
func tempo(bin string) system {
	return system{Name: "tempo", Signal: "traces", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		h := peerconfig.Host{Dir: dir, Ports: benchPorts(peerconfig.TempoPorts, p)}
		text, err := peerconfig.Render(peerconfig.Tempo, tempoBench, h)
		if err != nil {
			return nil, endpoints{}, "", err
		}
		cfg, err := writeFile(dir, "tempo.yaml", text)
		return []string{"-config.file", cfg}, endpoints{Ingest: h.Addr("otlp_grpc"), Query: h.URL("http")}, h.URL("http") + "/ready", err
	}}
}

// lokiBench is how the runner's Loki differs from the tests' (internal/peerconfig): messages up to 64 MiB,
// ingestion and per-stream limits raised, 5-minute query and write timeouts.
const lokiBench = `
server:
  grpc_server_max_recv_msg_size: 67108864
  http_server_write_timeout: 5m
limits_config:
  ingestion_rate_mb: 1024
  ingestion_burst_size_mb: 1024
  per_stream_rate_limit: 1GB
  per_stream_rate_limit_burst: 1GB
  max_query_series: 100000
  query_timeout: 5m
`

// loki: the single binary with filesystem storage, schema v13/tsdb, as the peer tests run it, limits raised.
func loki(bin string) system {
	return system{Name: "loki", Signal: "logs", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		h := peerconfig.Host{Dir: dir, Ports: benchPorts(peerconfig.LokiPorts, p)}
		text, err := peerconfig.Render(peerconfig.Loki, lokiBench, h)
		if err != nil {
			return nil, endpoints{}, "", err
		}
		cfg, err := writeFile(dir, "loki.yaml", text)
		return []string{"-config.file=" + cfg}, endpoints{Ingest: h.URL("http") + "/loki/api/v1/push", Query: h.URL("http")}, h.URL("http") + "/ready", err
	}}
}

func victoriaLogs(bin string) system {
	return system{Name: "victorialogs", Signal: "logs", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		return []string{"-storageDataPath=" + filepath.Join(dir, "data"), fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", p[0]), "-search.maxQueryDuration=5m"},
			endpoints{Ingest: url(p[0], "/insert/loki/api/v1/push"), Query: url(p[0], "")}, url(p[0], "/health"), nil
	}}
}

func prometheus(bin string) system {
	return system{Name: "prometheus", Signal: "metrics", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		cfg, err := writeFile(dir, "prometheus.yml", "global: {}\n")
		return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
				fmt.Sprintf("--web.listen-address=127.0.0.1:%d", p[0]), "--web.enable-remote-write-receiver", "--log.level=warn", "--query.timeout=5m"},
			endpoints{Ingest: url(p[0], "/api/v1/write"), Query: url(p[0], "")}, url(p[0], "/-/ready"), err
	}}
}

func victoriaMetrics(bin string) system {
	return system{Name: "victoriametrics", Signal: "metrics", Bin: bin, setup: func(dir string, p []int) ([]string, endpoints, string, error) {
		return []string{"-storageDataPath=" + filepath.Join(dir, "data"), fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", p[0]), "-retentionPeriod=100y", "-search.maxQueryDuration=5m",
				// its default of 300k series per query would refuse the 100× queries (1M series) outright
				"-search.maxUniqueTimeseries=100000000"},
			endpoints{Ingest: url(p[0], "/api/v1/write"), Query: url(p[0], "")}, url(p[0], "/health"), nil
	}}
}
