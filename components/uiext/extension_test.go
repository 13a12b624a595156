package uiext

import (
	"context"
	"strings"
	"testing"

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
