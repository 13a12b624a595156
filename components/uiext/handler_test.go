package uiext

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sprout-otel/sprout/web"
)

var bigJS = strings.Repeat("export const x = 'sprout';\n", 200)

func testMux(t *testing.T, cfg *Config) *http.ServeMux {
	t.Helper()
	fsys := fstest.MapFS{
		"index.html":           {Data: []byte(`<!doctype html><script type="module" src="/ui/assets/index-abc.js"></script>`)},
		"assets/index-abc.js":  {Data: []byte(bigJS)},
		"assets/index-abc.css": {Data: []byte("body{}")},
		"favicon.svg":          {Data: []byte("<svg/>")},
	}
	h, err := NewHandler(fsys, cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	// Routes another component owns, to check the UI does not shadow them.
	mux.HandleFunc("GET /api/search", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("api")) })
	h.Register(mux)
	return mux
}

func TestHandler(t *testing.T) {
	mux := testMux(t, &Config{})
	tests := []struct {
		name, path   string
		code         int
		ctype, cache string
		bodyHas      string
	}{
		{"root serves index", "/", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"ui root", "/ui/", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"SPA route", "/ui/trace/0123456789abcdef0123456789abcdef", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"SPA route with query", "/ui/logs?q=%7Bjob%3D%22a%22%7D", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
		{"hashed js", "/ui/assets/index-abc.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "sprout"},
		{"hashed css", "/ui/assets/index-abc.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", "body{}"},
		{"unhashed file", "/ui/favicon.svg", 200, "image/svg+xml", "no-cache", "<svg/>"},
		{"missing asset is 404, not HTML", "/ui/assets/index-old.js", 404, "text/plain; charset=utf-8", "", "not found"},
		{"missing file with extension", "/ui/robots.txt", 404, "text/plain; charset=utf-8", "", "not found"},
		{"config", "/ui/config.json", 200, "application/json", "no-store", `"tempo_url":""`},
		{"API untouched", "/api/search", 200, "", "", "api"},
		{"unknown non-UI path is not the UI", "/nope", 404, "", "", "404 page not found"},
		{"index by name", "/ui/index.html", 200, "text/html; charset=utf-8", "no-cache", "<!doctype html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			assert.Equal(t, tt.code, rec.Code)
			if tt.ctype != "" {
				assert.Equal(t, tt.ctype, rec.Header().Get("Content-Type"))
			}
			assert.Equal(t, tt.cache, rec.Header().Get("Cache-Control"))
			assert.Contains(t, rec.Body.String(), tt.bodyHas)
			if strings.HasPrefix(tt.path, "/ui") || tt.path == "/" {
				assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
				csp := rec.Header().Get("Content-Security-Policy")
				assert.Contains(t, csp, "default-src 'self'")
				assert.Contains(t, csp, "frame-ancestors 'none'")
				assert.NotContains(t, csp, "unsafe-inline")
				assert.NotContains(t, csp, "unsafe-eval")
			}
		})
	}
}

func TestHandlerGzipAndETag(t *testing.T) {
	mux := testMux(t, &Config{})
	req := httptest.NewRequest(http.MethodGet, "/ui/assets/index-abc.js", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	assert.Equal(t, "gzip", rec.Header().Get("Content-Encoding"))
	assert.Equal(t, "Accept-Encoding", rec.Header().Get("Vary"))
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, bigJS, string(plain))

	etag := rec.Header().Get("ETag")
	require.NotEmpty(t, etag)
	req = httptest.NewRequest(http.MethodGet, "/ui/assets/index-abc.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	assert.Equal(t, http.StatusNotModified, rec.Code)
	assert.Empty(t, rec.Body.Bytes())

	// A client that does not accept gzip gets the plain bytes.
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/assets/index-abc.js", nil))
	assert.Empty(t, rec.Header().Get("Content-Encoding"))
	assert.Equal(t, bigJS, rec.Body.String())
}

// Remote clusters are named to the page only by their same-origin proxy prefix: no remote URL, tenant or
// credential reaches it, and the CSP lets it call this origin only.
func TestConfigJSONAndCSP(t *testing.T) {
	secret := DataSource{URL: "http://mimir:8080/prometheus", Tenant: "team-secret", Auth: AuthConfig{BearerToken: "tok-secret"}}
	tests := []struct {
		name string
		cfg  *Config
		want map[string]string
	}{
		{"all local", &Config{OrgID: "t1"},
			map[string]string{"tempo_url": "", "prometheus_url": "", "loki_url": "", "alertmanager_url": "/alertmanager", "org_id": "t1"}},
		{"two remote, one local", &Config{TempoURL: "https://tempo.example.com/base", Prometheus: secret, OrgID: "t1"},
			map[string]string{"tempo_url": "/ui/proxy/tempo", "prometheus_url": "/ui/proxy/prometheus", "loki_url": "", "alertmanager_url": "/ui/proxy/prometheus/alertmanager", "org_id": "t1"}},
		{"all remote: org_id is the proxies' tenant, not the page's", &Config{TempoURL: "http://t", Prometheus: secret, LokiURL: "http://l", OrgID: "t1"},
			map[string]string{"tempo_url": "/ui/proxy/tempo", "prometheus_url": "/ui/proxy/prometheus", "loki_url": "/ui/proxy/loki", "alertmanager_url": "/ui/proxy/prometheus/alertmanager", "org_id": ""}},
		{"Mimir's Alertmanager beside its Prometheus prefix", &Config{TempoURL: "http://t", Prometheus: secret, LokiURL: "http://l", AlertmanagerURL: "http://mimir:8080/alertmanager"},
			map[string]string{"tempo_url": "/ui/proxy/tempo", "prometheus_url": "/ui/proxy/prometheus", "loki_url": "/ui/proxy/loki", "alertmanager_url": "/ui/proxy/alertmanager", "org_id": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := testMux(t, tt.cfg)
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/config.json", nil))
			require.Equal(t, 200, rec.Code)
			for _, s := range []string{"secret", "mimir", "example.com"} {
				assert.NotContains(t, rec.Body.String(), s)
			}
			var got map[string]string
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			assert.Equal(t, tt.want, got)
			assert.Contains(t, rec.Header().Get("Content-Security-Policy"), "connect-src 'self';")
		})
	}
}

// The handler only ever reads its in-memory copy of the build, so a dot-dot path can reach nothing else.
func TestHandlerTraversal(t *testing.T) {
	h, err := NewHandler(fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}}, &Config{})
	require.NoError(t, err)
	for _, p := range []string{"/ui/../../etc/passwd", "/ui/..%2f..%2fetc%2fpasswd", "/ui/assets/../../go.mod"} {
		req := httptest.NewRequest(http.MethodGet, "/ui/", nil)
		req.URL.Path = p
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.NotContains(t, rec.Body.String(), "root:", p)
		assert.NotContains(t, rec.Body.String(), "module ", p)
	}
}

func TestHandlerNeedsIndex(t *testing.T) {
	_, err := NewHandler(fstest.MapFS{"assets/a.js": {Data: []byte("x")}}, &Config{})
	require.ErrorContains(t, err, "index.html")
}

// The committed build must be servable: an index that loads a hashed JS bundle which exists, under /ui/.
func TestEmbeddedBuild(t *testing.T) {
	h, err := NewHandler(web.Dist(), &Config{})
	require.NoError(t, err)
	index := string(h.index.body)
	i := strings.Index(index, `src="/ui/assets/`)
	require.GreaterOrEqual(t, i, 0, "index.html must load its bundle from /ui/assets/: %s", index)
	src := index[i+len(`src="/ui/`):]
	src = src[:strings.IndexByte(src, '"')]
	f, ok := h.files[src]
	require.True(t, ok, "bundle %s is not in the build", src)
	assert.Equal(t, "text/javascript; charset=utf-8", f.ctype)
	assert.NotContains(t, index, "<script>", "no inline scripts (CSP forbids them)")
}
