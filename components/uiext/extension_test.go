package uiext

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confignet"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/sprout-otel/sprout/components/apiserver"
)

func TestUIURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:3200", "http://localhost:3200/ui/"},
		{"[::1]:3200", "http://localhost:3200/ui/"},
		{"0.0.0.0:3200", "http://localhost:3200/ui/"},
		{"[::]:8080", "http://localhost:8080/ui/"},
		{"10.1.2.3:3200", "http://10.1.2.3:3200/ui/"},
		{"[fd00::1]:3200", "http://[fd00::1]:3200/ui/"},
		{"", ""},
		{"nonsense", ""},
	} {
		if got := uiURL(tc.addr); got != tc.want {
			t.Errorf("uiURL(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

type host struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// The UI starts before the API server listens (extensions start in dependency order); its address is announced
// once the pipelines run, from the listener actually bound.
func TestAnnouncesAddressWhenReady(t *testing.T) {
	ctx := context.Background()
	acfg := apiserver.NewFactory().CreateDefaultConfig().(*apiserver.Config)
	acfg.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: "127.0.0.1:0"}
	api, err := apiserver.NewFactory().Create(ctx, extensiontest.NewNopSettings(apiserver.Type), acfg)
	if err != nil {
		t.Fatal(err)
	}
	h := host{ext: map[component.ID]component.Component{component.NewID(apiserver.Type): api}}
	ui, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), NewFactory().CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	Announce = func(url string) { got = append(got, url) }
	t.Cleanup(func() { Announce = nil })
	if err := ui.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := api.Start(ctx, h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Shutdown(ctx) })
	if len(got) != 0 {
		t.Fatalf("announced before ready: %v", got)
	}
	if err := ui.(interface{ Ready() error }).Ready(); err != nil {
		t.Fatal(err)
	}
	port := api.(*apiserver.Server).Addr()[strings.LastIndex(api.(*apiserver.Server).Addr(), ":")+1:]
	if len(got) != 1 || got[0] != "http://localhost:"+port+"/ui/" {
		t.Fatalf("announced %v, want http://localhost:%s/ui/", got, port)
	}
}

// The proxy is mounted on the API server by Start, behind the port's walls: a same-origin read reaches the
// cluster, a cross-site page cannot read the answer (no CORS grant) nor send a state change (403 before the
// proxy), and the page's config names the proxy only.
func TestProxyMountedBehindWalls(t *testing.T) {
	var calls atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"status":"success","data":["%s"]}`, r.Header.Get("X-Scope-OrgID"))
	}))
	t.Cleanup(up.Close)
	ctx := context.Background()
	acfg := apiserver.NewFactory().CreateDefaultConfig().(*apiserver.Config)
	acfg.NetAddr = confignet.AddrConfig{Transport: confignet.TransportTypeTCP, Endpoint: "127.0.0.1:0"}
	api, err := apiserver.NewFactory().Create(ctx, extensiontest.NewNopSettings(apiserver.Type), acfg)
	require.NoError(t, err)
	h := host{ext: map[component.ID]component.Component{component.NewID(apiserver.Type): api}}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.PrometheusURL, cfg.Prometheus.Tenant, cfg.Prometheus.Auth.BearerToken = up.URL, "team-secret", "tok-secret"
	require.NoError(t, cfg.Validate())
	ui, err := NewFactory().Create(ctx, extensiontest.NewNopSettings(Type), cfg)
	require.NoError(t, err)
	require.NoError(t, ui.Start(ctx, h))
	require.NoError(t, api.Start(ctx, h))
	t.Cleanup(func() { _ = api.Shutdown(ctx) })
	base := "http://" + api.(*apiserver.Server).Addr()

	do := func(method, path string, hdr map[string]string) (*http.Response, string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(`{}`))
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := do("GET", "/ui/proxy/prometheus/api/v1/labels", map[string]string{"Sec-Fetch-Site": "same-origin"})
	assert.Equal(t, 200, resp.StatusCode, body)
	assert.Equal(t, `{"status":"success","data":["team-secret"]}`, body)

	resp, _ = do("GET", "/ui/proxy/prometheus/api/v1/labels", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"})
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "a cross-site page must not read the answer")

	before := calls.Load()
	resp, body = do("POST", "/ui/proxy/prometheus/api/v1/query", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example", "Content-Type": "application/json"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	assert.Equal(t, before, calls.Load(), "the cluster must not be asked")

	resp, body = do("GET", "/ui/config.json", nil)
	assert.Equal(t, 200, resp.StatusCode)
	assert.NotContains(t, body, up.URL)
	assert.NotContains(t, body, "secret")
	assert.Contains(t, body, `"prometheus_url":"/ui/proxy/prometheus"`)
}
