package uiext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sprout-otel/sprout/internal/querylimit"
	"github.com/sprout-otel/sprout/internal/refusal"
)

// proxyPrefix is where the remote data sources are mounted: /ui/proxy/<name>/<API path>. It lies under /ui/ so
// that the page's base URLs, its CSP and any reverse proxy in front of the UI need no second path.
const proxyPrefix = "/ui/proxy/"

// route is one read API the UI calls: a path of literal segments, with "*" for one path parameter.
type route []string

func r(p string) route { return strings.Split(strings.TrimPrefix(p, "/"), "/") }

// readRoutes are the GET APIs the UI uses (web/src), per data source. Nothing else is proxied: a remote
// cluster's push, delete, flush or admin APIs stay out of a browser's reach through this port.
var readRoutes = map[string][]route{
	"tempo": {
		r("/api/search"),
		r("/api/v2/search/tags"),
		r("/api/v2/search/tag/*/values"),
		r("/api/v2/traces/*"),
	},
	"prometheus": {
		r("/api/v1/query"),
		r("/api/v1/query_range"),
		r("/api/v1/query_exemplars"),
		r("/api/v1/labels"),
		r("/api/v1/label/*/values"),
		r("/api/v1/series"),
		r("/api/v1/rules"),
		r("/alertmanager/api/v2/silences"),
	},
	"loki": {
		r("/loki/api/v1/query"),
		r("/loki/api/v1/query_range"),
		r("/loki/api/v1/labels"),
		r("/loki/api/v1/label/*/values"),
		r("/loki/api/v1/series"),
		r("/prometheus/api/v1/rules"),
	},
	"alertmanager": {
		r("/api/v2/silences"),
	},
}

// allowed reports whether the escaped path p (after the data source's prefix) is one of routes. A parameter
// segment must be non-empty and must not decode to a path of its own ("..", or one with a slash), so that an
// encoded segment cannot reach another API on the upstream.
func allowed(routes []route, p string) bool {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
next:
	for _, rt := range routes {
		if len(rt) != len(segs) {
			continue
		}
		for i, want := range rt {
			if want != "*" {
				if segs[i] != want {
					continue next
				}
				continue
			}
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\\") {
				continue next
			}
		}
		return true
	}
	return false
}

// forwardedRequestHeaders are the only headers of the browser's request passed on. Everything else is dropped:
// hop-by-hop headers, cookies, Authorization and X-Scope-OrgID (the tenant and credentials are the server's).
var forwardedRequestHeaders = []string{"Accept", "Accept-Language", "X-Loki-Response-Encoding-Flags"}

// forwardedResponseHeaders are the only headers of the upstream's answer passed on to the page.
var forwardedResponseHeaders = []string{"Content-Type", "Content-Language", "Retry-After", "Warning"}

// proxy forwards the UI's read requests for one data source to its remote URL, adding the tenant and
// credentials server-side. Answers are read whole (up to MaxResponseSize) before they are sent, so that an
// oversized or cut-off answer becomes a clear error rather than a truncated JSON document.
type proxy struct {
	name    string
	base    *url.URL
	cfg     DataSource
	tenant  string
	routes  []route
	client  *http.Client
	limiter *querylimit.Limiter
}

