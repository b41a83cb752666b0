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
	// privateOnly marks peers being dialled on their private path: the
	// gater then refuses their public addresses for that dial.
	privateOnly sync.Map // peer.ID → struct{}
	retry       sync.Map // peer.ID → retryAt
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
	if !member {
		return true // not a member: bootstrap, relay
	}
	if !isPrivateAddr(a) {
		_, only := pp.privateOnly.Load(p)
		return !only
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
			if o, ok := (*old)[id]; ok && (o.allowPrivate() != v.allowPrivate() || o.wantsPrivate() != v.wantsPrivate()) {
				changed = append(changed, id)
				m.paths.retry.Delete(id) // a new decision is tried at once
			}
		}
	}
	m.paths.table.Store(&next)
	return changed
}

// wantsPrivate: the rules chose p's private path (a plain LAN has no
// preference: libp2p's own ranking already tries private addresses first).
func (v peerPath) wantsPrivate() bool { return v.d.Private }

// streamPrivate reports whether the packet stream to p runs over a private
// address, and whether there is a stream at all.
func (m *Member) streamPrivate(p peer.ID) (private, up bool) {
	if m.engine == nil {
		for _, c := range m.node.Host.Network().ConnsToPeer(p) {
			return isPrivateAddr(c.RemoteMultiaddr()), true
		}
		return false, false
	}
	st, ok := m.engine.Stats(p)
	if !ok || !st.StreamUp {
		return false, false
	}
	a, err := ma.NewMultiaddr(st.Path.Remote)
	return err == nil && isPrivateAddr(a), true
}

// enforcePaths moves every member whose packet stream is not on the chosen
// path: to its private address where the rules chose it, off it where they
// no longer allow it. Attempts per peer back off (a private path that does
// not answer is retried every few minutes at most).
func (m *Member) enforcePaths(ctx context.Context) {
	t := m.paths.table.Load()
	if t == nil {
		return
	}
	now := time.Now()
	for p, v := range *t {
		private, up := m.streamPrivate(p)
		if !up {
			continue
		}
		move := (v.wantsPrivate() && !private) || (!v.allowPrivate() && private)
		if !move {
			m.paths.retry.Delete(p)
			continue
		}
		if next, ok := m.paths.retry.Load(p); ok && now.Before(next.(retryAt).at) {
			continue
		}
		var b time.Duration = 5 * time.Second
		if prev, ok := m.paths.retry.Load(p); ok {
			b = min(2*prev.(retryAt).backoff, 5*time.Minute)
		}
		m.paths.retry.Store(p, retryAt{at: now.Add(b), backoff: b})
		go m.movePath(ctx, p, v)
	}
}

type retryAt struct {
	at      time.Time
	backoff time.Duration
}

// movePath moves p's connection to the chosen path. libp2p reuses an
// existing connection rather than dial a second one, so the connections on
// the old path are closed first and the peer redialled with the gater
// admitting only the chosen path; the packet stream reopens on the new
// connection within a round trip or two, and the overlay's own TCP flows
// ride out the gap. If the chosen path does not answer, the peer is
// redialled on any allowed path and the move retried later.
func (m *Member) movePath(ctx context.Context, p peer.ID, v peerPath) {
	h := m.node.Host
	m.log.Info("moving to the chosen path", "peer", v.host, "private", v.wantsPrivate(), "reason", v.d.Reason)
	if v.wantsPrivate() {
		m.paths.privateOnly.Store(p, struct{}{})
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		if v.wantsPrivate() != isPrivateAddr(c.RemoteMultiaddr()) || !m.paths.connAllowed(p, c) {
			_ = c.Close()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := h.Network().DialPeer(dctx, p)
	cancel()
	m.paths.privateOnly.Delete(p)
	if err != nil {
		m.log.Warn("the chosen path does not answer; using any allowed path", "peer", v.host, "err", err)
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = h.Network().DialPeer(dctx, p)
		cancel()
		if err != nil {
			m.log.Warn("redial", "peer", v.host, "err", err)
		}
		return
	}
	m.log.Info("on the chosen path", "peer", v.host, "remote", c.RemoteMultiaddr())
	if m.engine != nil {
		m.engine.Rehome(p)
	}
}

// connScore ranks connections to p for the packet stream: paths the policy
// allows first, then the preferred kind (private when chosen), direct before
// relayed, TCP before QUIC, then the newest.
func (m *Member) connScore(p peer.ID, c network.Conn) int {
	score := 0
	if m.paths.connAllowed(p, c) {
		score += 8
	}
	v, _ := m.paths.get(p)
	if v.allowPrivate() == isPrivateAddr(c.RemoteMultiaddr()) {
		score += 4
	}
	path := overlay.PathOf(c)
	if !path.Relayed {
		score += 2
	}
	if path.Transport == "tcp" { // carries packets best (bench/dataplane.md)
		score++
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
