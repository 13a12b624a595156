package metricstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/klauspost/compress/snappy"

	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

// apiPaths are the Prometheus HTTP API paths Sprout serves, relative to /api/v1. Each is served by the tenant's
// instance of Prometheus' own API implementation, except metadata (see metadataStore).
var apiPaths = []string{
	"/query", "/query_range", "/query_exemplars", "/format_query", "/parse_query",
	"/labels", "/label/{name}/values", "/series", "/metadata",
	"/status/buildinfo", "/status/runtimeinfo", "/status/flags", "/status/config", "/status/tsdb",
	"/status/tsdb/blocks", "/status/walreplay",
	"/targets", "/targets/metadata", "/scrape_pools", "/alertmanagers",
	"/read", "/write", "/otlp/v1/metrics",
}

// rulesPaths are served only when a rules retriever is set (by the ruler), so that the ruler may instead mount
// its own handlers on these paths.
var rulesPaths = []string{"/rules", "/alerts"}

// Prefixes under which the API is mounted: Prometheus' own, and Mimir's.
var apiPrefixes = []string{"/api/v1", "/prometheus/api/v1"}

// Routes returns the net/http ServeMux patterns of the store's API: the Prometheus API under /api/v1 and
// /prometheus/api/v1, Mimir's push path /api/v1/push and Mimir's OTLP path /otlp/v1/metrics.
func Routes() []string {
	var out []string
	for _, pre := range apiPrefixes {
		for _, p := range apiPaths {
			out = append(out, pre+p)
		}
	}
	return append(out, "/api/v1/push", "/otlp/v1/metrics")
}

// RulesRoutes returns the patterns of /api/v1/rules and /api/v1/alerts under both prefixes.
func RulesRoutes() []string {
	var out []string
	for _, pre := range apiPrefixes {
		for _, p := range rulesPaths {
			out = append(out, pre+p)
		}
	}
	return out
}

// TenantFunc resolves the tenant of a request, or answers the request itself (401) and returns false (as the
// ruler's and the Alertmanager's TenantFunc).
type TenantFunc func(w http.ResponseWriter, r *http.Request) (string, bool)

// Mux is where the API mounts its routes (the sprout_api server, or an http.ServeMux in tests).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// API serves Prometheus' HTTP API (and Mimir's push and OTLP paths) over a Store, mounted as the trace and log
// stores mount theirs.
type API struct {
	Store *Store
	// Tenant resolves a request's tenant or answers the request itself and returns false; nil: every request
	// belongs to tenant.Default.
	Tenant TenantFunc
}

// Register mounts Routes().
func (a *API) Register(m Mux) { a.mount(m, Routes()) }

// RegisterRules mounts RulesRoutes(), once a rules retriever is set (see Store.SetRulesRetriever).
func (a *API) RegisterRules(m Mux) { a.mount(m, RulesRoutes()) }

func (a *API) mount(m Mux, patterns []string) {
	h := a.Store.Handler(a.Tenant)
	for _, p := range patterns {
		m.Handle(p, h)
	}
}

// Handler serves Routes() and RulesRoutes() for the tenant resolve names. With a nil resolver every request
// belongs to tenant.Default.
func (s *Store) Handler(resolve TenantFunc) http.Handler {
	if resolve == nil {
		resolve = func(http.ResponseWriter, *http.Request) (string, bool) { return tenant.Default, true }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := canonicalPath(r.URL.Path)
		id, ok := resolve(w, r)
		if !ok {
			return
		}
		t, err := s.Tenant(r.Context(), id)
		if err != nil {
			http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusInternalServerError))
			return
		}
		t.serve(w, r, path)
	})
}

// canonicalPath maps Mimir's paths onto Prometheus' ones.
func canonicalPath(p string) string {
	p = strings.TrimPrefix(p, "/prometheus")
	switch p {
	case "/api/v1/push":
		return "/api/v1/write"
	case "/otlp/v1/metrics":
		return "/api/v1/otlp/v1/metrics"
	}
	return p
}

