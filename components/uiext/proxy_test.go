package uiext

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sprout-otel/sprout/internal/refusal"
)

// seen is what an upstream received.
type seen struct {
	method, path, rawPath, query string
	header                       http.Header
}

func upstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, chan seen) {
	t.Helper()
	ch := make(chan seen, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ch <- seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Header.Clone()}
		if h != nil {
			h(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "upstream=1")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func proxyMux(t *testing.T, cfg *Config) *http.ServeMux {
	t.Helper()
	ps, err := newProxies(context.Background(), cfg, nil)
	require.NoError(t, err)
	mux := testMux(t, cfg)
	registerProxies(mux, ps)
	return mux
}

func ds(url string) DataSource {
	d := defaultDataSource()
	d.URL = url
	return d
}

func serve(mux http.Handler, method, target string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestProxyAllowlist(t *testing.T) {
	tempo, tempoSeen := upstream(t, nil)
	prom, promSeen := upstream(t, nil)
	loki, lokiSeen := upstream(t, nil)
	am, amSeen := upstream(t, nil)
	mux := proxyMux(t, &Config{Tempo: ds(tempo.URL), Prometheus: ds(prom.URL + "/prometheus"), Loki: ds(loki.URL + "/"), Alertmanager: ds(am.URL + "/alertmanager")})
	seenBy := map[string]chan seen{"tempo": tempoSeen, "prometheus": promSeen, "loki": lokiSeen, "alertmanager": amSeen}
	tests := []struct {
		method, target string
		code           int
		upstreamPath   string // "" when the upstream must not be called
		bodyHas        string
	}{
		{"GET", "/ui/proxy/tempo/api/search?q=%7B%7D&limit=20", 200, "/api/search", `{"ok":true}`},
		{"GET", "/ui/proxy/tempo/api/v2/search/tags", 200, "/api/v2/search/tags", ""},
		{"GET", "/ui/proxy/tempo/api/v2/search/tag/resource.service.name/values", 200, "/api/v2/search/tag/resource.service.name/values", ""},
		{"GET", "/ui/proxy/tempo/api/v2/traces/0123456789abcdef0123456789abcdef", 200, "/api/v2/traces/0123456789abcdef0123456789abcdef", ""},
		{"HEAD", "/ui/proxy/tempo/api/search", 200, "/api/search", ""},
		{"GET", "/ui/proxy/prometheus/api/v1/query_range?query=up&start=1&end=2&step=1", 200, "/prometheus/api/v1/query_range", ""},
		{"GET", "/ui/proxy/prometheus/api/v1/label/__name__/values", 200, "/prometheus/api/v1/label/__name__/values", ""},
		{"GET", "/ui/proxy/prometheus/api/v1/query_exemplars?query=x", 200, "/prometheus/api/v1/query_exemplars", ""},
		{"GET", "/ui/proxy/prometheus/api/v1/rules", 200, "/prometheus/api/v1/rules", ""},
		{"GET", "/ui/proxy/prometheus/alertmanager/api/v2/silences", 200, "/prometheus/alertmanager/api/v2/silences", ""},
		{"GET", "/ui/proxy/loki/loki/api/v1/query_range?query=%7Ba%3D%22b%22%7D", 200, "/loki/api/v1/query_range", ""},
		{"GET", "/ui/proxy/loki/loki/api/v1/label/service_name/values", 200, "/loki/api/v1/label/service_name/values", ""},
		{"GET", "/ui/proxy/loki/prometheus/api/v1/rules", 200, "/prometheus/api/v1/rules", ""},
		// The home page's instant log counts and the label browsers' series checks.
		{"GET", "/ui/proxy/prometheus/api/v1/series?match%5B%5D=up", 200, "/prometheus/api/v1/series", ""},
		{"GET", "/ui/proxy/loki/loki/api/v1/query?query=count_over_time(%7Ba%3D%22b%22%7D%5B1h%5D)", 200, "/loki/api/v1/query", ""},
		{"GET", "/ui/proxy/loki/loki/api/v1/series?match%5B%5D=%7Ba%3D%22b%22%7D", 200, "/loki/api/v1/series", ""},

		{"GET", "/ui/proxy/alertmanager/api/v2/silences?filter=a%3D%22b%22", 200, "/alertmanager/api/v2/silences", ""},

		// Everything else: writes, admin and other APIs.
		{"POST", "/ui/proxy/alertmanager/api/v2/silences", 405, "", "read-only"},
		{"DELETE", "/ui/proxy/alertmanager/api/v2/silence/abc", 405, "", "read-only"},
		{"GET", "/ui/proxy/alertmanager/api/v2/status", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/alertmanager/-/reload", 404, "", "only the read APIs"},
		{"POST", "/ui/proxy/prometheus/api/v1/query", 405, "", "read-only"},
		{"POST", "/ui/proxy/prometheus/alertmanager/api/v2/silences", 405, "", "read-only"},
		{"DELETE", "/ui/proxy/prometheus/alertmanager/api/v2/silence/abc", 405, "", "read-only"},
		{"POST", "/ui/proxy/loki/loki/api/v1/push", 405, "", "read-only"},
		{"PUT", "/ui/proxy/tempo/api/search", 405, "", "read-only"},
		{"GET", "/ui/proxy/loki/loki/api/v1/delete", 404, "", "only the read APIs the UI uses"},
		{"GET", "/ui/proxy/tempo/flush", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/tempo/api/search/extra", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/prometheus/api/v1/admin/tsdb/snapshot", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/prometheus/api/v1/status/config", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/tempo/api/v2/traces/", 404, "", "only the read APIs"},
		// An encoded parameter must not climb out of its segment.
		{"GET", "/ui/proxy/tempo/api/v2/traces/%2e%2e", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/prometheus/api/v1/label/a%2Fb/values", 404, "", "only the read APIs"},
		{"GET", "/ui/proxy/prometheus/api/v1/label/..%5Cadmin/values", 404, "", "only the read APIs"},
		// The API's path must start right after the prefix: the data source's name is not a wildcard.
		{"GET", "/ui/proxy/mimir/api/v1/query", 200, "", "<!doctype html>"}, // the UI's own not-found page
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := serve(mux, tt.method, tt.target, nil)
			assert.Equal(t, tt.code, rec.Code, rec.Body.String())
			if tt.method != "HEAD" {
				assert.Contains(t, rec.Body.String(), tt.bodyHas)
			}
			name := strings.SplitN(strings.TrimPrefix(tt.target, proxyPrefix), "/", 2)[0]
			ch := seenBy[name]
			if tt.upstreamPath == "" {
				if ch != nil {
					assert.Empty(t, ch, "upstream called for a refused request")
				}
				return
			}
			got := <-ch
			assert.Equal(t, tt.method, got.method)
			assert.Equal(t, tt.upstreamPath, got.path)
			if _, q, ok := strings.Cut(tt.target, "?"); ok {
				assert.Equal(t, q, got.query)
			}
			assert.Empty(t, rec.Header().Get("Set-Cookie"), "upstream cookies are not passed on")
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
		})
	}
}

// An escaped label name reaches the upstream escaped, as the page sent it.
func TestProxyKeepsEscaping(t *testing.T) {
	up, ch := upstream(t, nil)
	mux := proxyMux(t, &Config{Prometheus: ds(up.URL)})
	rec := serve(mux, "GET", "/ui/proxy/prometheus/api/v1/label/a%20b/values?match%5B%5D=up", nil)
	require.Equal(t, 200, rec.Code, rec.Body.String())
	got := <-ch
	assert.Equal(t, "/api/v1/label/a b/values", got.path)
	assert.Equal(t, "match%5B%5D=up", got.query)
}

// Only the allowlisted headers of the browser pass; the tenant and credentials are the server's.
func TestProxyHeaders(t *testing.T) {
	browser := http.Header{
		"Accept":                         {"application/json"},
		"X-Loki-Response-Encoding-Flags": {"categorize-labels"},
		"Authorization":                  {"Bearer from-the-page"},
		"Cookie":                         {"session=abc"},
		"X-Scope-Orgid":                  {"someone-else"},
		"Connection":                     {"keep-alive, X-Secret"},
		"X-Secret":                       {"hop"},
		"Proxy-Authorization":            {"Basic eDp5"},
		"Te":                             {"trailers"},
		"X-Forwarded-For":                {"10.0.0.1"},
		"Origin":                         {"http://evil.example"},
	}
	dropped := []string{"Cookie", "X-Secret", "Proxy-Authorization", "Connection", "Te", "X-Forwarded-For", "Origin"}
	tests := []struct {
		name       string
		ds         DataSource
		orgID      string
		wantAuth   string
		wantTenant string
	}{
		{"no credentials, no tenant", DataSource{}, "", "", ""},
		{"basic auth and tenant", DataSource{Tenant: "team-a", Auth: AuthConfig{Basic: BasicAuth{Username: "ui", Password: "pw"}}}, "", "Basic dWk6cHc=", "team-a"},
		{"bearer token, tenant from org_id", DataSource{Auth: AuthConfig{BearerToken: "tok"}}, "org-1", "Bearer tok", "org-1"},
		{"own tenant wins over org_id", DataSource{Tenant: "team-b"}, "org-1", "", "team-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, ch := upstream(t, nil)
			d := defaultDataSource()
			d.URL, d.Tenant, d.Auth = up.URL, tt.ds.Tenant, tt.ds.Auth
			mux := proxyMux(t, &Config{Loki: d, OrgID: tt.orgID})
			rec := serve(mux, "GET", "/ui/proxy/loki/loki/api/v1/labels", browser)
			require.Equal(t, 200, rec.Code, rec.Body.String())
			got := <-ch
			assert.Equal(t, "application/json", got.header.Get("Accept"))
			assert.Equal(t, "categorize-labels", got.header.Get("X-Loki-Response-Encoding-Flags"))
			assert.Equal(t, tt.wantAuth, got.header.Get("Authorization"))
			assert.Equal(t, tt.wantTenant, got.header.Get("X-Scope-OrgID"))
			for _, k := range dropped {
				assert.Empty(t, got.header.Get(k), k)
			}
		})
	}
}

func TestProxyUpstreamAnswers(t *testing.T) {
	tests := []struct {
		name     string
		upstream http.HandlerFunc
		maxSize  int64
		code     int
		ctype    string
		body     []string
	}{
		{"client error passed on as it is", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "parse error at line 1, col 5", http.StatusBadRequest)
		}, 0, 400, "text/plain; charset=utf-8", []string{"parse error at line 1, col 5"}},
		{"tenant refused names the cluster and its status", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no org id", http.StatusUnauthorized)
		}, 0, 401, "text/plain; charset=utf-8", []string{"tempo at http://", "refused the request with 401 Unauthorized: no org id",
			"check sprout_ui.tempo.tenant or org_id, and sprout_ui.tempo.auth"}},
		{"credentials forbidden by a gateway, in JSON", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"status":"error","error":"invalid token for tenant"}`))
		}, 0, 403, "text/plain; charset=utf-8", []string{"tempo at http://", "403 Forbidden: invalid token for tenant"}},
		{"a gateway's HTML refusal is cut to one short line", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("WWW-Authenticate", `Basic realm="mimir"`)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte("<html>\n<body>" + strings.Repeat("denied ", 100) + "</body></html>"))
		}, 0, 401, "text/plain; charset=utf-8", []string{"401 Unauthorized: <html> <body>denied denied", "… (check sprout_ui.tempo"}},
		{"plain-text 5xx names the cluster", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "too many outstanding requests", http.StatusServiceUnavailable)
		}, 0, 503, "text/plain; charset=utf-8", []string{"tempo at http://", ": too many outstanding requests"}},
		{"JSON 5xx kept for the page to read", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"timeout","error":"query timed out"}`))
		}, 0, 503, "application/json", []string{`"errorType":"timeout"`}},
		{"answer at the size limit passes", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", 100)))
		}, 100, 200, "", []string{strings.Repeat("x", 100)}},
		{"answer over the size limit is 502", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", 101)))
		}, 100, 502, "text/plain; charset=utf-8", []string{"larger than tempo.max_response_size (100 bytes)"}},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://elsewhere.example/", http.StatusFound)
		}, 0, 302, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, _ := upstream(t, tt.upstream)
			d := ds(up.URL)
			if tt.maxSize > 0 {
				d.MaxResponseSize = tt.maxSize
			}
			rec := serve(proxyMux(t, &Config{Tempo: d}), "GET", "/ui/proxy/tempo/api/search", nil)
			assert.Equal(t, tt.code, rec.Code, rec.Body.String())
			if tt.ctype != "" {
				assert.Equal(t, tt.ctype, rec.Header().Get("Content-Type"))
			}
			for _, s := range tt.body {
				assert.Contains(t, rec.Body.String(), s)
			}
			assert.Empty(t, rec.Header().Get("Location"))
			// A cluster's challenge must not make the browser prompt for credentials of its own.
			assert.Empty(t, rec.Header().Get("WWW-Authenticate"))
		})
	}
}

