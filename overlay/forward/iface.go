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

// Filter is the inbound packet filter (overlay/filter implements it). The
// engine calls Outbound with every data packet it is about to send (for
// connection tracking) and Inbound with every data packet received that
// passed its own checks; a false return drops the packet ("filtered").
// Both are called concurrently and must not retain pkt.
type Filter interface {
	Outbound(pkt []byte)
	Inbound(from peer.ID, pkt []byte) bool
}

// PathResetter may be implemented by a Dialer. The engine calls ResetPath
// when it declares the path to p dead (nothing received for DeadAfter), so
// the node layer can drop the connection underneath — libp2p keeps a dead
// connection until the transport times out, and would open the next stream
// on it — and the next OpenStream dials afresh (e.g. to a peer's new
// underlay address after a suspend/resume).
type PathResetter interface {
	ResetPath(p peer.ID)
}
