// Package apiserver is the `sprout_api` extension: the one HTTP port on which Sprout serves its
// Tempo-, Prometheus- and Loki-compatible query APIs, its push endpoints, its own /metrics and /ready, and the UI.
//
// The stores do not open ports of their own. Each store extension finds this server through the Collector host
// at start and mounts its routes on it, so that adding a store is a component plus a line of config. The server
// owns listening, tenancy resolution, panic recovery and request metrics; it must not know any store's API.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/cors"
	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// Server is the running `sprout_api` extension.
type Server struct {
	cfg    *Config
	logger *zap.Logger
	build  component.BuildInfo
	tel    component.TelemetrySettings

	mux      *http.ServeMux
	reg      *prometheus.Registry
	srv      *http.Server
	listener net.Listener
	done     chan struct{}

	pipelinesReady atomic.Bool
	// grpcServing is set once every component has started, and so registered its gRPC services: gRPC's
	// service table may not change while calls are served.
	grpcServing atomic.Bool
	mu          sync.Mutex
	checks      map[string]func() error

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// browserRefusals counts requests the browser walls refused, by wall.
	browserRefusals *prometheus.CounterVec

	cors *cors.Cors   // nil without cors.allowed_origins
	grpc *grpc.Server // nil without stream_over_http_enabled
	gov  *memguard.Governor
	// bodyLimit is the server's max_request_body_size once Start has resolved its default; readTimeout the
	// per-request body deadline.
	bodyLimit   int64
	readTimeout time.Duration
}

func newServer(cfg *Config, set extension.Settings) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{
		cfg:    cfg,
		logger: set.Logger,
		build:  set.BuildInfo,
		tel:    set.TelemetrySettings,
		mux:    http.NewServeMux(),
		reg:    reg,
		cors:   cfg.corsChecker(),
		checks: map[string]func() error{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sprout_http_requests_total", Help: "HTTP requests served by the API port, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sprout_http_request_duration_seconds", Help: "Time to serve HTTP requests on the API port, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}, []string{"route"}),
	}
	s.browserRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sprout_http_browser_refusals_total",
		Help: "Requests refused by the browser walls: reason cross_origin (403, a state change from another origin) or content_type (415).",
	}, []string{"reason"})
	reg.MustRegister(s.requests, s.duration, s.browserRefusals)
	limit := cfg.Memory.LimitMiB << 20
	if limit == 0 {
		limit = memguard.ProcessLimit("/")
	}
	ingest, query := cfg.Memory.Budgets(limit)
	s.gov = memguard.New(ingest, query, memguard.Options{Limit: limit, Registerer: reg})
	if cfg.StreamOverHTTPEnabled {
		s.grpc = s.newGRPC()
	}
	s.HandleFunc("GET /metrics", s.handleMetrics)
	s.HandleFunc("GET /ready", s.handleReady)
	s.HandleFunc("GET /sprout/api/v1/status", s.handleStatus)
	return s
}

// FromHost finds the `sprout_api` extension with the given id among the host's extensions.
func FromHost(host component.Host, id component.ID) (*Server, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("extension %q is not configured: add it under extensions and service.extensions", id)
	}
	s, ok := ext.(*Server)
	if !ok {
		return nil, fmt.Errorf("extension %q is not a %s extension", id, Type)
	}
	return s, nil
}

// Handle mounts h on pattern (a net/http ServeMux pattern such as "GET /api/traces/{id}").
func (s *Server) Handle(pattern string, h http.Handler) {
	route := pattern
	if i := strings.IndexByte(route, ' '); i >= 0 {
		route = route[i+1:]
	}
	s.mux.Handle(pattern, s.instrument(route, h))
}

// HandleFunc mounts f on pattern.
func (s *Server) HandleFunc(pattern string, f http.HandlerFunc) { s.Handle(pattern, f) }

// Registerer is where components register their Prometheus metrics; they are served on /metrics.
func (s *Server) Registerer() prometheus.Registerer { return s.reg }

// Gatherer exposes the registry, for tests and for self-scraping into the metrics store.
func (s *Server) Gatherer() prometheus.Gatherer { return s.reg }

// AddReadinessCheck adds a check that /ready runs; a non-nil error makes /ready answer 503 with its text.
func (s *Server) AddReadinessCheck(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = check
}

// MultitenancyEnabled reports whether requests must carry X-Scope-OrgID.
func (s *Server) MultitenancyEnabled() bool { return s.cfg.MultitenancyEnabled }

// TenantPolicy is the process's tenant policy: every store's HTTP handlers and exporters decide by it.
func (s *Server) TenantPolicy() tenant.Policy { return s.cfg.Policy() }

// Tenant resolves the tenant of r, or answers itself and returns false: 401 for a missing or invalid
// X-Scope-OrgID (as Tempo, Mimir and Loki do), 403 for a tenant the authenticated user may not act as.
func (s *Server) Tenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, err := s.cfg.Policy().FromRequest(r)
	if err != nil {
		http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusUnauthorized))
		return "", false
	}
	return id, true
}

