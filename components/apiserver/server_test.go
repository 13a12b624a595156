package apiserver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/sprout-otel/sprout/internal/memguard"
	"github.com/sprout-otel/sprout/internal/refusal"
	"github.com/sprout-otel/sprout/internal/tenant"
)

type host struct {
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

func start(t *testing.T, mutate func(*Config)) *Server {
	t.Helper()
	return startOn(t, host{}, mutate)
}

func startOn(t *testing.T, h component.Host, mutate func(*Config)) *Server {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: "127.0.0.1:0"}
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := ext.(*Server)
	if err := s.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func get(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadiness(t *testing.T) {
	s := start(t, nil)
	base := "http://" + s.Addr()
	if code, body := get(t, base+"/ready", nil); code != 503 || !strings.Contains(body, "pipelines") {
		t.Fatalf("before pipelines: %d %q", code, body)
	}
	_ = s.Ready()
	if code, _ := get(t, base+"/ready", nil); code != 200 {
		t.Fatalf("after pipelines: %d", code)
	}
	var storeErr error = errors.New("replaying WAL")
	s.AddReadinessCheck("traces", func() error { return storeErr })
	if code, body := get(t, base+"/ready", nil); code != 503 || !strings.Contains(body, "traces: replaying WAL") {
		t.Fatalf("store not ready: %d %q", code, body)
	}
	storeErr = nil
	if code, _ := get(t, base+"/ready", nil); code != 200 {
		t.Fatalf("store ready: %d", code)
	}
	_ = s.NotReady()
	if code, _ := get(t, base+"/ready", nil); code != 503 {
		t.Fatalf("shutting down: %d", code)
	}
}

func TestRoutesMetricsAndPanics(t *testing.T) {
	s := start(t, nil)
	base := "http://" + s.Addr()
	s.HandleFunc("GET /api/echo", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "echo") })
	s.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	if code, body := get(t, base+"/api/echo", nil); code != 200 || body != "echo" {
		t.Fatalf("echo: %d %q", code, body)
	}
	if code, body := get(t, base+"/boom", nil); code != 500 || !strings.Contains(body, "kaboom") {
		t.Fatalf("panic: %d %q", code, body)
	}
	// The server survived the panic.
	if code, _ := get(t, base+"/api/echo", nil); code != 200 {
		t.Fatal("server down after panic")
	}
	_, metrics := get(t, base+"/metrics", nil)
	for _, want := range []string{`sprout_http_requests_total{code="200",route="/api/echo"} 2`, `sprout_http_requests_total{code="500",route="/boom"} 1`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestTenant(t *testing.T) {
	for _, mt := range []bool{false, true} {
		t.Run(fmt.Sprint("multitenancy=", mt), func(t *testing.T) {
			s := start(t, func(c *Config) { c.MultitenancyEnabled = mt })
			s.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
				if id, ok := s.Tenant(w, r); ok {
					_, _ = io.WriteString(w, id)
				}
			})
			base := "http://" + s.Addr()
			code, body := get(t, base+"/whoami", nil)
			if mt && code != 401 {
				t.Fatalf("no header with multitenancy: %d %q", code, body)
			}
			if !mt && (code != 200 || body != tenant.Default) {
				t.Fatalf("single tenant: %d %q", code, body)
			}
			code, body = get(t, base+"/whoami", map[string]string{tenant.Header: "team-a"})
			want := tenant.Default
			if mt {
				want = "team-a"
			}
			if code != 200 || body != want {
				t.Fatalf("with header: %d %q want %q", code, body, want)
			}
			// Malformed ids: 400 with multi-tenancy (never 500; 401 is only for a missing header), ignored
			// without it.
			for _, bad := range []string{".hidden", "...", "..", "../../escape3", "a/b", strings.Repeat("x", 151), "tën"} {
				code, body = get(t, base+"/whoami", map[string]string{tenant.Header: bad})
				if mt && code != 400 || !mt && (code != 200 || body != tenant.Default) {
					t.Errorf("X-Scope-OrgID %q: %d %q", bad, code, body)
				}
			}
		})
	}
}

func TestFromHost(t *testing.T) {
	s := start(t, nil)
	id := component.NewID(Type)
	if got, err := FromHost(host{map[component.ID]component.Component{id: s}}, id); err != nil || got != s {
		t.Fatalf("FromHost: %v", err)
	}
	if _, err := FromHost(host{}, id); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("missing: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "nonsense"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Fatalf("want endpoint error, got %v", err)
	}
}

