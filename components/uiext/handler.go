package uiext

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

// contentTypes is fixed rather than taken from the OS's mime tables, so that a machine's /etc/mime.types can
// never serve the bundle as text/plain (which nosniff would then refuse to run).
var contentTypes = map[string]string{
	".html":  "text/html; charset=utf-8",
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".json":  "application/json",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
	".map":   "application/json",
}

var compressible = map[string]bool{".html": true, ".js": true, ".mjs": true, ".css": true, ".json": true, ".svg": true, ".map": true, ".txt": true}

type file struct {
	body  []byte
	gz    []byte // nil when compressing does not pay
	ctype string
	etag  string
}

// Handler serves the UI. It is built once at start: every file is read (and gzipped) into memory, so serving
// never touches the embedded FS and never compresses per request.
type Handler struct {
	files  map[string]*file // by path relative to dist, e.g. "assets/index-abc.js"
	index  *file
	config []byte
	csp    string
}

// NewHandler reads the UI from fsys (the built dist/ directory) and prepares its responses.
func NewHandler(fsys fs.FS, cfg *Config) (*Handler, error) {
	h := &Handler{files: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		h.files[p] = newFile(p, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sprout_ui: read UI assets: %w", err)
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		return nil, fmt.Errorf("sprout_ui: the UI build has no index.html (run `npm ci && npm run build` in web/)")
	}
	h.config, err = json.Marshal(pageConfig(cfg))
	if err != nil {
		return nil, err
	}
	h.csp = contentSecurityPolicy()
	return h, nil
}

func newFile(p string, b []byte) *file {
	ext := path.Ext(p)
	f := &file{body: b, ctype: contentTypes[ext]}
	if f.ctype == "" {
		f.ctype = http.DetectContentType(b)
	}
	sum := sha256.Sum256(b)
	f.etag = `"` + hex.EncodeToString(sum[:8]) + `"`
	if compressible[ext] && len(b) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		if buf.Len() < len(b)*9/10 {
			f.gz = buf.Bytes()
		}
	}
	return f
}

// pageConfig is what /ui/config.json tells the page: per data source, "" for this server's own store or the
// same-origin prefix of its proxy. Remote URLs, tenants and credentials stay on the server. org_id is the
// tenant the page sends to this server's own stores, so it is given only when one of them is used.
// alertmanager_url is always a base (Alertmanager's v2 API is under it): the alertmanager data source's proxy,
// else <prometheus_url>/alertmanager.
func pageConfig(cfg *Config) map[string]string {
	out := map[string]string{}
	local := false
	for _, s := range cfg.dataSources() {
		base := ""
		switch {
		case s.url != "":
			base = proxyPrefix + s.name
		case s.name == "alertmanager":
			base = out["prometheus_url"] + "/alertmanager" // follows prometheus: local or its proxy
		default:
			local = true
		}
		out[s.name+"_url"] = base
	}
	out["org_id"] = ""
	if local {
		out["org_id"] = cfg.OrgID
	}
	return out
}

// contentSecurityPolicy allows scripts, styles, fonts and queries to this origin only (remote clusters are
// reached through the proxy). No inline scripts: the bundle is an external module.
func contentSecurityPolicy() string {
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}

// Mux is where the UI mounts its routes (the sprout_api server, or an http.ServeMux in tests).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Register mounts the UI's routes.
func (h *Handler) Register(m Mux) {
	m.Handle("GET /{$}", http.HandlerFunc(h.serveIndex))
	m.Handle("GET /ui/config.json", http.HandlerFunc(h.serveConfig))
	m.Handle("GET /ui/", h)
}

func (h *Handler) securityHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
}

// ServeHTTP serves /ui/...: a built file if there is one; 404 for a missing asset (a stale hashed name must not
// turn into HTML); otherwise index.html, so that every UI route (/ui/trace/<id>, /ui/logs?...) loads the app.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(path.Clean(r.URL.Path), "/ui")
	rel = strings.TrimPrefix(rel, "/")
	if f, ok := h.files[rel]; ok && rel != "index.html" {
		cache := "no-cache"
		if strings.HasPrefix(rel, "assets/") {
			cache = "public, max-age=31536000, immutable" // names carry content hashes
		}
		h.serveFile(w, r, f, cache)
		return
	}
	if rel != "index.html" && (strings.HasPrefix(rel, "assets/") || path.Ext(rel) != "") {
		h.securityHeaders(w)
		http.Error(w, "not found: "+r.URL.Path, http.StatusNotFound)
		return
	}
	h.serveIndex(w, r)
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) {
	h.serveFile(w, r, h.index, "no-cache")
}

func (h *Handler) serveConfig(w http.ResponseWriter, _ *http.Request) {
	h.securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(h.config)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, f *file, cache string) {
	h.securityHeaders(w)
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", f.etag)
	if f.gz != nil {
		hd.Set("Vary", "Accept-Encoding")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hd.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") || strings.TrimSpace(name) == "*" {
			return !strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") || strings.Contains(params, "q=0.")
		}
	}
	return false
}