// TenantPolicy finds the tenant policy for a component that holds no reference to `sprout_api` (a store
// exporter, a connector): the policy of the host's `sprout_api` extension. With several, the strictest one wins
// (multi-tenancy on if any has it), so that no pipeline accepts what an API refuses. With none, single-tenant.
func TenantPolicy(host component.Host) tenant.Policy {
	var best tenant.Policy
	for _, ext := range host.GetExtensions() {
		s, ok := ext.(*Server)
		if !ok {
			continue
		}
		p := s.TenantPolicy()
		if p.Multitenancy && (!best.Multitenancy || p.Bound() && !best.Bound()) {
			best = p
		}
	}
	return best
}

// Governor is the process's memory governor: ingest paths reach it through the request context
// (memguard.FromContext), pipeline components through MemoryGovernor, query handlers through either.
func (s *Server) Governor() *memguard.Governor { return s.gov }

// MemoryGovernor finds the memory governor for a component that holds no reference to `sprout_api` (a store
// exporter): the governor of the host's `sprout_api` extension, or nil (which admits everything) without one.
func MemoryGovernor(host component.Host) *memguard.Governor {
	for _, ext := range host.GetExtensions() {
		if s, ok := ext.(*Server); ok {
			return s.gov
		}
	}
	return nil
}

// QueryGate is the memory governor's check for a store's query limiter: a query is refused (503, Retry-After
// 1 s) once the live heap is past the query share, which is below ingest's, so that a heavy query is refused
// before ingest suffers. Nil (no gate) without a `sprout_api`.
func QueryGate(host component.Host) querylimit.Gate {
	g := MemoryGovernor(host)
	if g == nil {
		return nil
	}
	return func(context.Context, string) error {
		if err := g.Check(memguard.Query); err != nil {
			// The governor's refusal (503, Retry-After), counted by the limiters under limit="memory".
			if ref, ok := refusal.As(err); ok {
				counted := *ref
				counted.Limit = "memory"
				return &counted
			}
			return err
		}
		return nil
	}
}

// BuildInfo is the binary's name and version.
func (s *Server) BuildInfo() component.BuildInfo { return s.build }

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Start implements component.Component.
func (s *Server) Start(ctx context.Context, host component.Host) error {
	ln, err := s.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("sprout_api: listen on %s: %w", s.cfg.NetAddr.Endpoint, err)
	}
	srv, err := s.cfg.ToServer(ctx, host.GetExtensions(), s.tel,
		s.recoverer(s.crossOriginWall(s.withGovernor(s.routeGRPC(s.mux)))),
		confighttp.WithErrorHandler(grpcAwareError), confighttp.WithDecoder("snappy", keepSnappy))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("sprout_api: build server: %w", err)
	}
	s.bodyLimit = s.cfg.MaxRequestBodySize // ToServer has set its default
	// Go's server-wide ReadTimeout would also cancel the context of every request still running when it
	// expires (the connection's background read fails), cutting long queries. read_timeout is applied per
	// request instead, to reading the body only. Go falls back to ReadTimeout for a zero idle or header
	// timeout; that fallback is kept explicitly.
	s.readTimeout = srv.ReadTimeout
	srv.ReadTimeout = 0
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = s.readTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = s.readTimeout
	}
	srv.Handler = bodyDeadline(s.readTimeout, srv.Handler)
	if s.grpc != nil {
		s.enableH2C(srv)
	}
	s.srv, s.listener, s.done = srv, ln, make(chan struct{})
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("API server stopped", zap.Error(err))
		}
	}()
	s.logger.Info("Sprout API listening", zap.String("endpoint", ln.Addr().String()))
	ingest, query := s.gov.Budget(memguard.Ingest), s.gov.Budget(memguard.Query)
	fields := []zap.Field{zap.Int64("limit_bytes", s.gov.Limit()),
		zap.Int64("ingest_heap_bytes", ingest.Heap), zap.Int64("ingest_inflight_bytes", ingest.InFlight),
		zap.Int64("query_heap_bytes", query.Heap), zap.Int64("query_inflight_bytes", query.InFlight)}
	if d, ok := memguard.LastDecision(); ok {
		fields = append(fields, zap.String("gomemlimit", d.String()))
	}
	if d := memguard.GCDecision(); d != "" {
		fields = append(fields, zap.String("gogc", d))
	}
	s.logger.Info("Memory budgets", fields...)
	return nil
}

// Shutdown implements component.Component: it stops accepting and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	if s.cfg.ShutdownTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.ShutdownTimeout)
		defer cancel()
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	if s.grpc != nil {
		// Calls served through ServeHTTP end with their HTTP/2 streams; Stop only frees the server's state.
		s.grpc.Stop()
	}
	return err
}

