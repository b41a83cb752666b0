package paths

import (
	"net/netip"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// addrIP is the IP of a direct address; ok is false for relay circuits and
// addresses without an IP (DNS names are resolved before dialling).
func addrIP(a ma.Multiaddr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return netip.Addr{}, false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// onPrivate reports whether a is on p's private path.
func (p Path) onPrivate(a ma.Multiaddr) bool {
	ip, ok := addrIP(a)
	if !ok {
		return false
	}
	if _, declared := p.privateIPs[ip]; declared {
		return true
	}
	return ip != p.publicIP && !publicIP(ip)
}

// onPublic reports whether a is on p's public path (a relay circuit counts
// as public: its traffic crosses the internet to the relay).
func (p Path) onPublic(a ma.Multiaddr) bool {
	ip, ok := addrIP(a)
	if !ok {
		return true
	}
	if ip == p.publicIP {
		return true
	}
	if _, declared := p.privateIPs[ip]; declared {
		return false
	}
	return publicIP(ip)
}

// publicIP follows go-multiaddr's rule (not RFC 1918, loopback, CGNAT,
// link-local, ...).
func publicIP(ip netip.Addr) bool {
	fam := "/ip4/"
	if ip.Is6() {
		fam = "/ip6/"
	}
	a, err := ma.NewMultiaddr(fam + ip.String())
	return err == nil && manet.IsPublicAddr(a)
}
