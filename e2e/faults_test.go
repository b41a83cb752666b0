//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/cluster"
)

// healBound is the CI bound on a heal: the issue asks for 10 s; the lab's
// 2 shared cores under a parallel test suite get some slack. The report
// (t.Log table, bench/healing.md) gives the real numbers.
// CBNODE_FAULTS_BOUND overrides it (measuring an older build's heals).
var healBound = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CBNODE_FAULTS_BOUND")); err == nil && d > 0 {
		return d
	}
	return 20 * time.Second
}()

// fault is one entry of the fault matrix: inject breaks something (and, for
// faults with a duration, mends it again: the heal is measured from the
// moment inject returns); a and b carry a TCP stream across the fault.
type fault struct {
	name   string
	a, b   *cluster.Node
	inject func(t *testing.T) time.Time // returns the moment the heal is measured from
	// extra, if set, is a further condition of the heal (reservations
	// back on the relay), measured from the same moment.
	extra func(since time.Time) (time.Duration, error)
	// noStream: the fault ends the stream's process (kill -9), so the
	// stream is not required to survive.
	noStream bool
	// cutOff is the member the fault cuts off from all others (its link
	// down, its process stopped): it must declare none of them dead —
	// they did not fail, it could not hear them.
	cutOff *cluster.Node
}

type faultResult struct {
	name          string
	heal, extra   time.Duration
	stream        string
	path          string
	slowest       string
	directLossPct string
}