// TestSnappyBodyReachesHandler checks that a remote write body (Content-Encoding: snappy, block format) reaches
// the handler still compressed and with its header, while gzip is still decoded by the Collector's middleware:
// the stores decode snappy themselves, once.
func TestSnappyBodyReachesHandler(t *testing.T) {
	s := start(t, nil)
	base := "http://" + s.Addr()
	s.HandleFunc("POST /api/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Header.Get("Content-Encoding")+"|"+string(b))
	})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("plain"))
	_ = zw.Close()
	for _, tc := range []struct {
		name, enc string
		body      []byte
		hdr       map[string]string
		want      string
	}{
		{"snappy kept", "snappy", snappy.Encode(nil, []byte("hello hello hello")), nil, "snappy|" + string(snappy.Encode(nil, []byte("hello hello hello")))},
		{"gzip decoded", "gzip", gz.Bytes(), nil, "|plain"},
		{"no encoding", "", []byte("raw"), nil, "|raw"},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/echo", bytes.NewReader(tc.body))
		if tc.enc != "" {
			req.Header.Set("Content-Encoding", tc.enc)
		}
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != tc.want {
			t.Errorf("%s: %d %q, want %q", tc.name, resp.StatusCode, b, tc.want)
		}
	}
}

// TestTenantAuth ties basic-auth users to tenants through the basicauth extension the binary links: a user acts
// as its own tenant (and may leave the header out), a mapped user as its listed tenants, and another tenant is
// 403 on every route that resolves a tenant.
func TestTenantAuth(t *testing.T) {
	authID := component.MustNewIDWithName("basicauth", "server")
	bf := basicauthextension.NewFactory()
	bcfg := bf.CreateDefaultConfig().(*basicauthextension.Config)
	bcfg.Htpasswd = &basicauthextension.HtpasswdSettings{Inline: "team-a:pa\nteam-b:pb\nops:po\nroot:pr\n"}
	auth, err := bf.Create(context.Background(), extensiontest.NewNopSettings(bf.Type()), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auth.Shutdown(context.Background()) })
	h := host{map[component.ID]component.Component{authID: auth}}
	s := startOn(t, h, func(c *Config) {
		c.MultitenancyEnabled = true
		c.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: authID}})
		c.TenantAuth = TenantAuthConfig{UserIsTenant: true, Users: map[string][]string{"ops": {"team-a", "team-b"}}, Admins: []string{"root"}}
	})
	s.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := s.Tenant(w, r); ok {
			_, _ = io.WriteString(w, id)
		}
	})
	base := "http://" + s.Addr()
	for _, tc := range []struct {
		user, pass, org string
		code            int
		want            string
	}{
		{"team-a", "pa", "team-a", 200, "team-a"},
		{"team-a", "pa", "", 200, "team-a"},
		{"team-a", "pa", "team-b", 403, `user "team-a" may not act as tenant "team-b"`},
		{"team-b", "pb", "team-a", 403, "may not act"},
		{"ops", "po", "team-b", 200, "team-b"},
		{"ops", "po", "", 401, "must name one"},
		{"ops", "po", "team-c", 403, "may not act"},
		{"team-a", "wrong", "team-a", 401, ""},
		{"", "", "team-a", 401, ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/whoami", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		if tc.org != "" {
			req.Header.Set(tenant.Header, tc.org)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("user %q as %q: %d %q, want %d %q", tc.user, tc.org, resp.StatusCode, b, tc.code, tc.want)
		}
	}
	// /metrics: a user sees the series of the tenants it may act as and those of no tenant; an admin sees all.
	lines := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_lines_total", Help: "h"}, []string{"tenant"})
	for _, id := range []string{"team-a", "team-b", "team-c"} {
		lines.WithLabelValues(id).Inc()
	}
	s.Registerer().MustRegister(lines)
	for _, tc := range []struct {
		user, pass string
		see        []string
	}{
		{"team-a", "pa", []string{"team-a"}},
		{"ops", "po", []string{"team-a", "team-b"}},
		{"root", "pr", []string{"team-a", "team-b", "team-c"}},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.SetBasicAuth(tc.user, tc.pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, id := range []string{"team-a", "team-b", "team-c"} {
			if got, want := strings.Contains(string(b), `test_lines_total{tenant="`+id+`"}`), slices.Contains(tc.see, id); got != want {
				t.Errorf("/metrics as %s: series of %s shown=%v, want %v", tc.user, id, got, want)
			}
		}
		if !strings.Contains(string(b), "go_goroutines") {
			t.Errorf("/metrics as %s: series of no tenant missing", tc.user)
		}
	}

	// Exporters find the same policy through the host.
	if p := TenantPolicy(host{map[component.ID]component.Component{component.NewID(Type): s}}); !p.Multitenancy || !p.UserIsTenant {
		t.Errorf("TenantPolicy from the host: %+v", p)
	}
	if p := TenantPolicy(host{}); p.Multitenancy {
		t.Errorf("TenantPolicy without sprout_api: %+v, want single-tenant", p)
	}
}

