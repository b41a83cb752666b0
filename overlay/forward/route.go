package forward

import (
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
)

// routeTable is an immutable routing snapshot. The hot paths load it with
// one atomic pointer read and do plain map lookups: no lock, no allocation.
// A new table is built and swapped in by SetRoutes / SetLocal.
type routeTable struct {
	local netip.Addr                // own overlay IP; packets to it are ignored
	byIP  map[netip.Addr]*peerState // overlay IP -> owning peer
	peers map[peer.ID]*peerState    // every routed peer
}

func emptyRouteTable() *routeTable {
	return &routeTable{
		byIP:  map[netip.Addr]*peerState{},
		peers: map[peer.ID]*peerState{},
	}
}

// lookup returns the peer owning dst, or nil.
func (rt *routeTable) lookup(dst netip.Addr) *peerState { return rt.byIP[dst] }

// owns reports whether src is one of ps's overlay addresses.
func (rt *routeTable) owns(ps *peerState, src netip.Addr) bool {
	return ps != nil && rt.byIP[src] == ps
}

// SetRoutes atomically replaces the routing snapshot with routes (overlay
// IPv4 address -> peer). Several addresses may map to the same peer.
// A peer present in both the old and the new snapshot keeps its queue,
// writer, stream and counters; new peers get a writer that dials them;
// peers absent from routes are stopped (their stream is closed and queued
// packets are discarded). Non-IPv4 addresses are ignored. Safe for
// concurrent use with the data path.
func (e *Engine) SetRoutes(routes map[netip.Addr]peer.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return
	}
	old := e.routes.Load()
	nt := &routeTable{
		local: old.local,
		byIP:  make(map[netip.Addr]*peerState, len(routes)),
		peers: make(map[peer.ID]*peerState),
	}
	var started []*peerState
	for ip, id := range routes {
		ip = ip.Unmap()
		if !ip.Is4() || id == "" {
			continue
		}
		ps := nt.peers[id]
		if ps == nil {
			if ps = old.peers[id]; ps == nil {
				ps = e.newPeer(id)
				started = append(started, ps)
			}
			nt.peers[id] = ps
		}
		nt.byIP[ip] = ps
	}
	e.routes.Store(nt)
	for _, ps := range started {
		e.wg.Add(1)
		go ps.run()
	}
	for id, ps := range old.peers {
		if nt.peers[id] == nil {
			ps.stop()
		}
	}
}

// SetLocal sets the node's own overlay IP. Packets read from the device
// for this address are ignored.
func (e *Engine) SetLocal(ip netip.Addr) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.routes.Load()
	nt := *old // maps are immutable and shared
	nt.local = ip.Unmap()
	e.routes.Store(&nt)
}
