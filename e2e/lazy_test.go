//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// TestLazyTunnels: lazy tunnels in namespaces (every member joins with
// --full-mesh-max 0, so tunnels are lazy from the start, and --tunnel-idle
// 8s). pub is public; sym1 and sym2 sit behind symmetric NATs, so they reach
// each other only through a relay, and a relayed connection between members
// carries nothing but their tunnel (one a DHT lookup dialled, which gossip
// and the DHT would then keep using, is closed within 15 s):
//   - after convergence sym1 and sym2 come to hold no tunnel and no
//     connection to each other;
//   - the first ping from sym1 to sym2 is answered (the tunnel is dialled
//     through a relay on that packet, the packet queued meanwhile), and its
//     time is measured against the pings that follow;
//   - after the idle time without packets both ends' tunnels and the
//     connection are gone;
//   - the next ping opens them again.
func TestLazyTunnels(t *testing.T) {
	const idle = 8 * time.Second
	c := newRouterLab(t, cluster.Options{Prefix: "cblazy", Relay: true, LogLevel: "debug",
		JoinArgs: []string{"--full-mesh-max", "0", "--tunnel-idle", idle.String()}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wan, err := c.Lab.Switch("wan", wanNet)
	must(err)
	boot, err := c.AddHost("boot", wan, 1)
	must(err)
	must(c.StartBootstrap(ctx, boot))
	pub, err := c.AddHost("pub", wan, 11)
	must(err)
	must(c.AddMember(ctx, pub))
	sym1 := memberBehindNAT(ctx, t, c, wan, "sym1", netlab.Symmetric, 21, netip.MustParsePrefix("10.1.3.0/24"))
	sym2 := memberBehindNAT(ctx, t, c, wan, "sym2", netlab.Symmetric, 22, netip.MustParsePrefix("10.1.4.0/24"))
	must(c.StartAll())
	converge(t, c)
	ip2, err := sym2.IP(ctx)
	must(err)
	ip1, err := sym1.IP(ctx)
	must(err)
	for _, n := range c.Nodes {
		st, err := n.Status(ctx)
		must(err)
		if st.Tunnels != "lazy" {
			t.Fatalf("%s: tunnels %q, want lazy", n.Name, st.Tunnels)
		}
	}

	// tunnel reports from's tunnel to `to`: stream up, relayed, and the
	// connections from holds to it.
	tunnel := func(from, to *cluster.Node) (up, relayed bool, idleCloses uint64, conns []string, err error) {
		peers, err := from.Peers(ctx)
		if err != nil {
			return false, false, 0, nil, err
		}
		for _, p := range peers {
			if p.HostName == to.Name {
				if p.Link != nil {
					up, relayed, idleCloses = p.Link.StreamUp, p.Link.Path.Relayed, p.Link.IdleCloses
				}
				return up, relayed, idleCloses, p.Conns, nil
			}
		}
		return false, false, 0, nil, fmt.Errorf("%s does not list %s", from.Name, to.Name)
	}
	// Settle: a connection made while the members joined (the DHT's
	// lookups dial the peers they hear of, through the relay too) is not a
	// tunnel; wait for sym1 and sym2 to hold none to each other.
	settleStart := time.Now()
	waitFor(t, time.Minute, "no tunnel and no connection between sym1 and sym2 before any packet", func() error {
		for _, d := range [][2]*cluster.Node{{sym1, sym2}, {sym2, sym1}} {
			up, _, _, conns, err := tunnel(d[0], d[1])
			if err != nil {
				return err
			}
			if up || len(conns) > 0 {
				return fmt.Errorf("%s -> %s: tunnel up %v, connections %v", d[0].Name, d[1].Name, up, conns)
			}
		}
		return nil
	})
	t.Logf("no connection between sym1 and sym2 %s after convergence", time.Since(settleStart).Round(100*time.Millisecond))

	rtts, err := pingRTTs(sym1, ip2, 6)
	if err != nil || len(rtts) == 0 || rtts[0] == 0 {
		t.Fatalf("the first ping to a member without a tunnel: %v (round trips %v)", err, rtts)
	}
	up, relayed, _, conns, err := tunnel(sym1, sym2)
	must(err)
	if !up || !relayed || len(conns) == 0 || !strings.Contains(strings.Join(conns, " "), "/p2p-circuit") {
		t.Fatalf("sym1 -> sym2 after the pings: up %v, relayed %v, connections %v; want a relayed tunnel", up, relayed, conns)
	}
	t.Logf("first-packet latency over a new lazy tunnel (relayed dial + first echo): %s; the 5 pings after it: %v", rtts[0], rtts[1:])

	lastPacket := time.Now()
	var closedAfter time.Duration
	// The connection goes when nothing holds it any more (both tunnels
	// idle, libp2p's own users done): measured 11.5–32.9 s here.
	waitFor(t, idle+60*time.Second, "both tunnels and the connection closed as idle", func() error {
		for _, d := range [][2]*cluster.Node{{sym1, sym2}, {sym2, sym1}} {
			up, _, closes, conns, err := tunnel(d[0], d[1])
			if err != nil {
				return err
			}
			if up || closes == 0 || len(conns) > 0 {
				return fmt.Errorf("%s -> %s: tunnel up %v, idle closes %d, connections %v", d[0].Name, d[1].Name, up, closes, conns)
			}
		}
		closedAfter = time.Since(lastPacket)
		return nil
	})
	if closedAfter < idle {
		t.Fatalf("the tunnel closed %s after the last packet, before the idle time %s", closedAfter, idle)
	}
	t.Logf("tunnel and connection gone %s after the last packet (idle time %s)", closedAfter.Round(100*time.Millisecond), idle)

	rtts, err = pingRTTs(sym2, ip1, 2)
	if err != nil || len(rtts) == 0 || rtts[0] == 0 {
		t.Fatalf("a ping after the tunnel closed: %v (round trips %v)", err, rtts)
	}
	t.Logf("first-packet latency after the idle close (sym2 -> sym1, the other end dials): %s, then %s", rtts[0], rtts[1])
	waitFor(t, 10*time.Second, "the tunnel back up", func() error {
		if up, _, _, _, err := tunnel(sym2, sym1); err != nil || !up {
			return fmt.Errorf("sym2 -> sym1 tunnel up %v, err %v", up, err)
		}
		return nil
	})
	var st api.Status
	st, err = pub.Status(ctx)
	must(err)
	t.Logf("pub: %d members, tunnels %s", st.Members, st.Tunnels)
}

// pingRTTs sends count pings (0.2 s apart, each answered within 5 s) and
// returns the round trip of each, in order; a lost one is 0. It fails if
// the first is lost.
func pingRTTs(from *cluster.Node, to netip.Addr, count int) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := from.Host.Run(ctx, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "5", "-I", "cbnet0", to.String())
	rtts := make([]time.Duration, count)
	for _, line := range strings.Split(string(out), "\n") {
		var seq int
		var ms float64
		i := strings.Index(line, "icmp_seq=")
		j := strings.Index(line, "time=")
		if i < 0 || j < 0 {
			continue
		}
		if _, err := fmt.Sscanf(line[i:], "icmp_seq=%d", &seq); err != nil {
			continue
		}
		if _, err := fmt.Sscanf(line[j:], "time=%f", &ms); err != nil {
			continue
		}
		if seq >= 1 && seq <= count {
			rtts[seq-1] = time.Duration(ms * float64(time.Millisecond)).Round(10 * time.Microsecond)
		}
	}
	if rtts[0] == 0 {
		return rtts, fmt.Errorf("ping %s from %s: first echo lost: %v: %s", to, from.Name, err, out)
	}
	return rtts, nil
}

// waitFor polls cond every 200 ms until it returns nil or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s: %v", within, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
