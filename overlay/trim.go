package overlay

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// With lazy tunnels a node's connections to fellow members must not grow
// with N — each costs keep-alives, and a full mesh built while the CLADNet
// was small stays up after it outgrew it. Every trimInterval, a node with
// more than trimAbove member connections closes the surplus among those
// nothing holds (connHeld): no packet stream, not protected by the gossip
// mesh, the DHT, a relay or a packet tunnel, not in the DHT's table, and
// older than trimGrace.
const (
	trimInterval = 30 * time.Second
	trimAbove    = 2 * lazyGossipConns
	trimGrace    = time.Minute
)

// connHeld reports whether something on this node uses its connections to
// p: a packet stream (either way), a connection-manager protection (the
// gossip mesh, the DHT's nearest buckets, a full mesh's member, an active
// packet tunnel, a relay) or a DHT routing-table entry.
func connHeld(h host.Host, p peer.ID) bool {
	if packetStreamOpen(h, p) {
		return true
	}
	cm := h.ConnManager()
	if cm.IsProtected(p, "") {
		return true
	}
	if ti := cm.GetTagInfo(p); ti != nil {
		if _, ok := ti.Tags["kbucket"]; ok {
			return true
		}
	}
	return false
}

// packetStreamOpen reports whether a packet stream (either way) is open
// on a connection to p.
func packetStreamOpen(h host.Host, p peer.ID) bool {
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if pr := s.Protocol(); pr == forward.ProtocolID || pr == forward.LegacyProtocolID {
				return true
			}
		}
	}
	return false
}

func (m *Membership) trimLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(trimInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !m.FullMesh() {
			m.trimConns(time.Now())
		}
	}
}

// trimConns closes surplus member connections nothing holds (see above)
// and returns how many peers it disconnected.
func (m *Membership) trimConns(now time.Time) int {
	h := m.cfg.Node.Host
	var members, spare []peer.ID
	for _, p := range h.Network().Peers() {
		if p == m.self || !m.IsMember(p) {
			continue
		}
		members = append(members, p)
		old := true
		for _, c := range h.Network().ConnsToPeer(p) {
			if now.Sub(c.Stat().Opened) < trimGrace {
				old = false
			}
		}
		if old && !connHeld(h, p) {
			spare = append(spare, p)
		}
	}
	surplus := len(members) - trimAbove
	if surplus <= 0 || len(spare) == 0 {
		return 0
	}
	rand.Shuffle(len(spare), func(i, j int) { spare[i], spare[j] = spare[j], spare[i] })
	n := 0
	for _, p := range spare[:min(surplus, len(spare))] {
		m.IdleClosed(p) // no sign of p's failure
		_ = h.Network().ClosePeer(p)
		n++
	}
	if n > 0 {
		m.log.Debug("lazy tunnels: closed surplus member connections", "closed", n, "members connected", len(members))
	}
	return n
}
