package overlay

import (
	"context"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// rendezvousLimit bounds the provider records one rendezvous lookup asks
// for.
const rendezvousLimit = 16

// rendezvousDialTimeout bounds one dial to a peer found at the rendezvous.
const rendezvousDialTimeout = 15 * time.Second

// lazyGossipConns is how many members a node with lazy tunnels connects to
// from the rendezvous (gossipsub's mesh degree D is 6; the others' dials,
// table pulls and packets add more).
const lazyGossipConns = 8

// memberConns counts the members this node has a connection to.
func (m *Membership) memberConns() int {
	n := 0
	for _, p := range m.cfg.Node.Host.Network().Peers() {
		if p != m.self && m.IsMember(p) {
			n++
		}
	}
	return n
}

// withoutCircuits drops relayed (circuit) addresses.
func withoutCircuits(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := addrs[:0:0]
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			out = append(out, a)
		}
	}
	return out
}

// discoverLoop advertises this node under the CLADNet's rendezvous key in the
// DHT and connects to the others found there: often until the first fellow
// member shows up, then calmly. Advertising and finding run side by side, so
// a slow provide does not delay finding.
func (m *Membership) discoverLoop(ctx context.Context) {
	defer m.wg.Done()
	d := drouting.NewRoutingDiscovery(m.cfg.Node.DHT)
	ns := RendezvousKey(m.cfg.Spec.ID)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		retry := 500 * time.Millisecond
		for {
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			ttl, err := d.Advertise(actx, ns)
			cancel()
			next := ttl / 2
			if err != nil {
				m.log.Debug("rendezvous advertise failed", "err", err)
				next = retry
				retry = min(2*retry, 30*time.Second)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(next):
			case <-m.readvertise:
				retry = 500 * time.Millisecond
			}
		}
	}()
	wait := 300 * time.Millisecond
	for {
		fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		peers, err := d.FindPeers(fctx, ns, discovery.Limit(rendezvousLimit))
		if err == nil {
			lazy := !m.FullMesh()
			have := 0
			if lazy {
				have = m.memberConns()
			}
			for p := range peers {
				if p.ID == m.self || m.cfg.Node.Host.Network().Connectedness(p.ID) == network.Connected {
					continue
				}
				if lazy {
					// Lazy tunnels: enough members for the gossip mesh,
					// over direct connections (see directOnly).
					if have >= lazyGossipConns {
						continue
					}
					p.Addrs = withoutCircuits(p.Addrs)
					have++
				}
				if len(p.Addrs) == 0 {
					continue
				}
				// Each dial has its own time: the lookup's context ends
				// with this round, and a loaded machine dials slowly.
				m.wg.Add(1)
				go func(p peer.AddrInfo) {
					defer m.wg.Done()
					cctx, ccancel := context.WithTimeout(ctx, rendezvousDialTimeout)
					defer ccancel()
					if lazy {
						cctx = directOnly(cctx)
					}
					if err := m.cfg.Node.Host.Connect(cctx, p); err != nil && ctx.Err() == nil {
						m.log.Debug("connect to rendezvous peer failed", "peer", p.ID, "err", err)
					}
				}(p)
			}
		}
		cancel()
		// Until connected to enough fellow members (as many as a lazy
		// node keeps for its gossip mesh, or all of them) the lookup is
		// repeated, backing off from 300 ms to 30 s. Then gossip, table
		// pulls and anti-entropy do the rest, and the rendezvous is only a
		// safety net: looked up again when the member connections fall
		// short, else every 30 min — a lookup returns up to
		// rendezvousLimit provider records from servers that hold one per
		// member, so its cost grows with N.
		if !m.waitRendezvous(ctx, wait) {
			return
		}
		if m.enoughMembers() {
			wait = 300 * time.Millisecond
			if !m.calmRendezvous(ctx) {
				return
			}
		} else {
			wait = min(2*wait, 30*time.Second)
		}
	}
}

// enoughMembers reports whether this node is connected to as many fellow
// members as it needs from the rendezvous (and has found one at all).
func (m *Membership) enoughMembers() bool {
	n := m.tab.size()
	return n > 1 && m.memberConns() >= min(lazyGossipConns, n-1)
}

// waitRendezvous sleeps d; false when ctx is done.
func (m *Membership) waitRendezvous(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// calmRendezvous waits while this node has enough member connections,
// at most rendezvousSafety; false when ctx is done.
func (m *Membership) calmRendezvous(ctx context.Context) bool {
	until := time.Now().Add(rendezvousSafety)
	for time.Now().Before(until) {
		if !m.waitRendezvous(ctx, time.Minute) {
			return false
		}
		if !m.enoughMembers() {
			return true
		}
	}
	return true
}

// rendezvousSafety is how often a node with enough member connections
// still looks the rendezvous up.
const rendezvousSafety = 30 * time.Minute

// eventLoop reacts to peers joining the topic and to our own address
// changes. While this node is new (its first two heartbeats, at least 10 s)
// it re-announces itself once, when the first peer joins the topic, and
// pulls the members table from the first few peers it meets; an established member does
// neither — the newcomer pulls from it — so a join costs O(N) messages, not
// O(N²).
func (m *Membership) eventLoop(ctx context.Context, evts *pubsub.TopicEventHandler, addrSub event.Subscription) {
	defer m.wg.Done()
	defer evts.Cancel()
	defer addrSub.Close()
	newUntil := time.Now().Add(max(2*m.cfg.Heartbeat, 10*time.Second))
	const maxPulls = 8
	pulls := 0
	republished := false
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			ev, err := evts.NextPeerEvent(ctx)
			if err != nil {
				return
			}
			if ev.Type != pubsub.PeerJoin {
				continue
			}
			if m.cfg.OnPeerJoin != nil {
				m.cfg.OnPeerJoin(ev.Peer)
			}
			if !time.Now().Before(newUntil) {
				continue
			}
			// Once, when the first topic peer shows up (the first
			// announcement may have gone out before any mesh): not on
			// every join, which made a join wave O(N²); anti-entropy
			// (liveness.go) repairs what else is missed.
			if !republished {
				republished = true
				m.Republish()
			}
			if pulls < maxPulls {
				if err := m.pullTable(ctx, ev.Peer); err != nil {
					m.log.Debug("members table pull", "err", err)
				} else {
					pulls++
					if pulls == 1 {
						// Now the peers of the table know this node (the
						// pull handed over our announcement) and this node
						// knows them: with gossip admission (Admission)
						// only now does the announcement reach them all.
						m.Republish()
					}
				}
			}
		}
	}()
	// After an underlay change the first announcement may reach nobody
	// (this node's connections were just closed); it is repeated 0.5 s,
	// 1.5 s and 3 s later, as they come back (otherwise the next full
	// announcement would come with the 6th heartbeat: minutes).
	var again []time.Duration
	followup := time.NewTimer(time.Hour)
	followup.Stop()
	defer followup.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-addrSub.Out():
			if !ok {
				return
			}
			m.Republish()
		case <-m.underlayChanged:
			m.Republish()
			again = []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond}
			followup.Reset(again[0])
		case <-followup.C:
			m.Republish()
			if again = again[1:]; len(again) > 0 {
				followup.Reset(again[0])
			}
		}
	}
}