// A cluster that does not answer in time is a 504 naming it; the upstream request is cancelled.
func TestProxyTimeout(t *testing.T) {
	release := make(chan struct{})
	cancelled := make(chan struct{})
	up, _ := upstream(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-release:
		}
	})
	defer close(release)
	d := ds(up.URL)
	d.Timeout = 50 * time.Millisecond
	rec := serve(proxyMux(t, &Config{Loki: d}), "GET", "/ui/proxy/loki/loki/api/v1/query_range?query=x", nil)
	assert.Equal(t, http.StatusGatewayTimeout, rec.Code)
	assert.Contains(t, rec.Body.String(), "loki at "+up.URL+" did not answer within loki.timeout (50ms)")
	<-cancelled
}

// A cluster nobody listens for is a 502 naming it.
func TestProxyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	rec := serve(proxyMux(t, &Config{PrometheusURL: "http://" + addr + "/prometheus"}), "GET", "/ui/proxy/prometheus/api/v1/query?query=up", nil)
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Contains(t, rec.Body.String(), "cannot reach prometheus at http://"+addr+"/prometheus")
	assert.NotContains(t, rec.Body.String(), "query=up")
}

// A data source that is this server's own store has no proxy: its prefix is a clear 404, not the UI's HTML.
func TestProxyLocalSource(t *testing.T) {
	rec := serve(proxyMux(t, &Config{}), "GET", "/ui/proxy/tempo/api/search", nil)
	assert.Equal(t, http.StatusNotFound, rec.Code)
	assert.Contains(t, rec.Body.String(), "tempo is this server's own store")
}

