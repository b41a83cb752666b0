package forward

import (
	"encoding/json"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// DropReason classifies a dropped packet or frame.
type DropReason uint8

// Drop reasons. Their String values are the keys of the Drops maps.
const (
	DropNoRoute     DropReason = iota // "no_route": no peer owns the destination
	DropQueueFull                     // "queue_full": the peer's send queue is full
	DropBadLength                     // "bad_length": frame length 0 (data) or larger than allowed
	DropBadHeader                     // "bad_header": not a sane IPv4 packet
	DropSpoofed                       // "spoofed": inner source is not the sending peer's address
	DropBadType                       // "bad_type": unknown frame type
	DropDeviceError                   // "device_error": Device.Write failed
	DropUnknownPeer                   // "unknown_peer": frame from a peer not in the routing snapshot
	DropAdminDown                     // "admin_down": the data plane is down (SetAdminDown)
	DropNotLocal                      // "not_local": destination is neither our address nor a subnet we route
	DropFiltered                      // "filtered": refused by the packet filter (Options.Filter)
	DropDialFailed                    // "dial_failed": the packet that opened a lazy tunnel, whose dial failed
	numDropReasons
)

func (r DropReason) String() string {
	switch r {
	case DropNoRoute:
		return "no_route"
	case DropQueueFull:
		return "queue_full"
	case DropBadLength:
		return "bad_length"
	case DropBadHeader:
		return "bad_header"
	case DropSpoofed:
		return "spoofed"
	case DropBadType:
		return "bad_type"
	case DropDeviceError:
		return "device_error"
	case DropUnknownPeer:
		return "unknown_peer"
	case DropAdminDown:
		return "admin_down"
	case DropNotLocal:
		return "not_local"
	case DropFiltered:
		return "filtered"
	case DropDialFailed:
		return "dial_failed"
	default:
		return "unknown"
	}
}

// dropCounters is a fixed array of atomic counters, one per reason.
type dropCounters [numDropReasons]atomic.Uint64

func (d *dropCounters) add(r DropReason) {
	if r < numDropReasons {
		d[r].Add(1)
	}
}

// snapshot returns the non-zero counters keyed by reason, or nil.
func (d *dropCounters) snapshot() map[string]uint64 {
	var m map[string]uint64
	for r := DropReason(0); r < numDropReasons; r++ {
		if v := d[r].Load(); v != 0 {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[r.String()] = v
		}
	}
	return m
}

// cacheLinePad separates counters written by different goroutines.
type cacheLinePad struct{ _ [64]byte }

// peerCounters are the live counters of one peer. Fields are grouped by
// the goroutine that writes them (writer, receivers) to avoid false sharing.
type peerCounters struct {
	// Written by the peer's writer goroutine (once per batch).
	txPackets      atomic.Uint64
	txGSO          atomic.Uint64 // of them super-packets (FrameGSO)
	txBytes        atomic.Uint64
	txWrites       atomic.Uint64
	keepalivesSent atomic.Uint64
	probesSent     atomic.Uint64
	reconnects     atomic.Uint64
	dialFailures   atomic.Uint64
	rehomes        atomic.Uint64
	idleCloses     atomic.Uint64
	path           atomic.Pointer[PathInfo] // nil while no outbound stream
	// waitingSince is the engine nanotime of the oldest data or probe
	// write not yet answered by any frame from the peer; 0 = none.
	waitingSince atomic.Int64

	_ cacheLinePad

	// Written by inbound receive loops (per frame).
	rxPackets      atomic.Uint64
	rxGSO          atomic.Uint64 // super-packets received (before any software segmentation)
	rxBytes        atomic.Uint64
	keepalivesRecv atomic.Uint64
	lastRecv       atomic.Int64 // engine nanotime of the last frame received; 0 = never
	lastRecvSame   atomic.Int64 // ... received on the connection our stream rides (when known)
	lastRecvData   atomic.Int64 // ... of the last data, probe or probe-reply frame

	_ cacheLinePad

	drops dropCounters
}

// PeerStats is a point-in-time copy of one peer's counters.
type PeerStats struct {
	Peer           peer.ID           `json:"peer"`
	TxPackets      uint64            `json:"txPackets"`
	TxBytes        uint64            `json:"txBytes"`
	TxWrites       uint64            `json:"txWrites"` // stream writes; TxPackets/TxWrites is the coalescing factor
	TxGSO          uint64            `json:"txGSO"`    // of TxPackets, TCP/UDP super-packets sent whole (TUN offloads)
	RxGSO          uint64            `json:"rxGSO"`    // super-packets received
	RxPackets      uint64            `json:"rxPackets"`
	RxBytes        uint64            `json:"rxBytes"`
	KeepalivesSent uint64            `json:"keepalivesSent"`
	KeepalivesRecv uint64            `json:"keepalivesRecv"`
	ProbesSent     uint64            `json:"probesSent"`
	Drops          map[string]uint64 `json:"drops,omitempty"` // non-zero counters by DropReason.String()
	Reconnects     uint64            `json:"reconnects"`
	DialFailures   uint64            `json:"dialFailures"`
	Rehomes        uint64            `json:"rehomes"`
	IdleCloses     uint64            `json:"idleCloses,omitempty"` // lazy tunnel streams closed after IdleTimeout without traffic
	QueueLen       int               `json:"queueLen"`             // frames currently queued
	Path           PathInfo          `json:"path"`                 // active outbound stream's path
	StreamUp       bool              `json:"streamUp"`
	LastRecv       time.Time         `json:"lastRecv,omitzero"`
	PathDead       bool              `json:"pathDead"`
}

// EngineStats holds counters not attributable to a routed peer.
type EngineStats struct {
	Local netip.Addr        `json:"local"`
	Peers int               `json:"peers"`
	Drops map[string]uint64 `json:"drops,omitempty"`
}

// Stats returns a snapshot of p's counters; ok is false if p is not in the
// current routing snapshot.
func (e *Engine) Stats(p peer.ID) (PeerStats, bool) {
	ps := e.routes.Load().peers[p]
	if ps == nil {
		return PeerStats{}, false
	}
	return ps.stats(time.Now()), true
}

// PeerStatsMap is the result of AllStats. It is a plain map keyed by peer
// ID; it marshals to JSON keyed by the peer ID's canonical string form
// (encoding/json would otherwise use the raw multihash bytes of the
// string-typed peer.ID as keys).
type PeerStatsMap map[peer.ID]PeerStats

// MarshalJSON implements json.Marshaler.
func (m PeerStatsMap) MarshalJSON() ([]byte, error) {
	out := make(map[string]PeerStats, len(m))
	for id, s := range m {
		out[id.String()] = s
	}
	return json.Marshal(out)
}

// AllStats returns a snapshot of every routed peer's counters.
func (e *Engine) AllStats() PeerStatsMap {
	rt := e.routes.Load()
	now := time.Now()
	m := make(PeerStatsMap, len(rt.peers))
	for id, ps := range rt.peers {
		m[id] = ps.stats(now)
	}
	return m
}

// EngineStats returns engine-level counters (e.g. no_route drops).
func (e *Engine) EngineStats() EngineStats {
	rt := e.routes.Load()
	return EngineStats{Local: rt.local, Peers: len(rt.peers), Drops: e.drops.snapshot()}
}

// PathDead reports whether nothing has been received from p for
// Options.DeadAfter (counted from the peer's creation if nothing was ever
// received). Peers not in the routing snapshot are reported dead.
func (e *Engine) PathDead(p peer.ID) bool {
	ps := e.routes.Load().peers[p]
	if ps == nil {
		return true
	}
	return ps.pathDead(time.Now())
}

func (ps *peerState) stats(now time.Time) PeerStats {
	c := &ps.c
	s := PeerStats{
		Peer:           ps.id,
		TxPackets:      c.txPackets.Load(),
		TxBytes:        c.txBytes.Load(),
		TxWrites:       c.txWrites.Load(),
		TxGSO:          c.txGSO.Load(),
		RxGSO:          c.rxGSO.Load(),
		RxPackets:      c.rxPackets.Load(),
		RxBytes:        c.rxBytes.Load(),
		KeepalivesSent: c.keepalivesSent.Load(),
		KeepalivesRecv: c.keepalivesRecv.Load(),
		ProbesSent:     c.probesSent.Load(),
		Drops:          c.drops.snapshot(),
		Reconnects:     c.reconnects.Load(),
		DialFailures:   c.dialFailures.Load(),
		Rehomes:        c.rehomes.Load(),
		IdleCloses:     c.idleCloses.Load(),
		QueueLen:       len(ps.queue),
		PathDead:       ps.pathDead(now),
	}
	if p := c.path.Load(); p != nil {
		s.Path, s.StreamUp = *p, true
	}
	if ns := c.lastRecv.Load(); ns != 0 {
		s.LastRecv = ps.e.wallTime(ns)
	}
	return s
}
