//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// The NAT lab. The "internet" is a switch with a public-looking range that
// exists only inside the lab's namespaces (libp2p's hole punching needs
// addresses it counts as public; private, CGNAT and TEST-NET ranges are not).
var (
	wanNet  = netip.MustParsePrefix("7.7.7.0/24")
	lanSame = netip.MustParsePrefix("192.168.1.0/24") // two cone LANs reuse it
)

type natLab struct {
	c        *cluster.Cluster
	pub1     *cluster.Node
	pub2     *cluster.Node
	cone1    *cluster.Node
	cone2    *cluster.Node
	sym1     *cluster.Node
	sym2     *cluster.Node
	started  time.Time
	overlayP map[*cluster.Node]netip.Addr
}

func newNATLab(t *testing.T) *natLab { t.Helper(); return newNATLabLog(t, "debug") }

// newNATLabLog builds the NAT lab with the nodes logging at level.
func newNATLabLog(t *testing.T, level string) *natLab {
	t.Helper()
	c := newRouterLab(t, cluster.Options{Prefix: "cbnat", Relay: true, LogLevel: level})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := &natLab{c: c}
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
	member := func(name string, sw *netlab.Switch, idx int, gw netip.Addr) *cluster.Node {
		n, err := c.AddHost(name, sw, idx)
		must(err)
		if gw.IsValid() {
			must(n.Host.SetDefaultRoute(gw))
		}
		must(c.AddMember(ctx, n))
		return n
	}
	behind := func(name string, kind netlab.NATKind, wanIdx int, lanNet netip.Prefix) *cluster.Node {
		return memberBehindNAT(ctx, t, c, wan, name, kind, wanIdx, lanNet)
	}
	l.pub1 = member("pub1", wan, 11, netip.Addr{})
	l.pub2 = member("pub2", wan, 12, netip.Addr{})
	l.cone1 = behind("cone1", netlab.Cone, 21, lanSame)
	l.cone2 = behind("cone2", netlab.Cone, 22, lanSame)
	l.sym1 = behind("sym1", netlab.Symmetric, 23, netip.MustParsePrefix("10.1.3.0/24"))
	l.sym2 = behind("sym2", netlab.Symmetric, 24, netip.MustParsePrefix("10.1.4.0/24"))
	l.started = time.Now()
	must(c.StartAll())
	return l
}

// memberBehindNAT adds member name on a LAN of its own (lanNet, host .10)
// behind a NAT router of kind at wan.Addr(wanIdx).
func memberBehindNAT(ctx context.Context, t *testing.T, c *cluster.Cluster, wan *netlab.Switch, name string, kind netlab.NATKind, wanIdx int, lanNet netip.Prefix) *cluster.Node {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	lan, err := c.Lab.Switch("l"+name, lanNet)
	must(err)
	r, err := c.Lab.Router("r"+name, wan, wan.Addr(wanIdx), lan, lan.Addr(1), kind)
	must(err)
	n, err := c.AddHost(name, lan, 10)
	must(err)
	must(n.Host.SetDefaultRoute(r.LANAddr().Addr()))
	must(c.AddMember(ctx, n))
	return n
}