// TestHealingFaultMatrix runs one NAT lab (public, cone, cone on identical
// LAN subnets, symmetric; the bootstrap relay on the public segment, the
// public members relaying for the others) through every fault of issue 17 in
// turn: after each, every ordered pair of members must ping over cbnet0
// again within healBound, and a TCP stream across the fault must carry data
// again on the same connection.
func TestHealingFaultMatrix(t *testing.T) {
	l := newNATLabLog(t, "info") // the heal: lines, without libp2p's debug noise
	if dir := os.Getenv("CBNODE_FAULTS_LOGDIR"); dir != "" {
		// Each node's log tail, for reading a heal's "heal:" lines.
		dir = filepath.Join(dir, l.started.UTC().Format("150405"))
		t.Cleanup(func() {
			_ = os.MkdirAll(dir, 0o755)
			for _, n := range append([]*cluster.Node{l.c.Boot}, l.c.Nodes...) {
				if n.Proc != nil {
					_ = os.WriteFile(filepath.Join(dir, n.Name+".log"), n.Proc.Output(), 0o644)
				}
			}
		})
	}
	l.waitIPs(t)
	if d, err := l.allPairs(time.Now(), 60*time.Second); err != nil {
		t.Fatalf("the lab never converged: %v", err)
	} else {
		t.Logf("every pair pings %s after the lab started", time.Since(l.started).Round(100*time.Millisecond))
		_ = d
	}
	for _, n := range l.c.Nodes {
		echoServer(t, n, l.overlayP[n])
	}
	// No relay is a single point of failure: every member without a
	// public address holds reservations on two relays at least (the
	// bootstrap relay and the public members').
	relaysStart := time.Now()
	for _, n := range []*cluster.Node{l.cone1, l.cone2, l.sym1, l.sym2} {
		for {
			st, err := n.Status(context.Background())
			if err == nil && st.Health != nil && len(st.Health.Relays) >= 2 {
				break
			}
			if time.Since(relaysStart) > healBound {
				t.Fatalf("%s holds reservations on fewer than 2 relays %s after the lab converged: %v", n.Name, healBound, st.Health)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("every NATed member holds 2+ relay reservations %s after the lab started", time.Since(l.started).Round(100*time.Millisecond))
	bootID := l.c.BootAddr[strings.LastIndex(l.c.BootAddr, "/")+1:]

	// relayedPairsOff waits until no member's stream to another rides the
	// bootstrap relay (they moved to a member relay or went direct).
	relayedOffBoot := func(since time.Time) (time.Duration, error) {
		deadline := time.Now().Add(healBound)
		for {
			on := l.onRelay(bootID)
			if len(on) == 0 {
				return time.Since(since), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("streams still on the dead relay: %v", on)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	reservedOnBoot := func(since time.Time) (time.Duration, error) {
		deadline := time.Now().Add(healBound)
		for {
			var missing []string
			for _, n := range l.c.Nodes {
				st, err := n.Status(context.Background())
				if err != nil || st.Health == nil || !slices.Contains(st.Health.Relays, bootID) || !bootConnected(st, bootID) || st.Health.RoutingTable == 0 {
					missing = append(missing, n.Name)
				}
			}
			if len(missing) == 0 {
				return time.Since(since), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("no reservation on, connection to or DHT route to the restarted bootstrap relay: %v", missing)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	faults := []fault{
		{name: "relay killed", a: l.sym1, b: l.sym2, extra: relayedOffBoot, inject: func(t *testing.T) time.Time {
			if err := l.c.Boot.Stop(); err != nil {
				t.Logf("bootstrap stop: %v", err)
			}
			return time.Now()
		}},
		{name: "relay (bootstrap) restarted", a: l.sym1, b: l.cone1, extra: reservedOnBoot, inject: func(t *testing.T) time.Time {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := l.c.StartBootstrap(ctx, l.c.Boot); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}},
		{name: "address change, public host", a: l.cone1, b: l.pub2, inject: func(t *testing.T) time.Time {
			return l.moveAddr(t, l.pub2, "wan", wanNet, 112, netip.Addr{})
		}},
		{name: "address change, NATed host (new LAN address)", a: l.pub1, b: l.cone2, inject: func(t *testing.T) time.Time {
			return l.moveAddr(t, l.cone2, "lcone2", lanSame, 110, lanSame.Addr().Next())
		}},
		{name: "kill -9 and restart", a: l.pub1, b: l.cone1, noStream: true, inject: func(t *testing.T) time.Time {
			if err := l.cone1.Proc.Kill(); err != nil {
				t.Fatal(err)
			}
			if err := l.c.Start(l.cone1); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}},
		{name: "SIGSTOP 40 s, SIGCONT", a: l.cone2, b: l.sym2, cutOff: l.sym2, inject: func(t *testing.T) time.Time {
			l.sym2.Proc.Signal(syscall.SIGSTOP)
			time.Sleep(40 * time.Second)
			l.sym2.Proc.Signal(syscall.SIGCONT)
			return time.Now()
		}},
		{name: "link down 5 s, up", a: l.sym1, b: l.pub1, cutOff: l.pub1, inject: func(t *testing.T) time.Time {
			ctx := context.Background()
			if out, err := l.pub1.Host.Run(ctx, "ip", "link", "set", "wan", "down"); err != nil {
				t.Fatalf("link down: %v: %s", err, out)
			}
			time.Sleep(5 * time.Second)
			if out, err := l.pub1.Host.Run(ctx, "ip", "link", "set", "wan", "up"); err != nil {
				t.Fatalf("link up: %v: %s", err, out)
			}
			return time.Now()
		}},
	}
	var results []faultResult
	for _, f := range faults {
		ok := t.Run(f.name, func(t *testing.T) {
			r := faultResult{name: f.name, stream: "-", directLossPct: "-"}
			defer func() { results = append(results, r) }()
			s, err := openStream(f.a, l.overlayP[f.a], l.overlayP[f.b])
			if err != nil {
				t.Errorf("TCP stream before the fault: %v", err)
			} else {
				defer s.close()
			}
			var direct chan string
			if f.name == "relay killed" {
				// A direct pair must not notice the relay dying.
				if _, err := l.waitPath(l.cone1, l.pub1, false, healBound); err != nil {
					t.Fatalf("cone1 - pub1 before the relay dies: %v", err)
				}
				direct = make(chan string, 1)
				go func() {
					out, _ := l.cone1.Host.Run(context.Background(), "ping", "-c", "40", "-i", "0.25", "-W", "2", "-I", "cbnet0", l.overlayP[l.pub1].String())
					direct <- string(out)
				}()
			}
			var cutID string
			var cutMark int
			if f.cutOff != nil {
				st, err := f.cutOff.Status(context.Background())
				if err != nil {
					t.Fatalf("status of %s: %v", f.cutOff.Name, err)
				}
				cutID, cutMark = st.PeerID, len(f.cutOff.Proc.Output())
			}
			since := f.inject(t)
			var extraErr error
			var wg sync.WaitGroup
			if f.extra != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.extra, extraErr = f.extra(since)
				}()
			}
			heal, slowest, err := l.allPairsSlowest(since, healBound)
			r.heal, r.slowest = heal, slowest
			wg.Wait()
			if err != nil {
				t.Errorf("not healed within %s: %v", healBound, err)
			}
			if extraErr != nil {
				t.Errorf("%v", extraErr)
			}
			if f.cutOff != nil {
				// Its own confirmations log "member lost ... detector=<it>".
				var lost []string
				for _, line := range strings.Split(string(f.cutOff.Proc.Output()[cutMark:]), "\n") {
					if strings.Contains(line, "member lost: it answered no probes") && strings.Contains(line, "detector="+cutID) {
						lost = append(lost, line)
					}
				}
				if len(lost) > 0 {
					t.Errorf("%s, cut off, declared %d live members dead:\n%s", f.cutOff.Name, len(lost), strings.Join(lost, "\n"))
				}
			}
			if _, _, remote, err := l.path(f.a, f.b); err == nil {
				r.path = remote
			}
			if s == nil {
				r.stream = "not opened"
			} else if resumed, err := s.resumedAfter(since, 45*time.Second); err != nil {
				if f.noStream {
					r.stream = "ended (process killed)"
				} else {
					t.Errorf("TCP stream %s -> %s across the fault: %v", f.a.Name, f.b.Name, err)
					r.stream = "broken"
				}
			} else {
				r.stream = fmt.Sprintf("%.1f", resumed.Seconds())
			}
			if direct != nil {
				out := <-direct
				r.directLossPct = lossOf(out)
				if !strings.Contains(out, " 0% packet loss") {
					t.Errorf("direct pair cone1 -> pub1 disturbed by the relay dying: %s", out)
				}
			}
			t.Logf("%s: every pair pings %.1f s after; slowest %s; stream resumed %s s after; %s -> %s rides %s",
				f.name, heal.Seconds(), slowest, r.stream, f.a.Name, f.b.Name, r.path)
		})
		if !ok && t.Failed() && os.Getenv("CBNODE_FAULTS_ALL") == "" {
			// Later faults assume the earlier ones healed.
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| fault | every pair pings again (s) | slowest pair | extra (s) | TCP stream resumed (s) | direct pair loss |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.1f | %s | %.1f | %s | %s |\n", r.name, r.heal.Seconds(), r.slowest, r.extra.Seconds(), r.stream, r.directLossPct)
	}
	t.Log(b.String())
}

func lossOf(pingOut string) string {
	for _, f := range strings.Split(pingOut, ",") {
		if strings.Contains(f, "packet loss") {
			return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "packet loss"))
		}
	}
	return "?"
}

// bootConnected reports whether st's node is connected to bootstrap node id.
func bootConnected(st api.Status, id string) bool {
	if st.Health == nil {
		return false
	}
	for _, b := range st.Health.Bootstrap {
		if b.ID == id {
			return b.Connected
		}
	}
	return false
}

// moveAddr gives n's device dev the idx-th address of p in place of its
// current one (a renumbered VM) and, if gw is valid, restores its default
// route; it returns when the old address is gone.
func (l *natLab) moveAddr(t *testing.T, n *cluster.Node, dev string, p netip.Prefix, idx int, gw netip.Addr) time.Time {
	t.Helper()
	a := p.Addr().As4()
	a[3] = byte(idx)
	fresh := netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
	if err := n.Host.AddAddr(dev, fresh); err != nil {
		t.Fatal(err)
	}
	if err := n.Host.DelAddr(dev, n.Underlay); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	n.Underlay = fresh
	if gw.IsValid() {
		if err := n.Host.SetDefaultRoute(gw); err != nil {
			t.Logf("default route: %v", err)
		}
	}
	return at
}

// onRelay lists the member pairs whose stream rides the relay relayID.
func (l *natLab) onRelay(relayID string) []string {
	var out []string
	for _, n := range l.c.Nodes {
		peers, err := n.Peers(context.Background())
		if err != nil {
			out = append(out, n.Name+": "+err.Error())
			continue
		}
		for _, p := range peers {
			if p.Link == nil || !p.Link.StreamUp {
				continue
			}
			if p.Link.Path.Relayed && strings.Contains(p.Link.Path.Remote, relayID) {
				out = append(out, n.Name+"->"+p.HostName)
			}
		}
	}
	return out
}

// allPairs waits until every ordered pair of members pings over cbnet0.
func (l *natLab) allPairs(since time.Time, within time.Duration) (time.Duration, error) {
	d, _, err := l.allPairsSlowest(since, within)
	return d, err
}

// allPairsSlowest pings every ordered pair of members over cbnet0 until each
// got an echo (all pairs at once) and returns the time from since to the
// last pair's first echo, and that pair.
func (l *natLab) allPairsSlowest(since time.Time, within time.Duration) (time.Duration, string, error) {
	deadline := time.Now().Add(within)
	type res struct {
		pair string
		at   time.Time
		err  error
	}
	var mu sync.Mutex
	var all []res
	var wg sync.WaitGroup
	for _, a := range l.c.Nodes {
		for _, b := range l.c.Nodes {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := res{pair: a.Name + "->" + b.Name}
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					out, err := a.Host.Run(ctx, "ping", "-c", "1", "-W", "1", "-I", "cbnet0", l.overlayP[b].String())
					cancel()
					if err == nil {
						r.at = time.Now()
						break
					}
					if time.Now().After(deadline) {
						_ = out
						r.err = fmt.Errorf("%s", r.pair)
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				mu.Lock()
				all = append(all, r)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	var errs []string
	var slowest res
	for _, r := range all {
		if r.err != nil {
			errs = append(errs, r.err.Error())
			continue
		}
		if r.at.After(slowest.at) {
			slowest = r
		}
	}
	if len(errs) > 0 {
		slices.Sort(errs)
		return within, fmt.Sprintf("%d pairs failed", len(errs)), fmt.Errorf("%d of %d pairs do not ping: %s", len(errs), len(all), strings.Join(errs, "; "))
	}
	return max(slowest.at.Sub(since), 0), slowest.pair, nil
}

// stream is a TCP connection over cbnet0 carrying a numbered line every
// 200 ms, echoed back by the peer's echoServer.
type stream struct {
	conn   net.Conn
	mu     sync.Mutex
	last   time.Time // last echo received
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func openStream(n *cluster.Node, src, dst netip.Addr) (*stream, error) {
	var conn net.Conn
	err := n.Host.Exec(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, 7777).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", dst, n.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{conn: conn, cancel: cancel, done: make(chan struct{}), last: time.Now()}
	go func() {
		defer close(s.done)
		r := bufio.NewReader(conn)
		want := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if ctx.Err() == nil {
					s.setErr(err)
				}
				return
			}
			if line != fmt.Sprintf("%d\n", want) {
				s.setErr(fmt.Errorf("echo %q, want %d: data lost or reordered", line, want))
				return
			}
			want++
			s.mu.Lock()
			s.last = time.Now()
			s.mu.Unlock()
		}
	}()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			if _, err := fmt.Fprintf(conn, "%d\n", i); err != nil {
				if ctx.Err() == nil {
					s.setErr(err)
				}
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return s, nil
}

func (s *stream) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// resumedAfter waits until an echo arrives after since (on the same
// connection) and returns when, relative to since.
func (s *stream) resumedAfter(since time.Time, within time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(within)
	for {
		s.mu.Lock()
		last, err := s.last, s.err
		s.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if last.After(since) {
			return last.Sub(since), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no echo within %s", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stream) close() {
	s.cancel()
	s.conn.Close()
	<-s.done
}
