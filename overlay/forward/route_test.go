package forward

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward/internal/ipv4test"
)

// BenchmarkRoute measures the per-packet routing decision (snapshot load,
// map lookup, enqueue) with 256 peers in the table.
func BenchmarkRoute(b *testing.B) {
	const size = 1400 // as benchSize in bench_test.go
	e := New(discardDev{}, nil, Options{})
	rt := &routeTable{byIP: map[ip4]*peerState{}, peers: map[peer.ID]*peerState{}}
	var target *peerState
	for i := range 256 {
		id := peer.ID(rune('a' + i))
		ps := e.newPeer(id)
		k, _ := ip4From(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}))
		rt.byIP[k] = ps
		rt.peers[id] = ps
		target = ps
	}
	e.routes.Store(rt)
	pkt := ipv4test.Packet(netip.MustParseAddr("10.0.0.1"), netip.AddrFrom4([4]byte{10, 0, 1, 255}), size, 0)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p := e.pool.get()
		e.forward(p, copy(p.buf[HeaderLen:], pkt))
		e.pool.put(<-target.queue)
	}
}
