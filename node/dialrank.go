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
func rankAddrs(addrs []ma.Multiaddr) []network.AddrDelay { return rankFor(nil)(addrs) }

// rankFor is rankAddrs, except for the addresses of bootstrap nodes (boot,
// multiaddrs without /p2p): those are dialled QUIC first. A member behind a
// NAT learns its public address from what the peers it is connected to
// observe; connected to everyone over TCP it never learns its UDP mapping,
// and DCUtR can then punch TCP only — which many NATs refuse (the issue's
// "no public QUIC address ever learned"). The bootstrap connection carries
// little besides the DHT and relayed circuits, so QUIC costs nothing there.
func rankFor(boot map[string]bool) func([]ma.Multiaddr) []network.AddrDelay {
	return func(addrs []ma.Multiaddr) []network.AddrDelay {
		quicFirst := false
		for _, a := range addrs {
			if boot[a.String()] {
				quicFirst = true
				break
			}
		}
		return rank(addrs, quicFirst)
	}
}

func rank(addrs []ma.Multiaddr, quicFirst bool) []network.AddrDelay {
	out := make([]network.AddrDelay, 0, len(addrs))
	for _, a := range addrs {
		var d time.Duration
		switch {
		case isCircuit(a):
			d = relayedDelay
		case isQUIC(a) != quicFirst:
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
