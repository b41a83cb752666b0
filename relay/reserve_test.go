package relay

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

func TestRetryAfterIsBounded(t *testing.T) {
	for _, c := range []struct {
		fails int
		want  time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {3, 8 * time.Second}, {4, MaxRetry}, {50, MaxRetry}, {0, 2 * time.Second}} {
		if got := retryAfter(c.fails); got != c.want {
			t.Errorf("retryAfter(%d) = %s, want %s", c.fails, got, c.want)
		}
	}
}

// TestReservationBackAtOnceWhenRelayReturns: a relay that dies and comes back
// (same key, same address) gets the member's reservation again as soon as
// the member reconnects to it, although the member's attempts failed
// meanwhile and its backoff grew (it once grew to 2 min and never reset).
func TestReservationBackAtOnceWhenRelayReturns(t *testing.T) {
	o := owner(t, "alpha")
	rk, _, _ := crypto.GenerateEd25519Key(nil)
	startRelay := func(addr string) host.Host {
		t.Helper()
		h, err := libp2p.New(libp2p.Identity(rk), libp2p.ListenAddrStrings(addr), libp2p.DisableMetrics())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Start(h, []string{o.Spec.OwnerKey}, nil); err != nil {
			t.Fatal(err)
		}
		return h
	}
	r1 := startRelay("/ip4/127.0.0.1/tcp/0")
	addr := r1.Addrs()[0]
	info := peer.AddrInfo{ID: r1.ID(), Addrs: []ma.Multiaddr{addr}}
	m := member(t, o.Spec, o, time.Hour)
	var changes atomic.Int32
	res := NewReserver(m, func() []peer.AddrInfo { return []peer.AddrInfo{info} }, func() { changes.Add(1) }, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); res.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitReserved := func(what string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for len(res.Relays()) == 0 {
			if time.Since(start) > within {
				t.Fatalf("%s: no reservation within %s", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitReserved("first reservation", 5*time.Second)
	if len(res.Addrs()) == 0 {
		t.Fatal("reservation without circuit addresses")
	}

	r1.Close()
	start := time.Now()
	for len(res.Relays()) != 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("reservation on a dead relay kept")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(7 * time.Second) // attempts fail: the backoff grows to 8 s

	r2 := startRelay(addr.String())
	defer r2.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer ccancel()
	// The bootstrap loop's redial, in the daemon (which forgets the
	// swarm's dial backoff first, as here).
	m.Network().(*swarm.Swarm).Backoff().Clear(info.ID)
	if err := m.Connect(cctx, info); err != nil {
		t.Fatal(err)
	}
	if d := waitReserved("after the relay came back", 2*time.Second); d > time.Second {
		t.Errorf("reservation back %s after reconnecting, want well under a second", d)
	}
	if changes.Load() < 3 {
		t.Errorf("circuit address changes announced %d times, want 3 (reserved, lost, reserved)", changes.Load())
	}
}
