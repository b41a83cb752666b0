package overlay

import (
	"net/netip"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Healing after a member moved or restarted, and after this node's own
// underlay changed:
//
//   - a local address appearing or going away is announced at once (the
//     node's netlink watch calls back; libp2p's own address events lag a
//     renumbering by up to a minute);
//   - a bootstrap node that is back gets this node's rendezvous
//     advertisement at once (it forgot the provider records);
//   - every member's announced addresses (circuit addresses of its current
//     reservations included) go into the peerstore at once;
//   - a member announcing other addresses or a new instance (it moved or
//     restarted): dial backoffs are forgotten, and every connection to it
//     is probed and closed if dead, so the data plane redials now instead
//     of after its dead-path timeout.

// watchUnderlay hooks the membership to the node's address and bootstrap
// callbacks.
func (m *Membership) watchUnderlay() {
	m.cfg.Node.OnAddrChange(func() {
		if !m.closed.Load() {
			m.log.Info("heal: local address changed, announcing", "addrs", len(m.cfg.Node.CurrentAddrs()))
			select {
			case m.underlayChanged <- struct{}{}:
			default:
			}
		}
	})
	m.cfg.Node.OnBootstrapBack(func() {
		if m.closed.Load() {
			return
		}
		select {
		case m.readvertise <- struct{}{}:
		default:
		}
		m.Republish()
	})
}

// movedOrRestarted reports whether announcement b, following a, shows the
// member as a new instance, or without an IP it announced before (it was
// renumbered). New addresses alone are no move: a member behind a NAT
// gains and loses observed addresses (one NAT port per observer) all the
// time, and probing its connections on each would, on a starved machine,
// close live ones.
func movedOrRestarted(a, b *Announcement) bool {
	if a.Kind == KindLeave || b.Kind == KindLeave {
		return false
	}
	return a.Instance != b.Instance || len(goneIPs(a.Addrs, b.Addrs)) > 0
}

func directAddrs(addrs []string) []string {
	var out []string
	for _, s := range addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				continue
			}
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// learnAddrs puts the addresses a member announced into the peerstore: a
// relayed pair whose relay died redials at the circuit addresses of the
// member's other reservations, which identify would bring only seconds
// later (and not at all while the two are disconnected).
func (m *Membership) learnAddrs(id peer.ID, a *Announcement) {
	var addrs []ma.Multiaddr
	for _, s := range a.Addrs {
		if addr, err := ma.NewMultiaddr(s); err == nil {
			addrs = append(addrs, addr)
		}
	}
	m.cfg.Node.Host.Peerstore().AddAddrs(id, addrs, peerstore.RecentlyConnectedAddrTTL)
}

// moved reacts to a member that moved or restarted (see the file comment).
func (m *Membership) moved(id peer.ID, prev, a *Announcement) {
	m.cfg.Node.ClearDialBackoff(id)
	why := "moved"
	if prev.Instance != a.Instance {
		why = "restarted"
	}
	m.log.Info("heal: member "+why+", probing its connections", "host", a.HostName, "peer", id,
		"addrs", directAddrs(a.Addrs), "announced", a.Time.Format(time.RFC3339Nano))
	// Connections to an IP the member announced before and no longer
	// does are dead (it was renumbered): closed now, not after a probe.
	if gone := goneIPs(prev.Addrs, a.Addrs); len(gone) > 0 {
		m.cfg.Node.CloseConnsTo(id, func(ip netip.Addr) bool { return gone[ip] })
	}
	m.cfg.Node.ProbeConns(id)
	if m.cfg.OnMoved != nil {
		m.cfg.OnMoved(id, prev.Instance != a.Instance)
	}
}

// goneIPs returns the IPs of prev's direct addresses that next no longer
// lists.
func goneIPs(prev, next []string) map[netip.Addr]bool {
	ips := func(addrs []string) map[netip.Addr]bool {
		out := map[netip.Addr]bool{}
		for _, s := range directAddrs(addrs) {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue
			}
			if ip, err := manet.ToIP(a); err == nil {
				if addr, ok := netip.AddrFromSlice(ip); ok {
					out[addr.Unmap()] = true
				}
			}
		}
		return out
	}
	before, now := ips(prev), ips(next)
	for ip := range now {
		delete(before, ip)
	}
	return before
}
