package node

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/x/rate"
)

// Per-IP connection limits. The resource manager counts a relayed
// connection against the relay's IP (the circuit address starts with it),
// so go-libp2p's defaults — 8 concurrent connections and 0.2 new ones a
// second per IPv4 address — refused a member's relayed peers beyond the
// eighth and its redials after a fault ("rate limit exceeded" dozens of
// times a run); a cloud NAT gateway puts many members behind one IP too.
var perIPConns = []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: 1024}}

func connRateLimiter() *rate.Limiter {
	return &rate.Limiter{
		// Loopback is unlimited, as in go-libp2p's default (in-process
		// swarms in tests and benchmarks).
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
			{Prefix: netip.MustParsePrefix("::1/128")},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 20, Burst: 512}}},
			IPv6SubnetLimits: []rate.SubnetLimit{{PrefixLength: 56, Limit: rate.Limit{RPS: 20, Burst: 512}}},
			GracePeriod:      time.Minute,
		},
	}
}

// resourceManager keeps go-libp2p's resource manager on, with go-libp2p's
// memory- and FD-scaled defaults, but with room for a full mesh: every
// member holds a connection to every other (a few streams each: gossip both
// ways, packets both ways, DHT), where the defaults allow a few hundred
// connections in all and half of them inbound.
func resourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.AutoScale()
	mesh := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: 4096, ConnsInbound: 4096, ConnsOutbound: 4096,
			Streams: 32768, StreamsInbound: 16384, StreamsOutbound: 16384,
		},
		Transient: rcmgr.ResourceLimits{
			Conns: 512, ConnsInbound: 256, ConnsOutbound: 512,
			Streams: 2048, StreamsInbound: 1024, StreamsOutbound: 1024,
		},
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(mesh.Build(scaled)),
		rcmgr.WithLimitPerSubnet(perIPConns, nil),
		rcmgr.WithConnRateLimiters(connRateLimiter()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}
