package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// Reserver keeps reservations on the CLADNet's relays (the bootstrap nodes
// and members that relay), so the member is reachable through them within
// seconds of starting — go-libp2p's AutoRelay waits minutes and only once it
// believes itself private. Its circuit addresses are advertised next to the
// direct ones; peers try direct addresses first.
type Reserver struct {
	h          host.Host
	candidates func() []peer.AddrInfo
	onChange   func()
	log        *slog.Logger

	mu     sync.Mutex
	resv   map[peer.ID]*client.Reservation
	addrs  map[peer.ID][]ma.Multiaddr
	retry  map[peer.ID]time.Time
	fails  map[peer.ID]int
	trying map[peer.ID]bool // an attempt is in flight
}

// NewReserver makes a reserver; candidates lists relay candidates, onChange
// is called when the set of circuit addresses changes.
func NewReserver(h host.Host, candidates func() []peer.AddrInfo, onChange func(), log *slog.Logger) *Reserver {
	if log == nil {
		log = slog.Default()
	}
	return &Reserver{h: h, candidates: candidates, onChange: onChange, log: log,
		resv: map[peer.ID]*client.Reservation{}, addrs: map[peer.ID][]ma.Multiaddr{}, retry: map[peer.ID]time.Time{}, fails: map[peer.ID]int{}, trying: map[peer.ID]bool{}}
}

// Addrs returns the current circuit addresses (for the host's AddrsFactory).
func (r *Reserver) Addrs() []ma.Multiaddr {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ma.Multiaddr
	for _, as := range r.addrs {
		out = append(out, as...)
	}
	return out
}

// Relays returns the relays holding a reservation for us.
func (r *Reserver) Relays() []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]peer.ID, 0, len(r.resv))
	for p := range r.resv {
		out = append(out, p)
	}
	return out
}

// Run keeps reservations fresh until ctx ends. A relay candidate that
// connects (a relay back after a restart, the bootstrap loop's redial) is
// tried at once, its backoff forgotten.
func (r *Reserver) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	kick := make(chan struct{}, 1)
	notifee := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		p := c.RemotePeer()
		r.mu.Lock()
		_, held := r.resv[p]
		_, failing := r.retry[p]
		if !held && failing {
			delete(r.retry, p)
			delete(r.fails, p)
		}
		r.mu.Unlock()
		if !held {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}}
	r.h.Network().Notify(notifee)
	defer r.h.Network().StopNotify(notifee)
	var attempts sync.WaitGroup
	defer attempts.Wait()
	for {
		r.refresh(ctx, &attempts)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-kick:
		}
	}
}

// refresh starts a reservation attempt on every candidate without a fresh
// reservation, an attempt in flight or a backoff to wait out. It does not
// wait for them: a relay that hangs (a dead one's QUIC address times out)
// holds up no other; Run waits for them when it ends.
func (r *Reserver) refresh(ctx context.Context, wg *sync.WaitGroup) {
	now := time.Now()
	for _, c := range r.candidates() {
		if c.ID == r.h.ID() {
			continue
		}
		r.mu.Lock()
		res := r.resv[c.ID]
		next := r.retry[c.ID]
		busy := r.trying[c.ID]
		// Renew when a third of the reservation's life is left; it is
		// also lost when the relay's connection drops.
		fresh := res != nil && now.Before(res.Expiration.Add(-20*time.Minute)) && len(r.h.Network().ConnsToPeer(c.ID)) > 0
		if fresh || busy || now.Before(next) {
			r.mu.Unlock()
			continue
		}
		r.trying[c.ID] = true
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := client.Reserve(rctx, r.h, c)
			cancel()
			r.mu.Lock()
			delete(r.trying, c.ID)
			r.mu.Unlock()
			if err != nil {
				r.drop(c.ID, time.Now())
				r.log.Debug("relay reservation failed", "relay", c.ID, "err", err)
				return
			}
			r.keep(c, res)
		}()
	}
}

func (r *Reserver) keep(c peer.AddrInfo, res *client.Reservation) {
	circuit := ma.StringCast("/p2p/" + c.ID.String() + "/p2p-circuit")
	var addrs []ma.Multiaddr
	relayAddrs := res.Addrs
	if len(relayAddrs) == 0 {
		relayAddrs = c.Addrs
	}
	for _, a := range relayAddrs {
		a, _ = peer.SplitAddr(a) // drop a trailing /p2p/<relay> if present
		if a == nil {
			continue
		}
		addrs = append(addrs, a.Encapsulate(circuit))
	}
	r.mu.Lock()
	_, had := r.resv[c.ID]
	r.resv[c.ID] = res
	r.addrs[c.ID] = addrs
	delete(r.retry, c.ID)
	delete(r.fails, c.ID)
	r.mu.Unlock()
	if !had {
		r.log.Info("relay reservation", "relay", c.ID, "addrs", addrs, "until", res.Expiration.Format(time.RFC3339))
		r.onChange()
	}
}

// MaxRetry bounds the backoff between reservation attempts on one relay:
// 2 s, 4 s, 8 s, then every MaxRetry (it once grew to 2 min, so a relay
// back after a restart waited up to 2 min for its members). A bootstrap
// node that does not relay keeps refusing, cheaply; a relay that connects
// is retried at once (see Run).
const MaxRetry = 10 * time.Second

// drop forgets p's reservation and retries it after a backoff.
func (r *Reserver) drop(p peer.ID, now time.Time) {
	r.mu.Lock()
	_, had := r.resv[p]
	delete(r.resv, p)
	delete(r.addrs, p)
	r.fails[p]++
	r.retry[p] = now.Add(retryAfter(r.fails[p]))
	r.mu.Unlock()
	if had {
		r.onChange()
	}
}

// retryAfter is the wait after the n-th failed reservation in a row.
func retryAfter(n int) time.Duration {
	return min(2*time.Second<<min(max(n-1, 0), 6), MaxRetry)
}
