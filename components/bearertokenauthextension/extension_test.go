package bearertokenauthextension

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/client"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"

	"github.com/sprout-otel/sprout/components/apiserver"
	"github.com/sprout-otel/sprout/internal/tenant"
	"github.com/sprout-otel/sprout/internal/testutil"
)

func load(t *testing.T, id string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(id)
	if err != nil {
		t.Fatal(err)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, confmap.Validate(cfg)
}

func TestLoadConfig(t *testing.T) {
	for _, tc := range []struct {
		id      string
		check   func(*Config) bool
		wantErr string
	}{
		{id: "bearertokenauth", check: func(c *Config) bool {
			return c.Header == "Authorization" && c.Scheme == "Bearer" && c.BearerToken == "s3cret"
		}},
		{id: "bearertokenauth/contrib", check: func(c *Config) bool { return c.Header == "X-Auth" && len(c.Tokens) == 2 }},
		{id: "bearertokenauth/file", check: func(c *Config) bool { return c.Filename == "testdata/tokens" }},
		{id: "bearertokenauth/users", check: func(c *Config) bool { return c.Users["team-a"] == "token-a" }},
		{id: "bearertokenauth/no_scheme", check: func(c *Config) bool { return c.Scheme == "" }},
		{id: "bearertokenauth/none", wantErr: "no token"},
		{id: "bearertokenauth/both", wantErr: "filename: set either"},
		{id: "bearertokenauth/dup_user_token", wantErr: "a token must name one user"},
		{id: "bearertokenauth/bad_scheme", wantErr: "scheme:"},
		{id: "bearertokenauth/empty_header", wantErr: "header:"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			cfg, err := load(t, tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(cfg) {
				t.Fatalf("config %+v, Validate() = %v", cfg, err)
			}
		})
	}
}

func started(t *testing.T, cfg *Config) *authenticator {
	t.Helper()
	a := newAuthenticator(cfg, zap.NewNop())
	if err := a.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	return a
}

func TestAuthenticate(t *testing.T) {
	for _, tc := range []struct {
		id      string
		sources map[string][]string
		ok      bool
		user    string
	}{
		{"bearertokenauth", map[string][]string{"Authorization": {"Bearer s3cret"}}, true, ""},
		{"bearertokenauth", map[string][]string{"authorization": {"bearer s3cret"}}, true, ""}, // gRPC metadata
		{"bearertokenauth", map[string][]string{"Authorization": {"Bearer s3cre"}}, false, ""},
		{"bearertokenauth", map[string][]string{"Authorization": {"Bearer s3cretX"}}, false, ""},
		{"bearertokenauth", map[string][]string{"Authorization": {"Basic s3cret"}}, false, ""},
		{"bearertokenauth", map[string][]string{"Authorization": {"s3cret"}}, false, ""},
		{"bearertokenauth", map[string][]string{"Authorization": {"Bearer "}}, false, ""},
		{"bearertokenauth", map[string][]string{}, false, ""},
		{"bearertokenauth/contrib", map[string][]string{"X-Auth": {"Bearer two"}}, true, ""},
		{"bearertokenauth/contrib", map[string][]string{"Authorization": {"Bearer two"}}, false, ""},
		{"bearertokenauth/file", map[string][]string{"Authorization": {"Bearer file-token-2"}}, true, ""},
		{"bearertokenauth/file", map[string][]string{"Authorization": {"Bearer file-token-3"}}, false, ""},
		{"bearertokenauth/users", map[string][]string{"Authorization": {"Bearer token-a"}}, true, "team-a"},
		{"bearertokenauth/users", map[string][]string{"Authorization": {"Bearer token-ops"}}, true, "ops"},
		{"bearertokenauth/users", map[string][]string{"Authorization": {"Bearer token-b"}}, false, ""},
		{"bearertokenauth/no_scheme", map[string][]string{"Authorization": {"raw"}}, true, ""},
		{"bearertokenauth/no_scheme", map[string][]string{"Authorization": {"Bearer raw"}}, false, ""},
	} {
		t.Run(fmt.Sprintf("%s %v", tc.id, tc.sources), func(t *testing.T) {
			cfg, err := load(t, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			a := started(t, cfg)
			ctx, err := a.Authenticate(context.Background(), tc.sources)
			if (err == nil) != tc.ok {
				t.Fatalf("Authenticate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				if err.Error() != errUnauthenticated.Error() {
					t.Errorf("refusal %q tells more than it should", err)
				}
				return
			}
			if got := tenant.User(client.FromContext(ctx)); got != tc.user {
				t.Errorf("user = %q, want %q", got, tc.user)
			}
		})
	}
}

// TestTokenFileRotation: a token written to the file replaces the old ones once the file is read again.
func TestTokenFileRotation(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := started(t, &Config{Header: "Authorization", Scheme: "Bearer", Filename: f})
	auth := func(tok string) bool {
		_, err := a.Authenticate(context.Background(), map[string][]string{"Authorization": {"Bearer " + tok}})
		return err == nil
	}
	if !auth("old") || auth("new") {
		t.Fatal("before rotation")
	}
	if err := os.WriteFile(f, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.load(); err != nil {
		t.Fatal(err)
	}
	if auth("old") || !auth("new") {
		t.Fatal("after rotation")
	}
	// An emptied file is refused and the tokens in use stay.
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.load(); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Fatalf("empty file: %v", err)
	}
	if !auth("new") {
		t.Fatal("an unreadable file dropped the tokens in use")
	}
	if err := newAuthenticator(&Config{Filename: filepath.Join(t.TempDir(), "missing")}, zap.NewNop()).Start(context.Background(), nil); err == nil {
		t.Fatal("a missing file must fail the start")
	}
}

type host struct {
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// TestTenantAuthWithTokens runs sprout_api with this extension as its authenticator through the Collector's
// HTTP server framework, as basic auth is in apiserver's TestTenantAuth: a user's token acts as its tenant,
// another tenant is 403, a wrong token 401.
func TestTenantAuthWithTokens(t *testing.T) {
	authID := component.MustNewIDWithName("bearertokenauth", "server")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Users = map[string]configopaque.String{"team-a": "ta", "ops": "to"}
	auth, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auth.Shutdown(context.Background()) })

	af := apiserver.NewFactory()
	acfg := af.CreateDefaultConfig().(*apiserver.Config)
	acfg.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
	acfg.MultitenancyEnabled = true
	acfg.Auth = configoptional.Some(confighttp.AuthConfig{Config: configauth.Config{AuthenticatorID: authID}})
	acfg.TenantAuth = apiserver.TenantAuthConfig{UserIsTenant: true, Users: map[string][]string{"ops": {"team-a", "team-b"}}}
	if err := acfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ext, err := af.Create(context.Background(), extensiontest.NewNopSettings(apiserver.Type), acfg)
	if err != nil {
		t.Fatal(err)
	}
	s := ext.(*apiserver.Server)
	if err := s.Start(context.Background(), host{map[component.ID]component.Component{authID: auth}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	s.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := s.Tenant(w, r); ok {
			_, _ = io.WriteString(w, id)
		}
	})
	for _, tc := range []struct {
		token, org string
		code       int
		want       string
	}{
		{"ta", "team-a", 200, "team-a"},
		{"ta", "", 200, "team-a"},
		{"ta", "team-b", 403, `user "team-a" may not act as tenant "team-b"`},
		{"to", "team-b", 200, "team-b"},
		{"to", "team-c", 403, "may not act"},
		{"wrong", "team-a", 401, ""},
		{"", "team-a", 401, ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr()+"/whoami", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
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
			t.Errorf("token %q as %q: %d %q, want %d %q", tc.token, tc.org, resp.StatusCode, b, tc.code, tc.want)
		}
	}
}

// FuzzAuthenticate: whatever the header holds, only "Bearer <the token>" (scheme in any case, extra spaces
// before the token) authenticates.
func FuzzAuthenticate(f *testing.F) {
	for _, s := range []string{"Bearer s3cret", "bearer s3cret", "Bearer  s3cret", "Bearer", "Bearer s3cret ", "s3cret", "", "Basic czNjcmV0"} {
		f.Add(s)
	}
	a := newAuthenticator(&Config{Header: "Authorization", Scheme: "Bearer", BearerToken: "s3cret"}, zap.NewNop())
	if err := a.load(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, err := a.Authenticate(context.Background(), map[string][]string{"Authorization": {v}})
		scheme, rest, _ := strings.Cut(v, " ")
		want := strings.EqualFold(scheme, "Bearer") && strings.TrimLeft(rest, " ") == "s3cret"
		if (err == nil) != want {
			t.Fatalf("Authenticate(%q) = %v, want ok=%v", v, err, want)
		}
	})
}
