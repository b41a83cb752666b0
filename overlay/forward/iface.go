// Package forward is the forwarding core of the cbnode data plane.
//
// It moves IPv4 packets between the local packet device (the TUN interface
// cbnet0) and per-peer libp2p streams. The package is written against the
// small interfaces in this file so it can be unit tested without root, TUN
// devices or a libp2p host; the node layer adapts the real things.
//
// Layout (one concept per file, modelled on wireguard-go's device package):
//
//	iface.go   Device, Stream, Dialer, PathInfo, ProtocolID
//	frame.go   wire format of the 4-byte frame header and IPv4 sanity checks
//	pool.go    pooled packet buffers
//	route.go   immutable routing snapshot swapped atomically
//	engine.go  Engine: TUN reader (send path) and stream receive loops
//	peer.go    per-peer queue and writer goroutine (batching, keepalive, reconnect, rehome)
//	ping.go    Probe/ProbeReply round-trip measurement
//	stats.go   atomic counters and JSON-friendly snapshots
//	options.go tunables and defaults
package forward

import (
	"context"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ProtocolID is the libp2p protocol carrying framed packets between peers.
const ProtocolID = "/cbnode/packet/1.0.0"

// Device is the local packet device (the TUN cbnet0). Read returns one IPv4 packet.
//
// Read is only ever called from the single goroutine running Engine.Run.
// Write is called from the receive loop of every inbound stream and must
// therefore be safe for concurrent use; it must not retain pkt after it
// returns (the engine reuses the buffer).
type Device interface {
	Read(buf []byte) (int, error)
	Write(pkt []byte) (int, error)
	MTU() int
}

// Stream is one libp2p stream (or an in-memory pipe in tests).
//
// Close may be called concurrently with a blocked Read or Write and must
// unblock it; this is how the engine tears down streams on shutdown. If the
// stream also implements SetWriteDeadline(time.Time) error (libp2p streams
// and net.Conn do), the engine uses it to detect writes stuck on a dead
// connection.
type Stream interface {
	io.Reader
	io.Writer
	io.Closer
}

// PathInfo describes the connection a stream rides on.
type PathInfo struct {
	Relayed   bool   `json:"relayed"`
	Remote    string `json:"remote"`    // multiaddr of the remote end
	Transport string `json:"transport"` // tcp|quic|webtransport|...
}

// Dialer opens an outbound packet stream to a peer (the node layer implements it with
// host.NewStream on protocol /cbnode/packet/1.0.0, allowing limited conns).
type Dialer interface {
	OpenStream(ctx context.Context, p peer.ID) (Stream, PathInfo, error)
}
