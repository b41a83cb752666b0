package node

import (
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Dial delays (see rankAddrs).
const (
	quicDelay    = 250 * time.Millisecond
	publicDelay  = 30 * time.Millisecond
	relayedDelay = 500 * time.Millisecond
)

// rankAddrs is cbnode's dial ranker. The packet stream is the product and
// rides whichever connection exists, so the ranking follows what carries
// packets best: TCP (Noise, yamux) moved 1.6–2.2× more overlay throughput
// than QUIC in bench/dataplane.md, so TCP addresses are dialled first and
// QUIC only if TCP has not connected within 250 ms; private addresses
// (allowed by the gater only where the cost rules say the two nodes share a
// network) before public ones; relays last.
func rankAddrs(addrs []ma.Multiaddr) []network.AddrDelay {
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