func newProxy(ctx context.Context, name, rawURL, orgID string, cfg DataSource, gate querylimit.Gate) (*proxy, error) {
	base, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sprout_ui: %s: parse url: %w", name, err)
	}
	// A Config built in code rather than loaded (tests, embedders) may leave limits at zero: take the defaults.
	def := defaultDataSource()
	if cfg.Timeout <= 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.MaxResponseSize <= 0 {
		cfg.MaxResponseSize = def.MaxResponseSize
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = def.MaxConcurrent
	}
	tlsCfg, err := cfg.TLS.LoadTLSConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("sprout_ui: %s.tls: %w", name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
	tenant := cfg.Tenant
	if tenant == "" {
		tenant = orgID
	}
	lim := querylimit.New(querylimit.Config{QueryTimeout: cfg.Timeout, MaxConcurrent: cfg.MaxConcurrent,
		MaxOutstandingPerTenant: 100, MaxQueueWait: 10 * time.Second})
	lim.SetGate(gate)
	return &proxy{
		name: name, base: base, cfg: cfg, tenant: tenant, routes: readRoutes[name], limiter: lim,
		// No redirects: a redirect to another host must not carry the credentials there, and the UI's APIs
		// do not redirect.
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// prefix is the same-origin base URL the page is given for this data source.
func (p *proxy) prefix() string { return proxyPrefix + p.name }

// what names the cluster in error messages: the data source and its URL (without credentials, which the URL
// cannot carry).
func (p *proxy) what() string { return p.name + " at " + p.base.String() }

func (p *proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	rest := strings.TrimPrefix(req.URL.EscapedPath(), p.prefix())
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("the UI proxy to %s is read-only: %s %s is not proxied", p.name, req.Method, rest), http.StatusMethodNotAllowed)
		return
	}
	if !allowed(p.routes, rest) {
		http.Error(w, fmt.Sprintf("the UI proxy to %s passes on only the read APIs the UI uses; %s is not one of them", p.name, rest), http.StatusNotFound)
		return
	}
	ctx, done, err := p.limiter.Admit(req.Context(), "")
	if err != nil {
		refusal.SetHeaders(h, err)
		http.Error(w, "UI proxy to "+p.name+": "+err.Error(), refusal.HTTPStatus(err, http.StatusServiceUnavailable))
		return
	}
	defer done()

	u := *p.base
	u.Path = strings.TrimSuffix(p.base.Path, "/") + pathUnescapeOrSelf(rest)
	u.RawPath = strings.TrimSuffix(p.base.EscapedPath(), "/") + rest
	u.RawQuery = req.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, req.Method, u.String(), nil)
	if err != nil {
		http.Error(w, fmt.Sprintf("UI proxy to %s: build request: %v", p.what(), err), http.StatusBadRequest)
		return
	}
	for _, k := range forwardedRequestHeaders {
		if v := req.Header.Values(k); len(v) > 0 {
			out.Header[k] = v
		}
	}
	out.Header.Set("User-Agent", "sprout-ui-proxy")
	if p.tenant != "" {
		out.Header.Set("X-Scope-OrgID", p.tenant)
	}
	switch a := p.cfg.Auth; {
	case a.BearerToken != "":
		out.Header.Set("Authorization", "Bearer "+string(a.BearerToken))
	case a.Basic.Username != "":
		out.SetBasicAuth(a.Basic.Username, string(a.Basic.Password))
	}

	resp, err := p.client.Do(out)
	if err != nil {
		p.fail(w, req, err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxResponseSize+1))
	if err != nil {
		p.fail(w, req, err)
		return
	}
	if int64(len(body)) > p.cfg.MaxResponseSize {
		http.Error(w, fmt.Sprintf("UI proxy: the answer of %s is larger than %s.max_response_size (%d bytes); narrow the query", p.what(), p.name, p.cfg.MaxResponseSize), http.StatusBadGateway)
		return
	}
	for _, k := range forwardedResponseHeaders {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusProxyAuthRequired:
		// The cluster (or the gateway in front of it) refused the tenant or credentials this server sends. The
		// page must not take that for its own session's refusal, nor show a bare "no org id": it gets the
		// cluster's name, its status and words, and where the fix lies. The status is kept, so the page shows
		// it too; the tenant and credentials themselves are not named.
		body = []byte(fmt.Sprintf("UI proxy: %s refused the request with %s: %s (check sprout_ui.%s.tenant or org_id, and sprout_ui.%s.auth, on the Sprout server)\n",
			p.what(), resp.Status, upstreamWords(resp.Header.Get("Content-Type"), body), p.name, p.name))
		h.Set("Content-Type", "text/plain; charset=utf-8")
	case code >= 500:
		// The page shows the body; a 5xx of a cluster must say which cluster, so it is prefixed when it is
		// plain text. A JSON error (Prometheus') is passed on as it is: the page reads its "error" field.
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			body = append([]byte(p.what()+": "), bytes.TrimSpace(body)...)
			body = append(body, '\n')
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	if req.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// fail answers a request the upstream did not answer: 504 when the timeout (or the page) ended it, 502 when
// the cluster could not be reached or broke off.
func (p *proxy) fail(w http.ResponseWriter, req *http.Request, err error) {
	if req.Context().Err() != nil {
		return // the page went away; nobody reads an answer
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		http.Error(w, fmt.Sprintf("UI proxy: %s did not answer within %s.timeout (%s)", p.what(), p.name, p.cfg.Timeout), http.StatusGatewayTimeout)
		return
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its URL repeats what() with the query, which may be long
	}
	http.Error(w, fmt.Sprintf("UI proxy: cannot reach %s: %v", p.what(), err), http.StatusBadGateway)
}

// newProxies builds the proxy of every data source with a URL.
func newProxies(ctx context.Context, cfg *Config, gate querylimit.Gate) ([]*proxy, error) {
	var ps []*proxy
	for _, s := range cfg.dataSources() {
		if s.url == "" {
			continue
		}
		p, err := newProxy(ctx, s.name, s.url, cfg.OrgID, *s.ds, gate)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// registerProxies mounts the proxies on m (the API server, so that the port's authentication and browser walls
// stand in front of them). The prefix of a data source that is Sprout's own store answers
// 404, so that a page with a stale config gets an error and not the UI's HTML.
func registerProxies(m Mux, ps []*proxy) {
	byName := map[string]http.Handler{}
	for _, p := range ps {
		byName[p.name] = p
	}
	for name := range readRoutes {
		h, ok := byName[name]
		if !ok {
			h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "sprout_ui: "+name+" is this server's own store; no proxy is configured for it", http.StatusNotFound)
			})
		}
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			m.Handle(method+" "+proxyPrefix+name+"/", h)
		}
	}
}

// upstreamWords is the message of an upstream's error answer, for a sentence of the proxy's own: the "error" or
// "message" field of a JSON body (Prometheus' and Mimir's errors), else the text, on one line and cut short (a
// gateway may answer with a whole HTML page).
func upstreamWords(contentType string, body []byte) string {
	if strings.HasPrefix(contentType, "application/json") {
		var e struct{ Error, Message string }
		if json.Unmarshal(body, &e) == nil && (e.Error != "" || e.Message != "") {
			body = []byte(e.Error)
			if e.Error == "" {
				body = []byte(e.Message)
			}
		}
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if s == "" {
		return "no message"
	}
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

func pathUnescapeOrSelf(p string) string {
	if v, err := url.PathUnescape(p); err == nil {
		return v
	}
	return p
}
