package node

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ParseAnnounce parses one address a node should advertise besides the ones
// it detects (Config.Announce): an IP (203.0.113.7, 2001:db8::7) becomes
// /ip4/… or /ip6/…, a DNS name (boot.example.com) /dns4/…; both are then
// advertised with every listen transport and port. A multiaddr
// (/dns6/boot.example.com, /ip4/203.0.113.7/tcp/7460 for a port forwarded
// elsewhere) is taken as given: a host, optionally followed by /tcp/PORT or
// /udp/PORT/quic-v1.
func ParseAnnounce(s string) (ma.Multiaddr, error) {
	const hint = "give a public IP, a DNS name or a multiaddr such as /ip4/203.0.113.7 or /dns4/boot.example.com/tcp/7460"
	s = strings.TrimSpace(s)
	var a ma.Multiaddr
	switch {
	case s == "":
		return nil, fmt.Errorf("empty announce address: %s", hint)
	case strings.HasPrefix(s, "/"):
		var err error
		if a, err = ma.NewMultiaddr(s); err != nil {
			return nil, fmt.Errorf("announce address %q: %w (%s)", s, err, hint)
		}
	default:
		if ip, err := netip.ParseAddr(s); err == nil {
			fam := "ip4"
			if ip.Is6() && !ip.Is4In6() {
				fam = "ip6"
			}
			a, err = ma.NewMultiaddr("/" + fam + "/" + ip.Unmap().String())
			if err != nil {
				return nil, fmt.Errorf("announce address %q: %w", s, err)
			}
			break
		}
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return nil, fmt.Errorf("announce address %q: give the IP without a port (the listen ports are added), or a multiaddr such as /ip4/%s/tcp/%d for a forwarded port", s, ap.Addr(), ap.Port())
		}
		name := strings.ToLower(strings.TrimSuffix(s, "."))
		if err := validDNSName(name); err != nil {
			return nil, fmt.Errorf("announce address %q: %w (%s)", s, err, hint)
		}
		var err error
		if a, err = ma.NewMultiaddr("/dns4/" + name); err != nil {
			return nil, fmt.Errorf("announce address %q: %w", s, err)
		}
	}
	if err := checkAnnounce(a); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, hint)
	}
	return a, nil
}

// checkAnnounce vets an announce address: a host (ip4, ip6, dns, dns4,
// dns6; not unspecified, multicast or with a zone), optionally /tcp/PORT or
// /udp/PORT/quic-v1 with a port other than 0.
func checkAnnounce(a ma.Multiaddr) error {
	if len(a) == 0 {
		return errors.New("empty announce address")
	}
	host := a[0]
	switch host.Code() {
	case ma.P_IP4, ma.P_IP6:
		ip, err := netip.ParseAddr(host.Value())
		if err != nil {
			return fmt.Errorf("announce address %s: %w", a, err)
		}
		if ip.IsUnspecified() || ip.IsMulticast() {
			return fmt.Errorf("announce address %s: not a unicast address other nodes can dial", a)
		}
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		if err := validDNSName(host.Value()); err != nil {
			return fmt.Errorf("announce address %s: %w", a, err)
		}
	default:
		return fmt.Errorf("announce address %s: must start with /ip4, /ip6, /dns, /dns4 or /dns6", a)
	}
	rest := a[1:]
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && rest[0].Code() == ma.P_TCP && rest[0].Value() != "0":
	case len(rest) == 2 && rest[0].Code() == ma.P_UDP && rest[0].Value() != "0" && rest[1].Code() == ma.P_QUIC_V1:
	default:
		return fmt.Errorf("announce address %s: after the host give nothing, /tcp/PORT or /udp/PORT/quic-v1 (port not 0, no /p2p)", a)
	}
	return nil
}

