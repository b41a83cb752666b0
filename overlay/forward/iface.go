package forward

import (
	"context"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ProtocolID is the libp2p protocol carrying framed packets between peers.
// Version 1.1.0 added FrameGSO (super-packets).
const ProtocolID = "/cbnode/packet/1.1.0"

// LegacyProtocolID is the packet protocol of nodes without FrameGSO. A
// node serves both and offers both when it dials, preferring ProtocolID;
// on a stream that speaks LegacyProtocolID (see Protocoler) the writer
// cuts super-packets into plain data frames before sending, so members
// of both versions interoperate during a rolling upgrade.
const LegacyProtocolID = "/cbnode/packet/1.0.0"

// Protocoler is implemented by streams that know their negotiated
// protocol (libp2p's network.Stream does). A stream that does not is
// taken to speak ProtocolID.
type Protocoler interface {
	Protocol() protocol.ID
}

// Device is the local packet device (the TUN cbnet0), batch-shaped like
// wireguard-go's tun.Device: one Read may return many packets, one Write
// hands many packets to the kernel.
//
// Read fills bufs[i][offset:offset+sizes[i]] with up to len(bufs) packets
// (at least one; it blocks until one is available) and returns how many.
// Every buffer has room for offset bytes in front of the packet and at
// least MTU+LengthSlack bytes after it (65535 for an Offloader device).
// Read is only ever called from the single goroutine running Engine.Run.
//
// Write writes the packets bufs[i][offset:] and returns how many the
// device took; when it returns an error, the packets from that count on
// were not written. It is called from the receive loop of every inbound
// stream and must therefore be safe for concurrent use; it must not
// retain the buffers after it returns (the engine reuses them).
//
// BatchSize is the largest number of packets a Read returns or the
// engine passes to one Write that the device handles efficiently (1 for a
// one-packet-per-call device).
type Device interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	BatchSize() int
	MTU() int
}

// Offloader is implemented by a Device with segmentation and checksum
// offloads (a Linux TUN opened with IFF_VNET_HDR). When Offload reports
// true, each packet read and written is preceded by a virtio-net header
// in bufs[i][offset-VirtioNetHdrLen:offset]: Read reports TCP/UDP
// super-packets (up to 64 KiB, to be cut into gso_size segments) and
// partial checksums there, and Write gets the header the engine built for
// each packet (all zero for a plain packet).
type Offloader interface {
	Offload() bool
}

// Headroom is the offset the engine passes to Device.Read and Write: room
// for the virtio-net header and for the largest frame header, so a packet
// read from the device is framed in place.
const Headroom = 16

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
	// Conn identifies the underlying connection (the node layer's
	// connection ID; "" if unknown). Not shown in the API.
	Conn string `json:"-"`
}

// ConnChecker may be implemented by a Dialer. The engine calls CheckConn
// when the data it writes to p on the connection path.Conn has gone
// unanswered there for Options.DeadAfter while frames from p keep arriving
// on another connection: those frames prove p alive, not that our writes
// reach it (a connection dead in one direction, or left behind by a peer
// that moved). The checker should probe that connection and close it if it
// is dead; the writer then reopens its stream. It must not block.
type ConnChecker interface {
	CheckConn(p peer.ID, path PathInfo)
}

// Dialer opens an outbound packet stream to a peer (the node layer implements it with
// host.NewStream on ProtocolID or LegacyProtocolID, allowing limited conns).
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

// IdleCloser may be implemented by a Dialer. In lazy mode (Engine.SetLazy)
// the engine calls IdleClosed after it closed p's outbound stream because
// it carried nothing for Options.IdleTimeout, so the node layer can close
// the connection underneath when nothing else needs it. It runs on p's
// writer goroutine: keep it short.
type IdleCloser interface {
	IdleClosed(p peer.ID)
}