func (t *Tenant) serve(w http.ResponseWriter, r *http.Request, path string) {
	if path == "/api/v1/metadata" {
		t.serveMetadata(w, r)
		return
	}
	if path == "/api/v1/status/buildinfo" {
		t.store.serveBuildInfo(w, r)
		return
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = path, ""
	r2.URL = &u
	if path == "/api/v1/read" && r.Method == http.MethodPost {
		if !boundSnappyBody(w, r2, nil) {
			return
		}
	}
	if path != "/api/v1/write" && path != "/api/v1/otlp/v1/metrics" {
		if isQueryPath(path) {
			r3, release, ok := t.admitQuery(w, r2, path)
			if !ok {
				return
			}
			defer release()
			r2 = r3
		}
		t.apiRouter().ServeHTTP(w, r2)
		return
	}
	if ref := t.limits.exhausted(); ref != nil {
		writeRefusal(w, ref)
		return
	}
	// Every write's body is reserved with the memory governor before it is read, its decoded size before it is
	// decoded (see memguard).
	tk := memguard.IngestTicket(r.Context())
	defer tk.Release()
	if err := tk.Grow(memguard.WireSize(r.Context(), r.ContentLength)); err != nil {
		refuseMemory(w, err)
		return
	}
	if path == "/api/v1/write" {
		t.writeRemote(w, r, tk)
		return
	}
	// OTLP: Prometheus' handler answers 500 to errors it does not know; a refusal by a limit must answer the
	// limit's status (400 or 429) instead, so the response is held until the handler is done.
	ctx, ref := withRefusal(r.Context())
	rec := &bufferedResponse{header: http.Header{}}
	t.apiRouter().ServeHTTP(rec, r2.WithContext(ctx))
	if refused := ref.get(); refused != nil {
		writeRefusal(w, refused)
		return
	}
	if rec.status == http.StatusInternalServerError && path == "/api/v1/otlp/v1/metrics" && strings.Contains(rec.body.String(), "unsupported metric type") {
		// A metric with no data (type Empty) is the sender's mistake, and a 500 would make it retry forever.
		rec.status = http.StatusBadRequest
	}
	if rec.status == http.StatusBadRequest {
		rec.explainDecodeError()
	}
	rec.writeTo(w)
}

// boundSnappyBody reads a snappy block body (remote read) and refuses it, before Prometheus'
// handler decodes it, when its header declares more than the server's body limit (Prometheus' own bound is 32
// MiB; behind sprout_api every content coding is held to max_request_body_size) or when the memory governor
// has no room for it. It answers the refusal itself and reports whether the request may go on.
func boundSnappyBody(w http.ResponseWriter, r *http.Request, tk *memguard.Ticket) bool {
	limit := memguard.DecodedLimit(r.Context(), maxRemoteWriteDecoded)
	rd, err := checkSnappyHeader(r.Body, limit)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	body, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if int64(len(body)) > limit {
		http.Error(w, fmt.Sprintf("request body exceeds the %d bytes limit", limit), http.StatusRequestEntityTooLarge)
		return false
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		http.Error(w, "decode snappy-compressed request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if int64(n) > limit {
		http.Error(w, fmt.Sprintf("decode snappy-compressed request body: decoded size %d exceeds the %d bytes limit (sprout_api max_request_body_size)", n, limit), http.StatusBadRequest)
		return false
	}
	if err := tk.Grow(int64(n)); err != nil {
		refuseMemory(w, err)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return true
}

// checkSnappyHeader reads the decoded length a snappy block declares in its first bytes and refuses the body
// without reading the rest when it is over limit (the HTTP server then answers with "Connection: close" and
// shuts the connection down gracefully, so the client still reads its 400). It returns a reader of the whole
// body otherwise.
func checkSnappyHeader(body io.Reader, limit int64) (io.Reader, error) {
	var head [binary.MaxVarintLen64]byte
	n, _ := io.ReadFull(body, head[:])
	if dl, k := binary.Uvarint(head[:n]); k > 0 && dl > uint64(limit) {
		return nil, fmt.Errorf("decode snappy-compressed request body: decoded size %d exceeds the %d bytes limit (sprout_api max_request_body_size)", dl, limit)
	}
	return io.MultiReader(bytes.NewReader(head[:n]), body), nil
}

// refuseMemory answers a memory governor's refusal (a retryable 503 with Retry-After, as remote write senders
// expect of a server that is short of resources for now).
func refuseMemory(w http.ResponseWriter, err error) {
	writeRefusal(w, err)
}

// writeRefusal answers a refused write in plain text, as Prometheus' write handlers answer errors: the
// refusal's status and Retry-After (500 for an error that is no refusal).
func writeRefusal(w http.ResponseWriter, err error) {
	refusal.SetHeaders(w.Header(), err)
	http.Error(w, err.Error(), refusal.HTTPStatus(err, http.StatusInternalServerError))
}

// explainDecodeError names what could not be decoded: Prometheus' OTLP handler answers with the bare decoder
// message ("unexpected EOF").
func (b *bufferedResponse) explainDecodeError() {
	msg := b.body.String()
	if !strings.HasPrefix(msg, "proto:") && !strings.HasPrefix(msg, "unexpected EOF") && !strings.Contains(msg, "cannot parse invalid wire-format data") {
		return
	}
	b.body.Reset()
	b.body.WriteString("decode OTLP protobuf message: " + msg)
}

// bufferedResponse holds a (small) write response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// writeAPIData and writeAPIError answer with Prometheus' JSON envelope.
func writeAPIData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func writeAPIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": typ, "error": msg})
}

var errClosed = errors.New("metrics store is closed")
