package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/paths"
)

// enforceEvery is how often the path policy re-checks every member's path.
const enforceEvery = 2 * time.Second

// startLoops starts the member's goroutines: relay reservations, hole-punch
// retries, the address allocator, the data plane, the meter, the names and
// the event loop. A failure of the allocator or the data plane ends the member.
func (m *Member) startLoops() {
	m.serveRemote()
	m.goFunc(m.reserver().Run)
	m.goFunc(m.logJoined)
	punch := &overlay.PunchRetry{Host: m.node.Host, Members: m.memberIDs, Log: m.log, Hopeless: func() bool {
		h := m.node.Health()
		return h.NATUDP == "endpoint-dependent" && h.NATTCP == "endpoint-dependent"
	}}
	m.goFunc(punch.Run)
	m.goFunc(func(ctx context.Context) {
		if err := m.alloc.Run(ctx); err != nil && ctx.Err() == nil {
			m.fail(err)
		}
	})
	if m.engine != nil {
		m.goFunc(func(ctx context.Context) {
			if err := m.engine.Run(ctx); err != nil && ctx.Err() == nil {
				m.fail(fmt.Errorf("data plane: %w", err))
			}
		})
		m.goFunc(func(ctx context.Context) { m.meterLoop(ctx, time.Second) })
	}
	if m.names != nil {
		m.names.Update(m.mem.Members())
		m.goFunc(m.names.Run)
	}
	changes, stopWatch := m.mem.Watch()
	m.goFunc(func(ctx context.Context) {
		defer stopWatch()
		m.loop(ctx, changes, m.revCh)
	})
}

// loop applies IPAM, membership and rules changes until ctx ends.
func (m *Member) loop(ctx context.Context, members, revoked <-chan struct{}) {
	enforce := time.NewTicker(enforceEvery)
	defer enforce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ip := <-m.alloc.Changes():
			if err := m.setIP(ip); err != nil {
				m.fail(err)
				return
			}
		case <-members:
			if m.ipamShouldCheck() {
				m.alloc.CheckConflicts()
			}
			if len(m.recompute()) > 0 {
				m.paths.Enforce(ctx)
			}
			m.updateRoutes()
			m.names.Update(m.mem.Members())
		case <-m.twinCh:
			m.alloc.CheckConflicts() // the other node may have renewed our claim
		case <-m.control.Changes():
			m.applyControl(true)
		case <-m.rules.Changes():
			m.updateFilter()
			m.recompute()
			m.paths.Enforce(ctx)
		case <-enforce.C:
			m.paths.Enforce(ctx)
			m.mem.SetRelay(m.relayOffered())
		case <-revoked:
			if err := m.dissolved(); err != nil {
				m.log.Warn("leaving: the CLADNet was dissolved by its owner", "cladnet", m.spec.Name)
				m.fail(err)
				return
			}
			if m.revokedCert(m.cert()) {
				m.fail(errRevoked("CLADNet %s: this node's certificate (host %s, peer %s) was revoked by the CLADNet owner: ask the operator for a new join token (a new node identity)", m.spec.Name, m.cfg.Token.Cert.HostName, m.node.Host.ID()))
				return
			}
			m.mem.DropRevoked() // also cuts their connections
			m.updateRoutes()
		}
	}
}

// recompute hands the path policy the current rules and cloud facts; it
// returns the members whose decision changed.
func (m *Member) recompute() []peer.ID {
	var peers []paths.Peer
	for _, mem := range m.mem.Members() {
		if mem.Self {
			continue
		}
		peers = append(peers, paths.Peer{ID: mem.ID, Host: mem.Ann.HostName, OverlayIP: mem.Ann.OverlayIP, Cloud: mem.Ann.Cloud, Addrs: mem.Ann.Addrs})
	}
	return m.paths.Update(m.rules.Current(), m.mem.Cloud(), peers)
}

// setIP applies a new (or lost) overlay address everywhere.
func (m *Member) setIP(ip netip.Addr) error {
	m.mu.Lock()
	old := m.ip
	m.ip = ip
	m.mu.Unlock()
	if old == ip {
		return nil
	}
	if !ip.IsValid() {
		m.log.Warn("overlay address lost", "old", old)
	}
	if m.dev != nil && ip.IsValid() {
		if err := m.dev.SetAddr(netip.PrefixFrom(ip, m.prefix.Bits())); err != nil {
			return fmt.Errorf("address %s on %s: %w", ip, m.dev.Name(), err)
		}
	}
	if m.engine != nil {
		m.engine.SetLocal(ip)
	}
	m.mem.SetOverlayIP(ip, m.alloc.ClaimedAt())
	m.mem.SetState(m.announcedState())
	m.updateRoutes()
	m.names.SetAddr(ip)
	return nil
}

// updateRoutes hands the data plane a fresh overlay-IP → peer snapshot:
// only addresses members hold by verified claims; when two members announce
// one address (a conflict IPAM is resolving), the better claim keeps the
// route (ipam.Better, with backdated claims dated when first seen).
func (m *Member) updateRoutes() {
	if m.engine == nil {
		return
	}
	m.engine.SetLazy(!m.mem.FullMesh())
	m.engine.SetRoutes(m.mem.MemberIPs())
	m.updateFilter()
}

// ipamShouldCheck reports whether a members-table change concerns IPAM:
// while we have no address (a full range may just have freed one), or when
// another member announces our address. A conflict check is a quorum DHT
// read, too costly for every change in a large CLADNet; the allocator also
// re-checks on its own every ConflictInterval.
func (m *Member) ipamShouldCheck() bool {
	ip := m.IP()
	if !ip.IsValid() {
		return true
	}
	for _, mem := range m.mem.Members() {
		if !mem.Self && mem.Ann.OverlayIP == ip.String() {
			return true
		}
	}
	return false
}

// memberIDs lists the other members.
func (m *Member) memberIDs() []peer.ID {
	var out []peer.ID
	for _, mem := range m.mem.Members() {
		if !mem.Self {
			out = append(out, mem.ID)
		}
	}
	return out
}

// relayOffered says whether this member offers its relay to fellow
// members: not with --no-relay, always with --relay, else while it is
// publicly reachable.
func (m *Member) relayOffered() bool {
	return m.relay != nil && (m.cfg.Relay || m.node.PubliclyReachable())
}

// maxMemberRelays bounds the member relays a member reserves on (besides
// every bootstrap relay): two keep a relayed pair alive when one dies,
// three leave room for one restarting.
const maxMemberRelays = 3

// relayCandidates are the bootstrap nodes and up to maxMemberRelays members
// that relay, picked by rendezvous hashing so that members spread over the
// relays and each keeps its picks while the set is stable. A member that is
// publicly reachable itself needs no member relay.
func (m *Member) relayCandidates() []peer.AddrInfo {
	out := append([]peer.AddrInfo(nil), m.cfg.Bootstrap...)
	if m.node.PubliclyReachable() {
		return out
	}
	var relays []peer.AddrInfo
	for _, mem := range m.mem.Members() {
		if mem.Self || !mem.Ann.Relay {
			continue
		}
		info := peer.AddrInfo{ID: mem.ID}
		for _, s := range mem.Ann.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
					info.Addrs = append(info.Addrs, a)
				}
			}
		}
		relays = append(relays, info)
	}
	return append(out, pickRelays(m.node.Host.ID(), relays, maxMemberRelays)...)
}