// Ready implements extensioncapabilities.PipelineWatcher: all pipelines are running.
func (s *Server) Ready() error {
	s.grpcServing.Store(true)
	s.pipelinesReady.Store(true)
	return nil
}

// NotReady implements extensioncapabilities.PipelineWatcher: receivers are about to stop.
func (s *Server) NotReady() error { s.pipelinesReady.Store(false); return nil }

func (s *Server) readiness() []string {
	var problems []string
	if !s.pipelinesReady.Load() {
		problems = append(problems, "pipelines: not started")
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	checks := make([]func() error, len(names))
	for i, n := range names {
		checks[i] = s.checks[n]
	}
	s.mu.Unlock()
	for i, c := range checks {
		if err := c(); err != nil {
			problems = append(problems, names[i]+": "+err.Error())
		}
	}
	return problems
}

// handleMetrics serves the registry. With credentials tied to tenants (tenant_auth), a user who is not one of
// tenant_auth.admins sees only the series of the tenants it may act as, and those labelled by no tenant: as
// on a hosted Mimir or Loki, where per-tenant figures are the operator's, a tenant must not learn another's
// volumes (or that it exists) from /metrics. A Prometheus scraping Sprout authenticates as an admin.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var g prometheus.Gatherer = s.reg
	if p := s.cfg.Policy(); p.Bound() {
		user := tenant.User(client.FromContext(r.Context()))
		if !slices.Contains(s.cfg.TenantAuth.Admins, user) {
			g = tenantGatherer{g: s.reg, allowed: p.Allowed(user)}
		}
	}
	promhttp.HandlerFor(g, promhttp.HandlerOpts{Registry: s.reg}).ServeHTTP(w, r)
}

// tenantLabel is the label by which Sprout's own metrics name a tenant.
const tenantLabel = "tenant"

// tenantGatherer drops the series of tenants not in allowed.
type tenantGatherer struct {
	g       prometheus.Gatherer
	allowed []string
}

func (t tenantGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := t.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		kept := mf.Metric[:0]
		for _, m := range mf.Metric {
			if t.visible(m) {
				kept = append(kept, m)
			}
		}
		if len(kept) > 0 {
			mf.Metric = kept
			out = append(out, mf)
		}
	}
	return out, err
}

func (t tenantGatherer) visible(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == tenantLabel {
			return slices.Contains(t.allowed, l.GetValue())
		}
	}
	return true
}

// handleReady answers like Tempo's and Loki's /ready: 200 "ready", or 503 with the reason.
func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if p := s.readiness(); len(p) > 0 {
		http.Error(w, "not ready: "+strings.Join(p, "; "), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"version":      s.build.Version,
		"ready":        len(s.readiness()) == 0,
		"problems":     s.readiness(),
		"multitenancy": s.cfg.MultitenancyEnabled,
	})
}

// withGovernor hands the memory governor and the body limit to the handlers through the request context, so
// that every store's decoders hold a body to the same limit and reserve its memory with the same governor.
func (s *Server) withGovernor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(memguard.NewContext(r.Context(), s.gov, s.bodyLimit)))
	})
}

// bodyDeadline gives each request d to deliver its body: a body trickled slower fails its next read with a
// timeout, the handler answers 400 and the connection is closed. The deadline is lifted once the body is read
// to its end, so that it never fires while a long query is being evaluated or its answer written.
func bodyDeadline(d time.Duration, h http.Handler) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			h.ServeHTTP(w, r)
			return
		}
		r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}

// keepSnappy is the Collector's decoder for "Content-Encoding: snappy": it leaves the body and the header as
// they are. Snappy block bodies (Prometheus remote write, Loki's protobuf push) are decompressed by the
// store that reads them, once, into its pooled buffers and against its decoded-size bound; the Collector's
// decoder would decompress them here into a fresh buffer and drop the header the stores need. gzip, zstd and
// the others are still decompressed by the Collector.
func keepSnappy(io.ReadCloser) (io.ReadCloser, error) { return nil, nil }

type statusRecorder struct {
	http.ResponseWriter
	code int
}

// WriteHeader records the code; every 429 Sprout answers on this port carries Retry-After, whichever store
// refused (remote write and Loki push rate limits, query limits).
func (r *statusRecorder) WriteHeader(code int) {
	if code == http.StatusTooManyRequests {
		refusal.SetRetryAfter(r.Header(), refusal.DefaultRetryAfter)
	}
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Flush keeps streaming responses (tail, long queries) working through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer (hijacking for WebSockets).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		s.recoverer(h).ServeHTTP(rec, r)
		s.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		s.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// recoverer turns a handler panic into a 500 that names it, and logs the stack: one bad request must never take
// the process (and everyone's unflushed data) down.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.Error("panic in HTTP handler", zap.String("path", r.URL.Path), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
				http.Error(w, fmt.Sprintf("internal error: %v", v), http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}
