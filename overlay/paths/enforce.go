package paths

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// Backoff of the moves to a member's chosen path: a path that does not
// answer is retried after FirstRetry, doubling up to MaxRetry.
const (
	FirstRetry = 5 * time.Second
	MaxRetry   = 5 * time.Minute
)

type retryAt struct {
	at      time.Time
	backoff time.Duration
}

// Enforce moves every member whose packet stream is not on the chosen path:
// to its private address where the rules chose it, off it where they no
// longer allow it. Moves run in the background (Wait waits for them) and
// end with ctx; one member is moved at most once at a time, and attempts
// back off per member.
func (pol *Policy) Enforce(ctx context.Context) {
	for _, p := range pol.due(time.Now()) {
		v, _ := pol.Get(p)
		pol.wg.Add(1)
		go func() {
			defer pol.wg.Done()
			defer pol.doneMoving(p)
			if pol.Move != nil {
				pol.Move(p, v)
				return
			}
			pol.move(ctx, p, v)
		}()
	}
}

// Wait waits for the moves Enforce started.
func (pol *Policy) Wait() { pol.wg.Wait() }

// due lists the members to move now and books their next attempt.
func (pol *Policy) due(now time.Time) []peer.ID {
	t := pol.table.Load()
	if t == nil {
		return nil
	}
	pol.mu.Lock()
	defer pol.mu.Unlock()
	var out []peer.ID
	for p, v := range *t {
		remote, _, up := pol.streamRemote(p)
		if !up {
			continue
		}
		if v.OnChosen(remote) {
			delete(pol.retry, p)
			continue
		}
		if pol.moving[p] {
			continue
		}
		prev, tried := pol.retry[p]
		if tried && now.Before(prev.at) {
			continue
		}
		b := FirstRetry
		if tried {
			b = min(2*prev.backoff, MaxRetry)
		}
		pol.retry[p] = retryAt{at: now.Add(b), backoff: b}
		pol.moving[p] = true
		out = append(out, p)
	}
	return out
}

func (pol *Policy) doneMoving(p peer.ID) {
	pol.mu.Lock()
	delete(pol.moving, p)
	pol.mu.Unlock()
}

// streamRemote is the remote address of the live packet stream to p.
func (pol *Policy) streamRemote(p peer.ID) (remote ma.Multiaddr, relayed, up bool) {
	path, up := pol.stream(p)
	if !up {
		return nil, false, false
	}
	a, err := ma.NewMultiaddr(path.Remote)
	if err != nil || path.Relayed {
		if !path.Relayed {
			return nil, false, false
		}
		a = circuit
	}
	return a, path.Relayed, true
}

// circuit stands for any relayed path.
var circuit = ma.StringCast("/p2p-circuit")

func (pol *Policy) stream(p peer.ID) (forward.PathInfo, bool) {
	if pol.Stream != nil {
		return pol.Stream(p)
	}
	if pol.Host == nil {
		return forward.PathInfo{}, false
	}
	for _, c := range pol.Host.Network().ConnsToPeer(p) {
		return forward.PathInfo{Remote: c.RemoteMultiaddr().String(), Relayed: c.Stat().Limited}, true
	}
	return forward.PathInfo{}, false
}

// move moves p's connection to the chosen path. libp2p reuses an existing
// connection rather than dial a second one, so the connections off the
// chosen path are closed first and the peer redialled with the gater
// admitting only the chosen path; the packet stream reopens on the new
// connection within a round trip or two, and the overlay's own TCP flows
// ride out the gap. If the chosen path does not answer, the peer is
// redialled on any allowed path and the move retried later.
func (pol *Policy) move(ctx context.Context, p peer.ID, v Path) {
	h := pol.Host
	if h == nil {
		return
	}
	pol.Log.Info("moving to the chosen path", "peer", v.Host, "private", v.WantsPrivate(), "reason", v.Decision.Reason)
	if v.WantsPrivate() {
		pol.mu.Lock()
		pol.privateOnly[p] = true
		pol.mu.Unlock()
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		if !v.OnChosen(c.RemoteMultiaddr()) {
			_ = c.Close()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := h.Network().DialPeer(dctx, p)
	cancel()
	pol.mu.Lock()
	delete(pol.privateOnly, p)
	pol.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		pol.Log.Warn("the chosen path does not answer; using any allowed path", "peer", v.Host, "err", err)
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = h.Network().DialPeer(dctx, p)
		cancel()
		if err != nil && ctx.Err() == nil {
			pol.Log.Warn("redial", "peer", v.Host, "err", err)
		}
		return
	}
	pol.Log.Info("on the chosen path", "peer", v.Host, "remote", c.RemoteMultiaddr())
	if pol.Rehome != nil {
		pol.Rehome(p)
	}
}
