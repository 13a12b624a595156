package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCheckHost(t *testing.T) {
	def := &Policy{BlockPrivateAddresses: true, Setting: "x.allow"}
	allow := &Policy{BlockPrivateAddresses: true, AllowCIDRNetworks: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	block := &Policy{BlockCIDRNetworks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	for _, tc := range []struct {
		p    *Policy
		host string
		want string // part of the error; "" = allowed
	}{
		{def, "127.0.0.1", "loopback"},
		{def, "127.9.9.9", "loopback"},
		{def, "::1", "loopback"},
		{def, "[::1]", "loopback"},
		{def, "::ffff:127.0.0.1", "loopback"},
		{def, "localhost", "loopback"},
		{def, "LOCALHOST.", "loopback"},
		{def, "app.localhost", "loopback"},
		{def, "169.254.169.254", "link-local"},
		{def, "fe80::1%eth0", "link-local"},
		{def, "10.0.0.1", "private"},
		{def, "172.16.5.4", "private"},
		{def, "192.168.1.1", "private"},
		{def, "fd00::1", "private"},
		{def, "100.64.0.1", "shared"},
		{def, "0.0.0.0", "unspecified"},
		{def, "::", "unspecified"},
		{def, "0.1.2.3", "this-network"},
		{def, "224.0.0.1", "multicast"},
		{def, "255.255.255.255", "broadcast"},
		{def, "2130706433", "loopback"}, // 127.0.0.1 as one number
		{def, "0x7f.1", "loopback"},
		{def, "0177.0.0.1", "loopback"},
		{def, "127.1", "loopback"},
		{def, "203.0.113.5", ""},
		{def, "2001:db8::1", ""},
		{def, "hooks.slack.com", ""}, // names are checked when dialled
		{def, "1e100.net", ""},
		{allow, "10.20.3.4", ""},
		{allow, "10.21.3.4", "private"},
		{block, "203.0.113.5", "blocked network 203.0.113.0/24"},
		{block, "127.0.0.1", ""}, // only the listed networks
		{&Policy{}, "127.0.0.1", ""},
		{nil, "127.0.0.1", ""},
	} {
		err := tc.p.CheckHost(tc.host)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckHost(%q) = %v, want %q", tc.host, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrBlocked) {
			t.Errorf("CheckHost(%q): %v does not wrap ErrBlocked", tc.host, err)
		}
	}
	if err := def.CheckHost("127.0.0.1"); !strings.Contains(err.Error(), "x.allow") {
		t.Errorf("the refusal does not name the setting: %v", err)
	}
}

// TestDialerRefusesResolvedLoopback: a name that resolves to a blocked address is refused at dial time, before
// anything reaches the listener.
func TestDialerRefusesResolvedLoopback(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	p := &Policy{BlockPrivateAddresses: true}
	client := &http.Client{Transport: &http.Transport{DialContext: p.DialContext}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		resp, err := client.Get("http://" + net.JoinHostPort(host, port) + "/internal-only")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: request went through: %d", host, resp.StatusCode)
		}
		if !errors.Is(err, ErrBlocked) {
			t.Errorf("%s: %v, want ErrBlocked", host, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the listener got %d requests", n)
	}
	// The same dialer with the loopback network allowed reaches it.
	p.AllowCIDRNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("allowed request did not arrive")
	}
	if _, err := (&Policy{}).DialContext(context.Background(), "tcp", strings.TrimPrefix(srv.URL, "http://")); err != nil {
		t.Fatalf("zero policy: %v", err)
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs("f", []string{"10.0.0.0/8", " 192.168.1.7 ", "fd00::/8", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8", "10.0.0.0/8"}
	for i, w := range want {
		if got[i].String() != w {
			t.Errorf("[%d] = %s, want %s", i, got[i], w)
		}
	}
	if _, err := ParseCIDRs("f.g", []string{"10.0.0.0/8", "nonsense"}); err == nil || !strings.Contains(err.Error(), "f.g[1]") {
		t.Errorf("bad entry: %v", err)
	}
}

func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::1", "localhost", "0x7f.1", "2130706433", "hooks.slack.com", "[fe80::1%25eth0]", "1.2.3.4.5", "0x", "00000000000000000000777"} {
		f.Add(s)
	}
	p := &Policy{BlockPrivateAddresses: true}
	f.Fuzz(func(t *testing.T, host string) {
		err := p.CheckHost(host)
		// Whatever parses as an address must be judged as that address.
		if a, perr := netip.ParseAddr(host); perr == nil && (err == nil) != (p.CheckAddr(a) == nil) {
			t.Fatalf("CheckHost(%q) = %v but CheckAddr = %v", host, err, p.CheckAddr(a))
		}
		if ip := parseLegacyIPv4(host); ip.IsValid() && net.ParseIP(ip.String()) == nil {
			t.Fatalf("parseLegacyIPv4(%q) = %v", host, ip)
		}
	})
}
