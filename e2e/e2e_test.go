//go:build linux

// Package e2e runs cbnode as real processes in network namespaces with real
// TUN devices: a bootstrap node and members on a switch.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if cluster.Check() != nil || testing.Short() {
			return m.Run() // tests skip (or fail under CI=true) themselves
		}
		dir, err := os.MkdirTemp("", "cbnode-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, _ := filepath.Abs("..")
		bin, err = cluster.Build(context.Background(), root, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func newCluster(t *testing.T, nodes int) *cluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbe2e", Nodes: nodes, LogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	return c
}

// newRouterLab makes an empty lab (CLADNet created, no hosts) for tests that
// build their own topology with NAT routers, removed when the test ends.
func newRouterLab(t *testing.T, o cluster.Options) *cluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	netlab.RequireCommand(t, "iptables")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.NewLab(ctx, bin, o)
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	return c
}

// cleanupLab removes the lab when the test ends, first printing the tail
// of each node's own log lines (libp2p's debug lines left out) if the test
// failed.
func cleanupLab(t *testing.T, c *cluster.Cluster) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range append([]*cluster.Node{c.Boot}, c.Nodes...) {
				if n != nil && n.Proc != nil {
					t.Logf("--- %s log (tail, without libp2p's debug lines):\n%s", n.Name, tail(ownLines(n.Proc.Output()), 3000))
				}
			}
		}
		if err := c.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// ownLines drops the debug lines of libp2p's loggers (logger=…) from a
// node's log: they drown cbnode's own lines in a failed test's output.
func ownLines(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if bytes.Contains(l, []byte(" level=DEBUG ")) && bytes.Contains(l, []byte(" logger=")) {
			continue
		}
		out = append(out, l...)
	}
	return out
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func converge(t *testing.T, c *cluster.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.WaitConverged(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("converged in %s", time.Since(start).Round(time.Millisecond))
}

func ips(t *testing.T, c *cluster.Cluster) map[*cluster.Node]netip.Addr {
	t.Helper()
	out := map[*cluster.Node]netip.Addr{}
	for _, n := range c.Nodes {
		ip, err := n.IP(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out[n] = ip
	}
	return out
}

// pingOK sends ICMP echo over cbnet0 from one node to an overlay address.
func pingOK(from *cluster.Node, to netip.Addr, count int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := from.Host.Run(ctx, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", "-I", "cbnet0", to.String())
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w: %s", to, from.Name, err, out)
	}
	return nil
}

// echoServer listens on ip:port inside n's namespace and echoes lines.
func echoServer(t *testing.T, n *cluster.Node, ip netip.Addr) net.Listener {
	t.Helper()
	var ln net.Listener
	err := n.Host.Exec(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 7777).String())
		return err
	})
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", ip, n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := conn.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln
}

// echo dials from n (bound to its overlay address) to dst:7777 and checks
// that a message comes back intact.
func echo(n *cluster.Node, src, dst netip.Addr) error {
	var conn net.Conn
	err := n.Host.Exec(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, 7777).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("dial %s from %s (%s): %w", dst, n.Name, src, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	msg := fmt.Sprintf("hello from %s to %s\n", src, dst)
	if _, err := conn.Write([]byte(msg)); err != nil {
		return err
	}
	got, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("echo from %s: %w", dst, err)
	}
	if got != msg {
		return fmt.Errorf("echo from %s: got %q, want %q", dst, got, msg)
	}
	return nil
}

func TestFullMeshICMPAndTCP(t *testing.T) {
	c := newCluster(t, 3)
	addr := ips(t, c)
	for _, n := range c.Nodes {
		echoServer(t, n, addr[n])
	}
	for _, from := range c.Nodes {
		for _, to := range c.Nodes {
			if from == to {
				continue
			}
			if err := pingOK(from, addr[to], 3); err != nil {
				t.Error(err)
			}
			if err := echo(from, addr[from], addr[to]); err != nil {
				t.Error(err)
			}
		}
	}
	// The data plane counted what it carried.
	peers, err := c.Nodes[0].Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.Self {
			continue
		}
		st := linkStats(t, p.Link)
		if st.TxPackets == 0 || st.RxPackets == 0 || !st.StreamUp {
			t.Errorf("n1's counters for %s show no traffic: %+v", p.HostName, st)
		}
		if st.Path.Relayed || st.Path.Remote == "" {
			t.Errorf("n1's path to %s: %+v, want direct", p.HostName, st.Path)
		}
	}
}

