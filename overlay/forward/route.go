package forward

import (
	"encoding/binary"
	"net/netip"

	"github.com/libp2p/go-libp2p/core/peer"
)

// routeTable is an immutable routing snapshot. The hot paths load it with
// one atomic pointer read and do plain map lookups: no lock, no allocation.
// A new table is built and swapped in by SetRoutes / SetLocal.
type routeTable struct {
	local    netip.Addr             // own overlay IP (for stats)
	localKey ip4                    // local as a key; valid if hasLocal
	hasLocal bool                   // SetLocal was given an IPv4 address
	byIP     map[ip4]*peerState     // overlay IPv4 -> owning peer
	peers    map[peer.ID]*peerState // every routed peer
}

// ip4 is an IPv4 address as a big-endian uint32: the routing key. Hashing
// a uint32 is several times cheaper than hashing a netip.Addr (which holds
// 128 bits plus a zone handle).
type ip4 uint32

// ip4From converts an IPv4 (or IPv4-mapped IPv6) address to a key.
func ip4From(a netip.Addr) (ip4, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return ip4(binary.BigEndian.Uint32(b[:])), true
}

// srcKey and dstKey read the addresses of an IPv4 header (len >= 20).
func srcKey(pkt []byte) ip4 { return ip4(binary.BigEndian.Uint32(pkt[12:16])) }
func dstKey(pkt []byte) ip4 { return ip4(binary.BigEndian.Uint32(pkt[16:20])) }

// prefix4 is an IPv4 prefix as a masked key.
type prefix4 struct{ net, mask ip4 }

func (p prefix4) contains(a ip4) bool { return a&p.mask == p.net }

// prefixes4 converts the IPv4 prefixes of ps (others are ignored).
func prefixes4(ps []netip.Prefix) []prefix4 {
	var out []prefix4
	for _, p := range ps {
		p = p.Masked()
		if !p.Addr().Is4() {
			continue
		}
		key, _ := ip4From(p.Addr())
		mask := ip4(0)
		if p.Bits() > 0 {
			mask = ^ip4(0) << (32 - p.Bits())
		}
		out = append(out, prefix4{net: key & mask, mask: mask})
	}
	return out
}

func emptyRouteTable() *routeTable {
	return &routeTable{
		byIP:  map[ip4]*peerState{},
		peers: map[peer.ID]*peerState{},
	}
}

// lookup returns the peer owning dst, or nil.
func (rt *routeTable) lookup(dst ip4) *peerState { return rt.byIP[dst] }

// isLocal reports whether dst is the node's own overlay address.
func (rt *routeTable) isLocal(dst ip4) bool { return rt.hasLocal && dst == rt.localKey }

// owns reports whether src is one of ps's overlay addresses.
func (rt *routeTable) owns(ps *peerState, src ip4) bool {
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
		local:    old.local,
		localKey: old.localKey,
		hasLocal: old.hasLocal,
		byIP:     make(map[ip4]*peerState, len(routes)),
		peers:    make(map[peer.ID]*peerState),
	}
	var started []*peerState
	for ip, id := range routes {
		key, ok := ip4From(ip)
		if !ok || id == "" {
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
		nt.byIP[key] = ps
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
	nt.localKey, nt.hasLocal = ip4From(ip)
	e.routes.Store(&nt)
}
