// Package egress is the address policy for connections that a tenant, not the operator, points Sprout at:
// Alertmanager receivers (webhook, Slack, PagerDuty, … URLs and e-mail smarthosts) uploaded over the API. Without
// it a tenant could make Sprout send requests to its own loopback ports, to other services on the private
// network, or to the cloud metadata endpoint (169.254.169.254), and read parts of the answers from error logs and
// metrics. It is the counterpart of Mimir's Alertmanager receivers firewall.
//
// A policy is checked twice: when a configuration is uploaded (literal addresses, so that the tenant gets a 400
// naming the URL) and at every dial, on the address a host name resolved to (a name can resolve to 127.0.0.1, or
// change after the upload). It owns no configuration and knows nothing of Alertmanager.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Policy says which addresses may be dialled. The zero Policy allows every address.
type Policy struct {
	// BlockPrivateAddresses refuses loopback, private (RFC 1918, RFC 4193), link-local (including the cloud
	// metadata address 169.254.169.254), shared (RFC 6598), multicast and unspecified addresses.
	BlockPrivateAddresses bool
	// BlockCIDRNetworks refuses these networks as well.
	BlockCIDRNetworks []netip.Prefix
	// AllowCIDRNetworks are exceptions to both blocks (e.g. the network of an in-house webhook relay).
	AllowCIDRNetworks []netip.Prefix
	// Setting names the configuration this policy comes from, for refusals ("how to change it").
	Setting string
}

// ErrBlocked is wrapped by every refusal of the policy.
var ErrBlocked = errors.New("address blocked by the receivers firewall")

// Enabled reports whether the policy refuses anything.
func (p *Policy) Enabled() bool {
	return p != nil && (p.BlockPrivateAddresses || len(p.BlockCIDRNetworks) > 0)
}

// sharedAddressSpace is RFC 6598's carrier-grade NAT range, private in all but name.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// CheckAddr refuses an address the policy blocks, with an error that names it and the setting to change.
func (p *Policy) CheckAddr(a netip.Addr) error {
	if !p.Enabled() {
		return nil
	}
	a = a.Unmap().WithZone("") // a zone would hide "::%eth0" from IsUnspecified and friends
	for _, n := range p.AllowCIDRNetworks {
		if n.Contains(a) {
			return nil
		}
	}
	if p.BlockPrivateAddresses {
		if kind := privateKind(a); kind != "" {
			return fmt.Errorf("%w: %s is a %s address (%s)", ErrBlocked, a, kind, p.howToChange())
		}
	}
	for _, n := range p.BlockCIDRNetworks {
		if n.Contains(a) {
			return fmt.Errorf("%w: %s is in the blocked network %s (%s)", ErrBlocked, a, n, p.howToChange())
		}
	}
	return nil
}

func (p *Policy) howToChange() string {
	if p.Setting == "" {
		return "allow it in the firewall's allowed networks"
	}
	return "to allow it, add its network to " + p.Setting
}

// privateKind names why a is private, or "" if it is a public unicast address.
func privateKind(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsPrivate():
		return "private"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a.Is4() && sharedAddressSpace.Contains(a):
		return "shared (carrier-grade NAT)"
	case a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}:
		return "broadcast"
	case a.Is4() && a.As4()[0] == 0:
		return "this-network (0.0.0.0/8)"
	}
	return ""
}

// CheckHost checks a host as written in a configuration: an IP literal is checked as it is, "localhost" and
// names under .localhost (which resolve to loopback by definition, RFC 6761) are loopback, and other names pass:
// they are checked on what they resolve to when dialled.
func (p *Policy) CheckHost(host string) error {
	if !p.Enabled() || host == "" {
		return nil
	}
	h := strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if i := strings.IndexByte(h, '%'); i >= 0 { // IPv6 zone
		h = h[:i]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return p.CheckAddr(a)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return p.CheckAddr(netip.IPv6Loopback())
	}
	// Forms the resolver reads as IPv4 literals although netip does not ("2130706433", "0x7f.1", "127.1").
	if ip := parseLegacyIPv4(h); ip.IsValid() {
		return p.CheckAddr(ip)
	}
	return nil
}

// parseLegacyIPv4 reads the numeric IPv4 forms of inet_aton (decimal, octal or hex parts, 1 to 4 of them),
// which some resolvers and HTTP clients accept; an invalid Addr if h is not one.
func parseLegacyIPv4(h string) netip.Addr {
	parts := strings.Split(h, ".")
	if len(parts) > 4 {
		return netip.Addr{}
	}
	vals := make([]uint64, len(parts))
	for i, s := range parts {
		if s == "" {
			return netip.Addr{}
		}
		base := 10
		switch {
		case strings.HasPrefix(s, "0x"):
			base, s = 16, s[2:]
		case len(s) > 1 && s[0] == '0':
			base, s = 8, s[1:]
		}
		var v uint64
		for _, c := range s {
			d := strings.IndexRune("0123456789abcdef"[:base], c)
			if d < 0 {
				return netip.Addr{}
			}
			v = v*uint64(base) + uint64(d)
			if v > 0xffffffff {
				return netip.Addr{}
			}
		}
		vals[i] = v
	}
	var n uint64
	for i, v := range vals[:len(vals)-1] {
		if v > 0xff {
			return netip.Addr{}
		}
		n |= v << (24 - 8*i)
	}
	last := vals[len(vals)-1]
	if last >= 1<<(32-8*(len(vals)-1)) {
		return netip.Addr{}
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// Control is a net.Dialer Control function: it refuses the connection when the address the name resolved to
// is blocked, after resolution and before any packet is sent.
func (p *Policy) Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q is not host:port", ErrBlocked, address)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrBlocked, host)
	}
	return p.CheckAddr(a)
}

// Dialer is a dialer that applies the policy to every address it connects to (the same timeouts as the HTTP
// clients of Prometheus' libraries).
func (p *Policy) Dialer() *net.Dialer {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if p.Enabled() {
		d.Control = p.Control
	}
	return d
}

// DialContext dials through Dialer.
func (p *Policy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.Dialer().DialContext(ctx, network, address)
}

// ParseCIDRs parses a list of networks (a bare address is its own /32 or /128); field names the setting in the
// error.
func ParseCIDRs(field string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %q is not a network (CIDR, e.g. 10.0.0.0/8) or an address", field, i, s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
