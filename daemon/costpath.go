package daemon

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

// pathPolicy is the cost engine's decision for every member, consulted by
// the connection gater on every dial: a member's private (non-public)
// addresses are dialled only where the rules say the two share a network.
// Nodes that declared no VPC at all, on either side, are on a plain LAN
// (labs, on-premises): cloud rules cannot apply, and their private addresses
// may be dialled.
type pathPolicy struct {
	table atomic.Pointer[map[peer.ID]peerPath]
}

type peerPath struct {
	d       cost.Decision
	lan     bool // neither side declared a VPC
	host    string
	overlay string
}

func (pp *pathPolicy) get(p peer.ID) (peerPath, bool) {
	t := pp.table.Load()
	if t == nil {
		return peerPath{}, false
	}
	v, ok := (*t)[p]
	return v, ok
}

// allowPrivate reports whether p's private addresses may carry traffic.
func (v peerPath) allowPrivate() bool { return v.d.Private || v.lan }

// allow is the gater hook.
func (pp *pathPolicy) allow(p peer.ID, a ma.Multiaddr) bool {
	v, member := pp.get(p)
	if !member || !isPrivateAddr(a) {
		return true // not a member (bootstrap, relay), or a public / relay address
	}
	return v.allowPrivate()
}

// isPrivateAddr: a direct address whose IP is not public (RFC 1918,
// loopback, CGNAT, link-local, ...). Relay circuits are judged by the relay.
func isPrivateAddr(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return false
	}
	if _, err := manet.ToIP(a); err != nil {
		return false
	}
	return !manet.IsPublicAddr(a)
}

// connAllowed says whether conn c to p fits p's current decision.
func (pp *pathPolicy) connAllowed(p peer.ID, c network.Conn) bool {
	return pp.allow(p, c.RemoteMultiaddr())
}

// recompute decides every member's path from the rules and both sides'
// cloud information, and returns the peers whose decision changed.
func (m *Member) recompute() []peer.ID {
	rules := m.rules.Current()
	self := m.mem.Cloud()
	next := map[peer.ID]peerPath{}
	for _, mem := range m.mem.Members() {
		if mem.Self {
			continue
		}
		pc := mem.Ann.Cloud
		next[mem.ID] = peerPath{
			d:       cost.Decide(rules, self, pc),
			lan:     self.VirtualNetworkID == "" && pc.VirtualNetworkID == "",
			host:    mem.Ann.HostName,
			overlay: mem.Ann.OverlayIP,
		}
	}
	var changed []peer.ID
	if old := m.paths.table.Load(); old != nil {
		for id, v := range next {
			if o, ok := (*old)[id]; ok && o.allowPrivate() != v.allowPrivate() {
				changed = append(changed, id)
			}
		}
	}
	m.paths.table.Store(&next)
	return changed
}

// movePaths moves each changed peer's connection to the newly chosen path
// without stopping the overlay traffic: dial the allowed path, move the
// packet stream onto it, then close the connections that no longer fit.
func (m *Member) movePaths(ctx context.Context, peers []peer.ID) {
	for _, p := range peers {
		go func(p peer.ID) {
			h := m.node.Host
			v, _ := m.paths.get(p)
			m.log.Info("path choice changed", "peer", v.host, "private", v.allowPrivate(), "reason", v.d.Reason)
			dctx, cancel := context.WithTimeout(network.WithForceDirectDial(ctx, "cost path change"), 10*time.Second)
			_, err := h.Network().DialPeer(dctx, p)
			cancel()
			if err != nil {
				m.log.Warn("dial the newly chosen path", "peer", v.host, "err", err)
				return
			}
			if m.engine != nil {
				m.engine.Rehome(p)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second): // let the stream move first
			}
			for _, c := range h.Network().ConnsToPeer(p) {
				if !m.paths.connAllowed(p, c) {
					m.log.Info("closing connection on the old path", "peer", v.host, "remote", c.RemoteMultiaddr())
					_ = c.Close()
				}
			}
		}(p)
	}
}

// connScore ranks connections to p for the packet stream: paths the policy
// allows first, then the preferred kind (private when chosen), direct before
// relayed, then the newest.
func (m *Member) connScore(p peer.ID, c network.Conn) int {
	score := 0
	if m.paths.connAllowed(p, c) {
		score += 8
	}
	v, _ := m.paths.get(p)
	if v.allowPrivate() == isPrivateAddr(c.RemoteMultiaddr()) {
		score += 4
	}
	if !overlay.PathOf(c).Relayed {
		score += 2
	}
	return score
}

// pathClass is the class actually billed for traffic to p: the decision's
// class on the private path, the public class of it otherwise (relayed
// traffic crosses the internet to the relay).
func (m *Member) pathPrices(p peer.ID) (cost.Class, float64, float64, bool) {
	v, ok := m.paths.get(p)
	if !ok {
		return "", 0, 0, false
	}
	d := v.d
	if m.engine != nil {
		if st, ok := m.engine.Stats(p); ok && st.StreamUp {
			if st.Path.Relayed {
				return cost.ClassInternet, d.PublicPricePerGB, d.PublicPricePerGB, true
			}
			if a, err := ma.NewMultiaddr(st.Path.Remote); err == nil && !isPrivateAddr(a) {
				return d.Class.PublicClass(), d.PublicPricePerGB, d.PublicPricePerGB, true
			}
		}
	}
	if d.Private {
		return d.Class, d.PricePerGB, d.PublicPricePerGB, true
	}
	return d.Class.PublicClass(), d.PublicPricePerGB, d.PublicPricePerGB, true
}

// meter samples the data plane's sent bytes per peer every interval and
// charges them to the path they took.
type meter struct {
	m    *cost.Meter
	mu   sync.Mutex
	last map[peer.ID]uint64
}

func (m *Member) meterLoop(ctx context.Context, every time.Duration) {
	if m.engine == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.sampleMeter()
			return
		case <-t.C:
			m.sampleMeter()
		}
	}
}

func (m *Member) sampleMeter() {
	m.meter.mu.Lock()
	defer m.meter.mu.Unlock()
	for p, st := range m.engine.AllStats() {
		prev := m.meter.last[p]
		if st.TxBytes < prev { // peer state was recreated
			prev = 0
		}
		m.meter.last[p] = st.TxBytes
		delta := st.TxBytes - prev
		if delta == 0 {
			continue
		}
		class, price, public, ok := m.pathPrices(p)
		if !ok {
			continue
		}
		name := p.String()
		if v, ok := m.paths.get(p); ok {
			name = v.host
		}
		m.meter.m.Add(name, class, price, public, delta)
	}
}
