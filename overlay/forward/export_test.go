package forward

import "github.com/libp2p/go-libp2p/core/peer"

// Internals the external tests (package forward_test) need.

var (
	PutHeader  = putHeader
	FrameBytes = frameBytes
)

// GSOFrameBytes encodes a FrameGSO frame carrying super-packet pkt.
func GSOFrameBytes(gsoType uint8, gsoSize int, pkt []byte) []byte {
	b := make([]byte, gsoHeaderLen+len(pkt))
	putGSOHeader(b, gsoType, gsoSize, len(pkt))
	copy(b[gsoHeaderLen:], pkt)
	return b
}

// MaxPayload returns the largest payload e accepts in a frame.
func MaxPayload(e *Engine) int { return e.maxPayload }

// PeerStateOf returns e's state for p in the current routing snapshot, for
// identity comparisons only.
func PeerStateOf(e *Engine, p peer.ID) any { return e.routes.Load().peers[p] }
