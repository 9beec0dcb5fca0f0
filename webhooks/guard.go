package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// Address ranges a delivery refuses unless the endpoint allows private
// addresses: a webhook URL is user input that the leader dials from inside
// the operator's network (SSRF). net/netip's predicates cover loopback,
// link-local (169.254/16 holds cloud metadata services), RFC 1918 and
// fc00::/7, multicast and the unspecified address; these add what they
// do not.
var extraBlocked = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Blocked reports whether a delivery may not dial ip without AllowPrivate,
// and what kind of address it is.
func Blocked(ip netip.Addr) (string, bool) {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "invalid", true
	case ip.IsLoopback():
		return "loopback", true
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local", true
	case ip.IsPrivate():
		return "private", true
	case ip.IsUnspecified():
		return "unspecified", true
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast", true
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast", true
	}
	if nat64.Contains(ip) { // a NAT64 gateway would reach the IPv4 address inside
		b := ip.As16()
		if kind, bad := Blocked(netip.AddrFrom4([4]byte(b[12:]))); bad {
			return "NAT64 " + kind, true
		}
	}
	for _, b := range extraBlocked {
		if b.prefix.Contains(ip) {
			return b.kind, true
		}
	}
	return "", false
}

// dialControl refuses, at connect time, an address Blocked names: it sees
// the address actually dialled, after DNS, so a name that resolved to a
// public address when the endpoint was added and to a private one now
// (DNS rebinding) is still refused.
func dialControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialled address %q", ErrPrivateAddress, address)
	}
	if kind, bad := Blocked(ap.Addr()); bad {
		return fmt.Errorf("%w: %s is a %s address (add the endpoint with --allow-private to deliver there)", ErrPrivateAddress, ap.Addr(), kind)
	}
	return nil
}

// Resolver looks host names up (net.DefaultResolver in production).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL validates an endpoint URL: http or https, a host, no user
// information, at most URLBytesMax; and, unless allowPrivate, a host
// whose every address is public. The check at add time gives a clear
// error early; dialControl enforces it on every delivery.
func CheckURL(ctx context.Context, raw string, allowPrivate bool, r Resolver) (*url.URL, error) {
	if len(raw) > URLBytesMax {
		return nil, fmt.Errorf("%w: URL longer than %d bytes", ErrInvalid, URLBytesMax)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: URL %q: %v", ErrInvalid, truncate(raw), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: URL %q: scheme must be https or http", ErrInvalid, truncate(raw))
	}
	if u.Hostname() == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("%w: URL %q: want scheme://host[:port]/path, no user information or fragment", ErrInvalid, truncate(raw))
	}
	if allowPrivate {
		return u, nil
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	addrs := []netip.Addr{}
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = append(addrs, ip)
	} else if addrs, err = r.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("%w: URL %q: cannot resolve %s: %v", ErrInvalid, truncate(raw), host, err)
	}
	for _, ip := range addrs {
		if kind, bad := Blocked(ip); bad {
			return nil, fmt.Errorf("%w: URL %q resolves to %s, a %s address: refused (pass --allow-private to deliver to loopback, link-local or private addresses, for tests and on-premise receivers)",
				ErrPrivateAddress, truncate(raw), ip.Unmap(), kind)
		}
	}
	return u, nil
}

// newDialer returns the dialer of deliveries: guarded unless allowPrivate.
func newDialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	if !allowPrivate {
		d.Control = dialControl
	}
	return d
}
