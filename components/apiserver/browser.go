package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// The walls between a web page on another origin and this port. A browser lets any page send simple requests
// (GET, and POST with a text/plain, form or multipart body) to any address, localhost included, with the
// user's cookies and cached Basic credentials, and open WebSockets anywhere. What keeps such a page from
// reading answers is CORS, which Sprout grants only to the origins listed in `cors.allowed_origins` (the
// Collector's own CORS handler, in front of every route). What keeps it from changing state is that every
// state-changing route requires a content type no simple request can carry (RequireContentType), and that
// WebSocket handshakes check Origin (OriginAllowed).

// corsChecker answers whether an origin is listed in cors.allowed_origins, with the same matching rules
// (including `*` wildcards) as the Collector's CORS handler, which uses the same library.
func (c *Config) corsChecker() *cors.Cors {
	if !c.CORS.HasValue() || len(c.CORS.Get().AllowedOrigins) == 0 {
		return nil
	}
	return cors.New(cors.Options{AllowedOrigins: c.CORS.Get().AllowedOrigins})
}

// OriginAllowed reports whether a request may act with the user's browser credentials: it carries no Origin
// (not a browser: logcli, Grafana's server side, curl), or its Origin is this server's own (the UI served
// here), or an origin listed in cors.allowed_origins. WebSocket handshakes, which CORS does not cover, are
// refused with 403 unless it holds.
func (s *Server) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if sameOrigin(origin, r.Host) {
		return true
	}
	return s.cors != nil && s.cors.OriginAllowed(r)
}

// sameOrigin compares the Origin's host and port with the Host the request was sent to; the scheme is not
// compared, as a TLS-terminating proxy in front would make it differ.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes "null", sent by sandboxed frames and privacy-sensitive contexts
	}
	return strings.EqualFold(u.Host, host)
}

// crossOriginWall refuses, with 403, every state-changing request (any method but GET, HEAD and OPTIONS) that a
// browser sends from another origin, unless that origin is listed in cors.allowed_origins. Browsers mark such
// requests (Sec-Fetch-Site, Origin); clients that are not browsers send neither and pass. The check is the
// standard library's CrossOriginProtection.
func (s *Server) crossOriginWall(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cors != nil && r.Header.Get("Origin") != "" && s.cors.OriginAllowed(r) {
			h.ServeHTTP(w, r)
			return
		}
		if err := cop.Check(r); err != nil {
			s.browserRefusals.WithLabelValues("cross_origin").Inc()
			http.Error(w, fmt.Sprintf("%s %s: cross-origin request from %q refused (%v); list the page's origin in sprout_api cors.allowed_origins to allow it",
				r.Method, r.URL.Path, r.Header.Get("Origin"), err), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Content types of the bodies that configuration APIs take.
var (
	// YAMLTypes are what YAML configuration APIs (rule groups, Alertmanager configurations) accept. JSON is
	// YAML, and Grafana's and scripts' JSON bodies are taken as well.
	YAMLTypes = []string{"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json"}
	// JSONTypes are what JSON APIs (the Alertmanager v2 API) accept.
	JSONTypes = []string{"application/json"}
)

// RequireContentType wraps a state-changing handler (POST, PUT, PATCH): a request whose Content-Type is not one
// of accepted is refused with 415 before the handler runs, so that a page on another origin cannot store
// configuration with a simple (text/plain or form) POST. A request without Content-Type is what mimirtool,
// lokitool, cortextool and Grafana's ruler proxy send; it is taken unless it comes from a browser on a foreign
// origin (OriginAllowed), because a page can send a body without Content-Type too. Other methods pass.
func (s *Server) RequireContentType(h http.Handler, accepted ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
		default:
			h.ServeHTTP(w, r)
			return
		}
		if msg := contentTypeRefusal(r.Header.Get("Content-Type"), accepted, s.OriginAllowed(r)); msg != "" {
			s.browserRefusals.WithLabelValues("content_type").Inc()
			http.Error(w, msg, http.StatusUnsupportedMediaType)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// contentTypeRefusal is why a body of content type ct is refused, or "" if it is taken.
func contentTypeRefusal(ct string, accepted []string, originAllowed bool) string {
	want := strings.Join(accepted, ", ")
	if strings.TrimSpace(ct) == "" {
		if originAllowed {
			return ""
		}
		return fmt.Sprintf("Content-Type is required on a cross-origin request; send one of: %s (or list the page's origin in sprout_api cors.allowed_origins)", want)
	}
	media, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Sprintf("Content-Type %q cannot be parsed: %v; send one of: %s", ct, err, want)
	}
	for _, a := range accepted {
		if media == a {
			return ""
		}
	}
	return fmt.Sprintf("Content-Type %q is not accepted here; send one of: %s", media, want)
}
