package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

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
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(mesh.Build(scaled)))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	return rm, nil
}