// tls: the proxy verifies the cluster's certificate against tls.ca_file; without it the unknown CA is a 502.
func TestProxyTLS(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	up.StartTLS()
	t.Cleanup(up.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600))

	rec := serve(proxyMux(t, &Config{Tempo: ds(up.URL)}), "GET", "/ui/proxy/tempo/api/search", nil)
	assert.Equal(t, http.StatusBadGateway, rec.Code)
	assert.Contains(t, rec.Body.String(), "certificate")

	d := ds(up.URL)
	d.TLS.CAFile = caFile
	rec = serve(proxyMux(t, &Config{Tempo: d}), "GET", "/ui/proxy/tempo/api/search", nil)
	assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// Whatever path is allowed, decoded it stays within one API: no segment climbs out, none is empty.
func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"/api/v2/traces/abc", "/api/v2/traces/%2e%2e", "/api/v1/label/a%2Fb/values", "/api/v1/label/%zz/values", "/api//search", "/api/v2/search/tag/./values"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		for name, routes := range readRoutes {
			if !allowed(routes, p) {
				continue
			}
			dec, err := url.PathUnescape(p)
			if err != nil {
				t.Fatalf("%s: allowed %q, which does not decode: %v", name, p, err)
			}
			segs := strings.Split(strings.TrimPrefix(dec, "/"), "/")
			for _, s := range segs {
				if s == "" || s == "." || s == ".." {
					t.Fatalf("%s: allowed %q, which decodes to %q", name, p, dec)
				}
			}
			if len(segs) != len(strings.Split(strings.TrimPrefix(p, "/"), "/")) {
				t.Fatalf("%s: allowed %q, whose decoded form %q has other segments", name, p, dec)
			}
		}
	})
}

// Proxied requests pass the process's query gate (the memory governor) like every query path: a refusal is
// answered with its status and Retry-After, and the cluster is not asked.
func TestProxyQueryGate(t *testing.T) {
	up, ch := upstream(t, nil)
	ps, err := newProxies(context.Background(), &Config{TempoURL: up.URL}, func(context.Context, string) error {
		return refusal.New(refusal.Overloaded, "memory", "query heap over budget")
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	registerProxies(mux, ps)
	rec := serve(mux, "GET", "/ui/proxy/tempo/api/search", nil)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), "UI proxy to tempo: query heap over budget")
	assert.Empty(t, ch)
}
