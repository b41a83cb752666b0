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
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
	"github.com/cloud-barista/cbnode/overlay/filter"
)

// TestPacketFilter: three members in namespaces, n1 in group admin. The
// owner pushes a filter: default deny, TCP 7777 and ICMP echo from group
// admin only. Then, over the real cbnet0 devices:
//   - n1 -> n2 TCP echo and ping work (allowed by group), and their answers
//     reach n1 although n1 denies by default too (connection tracking);
//   - n3 -> n2 TCP and ping fail (deny by default), counted on n2;
//   - n1 -> n2 TCP 7778 fails (no rule for that port), also for an admin;
//   - n2 -> n3 ping fails (the rules protect every member).
func TestPacketFilter(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbflt", Nodes: 3, Groups: map[string][]string{"n1": {"admin"}}})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	ip := ips(t, c)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	echoServer(t, n2, ip[n2])
	plainServer(t, n2, ip[n2], 7778)

	// Before: allow all within the CLADNet.
	if err := pingOK(n3, ip[n2], 2); err != nil {
		t.Fatalf("before the filter: %v", err)
	}
	if err := tcpEcho(n3, ip[n3], ip[n2], 7777); err != nil {
		t.Fatalf("before the filter: %v", err)
	}

	doc := `{"ruleType": "basic", "filter": {"default": "deny", "inbound": [
		{"name": "admin-echo", "from": ["group:admin"], "proto": "tcp", "ports": ["7777"]},
		{"name": "admin-ping", "from": ["group:admin"], "proto": "icmp", "icmpTypes": [8]}]}}`
	pushFilter(t, c, n1, doc)
	for _, n := range c.Nodes {
		waitFilter(t, n, func(f *filter.Stats) bool { return !f.AllowAll && len(f.Rules) == 2 })
	}

	// Allowed by group; the answers pass n1's default deny as replies.
	if err := tcpEcho(n1, ip[n1], ip[n2], 7777); err != nil {
		t.Fatalf("admin -> n2:7777: %v", err)
	}
	if err := pingOK(n1, ip[n2], 2); err != nil {
		t.Fatalf("admin ping: %v", err)
	}
	// Denied by default: no group, or no rule for the port.
	if err := tcpEcho(n3, ip[n3], ip[n2], 7777); err == nil {
		t.Fatal("n3 (no group) reached n2:7777 through a default-deny filter")
	}
	if err := pingOK(n3, ip[n2], 1); err == nil {
		t.Fatal("n3 (no group) pinged n2 through a default-deny filter")
	}
	if err := tcpEcho(n1, ip[n1], ip[n2], 7778); err == nil {
		t.Fatal("admin reached n2:7778, which no rule allows")
	}
	// The rules protect every member: n2 (no group) cannot ping n3 either.
	if err := pingOK(n2, ip[n3], 1); err == nil {
		t.Fatal("n2 (no group) pinged n3 through a default-deny filter")
	}

	f2 := filterOf(t, n2)
	t.Logf("n2 filter: %+v", *f2)
	if f2.Rules[0].Packets == 0 || f2.Rules[1].Packets == 0 {
		t.Errorf("n2 allow counters did not move: %+v", f2.Rules)
	}
	if f2.Denied == 0 || f2.DefaultPackets == 0 {
		t.Errorf("n2 counted no default-deny drops: %+v", *f2)
	}
	f1 := filterOf(t, n1)
	if f1.Established == 0 || f1.Denied != 0 {
		t.Errorf("n1: want answers accepted as established and nothing denied: %+v", *f1)
	}
	var peers api.Peers
	if err := n2.CLIJSON(context.Background(), &peers, "peers"); err != nil {
		t.Fatal(err)
	}
	st3, err := n3.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	filtered := uint64(0)
	for _, p := range peers.Peers {
		if p.HostID == st3.PeerID && p.Link != nil {
			filtered = p.Link.Drops["filtered"]
		}
	}
	if filtered == 0 {
		t.Errorf("n2 counted no drops.filtered against n3: %+v", peers.Peers)
	}
	out, err := n2.CLI(context.Background(), "networking-rule")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cbnode networking-rule on n2:\n%s", out)
}

// pushFilter signs a rules file with the owner key and pushes it on n.
func pushFilter(t *testing.T, c *cluster.Cluster, n *cluster.Node, rulesFile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	in := filepath.Join(c.Dir, "filter-in.json")
	if err := os.WriteFile(in, []byte(rulesFile), 0o644); err != nil {
		t.Fatal(err)
	}
	signed, err := n.Host.Run(ctx, bin, "cladnet", "rules", "lab", "--dir", c.CladnetDir(), "--file", in)
	if err != nil {
		t.Fatalf("sign rules: %v: %s", err, signed)
	}
	doc := filepath.Join(c.Dir, "filter-signed.json")
	if err := os.WriteFile(doc, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := n.CLI(ctx, "rules", "push", doc); err != nil {
		t.Fatalf("push rules: %v: %s", err, out)
	}
}

func filterOf(t *testing.T, n *cluster.Node) *filter.Stats {
	t.Helper()
	var nr api.NetworkingRule
	if err := n.CLIJSON(context.Background(), &nr, "networking-rule"); err != nil {
		t.Fatal(err)
	}
	if nr.Filter == nil {
		t.Fatalf("%s: networking-rule has no filter", n.Name)
	}
	return nr.Filter
}

func waitFilter(t *testing.T, n *cluster.Node, ok func(*filter.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if f := filterOf(t, n); ok(f) {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: filter not applied: %+v", n.Name, *f)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tcpEcho connects from src (inside n) to dst:port, sends a line and
// waits for it to come back, within 3 s.
func tcpEcho(n *cluster.Node, src, dst netip.Addr, port uint16) error {
	var conn net.Conn
	if err := n.Host.Exec(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, port).String())
		return err
	}); err != nil {
		return fmt.Errorf("%s -> %s:%d: %w", n.Name, dst, port, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("hello filter\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || line != "hello filter\n" {
		return fmt.Errorf("%s -> %s:%d: echo %q, %v", n.Name, dst, port, line, err)
	}
	return nil
}

// plainServer is an echo server on another port.
func plainServer(t *testing.T, n *cluster.Node, ip netip.Addr, port uint16) {
	t.Helper()
	var ln net.Listener
	if err := n.Host.Exec(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, port).String())
		return err
	}); err != nil {
		t.Fatal(err)
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
				line, err := bufio.NewReader(conn).ReadString('\n')
				if err == nil {
					_, _ = conn.Write([]byte(line))
				}
			}()
		}
	}()
}