// validDNSName checks a DNS name: dot-separated RFC 1123 labels of letters,
// digits and inner hyphens, at most 253 characters, the last label not all
// digits (so a mistyped IP is not taken for a name).
func validDNSName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("not a DNS name (1-253 characters)")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("not a DNS name: bad label %q", l)
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("not an IP address or DNS name: %q has %q", l, r)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("not an IP address or DNS name (the last label is all digits)")
	}
	return nil
}

// announced expands the announce addresses with the transports and ports of
// the detected (listen) addresses: a host-only address gets every transport
// of its family (dns: both), one with a transport is used as is.
func announced(ann, detected []ma.Multiaddr) []ma.Multiaddr {
	type tail struct {
		six  bool
		rest ma.Multiaddr
	}
	var tails []tail
	seen := map[string]bool{}
	for _, d := range detected {
		if len(d) < 2 || (d[0].Code() != ma.P_IP4 && d[0].Code() != ma.P_IP6) {
			continue
		}
		rest := d[1:]
		if _, err := rest.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		key := d[0].Protocol().Name + rest.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		tails = append(tails, tail{six: d[0].Code() == ma.P_IP6, rest: rest})
	}
	var out []ma.Multiaddr
	added := map[string]bool{}
	add := func(a ma.Multiaddr) {
		if !added[a.String()] {
			added[a.String()] = true
			out = append(out, a)
		}
	}
	for _, a := range ann {
		if len(a) > 1 {
			add(a)
			continue
		}
		for _, t := range tails {
			switch a[0].Code() {
			case ma.P_IP4, ma.P_DNS4:
				if t.six {
					continue
				}
			case ma.P_IP6, ma.P_DNS6:
				if !t.six {
					continue
				}
			}
			add(append(ma.Multiaddr{a[0]}, t.rest...))
		}
	}
	return out
}

// Address ranks for BestAddr, best first.
const (
	rankAnnounced = iota
	rankPublic
	rankPrivate
	rankLinkLocal
	rankLoopback
)

func addrRank(a ma.Multiaddr, ann []ma.Multiaddr) int {
	for _, x := range ann {
		if len(a) > 0 && a[0].Equal(&x[0]) {
			return rankAnnounced
		}
	}
	switch a[0].Code() {
	case ma.P_IP4, ma.P_IP6:
		ip, err := netip.ParseAddr(a[0].Value())
		if err != nil {
			return rankLoopback + 1
		}
		ip = ip.Unmap()
		switch {
		case ip.IsLoopback():
			return rankLoopback
		case ip.IsLinkLocalUnicast():
			return rankLinkLocal
		case ip.IsPrivate() || cgnat.Contains(ip):
			return rankPrivate
		}
		return rankPublic
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		return rankPublic
	}
	return rankLoopback + 1
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// BestAddr picks the address to give members as --bootstrap from a node's
// addresses: an announced one first, else a public, else a private one,
// loopback only if there is nothing else; TCP before QUIC (members dial TCP
// first). Relay circuit addresses are never chosen. Nil if none is left.
func BestAddr(addrs, ann []ma.Multiaddr) ma.Multiaddr {
	var cands []ma.Multiaddr
	for _, a := range addrs {
		if len(a) == 0 {
			continue
		}
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		cands = append(cands, a)
	}
	if len(cands) == 0 {
		return nil
	}
	tcp := func(a ma.Multiaddr) int {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return 0
		}
		return 1
	}
	sort.SliceStable(cands, func(i, j int) bool {
		ri, rj := addrRank(cands[i], ann), addrRank(cands[j], ann)
		if ri != rj {
			return ri < rj
		}
		return tcp(cands[i]) < tcp(cands[j])
	})
	return cands[0]
}

// BootstrapAddr is the one address, with /p2p/ID, members should be given
// to reach this node (BestAddr of its advertised addresses); nil if it has
// none.
func (n *Node) BootstrapAddr() ma.Multiaddr {
	best := BestAddr(n.Host.Addrs(), n.cfg.Announce)
	if best == nil {
		return nil
	}
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: []ma.Multiaddr{best}})
	if err != nil || len(full) == 0 {
		return nil
	}
	return full[0]
}
