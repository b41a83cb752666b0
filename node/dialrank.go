package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Dial delays (see rank).
const (
	quicDelay    = 250 * time.Millisecond
	publicDelay  = 30 * time.Millisecond
	relayedDelay = 500 * time.Millisecond
)

// rankFor is cbnode's dial ranker. Circuit addresses through relays this
// node is not connected to are left out when there is one through a relay
// it is connected to: go-libp2p serialises relayed dials to one peer, so a
// dial through a dead relay (5 s to time out) held up the one through a
// live relay — a relayed pair took 5 s longer to move when its relay died.
// Relays are bootstrap nodes (kept connected) and members (connected
// through the mesh). The rest is rank.
func rankFor(connected func(peer.ID) bool) func([]ma.Multiaddr) []network.AddrDelay {
	return func(addrs []ma.Multiaddr) []network.AddrDelay {
		return rank(liveRelaysOnly(addrs, connected))
	}
}

// rank orders dials. The packet stream is the product and rides whichever
// connection exists, so the ranking follows what carries packets best: TCP
// (Noise, yamux) moved 1.6–2.2× more overlay throughput than QUIC in
// bench/dataplane.md, so TCP addresses are dialled first and QUIC only if
// TCP has not connected within 250 ms; private addresses (allowed by the
// gater only where the cost rules say the two nodes share a network)
// before public ones; relays last.
func rank(addrs []ma.Multiaddr) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		var d time.Duration
		switch {
		case isCircuit(a):
			d = relayedDelay
		case isQUIC(a):
			d = quicDelay
		}
		if d < relayedDelay && manet.IsPublicAddr(a) {
			d += publicDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	return out
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// liveRelaysOnly drops the circuit addresses through relays connected says
// are not connected, if at least one circuit address goes through a relay
// that is.
func liveRelaysOnly(addrs []ma.Multiaddr, connected func(peer.ID) bool) []ma.Multiaddr {
	if connected == nil {
		return addrs
	}
	live, dead := 0, 0
	for _, a := range addrs {
		if r, ok := relayOf(a); ok {
			if connected(r) {
				live++
			} else {
				dead++
			}
		}
	}
	if live == 0 || dead == 0 {
		return addrs
	}
	out := make([]ma.Multiaddr, 0, len(addrs)-dead)
	for _, a := range addrs {
		if r, ok := relayOf(a); ok && !connected(r) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// relayOf returns the relay's peer ID of a circuit address
// (/…/p2p/<relay>/p2p-circuit[/p2p/<dest>]).
func relayOf(a ma.Multiaddr) (peer.ID, bool) {
	relay, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
	if relay == nil || len(relay) == len(a) {
		return "", false
	}
	v, err := relay.ValueForProtocol(ma.P_P2P)
	if err != nil {
		return "", false
	}
	id, err := peer.Decode(v)
	return id, err == nil
}
