package node

import (
	"net/netip"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// overlayGater refuses to dial or accept connections over addresses inside a
// CLADNet range: the overlay must never carry its own underlay (no
// VPN-over-VPN recursion).
type overlayGater struct {
	blocked []netip.Prefix
	// allow, if set, vets each address dialled to a peer (the cost
	// engine's path choice: a member's private address only where the
	// two share a network).
	allow func(peer.ID, ma.Multiaddr) bool
	// refuse, if set, names peers to neither dial nor accept (revoked
	// nodes).
	refuse func(peer.ID) bool
}

func (g *overlayGater) isBlocked(a ma.Multiaddr) bool {
	if len(g.blocked) == 0 {
		return false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return false // not an IP address (e.g. a relay circuit): judged by its parts
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	for _, p := range g.blocked {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func (g *overlayGater) InterceptPeerDial(p peer.ID) bool { return g.refuse == nil || !g.refuse(p) }
func (g *overlayGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return !g.isBlocked(a) && (g.allow == nil || g.allow(p, a))
}
func (g *overlayGater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	return !g.isBlocked(cm.RemoteMultiaddr())
}
func (g *overlayGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.refuse == nil || !g.refuse(p)
}
func (g *overlayGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// filterAddrs drops addresses inside blocked ranges.
func (g *overlayGater) filterAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := addrs[:0:0]
	for _, a := range addrs {
		if !g.isBlocked(a) {
			out = append(out, a)
		}
	}
	return out
}