func TestRetryAfterOn429(t *testing.T) {
	s := start(t, nil)
	s.HandleFunc("POST /push", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "rate limited", http.StatusTooManyRequests)
	})
	s.HandleFunc("POST /own", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	s.HandleFunc("POST /bad", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "bad", http.StatusBadRequest) })
	for path, want := range map[string]string{"/push": "1", "/own": "7", "/bad": ""} {
		resp, err := http.Post("http://"+s.Addr()+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Retry-After"); got != want {
			t.Errorf("%s: Retry-After %q, want %q", path, got, want)
		}
	}
}

func TestValidateTenantAuth(t *testing.T) {
	authOn := configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: component.MustNewIDWithName("basicauth", "server")}})
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string
	}{
		{"off", func(*Config) {}, ""},
		{"needs multitenancy", func(c *Config) { c.Auth = authOn; c.TenantAuth.UserIsTenant = true }, "needs multitenancy_enabled"},
		{"needs an authenticator", func(c *Config) { c.MultitenancyEnabled = true; c.TenantAuth.UserIsTenant = true }, "needs auth.authenticator"},
		{"bad tenant in map", func(c *Config) {
			c.MultitenancyEnabled, c.Auth = true, authOn
			c.TenantAuth.Users = map[string][]string{"ops": {"a/b"}}
		}, "tenant_auth.users.ops"},
		{"empty list", func(c *Config) {
			c.MultitenancyEnabled, c.Auth = true, authOn
			c.TenantAuth.Users = map[string][]string{"ops": nil}
		}, "lists no tenant"},
		{"negative max_tenants", func(c *Config) { c.MaxTenants = -1 }, "max_tenants"},
		{"admins without tenant_auth", func(c *Config) { c.TenantAuth.Admins = []string{"ops"} }, "tenant_auth.admins"},
		{"good", func(c *Config) {
			c.MultitenancyEnabled, c.Auth = true, authOn
			c.TenantAuth = TenantAuthConfig{UserIsTenant: true, Users: map[string][]string{"ops": {"a", "b"}}}
		}, ""},
	} {
		cfg := createDefaultConfig().(*Config)
		tc.mut(cfg)
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestQueryGate: the stores' query limiters refuse through the governor's query share, with 503 and a retry
// hint, while ingest (a larger share) still passes; without sprout_api there is no gate.
func TestQueryGate(t *testing.T) {
	gov := memguard.New(memguard.Budget{Heap: 800}, memguard.Budget{Heap: 600}, memguard.Options{Limit: 1000, HeapLive: func() int64 { return 700 }})
	h := host{ext: map[component.ID]component.Component{component.MustNewID("sprout_api"): &Server{gov: gov}}}
	gate := QueryGate(h)
	if gate == nil {
		t.Fatal("no gate with a sprout_api")
	}
	err := gate(context.Background(), "t")
	r, ok := refusal.As(err)
	if !ok || r.HTTPStatus() != http.StatusServiceUnavailable || r.Wait() <= 0 || r.Limit != "memory" || !strings.Contains(err.Error(), "query_limit_percentage") {
		t.Fatalf("over the query share: %v; want a 503 refusal naming query_limit_percentage", err)
	}
	if err := gov.Check(memguard.Ingest); err != nil {
		t.Fatalf("ingest refused below its own share: %v", err)
	}
	low := memguard.New(memguard.Budget{Heap: 800}, memguard.Budget{Heap: 600}, memguard.Options{Limit: 1000, HeapLive: func() int64 { return 100 }})
	h.ext[component.MustNewID("sprout_api")] = &Server{gov: low}
	if err := QueryGate(h)(context.Background(), "t"); err != nil {
		t.Fatalf("under the query share: %v", err)
	}
	if QueryGate(host{}) != nil {
		t.Fatal("a gate without sprout_api")
	}
}
