package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
)

// HolePunch is the outcome of the latest DCUtR hole punch with a peer.
type HolePunch struct {
	Success  bool      `json:"success"`
	Duration string    `json:"duration"`
	At       time.Time `json:"at"`
	Error    string    `json:"error,omitempty"`
}

// punchTracer logs DCUtR hole-punching events, which go-libp2p otherwise
// keeps to itself, and remembers each peer's latest outcome: an operator
// asking why two members are relayed needs them.
type punchTracer struct {
	log  *slog.Logger
	mu   sync.Mutex
	by   map[peer.ID]HolePunch
	subs []func(peer.ID, HolePunch)
}

func newPunchTracer(log *slog.Logger) *punchTracer {
	return &punchTracer{log: log, by: map[peer.ID]HolePunch{}}
}

func (t *punchTracer) Trace(e *holepunch.Event) {
	end, ok := e.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		t.log.Debug("hole punch", "type", e.Type, "remote", e.Remote)
		return
	}
	hp := HolePunch{Success: end.Success, Duration: end.EllapsedTime.Round(time.Millisecond).String(), At: time.Unix(0, e.Timestamp).UTC(), Error: end.Error}
	t.mu.Lock()
	t.by[e.Remote] = hp
	subs := t.subs
	t.mu.Unlock()
	for _, f := range subs {
		f(e.Remote, hp)
	}
	if end.Success {
		t.log.Info("hole punch succeeded", "peer", e.Remote, "took", hp.Duration)
	} else {
		t.log.Debug("hole punch failed", "peer", e.Remote, "took", hp.Duration, "err", end.Error)
	}
}

func (t *punchTracer) get(p peer.ID) (HolePunch, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	hp, ok := t.by[p]
	return hp, ok
}

// HolePunchResult returns the latest hole-punch outcome with p, if any.
func (n *Node) HolePunchResult(p peer.ID) (HolePunch, bool) {
	if n.punches == nil {
		return HolePunch{}, false
	}
	return n.punches.get(p)
}

// OnHolePunch registers f to be told each hole punch's outcome (from
// libp2p's goroutines; f must not block). Without hole punching it is never
// called.
func (n *Node) OnHolePunch(f func(peer.ID, HolePunch)) {
	if n.punches == nil {
		return
	}
	n.punches.mu.Lock()
	n.punches.subs = append(append([]func(peer.ID, HolePunch){}, n.punches.subs...), f)
	n.punches.mu.Unlock()
}
