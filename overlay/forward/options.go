package forward

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults for Options fields left zero.
const (
	DefaultQueueLen          = 1024
	DefaultQueueBytes        = 4 << 20
	DefaultBatchBytes        = 256 << 10
	DefaultKeepaliveInterval = 2 * time.Second
	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultDialTimeout       = 10 * time.Second
	// DefaultIdleTimeout closes a lazy tunnel after 5 minutes without
	// packets (Tailscale trims idle WireGuard peers after as long).
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMTU is used when Device.MTU reports a non-positive value.
	DefaultMTU = 1420
	// readBufferSize is the bufio.Reader size of each inbound stream.
	readBufferSize = 64 << 10
)

// Options tunes an Engine. The zero value selects the defaults.
type Options struct {
	// QueueLen bounds each peer's send queue, in frames (default 1024).
	QueueLen int
	// QueueBytes bounds the bytes queued per peer (default 4 MiB: 16 ms
	// at 2 Gbit/s); a frame that would exceed it is dropped as
	// "queue_full", like one beyond QueueLen. At least one maximum-size
	// frame always fits.
	QueueBytes int
	// BatchBytes is the size of a writer's coalescing buffer; frames queued
	// together are written to the stream in one Write of at most this many
	// bytes (default 256 KiB, minimum one maximum-size frame).
	BatchBytes int
	// KeepaliveInterval: a writer that received data from its peer and
	// sent nothing back for this long sends a Keepalive frame (default
	// 2 s). Idle pairs send nothing.
	KeepaliveInterval time.Duration
	// DeadAfter: if data or probes sent to a peer got no frame back for
	// this long, the writer reopens its stream (default 3x
	// KeepaliveInterval). Also used as the write timeout on streams that
	// support write deadlines.
	DeadAfter time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// failed dials / writes (defaults 100 ms and 5 s).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// DialTimeout bounds one Dialer.OpenStream call (default 10 s).
	DialTimeout time.Duration
	// Lazy is the initial lazy-tunnel mode (see Engine.SetLazy).
	Lazy bool
	// IdleTimeout: with lazy tunnels on (Engine.SetLazy), a peer's stream
	// that carried no data, probe or answer either way for this long is
	// closed; the next packet opens it again (default 5 min; negative:
	// never).
	IdleTimeout time.Duration
	// OnPath, if set, is told every time a peer's outbound stream comes up
	// (path set) or goes down (path nil), and why: the path history. It
	// runs on the peer's writer goroutine and must not block.
	OnPath func(p peer.ID, path *PathInfo, reason string)
	// Filter, if set, decides inbound data packets (see Filter).
	Filter Filter
	// SubnetRoutes are destinations besides the node's own overlay address
	// that it accepts from peers (a subnet router). Every other destination
	// is dropped on receive ("not_local"): a member cannot push packets for
	// a third address into this node's stack.
	SubnetRoutes []netip.Prefix
	// Logger receives debug/info events (stream up/down, protocol errors).
	// Nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.QueueLen <= 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = DefaultQueueBytes
	}
	o.QueueBytes = max(o.QueueBytes, gsoHeaderLen+maxFrameLen)
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.KeepaliveInterval <= 0 {
		o.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 3 * o.KeepaliveInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
