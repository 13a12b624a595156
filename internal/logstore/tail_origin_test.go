package logstore

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sprout-otel/sprout/internal/tenant"
)

// TestTailChecksOrigin: a browser opens a WebSocket to any address with the user's credentials, and CORS does
// not apply, so the tail handler itself refuses foreign origins (403 before the upgrade) and takes clients
// without Origin (logcli, Grafana's server side), the same origin (Sprout's UI) and configured origins.
func TestTailChecksOrigin(t *testing.T) {
	e := newEnv(t, nil)
	e.clk = &clock{t: time.Now()}
	e.open()
	// Each case gets its own server, on its own port: the same host:port would be a hard-coded guess.
	serve := func(allowed func(*http.Request) bool) string {
		api := &API{Store: e.store, Version: "test", OriginAllowed: allowed, Tenant: func(http.ResponseWriter, *http.Request) (string, bool) { return tenant.Default, true }}
		mux := http.NewServeMux()
		api.Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	dial := func(host, origin string) int {
		t.Helper()
		u := "ws://" + host + "/loki/api/v1/tail?" + url.Values{"query": {`{app="tail"}`}}.Encode()
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(u, hdr)
		if conn != nil {
			conn.Close()
		}
		if resp == nil {
			t.Fatalf("origin %q: %v", origin, err)
		}
		return resp.StatusCode
	}
	configured := func(r *http.Request) bool {
		o := r.Header.Get("Origin")
		return o == "" || o == "http://"+r.Host || o == "https://grafana.example"
	}
	for _, tc := range []struct {
		name    string
		allowed func(*http.Request) bool
		origin  string
		want    int
	}{
		{"no origin (logcli, Grafana's backend)", nil, "", http.StatusSwitchingProtocols},
		{"same origin (Sprout's UI)", nil, "http://HOST", http.StatusSwitchingProtocols},
		{"same origin, https behind a proxy", nil, "https://HOST", http.StatusSwitchingProtocols},
		{"foreign origin", nil, "http://evil.example", http.StatusForbidden},
		{"foreign origin with the same host name", nil, "http://HOST.evil.example", http.StatusForbidden},
		{"opaque origin", nil, "null", http.StatusForbidden},
		{"configured origin", configured, "https://grafana.example", http.StatusSwitchingProtocols},
		{"unconfigured origin with a configuration", configured, "http://evil.example", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := serve(tc.allowed)
			origin := strings.ReplaceAll(tc.origin, "HOST", host)
			if got := dial(host, origin); got != tc.want {
				t.Errorf("Origin %q: status %d, want %d", origin, got, tc.want)
			}
		})
	}
}

// TestTailConcurrencyLimit: each tail holds a WebSocket and a goroutine for as long as the client stays, so their
// number is bounded (limits.max_concurrent_tail_requests); one more is refused with 429 and Retry-After before the
// upgrade, and a slot frees when a client leaves.
func TestTailConcurrencyLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Limits.MaxConcurrentTailRequests = 2 })
	api := &API{Store: e.store, Version: "test", Tenant: func(http.ResponseWriter, *http.Request) (string, bool) { return tenant.Default, true }}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/loki/api/v1/tail?" + url.Values{"query": {`{app="tail"}`}}.Encode()
	dial := func() (*websocket.Conn, *http.Response) {
		t.Helper()
		conn, resp, err := websocket.DefaultDialer.Dial(u, nil)
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return conn, resp
	}
	var open []*websocket.Conn
	for i := 0; i < 2; i++ {
		conn, resp := dial()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("tail %d: status %d, want 101", i+1, resp.StatusCode)
		}
		open = append(open, conn)
	}
	conn, resp := dial()
	if conn != nil {
		conn.Close()
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third tail: status %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	open[0].Close()
	// The server notices the close on its read loop; the slot frees shortly after.
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, resp := dial()
		if resp.StatusCode == http.StatusSwitchingProtocols {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot never freed after a client left: status %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	open[1].Close()
}
