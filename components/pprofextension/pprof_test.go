package pprofextension

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/basicauthextension"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configauth"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/sprout-otel/sprout/internal/testutil"
)

func TestValidate(t *testing.T) {
	auth := &configauth.Config{AuthenticatorID: component.MustNewIDWithName("basicauth", "server")}
	for _, tc := range []struct {
		endpoint string
		auth     *configauth.Config
		want     string
	}{
		{"localhost:1777", nil, ""},
		{"127.0.0.1:1777", nil, ""},
		{"[::1]:1777", nil, ""},
		{"0.0.0.0:1777", nil, "can be reached from other hosts"},
		{":1777", nil, "can be reached from other hosts"},
		{"[::]:1777", nil, "can be reached from other hosts"},
		{"10.0.0.5:1777", nil, "set auth.authenticator"},
		{"0.0.0.0:1777", auth, ""},
		{"nonsense", nil, "not host:port"},
	} {
		c := &Config{Endpoint: tc.endpoint, Auth: tc.auth}
		err := c.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s (auth %v): %v, want %q", tc.endpoint, tc.auth != nil, err, tc.want)
		}
	}
}

type host struct {
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// TestAuth: with auth set, every pprof path answers 401 without valid credentials.
func TestAuth(t *testing.T) {
	authID := component.MustNewIDWithName("basicauth", "server")
	bf := basicauthextension.NewFactory()
	bcfg := bf.CreateDefaultConfig().(*basicauthextension.Config)
	bcfg.Htpasswd = &basicauthextension.HtpasswdSettings{Inline: "ops:secret\n"}
	auth, err := bf.Create(context.Background(), extensiontest.NewNopSettings(bf.Type()), bcfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auth.Shutdown(context.Background()) })

	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfg := &Config{Endpoint: addr, Auth: &configauth.Config{AuthenticatorID: authID}}
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), host{map[component.ID]component.Component{authID: auth}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	for _, tc := range []struct {
		path, user, pass string
		want             int
	}{
		{"/debug/pprof/", "", "", 401},
		{"/debug/pprof/cmdline", "", "", 401},
		{"/debug/pprof/heap", "ops", "wrong", 401},
		{"/debug/pprof/", "ops", "secret", 200},
		{"/debug/pprof/cmdline", "ops", "secret", 200},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+tc.path, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s as %q: %d, want %d", tc.path, tc.user, resp.StatusCode, tc.want)
		}
	}
	// An authenticator that is not configured fails the start.
	bad, _ := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(Type),
		&Config{Endpoint: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)), Auth: &configauth.Config{AuthenticatorID: component.MustNewID("nosuch")}})
	if err := bad.Start(context.Background(), host{}); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("missing authenticator: %v", err)
	}
}
