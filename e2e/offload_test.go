//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

// TestTUNOffloads runs four members at MTU 1420, n1 and n2 with TUN
// offloads (the default), n3 and n4 with --tun-offload=false, and checks
// ICMP and a bulk TCP transfer (content compared by hash) between every
// kind of pair: offloads on both ends (super-packets cross as one frame and
// are written back with a virtio-net header), off on both ends, and mixed
// (super-packets segmented in software by the plain receiver; plain
// packets written to the offload device).
func TestTUNOffloads(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbgso", Nodes: 4, LogLevel: "debug", JoinArgs: []string{"--mtu", "1420"}})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	for _, n := range c.Nodes[2:] {
		n.Args = append(n.Args, "--tun-offload=false")
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	addr := ips(t, c)
	n1, n2, n3, n4 := c.Nodes[0], c.Nodes[1], c.Nodes[2], c.Nodes[3]

	// The choice is logged at start.
	for _, tc := range []struct {
		n    *cluster.Node
		want string
	}{{n1, "on (IFF_VNET_HDR"}, {n3, "off"}} {
		if out := string(tc.n.Proc.Output()); !strings.Contains(out, "data plane device") || !strings.Contains(out, tc.want) {
			t.Errorf("%s: no 'data plane device' log line with offload %q:\n%s", tc.n.Name, tc.want, tail([]byte(out), 3000))
		}
	}

	for _, n := range c.Nodes {
		sinkServer(t, n, addr[n])
	}
	const size = 8 << 20
	for _, pair := range [][2]*cluster.Node{{n1, n2}, {n2, n1}, {n3, n4}, {n1, n3}, {n4, n2}} {
		from, to := pair[0], pair[1]
		if err := pingOK(from, addr[to], 3); err != nil {
			t.Error(err)
		}
		if err := bulk(from, addr[from], addr[to], size); err != nil {
			t.Errorf("%s → %s: %v", from.Name, to.Name, err)
		}
	}

	// Super-packets crossed whole where the sender has offloads, never
	// from a sender without them.
	gso := func(from, to *cluster.Node) forward.PeerStats {
		t.Helper()
		peers, err := from.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.HostName == to.Name {
				return linkStats(t, p.Link)
			}
		}
		t.Fatalf("%s does not list %s", from.Name, to.Name)
		return forward.PeerStats{}
	}
	for _, pair := range [][2]*cluster.Node{{n1, n2}, {n1, n3}, {n3, n1}, {n3, n4}} {
		st := gso(pair[0], pair[1])
		t.Logf("%s → %s: %d packets (%d super-packets) in %d writes; received %d (%d super-packets)",
			pair[0].Name, pair[1].Name, st.TxPackets, st.TxGSO, st.TxWrites, st.RxPackets, st.RxGSO)
	}
	if st := gso(n1, n2); st.TxGSO == 0 {
		t.Errorf("n1 → n2 (offloads on both ends): no super-packets sent: %+v", st)
	}
	if st := gso(n3, n1); st.RxGSO == 0 {
		t.Errorf("n1 → n3 (plain receiver): n3 received no super-packets to segment: %+v", st)
	}
	if st := gso(n4, n2); st.TxGSO != 0 {
		t.Errorf("n4 (offloads off) sent %d super-packets", st.TxGSO)
	}
	for _, n := range c.Nodes {
		peers, err := n.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range peers {
			if p.Self || p.Link == nil {
				continue
			}
			st := linkStats(t, p.Link)
			for _, r := range []string{"bad_header", "spoofed", "device_error", "bad_length"} {
				if st.Drops[r] != 0 {
					t.Errorf("%s's counters for %s: %d %s drops", n.Name, p.HostName, st.Drops[r], r)
				}
			}
		}
	}
}

// sinkServer listens on ip:7778 inside n's namespace; for each connection
// it reads everything and answers with the SHA-256 of what it read.
func sinkServer(t *testing.T, n *cluster.Node, ip netip.Addr) {
	t.Helper()
	var ln net.Listener
	if err := n.Host.Exec(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 7778).String())
		return err
	}); err != nil {
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
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				h := sha256.New()
				if _, err := io.Copy(h, conn); err != nil {
					return
				}
				conn.Write(h.Sum(nil))
			}()
		}
	}()
}

// bulk sends size random bytes from n (bound to src) to dst:7778 and
// compares the hash the sink answers with.
func bulk(n *cluster.Node, src, dst netip.Addr, size int) error {
	var conn net.Conn
	err := n.Host.Exec(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		conn, err = d.Dial("tcp", netip.AddrPortFrom(dst, 7778).String())
		return err
	})
	if err != nil {
		return fmt.Errorf("dial %s from %s: %w", dst, n.Name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	if _, err := conn.Write(data); err != nil {
		return fmt.Errorf("send %d bytes: %w", size, err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("read hash: %w", err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(got, want[:]) {
		return fmt.Errorf("received data differs (hash %x, want %x)", got, want)
	}
	return nil
}
