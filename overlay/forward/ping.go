package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	errPingQueueFull = errors.New("send queue full")
	errPeerRemoved   = errors.New("peer removed from routing table")
)

// pingTable matches ProbeReply frames to outstanding Ping calls.
type pingTable struct {
	mu      sync.Mutex
	next    uint64
	waiters map[uint64]*pingWaiter
}

type pingWaiter struct {
	p    peer.ID
	done chan struct{}
}

func (t *pingTable) init() { t.waiters = make(map[uint64]*pingWaiter) }

func (t *pingTable) register(p peer.ID) (uint64, *pingWaiter) {
	w := &pingWaiter{p: p, done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	t.waiters[t.next] = w
	return t.next, w
}

func (t *pingTable) remove(id uint64) {
	t.mu.Lock()
	delete(t.waiters, id)
	t.mu.Unlock()
}

// complete resolves the waiter named by a ProbeReply payload, provided the
// reply came from the peer that was probed. Unmatched replies are ignored.
func (t *pingTable) complete(from peer.ID, payload []byte) {
	if len(payload) < 8 {
		return
	}
	id := binary.BigEndian.Uint64(payload[:8])
	t.mu.Lock()
	defer t.mu.Unlock()
	if w := t.waiters[id]; w != nil && w.p == from {
		delete(t.waiters, id)
		close(w.done)
	}
}

// Ping sends a Probe frame to p through p's writer (on its current
// outbound stream) and waits for the ProbeReply, which p sends back on its
// own stream to us. It returns the round-trip time, measured with the
// local monotonic clock, and the path of the outbound stream in use when
// the reply arrived.
func (e *Engine) Ping(ctx context.Context, p peer.ID) (time.Duration, PathInfo, error) {
	if e.ctx.Err() != nil {
		return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, ErrClosed)
	}
	ps := e.routes.Load().peers[p]
	if ps == nil {
		return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, ErrUnknownPeer)
	}
	id, w := e.pings.register(p)
	defer e.pings.remove(id)

	start := time.Now()
	var payload [probeLen]byte
	binary.BigEndian.PutUint64(payload[:8], id)
	binary.BigEndian.PutUint64(payload[8:], uint64(start.UnixNano()))
	if !ps.sendControl(FrameProbe, payload[:]) {
		return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, errPingQueueFull)
	}
	select {
	case <-w.done:
		rtt := time.Since(start)
		var path PathInfo
		if pi := ps.c.path.Load(); pi != nil {
			path = *pi
		}
		return rtt, path, nil
	case <-ctx.Done():
		return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, ctx.Err())
	case <-ps.ctx.Done():
		if e.ctx.Err() != nil {
			return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, ErrClosed)
		}
		return 0, PathInfo{}, fmt.Errorf("forward: ping %s: %w", p, errPeerRemoved)
	}
}
