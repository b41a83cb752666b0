package node

import (
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// localAddrs follows the machine's own addresses as the netlink watch sees
// them come and go. go-libp2p resolves its wildcard listen addresses
// against an interface list it caches for a minute and recomputes the
// host's addresses every 5 s, so after a renumbering the node would go on
// advertising the address it lost, and announce the new one up to a minute
// late (the 35–41 s heals). CurrentAddrs asks the interfaces
// directly and leaves out the addresses seen removed; the address factory
// drops those too, and OnAddrChange's callbacks run at once.
type localAddrs struct {
	mu      sync.Mutex
	removed map[netip.Addr]time.Time
	subs    []func()
}

func (l *localAddrs) setRemoved(a netip.Addr, gone bool) {
	l.mu.Lock()
	if l.removed == nil {
		l.removed = map[netip.Addr]time.Time{}
	}
	if gone {
		l.removed[a] = time.Now()
	} else {
		delete(l.removed, a)
	}
	subs := append([]func(){}, l.subs...)
	l.mu.Unlock()
	for _, f := range subs {
		f()
	}
}

func (l *localAddrs) isRemoved(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	if err != nil {
		return false
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, gone := l.removed[addr.Unmap()]
	return gone
}

// dropRemoved filters out addresses on a local IP seen removed.
func (l *localAddrs) dropRemoved(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := addrs[:0:0]
	for _, a := range addrs {
		if !l.isRemoved(a) {
			out = append(out, a)
		}
	}
	return out
}

// OnAddrChange registers f to run whenever a local address appears or
// disappears (from the netlink watch's goroutine; f must not block).
func (n *Node) OnAddrChange(f func()) {
	n.local.mu.Lock()
	n.local.subs = append(n.local.subs, f)
	n.local.mu.Unlock()
}

// CurrentAddrs is the node's addresses as of now: the host's (announced and
// observed addresses included) without those on a local IP that went away,
// the circuit addresses of its current relay reservations (Config.ExtraAddrs),
// and the listen addresses resolved against the interfaces' current
// addresses — go-libp2p's own list lags a renumbering by up to a minute.
func (n *Node) CurrentAddrs() []ma.Multiaddr {
	var addrs []ma.Multiaddr
	for _, a := range n.local.dropRemoved(n.Host.Addrs()) {
		if n.cfg.ExtraAddrs == nil || !isCircuit(a) {
			addrs = append(addrs, a)
		}
	}
	// The circuit addresses as of now: the host's lag a new reservation
	// by up to 5 s, the time a relayed pair waits to move to it.
	if n.cfg.ExtraAddrs != nil {
		for _, a := range n.gater.filterAddrs(n.cfg.ExtraAddrs()) {
			if !containsAddr(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	if ifaces, err := manet.InterfaceMultiaddrs(); err == nil {
		var usable []ma.Multiaddr
		for _, a := range ifaces {
			if !manet.IsIPLoopback(a) && !manet.IsIP6LinkLocal(a) {
				usable = append(usable, a)
			}
		}
		if fresh, err := manet.ResolveUnspecifiedAddresses(n.Host.Network().ListenAddresses(), usable); err == nil {
			fresh = n.gater.filterAddrs(fresh)
			for _, a := range fresh {
				if manet.IsIPUnspecified(a) || isCircuit(a) {
					continue
				}
				if !containsAddr(addrs, a) {
					addrs = append(addrs, a)
				}
			}
		}
	}
	return addrs
}

func containsAddr(list []ma.Multiaddr, a ma.Multiaddr) bool {
	for _, b := range list {
		if b.Equal(a) {
			return true
		}
	}
	return false
}

// PubliclyReachable reports whether other nodes can dial this one directly
// from the internet: it is a Public node, AutoNAT says so, or a peer saw it
// at a public address that is on one of its own interfaces (no NAT in
// between: AutoNAT needs several servers to decide, a CLADNet may have one
// bootstrap node).
func (n *Node) PubliclyReachable() bool {
	if n.cfg.Public {
		return true
	}
	n.net.mu.Lock()
	reach := n.net.reach
	observed := make([]string, 0, len(n.net.observed))
	for _, a := range n.net.observed {
		observed = append(observed, a)
	}
	n.net.mu.Unlock()
	switch reach {
	case network.ReachabilityPublic:
		return true
	case network.ReachabilityPrivate:
		return false
	}
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return false
	}
	local := map[netip.Addr]bool{}
	for _, a := range ifaces {
		if ip, ok := ipOf(a); ok && !n.local.isRemoved(a) {
			local[ip] = true
		}
	}
	for _, s := range observed {
		a, err := ma.NewMultiaddr(s)
		if err != nil || !manet.IsPublicAddr(a) {
			continue
		}
		if ip, ok := ipOf(a); ok && local[ip] {
			return true
		}
	}
	return false
}