// waitIPs waits until every member has an overlay address.
func (l *natLab) waitIPs(t *testing.T) {
	t.Helper()
	l.overlayP = map[*cluster.Node]netip.Addr{}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range l.c.Nodes {
		for {
			ip, err := n.IP(context.Background())
			if err == nil {
				l.overlayP[n] = ip
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no overlay address: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// path reports how from's data stream to `to` currently travels.
func (l *natLab) path(from, to *cluster.Node) (relayed, up bool, remote string, err error) {
	peers, err := from.Peers(context.Background())
	if err != nil {
		return false, false, "", err
	}
	for _, p := range peers {
		if p.HostName != to.Name || p.Link == nil {
			continue
		}
		var st struct {
			StreamUp bool `json:"streamUp"`
			Path     struct {
				Relayed bool   `json:"relayed"`
				Remote  string `json:"remote"`
			} `json:"path"`
		}
		b, _ := jsonMarshal(p.Link)
		if err := jsonUnmarshal(b, &st); err != nil {
			return false, false, "", err
		}
		return st.Path.Relayed, st.StreamUp, st.Path.Remote, nil
	}
	return false, false, "", fmt.Errorf("%s does not list %s", from.Name, to.Name)
}

// firstPacket pings until the first echo comes back, both ways, and returns
// the time since the lab's nodes started.
func (l *natLab) firstPacket(a, b *cluster.Node) (time.Duration, error) {
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range [][2]*cluster.Node{{a, b}, {b, a}} {
		for {
			err := pingOK(d[0], l.overlayP[d[1]], 1)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%s -> %s: no packet through: %w", d[0].Name, d[1].Name, err)
			}
		}
	}
	return time.Since(l.started), nil
}

// waitPath waits until both directions' streams are up with the wanted kind
// of path, and returns the time since start.
func (l *natLab) waitPath(a, b *cluster.Node, wantRelayed bool, within time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(within)
	for {
		ok := true
		var last string
		for _, d := range [][2]*cluster.Node{{a, b}, {b, a}} {
			relayed, up, remote, err := l.path(d[0], d[1])
			if err != nil || !up || relayed != wantRelayed {
				ok = false
				last = fmt.Sprintf("%s -> %s: up=%v relayed=%v remote=%s err=%v", d[0].Name, d[1].Name, up, relayed, remote, err)
			}
		}
		if ok {
			return time.Since(l.started), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("path not %s within %s: %s", map[bool]string{true: "relayed", false: "direct"}[wantRelayed], within, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *natLab) traffic(t *testing.T, a, b *cluster.Node) {
	t.Helper()
	echoServer(t, b, l.overlayP[b])
	if err := echo(a, l.overlayP[a], l.overlayP[b]); err != nil {
		t.Fatalf("TCP %s -> %s: %v", a.Name, b.Name, err)
	}
	if err := pingOK(a, l.overlayP[b], 3); err != nil {
		t.Fatal(err)
	}
}

func TestNATMatrix(t *testing.T) {
	l := newNATLab(t)
	l.waitIPs(t)
	type result struct {
		name          string
		a, b          *cluster.Node
		relayed       bool
		first, direct time.Duration
		remote        string
		err           error
	}
	cases := []*result{
		{name: "public-public", a: l.pub1, b: l.pub2},
		{name: "cone-public", a: l.cone1, b: l.pub1},
		{name: "cone-cone (same LAN subnet 192.168.1.0/24)", a: l.cone1, b: l.cone2},
		{name: "symmetric-symmetric", a: l.sym1, b: l.sym2, relayed: true},
		{name: "symmetric-cone", a: l.sym1, b: l.cone1, relayed: true},
	}
	// All cases are measured at once, from the moment the nodes started.
	var wg sync.WaitGroup
	for _, r := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r.first, r.err = l.firstPacket(r.a, r.b); r.err != nil {
				return
			}
			if r.direct, r.err = l.waitPath(r.a, r.b, r.relayed, 45*time.Second); r.err == nil {
				_, _, r.remote, _ = l.path(r.a, r.b)
			}
		}()
	}
	wg.Wait()
	for _, r := range cases {
		t.Run(r.name, func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			// The path holds, and carries TCP and ICMP.
			if relayed, up, remote, err := l.path(r.a, r.b); err != nil || !up || relayed != r.relayed {
				t.Fatalf("path changed: relayed=%v up=%v remote=%s err=%v", relayed, up, remote, err)
			}
			l.traffic(t, r.a, r.b)
		})
	}

	t.Run("relay killed while direct", func(t *testing.T) {
		relayed, up, _, err := l.path(l.cone1, l.cone2)
		if err != nil || !up || relayed {
			t.Fatalf("cone1 -> cone2 not direct before the relay stops: relayed=%v up=%v err=%v", relayed, up, err)
		}
		echoServer(t, l.cone2, l.overlayP[l.cone2])
		if err := l.c.Boot.Stop(); err != nil {
			t.Logf("bootstrap stop: %v", err)
		}
		// Ten seconds of pings: none may be lost.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := l.cone1.Host.Run(ctx, "ping", "-c", "50", "-i", "0.2", "-W", "1", "-I", "cbnet0", l.overlayP[l.cone2].String())
		if err != nil || !strings.Contains(string(out), " 0% packet loss") {
			t.Fatalf("traffic disturbed after the relay died: %v: %s", err, out)
		}
		if err := echo(l.cone1, l.overlayP[l.cone1], l.overlayP[l.cone2]); err != nil {
			t.Fatal(err)
		}
	})

	var b strings.Builder
	fmt.Fprintf(&b, "\n| case | first packet (s after start) | direct path (s after start) | path of %s's stream |\n|---|---|---|---|\n", "a")
	for _, r := range cases {
		direct := "relayed (as expected)"
		if !r.relayed {
			direct = fmt.Sprintf("%.1f", r.direct.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s |\n", r.name, r.first.Seconds(), direct, r.remote)
	}
	t.Log(b.String())
}
