package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// meter is a minimal metrics.Reporter: cumulative stream bytes in and out,
// in total and by protocol. libp2p's metrics.BandwidthCounter keeps a rate
// meter per peer and per protocol, swept every second by one global
// goroutine; with N hosts in full mesh that is N² meters, which would load
// the simulation itself. Like BandwidthCounter, it counts what the swarm's
// streams carry (protocol negotiation included), not Noise/TLS, yamux or
// QUIC framing, TCP/UDP headers or keep-alives below the stream layer.
type meter struct {
	in, out atomic.Int64
	byProto sync.Map // protocol.ID → *[2]atomic.Int64 (in, out)
}

var _ metrics.Reporter = (*meter)(nil)

func (m *meter) proto(p protocol.ID) *[2]atomic.Int64 {
	if c, ok := m.byProto.Load(p); ok {
		return c.(*[2]atomic.Int64)
	}
	c, _ := m.byProto.LoadOrStore(p, new([2]atomic.Int64))
	return c.(*[2]atomic.Int64)
}

func (m *meter) LogSentMessage(n int64) { m.out.Add(n) }
func (m *meter) LogRecvMessage(n int64) { m.in.Add(n) }

func (m *meter) LogSentMessageStream(n int64, p protocol.ID, _ peer.ID) { m.proto(p)[1].Add(n) }
func (m *meter) LogRecvMessageStream(n int64, p protocol.ID, _ peer.ID) { m.proto(p)[0].Add(n) }

func (m *meter) GetBandwidthForPeer(peer.ID) metrics.Stats { return metrics.Stats{} }

func (m *meter) GetBandwidthForProtocol(p protocol.ID) metrics.Stats {
	c := m.proto(p)
	return metrics.Stats{TotalIn: c[0].Load(), TotalOut: c[1].Load()}
}

func (m *meter) GetBandwidthTotals() metrics.Stats {
	return metrics.Stats{TotalIn: m.in.Load(), TotalOut: m.out.Load()}
}

func (m *meter) GetBandwidthByPeer() map[peer.ID]metrics.Stats { return nil }

func (m *meter) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats {
	out := map[protocol.ID]metrics.Stats{}
	m.byProto.Range(func(k, v any) bool {
		c := v.(*[2]atomic.Int64)
		out[k.(protocol.ID)] = metrics.Stats{TotalIn: c[0].Load(), TotalOut: c[1].Load()}
		return true
	})
	return out
}

func (m *meter) Reset()               {}
func (m *meter) TrimIdle(_ time.Time) {}

// snapshot is a meter's counters at one moment.
type snapshot struct {
	in, out int64
	proto   map[protocol.ID]metrics.Stats
}

func (m *meter) snapshot() snapshot {
	t := m.GetBandwidthTotals()
	return snapshot{in: t.TotalIn, out: t.TotalOut, proto: m.GetBandwidthByProtocol()}
}