func TestRestartKeepsAddress(t *testing.T) {
	c := newCluster(t, 3)
	addr := ips(t, c)
	n := c.Nodes[2]
	before := addr[n]
	if err := n.Stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if err := c.Start(n); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	after, err := n.IP(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("%s came back with %s, had %s", n.Name, after, before)
	}
	for _, from := range c.Nodes[:2] {
		if err := pingOK(from, after, 3); err != nil {
			t.Error(err)
		}
	}
}

func TestUnderlayAddressChange(t *testing.T) {
	c := newCluster(t, 3)
	addr := ips(t, c)
	n := c.Nodes[0]
	if err := pingOK(c.Nodes[1], addr[n], 2); err != nil {
		t.Fatal(err)
	}
	// As after a cloud VM's suspend/resume: the old underlay address goes,
	// a new one comes, the process keeps running.
	newAddr := c.LAN.Addr(100)
	if err := n.Host.DelAddr("lan", n.Underlay); err != nil {
		t.Fatal(err)
	}
	if err := n.Host.AddAddr("lan", newAddr); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	deadline := changed.Add(10 * time.Second)
	// Every pair involving n, both directions, must carry traffic again.
	for _, other := range c.Nodes[1:] {
		for _, dir := range [][2]*cluster.Node{{other, n}, {n, other}} {
			var last error
			for time.Now().Before(deadline) {
				if last = pingOK(dir[0], addr[dir[1]], 1); last == nil {
					break
				}
			}
			if last != nil {
				t.Fatalf("no traffic %s -> %s 10 s after the underlay address changed: %v", dir[0].Name, dir[1].Name, last)
			}
			t.Logf("%s -> %s: traffic %s after the underlay address change", dir[0].Name, dir[1].Name, time.Since(changed).Round(time.Millisecond))
		}
	}
	if ip, err := n.IP(context.Background()); err != nil || ip != addr[n] {
		t.Errorf("overlay address after the change: %v %v, want %s", ip, err, addr[n])
	}
}

func TestSpoofedSourceDropped(t *testing.T) {
	c := newCluster(t, 2)
	addr := ips(t, c)
	forger, victim := c.Nodes[0], c.Nodes[1]
	// The forger adds an overlay address it never claimed and sends from it.
	spoof := netip.MustParsePrefix("10.77.0.254/32")
	if spoof.Addr() == addr[forger] || spoof.Addr() == addr[victim] {
		spoof = netip.MustParsePrefix("10.77.0.253/32")
	}
	if err := forger.Host.AddAddr("cbnet0", spoof); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := forger.Host.Run(ctx, "ping", "-c", "5", "-i", "0.2", "-W", "1", "-I", spoof.Addr().String(), addr[victim].String())
	if err == nil {
		t.Fatalf("spoofed pings were answered: %s", out)
	}
	if !regexp.MustCompile(`5 packets transmitted, 0 received`).Match(out) {
		t.Fatalf("unexpected ping output: %s", out)
	}
	peers, err := victim.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.HostName != forger.Name {
			continue
		}
		st := linkStats(t, p.Link)
		if st.Drops["spoofed"] < 5 {
			t.Fatalf("victim counted %d spoofed drops from the forger, want >= 5 (%+v)", st.Drops["spoofed"], st)
		}
		// Honest traffic from the same peer still flows.
		if err := pingOK(forger, addr[victim], 2); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("victim does not list the forger")
}

func linkStats(t *testing.T, link any) forward.PeerStats {
	t.Helper()
	var st forward.PeerStats
	if link == nil {
		t.Fatal("peer has no data-plane counters")
	}
	b, _ := jsonMarshal(link)
	if err := jsonUnmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
