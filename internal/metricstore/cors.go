package metricstore

import (
	"net/http"
	"strings"
)

// serverOwnsCORS keeps Prometheus' API handlers from answering CORS: they set Access-Control-Allow-Headers,
// -Methods and -Expose-Headers on every response to a request with an Origin (and Allow-Origin for the origins
// their regexp matches), which would override what sprout_api's CORS handler set from cors.allowed_origins.
// The Access-Control-* headers a response carries are those it had before Prometheus' handler ran.
func serverOwnsCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") == "" {
			h.ServeHTTP(w, r)
			return
		}
		before := http.Header{}
		for k, v := range w.Header() {
			if isCORSHeader(k) {
				before[k] = v
			}
		}
		h.ServeHTTP(&corsGuard{ResponseWriter: w, before: before}, r)
	})
}

func isCORSHeader(k string) bool { return strings.HasPrefix(k, "Access-Control-") }

type corsGuard struct {
	http.ResponseWriter
	before   http.Header
	restored bool
}

// restore puts the Access-Control-* headers back as they were, once, before the header is sent.
func (g *corsGuard) restore() {
	if g.restored {
		return
	}
	g.restored = true
	h := g.ResponseWriter.Header()
	for k := range h {
		if isCORSHeader(k) {
			delete(h, k)
		}
	}
	for k, v := range g.before {
		h[k] = v
	}
}

func (g *corsGuard) WriteHeader(code int) {
	g.restore()
	g.ResponseWriter.WriteHeader(code)
}

func (g *corsGuard) Write(b []byte) (int, error) {
	g.restore()
	return g.ResponseWriter.Write(b)
}

// Flush keeps streamed answers streaming.
func (g *corsGuard) Flush() {
	g.restore()
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (g *corsGuard) Unwrap() http.ResponseWriter { return g.ResponseWriter }
