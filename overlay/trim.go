package overlay

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
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
//
// A relayed connection to a member is a tunnel's and nothing else's: the
// relays are members' and unlimited, so the DHT and gossip would use any
// relayed connection one of their dials made (a DHT lookup dials the peers
// it hears of at every address the peerstore holds, circuits included),
// and tag or protect it, and it would stay up — relay bandwidth and
// keep-alives for a path no packet takes, and a "lazy" pair that is never
// without a connection. Every relayedCheck, a node closes its connections
// to a member that are all relayed, none newer than relayedGrace, when no
// packet stream is open on them and no packet tunnel holds them, whatever
// else uses them: gossip and the DHT reach that member, or its neighbours,
// over direct connections.
const (
	trimInterval = 30 * time.Second
	trimAbove    = 2 * lazyGossipConns
	trimGrace    = time.Minute

	relayedCheck = 5 * time.Second
	relayedGrace = 10 * time.Second
)

// directOnly makes the dials under ctx skip circuit addresses, those given
// and those the peerstore holds: the lazy dials meant for gossip (a
// newcomer's, the rendezvous') need direct connections, and a relayed one
// would be closed again as spare (closeSpareRelayed).
func directOnly(ctx context.Context) context.Context {
	return network.WithForceDirectDial(ctx, "cbnode-gossip")
}

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
	tick := time.NewTicker(relayedCheck)
	defer tick.Stop()
	var lastTrim time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if m.FullMesh() {
				continue
			}
			m.closeSpareRelayed(now)
			if now.Sub(lastTrim) >= trimInterval {
				lastTrim = now
				m.trimConns(now)
			}
		}
	}
}

// closeSpareRelayed closes the relayed member connections no tunnel uses
// (see above).
func (m *Membership) closeSpareRelayed(now time.Time) {
	h := m.cfg.Node.Host
	n := 0
	for _, p := range h.Network().Peers() {
		if p == m.self || !m.IsMember(p) {
			continue
		}
		if !spareRelayed(h.Network().ConnsToPeer(p), now) || packetStreamOpen(h, p) || h.ConnManager().IsProtected(p, packetTag) {
			continue
		}
		m.IdleClosed(p) // no sign of p's failure
		_ = h.Network().ClosePeer(p)
		n++
	}
	if n > 0 {
		m.log.Debug("lazy tunnels: closed relayed member connections no tunnel uses", "closed", n)
	}
}

// spareRelayed reports whether conns are all relayed and none is newer than
// relayedGrace (a tunnel's stream follows its dial at once; the grace
// leaves room for a slow machine).
func spareRelayed(conns []network.Conn, now time.Time) bool {
	if !onlyRelayed(conns) {
		return false
	}
	for _, c := range conns {
		if now.Sub(c.Stat().Opened) < relayedGrace {
			return false
		}
	}
	return true
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
