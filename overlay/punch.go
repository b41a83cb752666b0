package overlay

import (
	"context"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// PunchRetry gives hole punching more chances. go-libp2p's DCUtR runs when a
// relayed connection arrives, three attempts, and never again for that
// connection; when two members dial each other through the relay at the same
// moment (both just started) each side starts a punch and they spoil each
// other. For members reachable only through a relay, the member with the
// lower peer ID closes the relayed connections after a growing delay (5 s,
// 10 s, 20 s) — at most punchRetries times, since each retry cuts a working
// relayed path for a moment: its stream writer redials through the relay,
// and the peer's fresh inbound relayed connection starts a single, clean
// punch. A node whose own NAT maps every destination to another port
// (symmetric, as libp2p's observed addresses tell) never retries.
type PunchRetry struct {
	Host    host.Host
	Members func() []peer.ID
	Log     *slog.Logger
	// Hopeless, if set, reports that hole punching cannot work from
	// here (this node is behind a symmetric NAT).
	Hopeless func() bool

	next    map[peer.ID]time.Time
	backoff map[peer.ID]time.Duration
}

const (
	punchFirstRetry = 5 * time.Second
	punchRetries    = 3
)

// Run checks every few seconds until ctx ends.
func (r *PunchRetry) Run(ctx context.Context) {
	r.next, r.backoff = map[peer.ID]time.Time{}, map[peer.ID]time.Duration{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.check(time.Now())
	}
}

func (r *PunchRetry) check(now time.Time) {
	self := r.Host.ID()
	if r.Hopeless != nil && r.Hopeless() {
		return
	}
	live := map[peer.ID]bool{}
	for _, p := range r.Members() {
		live[p] = true
		if p <= self || !onlyRelayed(r.Host.Network().ConnsToPeer(p)) {
			delete(r.next, p)
			delete(r.backoff, p)
			continue
		}
		next, seen := r.next[p]
		if !seen {
			r.next[p], r.backoff[p] = now.Add(punchFirstRetry), punchFirstRetry
			continue
		}
		if now.Before(next) || r.backoff[p] > punchFirstRetry<<(punchRetries-1) {
			continue
		}
		b := 2 * r.backoff[p]
		r.next[p], r.backoff[p] = now.Add(b), b
		r.Log.Debug("still relayed: reconnecting through the relay to retry hole punching", "peer", p, "next", b)
		_ = r.Host.Network().ClosePeer(p)
	}
	for p := range r.next {
		if !live[p] {
			delete(r.next, p)
			delete(r.backoff, p)
		}
	}
}

func onlyRelayed(conns []network.Conn) bool {
	if len(conns) == 0 {
		return false
	}
	for _, c := range conns {
		if !PathOf(c).Relayed {
			return false
		}
	}
	return true
}
