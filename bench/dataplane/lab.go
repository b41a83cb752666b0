//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// labPrefix names the benchmark's namespaces (netlab adds a random suffix).
const labPrefix = "cbdp"

// Ports of the iperf3 servers in n2.
const (
	overlayPort = 5201
	rawPort     = 5202
)

// lab is a running two-member cluster with iperf3 servers in n2.
type lab struct {
	c        *cluster.Cluster
	n1, n2   *cluster.Node
	ip1, ip2 netip.Addr // overlay addresses
	pid1     int        // cbnode processes
	pid2     int
	version  string
	mtu      int             // cbnet0's MTU as the kernel reports it in n1
	nsLinks  map[string]bool // "net:[inode]" of the lab's namespaces
}

// startLab builds a cluster with extra join flags, runs setup (if any)
// before the members start, waits for convergence and starts iperf3
// servers in n2 on its overlay and underlay addresses.
func startLab(ctx context.Context, bin string, joinArgs []string, setup func(*lab) error) (_ *lab, err error) {
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: labPrefix, Nodes: 2, JoinArgs: joinArgs, LogLevel: "warn"})
	if err != nil {
		return nil, fmt.Errorf("build lab: %w", err)
	}
	l := &lab{c: c, n1: c.Nodes[0], n2: c.Nodes[1], nsLinks: map[string]bool{}}
	defer func() {
		if err != nil {
			l.dumpLogs()
			l.close()
		}
	}()
	for _, ns := range c.Lab.Namespaces() {
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
			return nil, fmt.Errorf("namespace %s: %w", ns, err)
		}
		l.nsLinks[fmt.Sprintf("net:[%d]", st.Ino)] = true
	}
	if setup != nil {
		if err := setup(l); err != nil {
			return nil, err
		}
	}
	if err := c.StartAll(); err != nil {
		return nil, fmt.Errorf("start members: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	err = c.WaitConverged(wctx)
	cancel()
	if err != nil {
		return nil, err
	}
	if l.ip1, err = l.n1.IP(ctx); err != nil {
		return nil, fmt.Errorf("n1 overlay address: %w", err)
	}
	if l.ip2, err = l.n2.IP(ctx); err != nil {
		return nil, fmt.Errorf("n2 overlay address: %w", err)
	}
	st, err := l.n1.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("n1 status: %w", err)
	}
	l.version = st.Version
	if l.pid1, err = daemonPID(l.n1); err != nil {
		return nil, err
	}
	if l.pid2, err = daemonPID(l.n2); err != nil {
		return nil, err
	}
	out, err := l.n1.Host.Run(ctx, "cat", "/sys/class/net/cbnet0/mtu")
	if err != nil {
		return nil, fmt.Errorf("n1 cbnet0 MTU: %w", err)
	}
	if l.mtu, err = strconv.Atoi(strings.TrimSpace(string(out))); err != nil {
		return nil, fmt.Errorf("n1 cbnet0 MTU %q: %w", out, err)
	}
	// Warm both paths up (ARP, packet stream) before anything is measured.
	for _, dst := range []netip.Addr{l.ip2, l.n2.Underlay.Addr()} {
		if _, err := l.n1.Host.Run(ctx, "ping", "-c", "3", "-i", "0.2", "-W", "2", dst.String()); err != nil {
			return nil, fmt.Errorf("warm-up ping: %w", err)
		}
	}
	for _, s := range []struct {
		addr netip.Addr
		port int
	}{{l.ip2, overlayPort}, {l.n2.Underlay.Addr(), rawPort}} {
		if err := startIperfServer(ctx, l.n2.Host, s.addr, s.port); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *lab) close() {
	if err := l.c.Close(); err != nil {
		logf("cleanup: %v", err)
	}
}

// dumpLogs prints the tail of every member's log (after a failure).
func (l *lab) dumpLogs() {
	for _, n := range l.c.Nodes {
		if n.Proc == nil {
			continue
		}
		out := n.Proc.Output()
		if len(out) > 4000 {
			out = out[len(out)-4000:]
		}
		fmt.Fprintf(os.Stderr, "--- %s log (tail):\n%s\n", n.Name, out)
	}
}

// daemonPID returns the pid of n's cbnode process. Proc.PID is the pid of
// 'ip netns exec', which normally execs cbnode in place; if it forked
// instead, the cbnode child is looked up.
func daemonPID(n *cluster.Node) (int, error) {
	pid := n.Proc.PID()
	for range 50 {
		if comm(pid) == "cbnode" {
			return pid, nil
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && comm(c) == "cbnode" {
				return c, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no cbnode process under pid %d (comm %q)", n.Name, pid, comm(pid))
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// linkStats is the part of forward.PeerStats ('cbnode peers --json',
// peers[i].link) the benchmark uses.
type linkStats struct {
	TxPackets  uint64            `json:"txPackets"`
	TxWrites   uint64            `json:"txWrites"`
	Drops      map[string]uint64 `json:"drops"`
	Reconnects uint64            `json:"reconnects"`
	StreamUp   bool              `json:"streamUp"`
	Path       pathInfo          `json:"path"`
}

// pathInfo mirrors forward.PathInfo.
type pathInfo struct {
	Relayed   bool   `json:"relayed"`
	Remote    string `json:"remote"`
	Transport string `json:"transport"`
}

func (s linkStats) dropTotal() uint64 {
	var t uint64
	for _, v := range s.Drops {
		t += v
	}
	return t
}

// link returns from's data-plane view of member to.
func link(ctx context.Context, from, to *cluster.Node) (linkStats, error) {
	peers, err := from.Peers(ctx)
	if err != nil {
		return linkStats{}, fmt.Errorf("%s: peers: %w", from.Name, err)
	}
	for _, p := range peers {
		if p.Self || p.HostName != to.Name {
			continue
		}
		var ls linkStats
		if p.Link == nil {
			return ls, fmt.Errorf("%s: no data-plane link to %s yet", from.Name, to.Name)
		}
		b, err := json.Marshal(p.Link)
		if err == nil {
			err = json.Unmarshal(b, &ls)
		}
		if err != nil {
			return ls, fmt.Errorf("%s: decode link to %s: %w", from.Name, to.Name, err)
		}
		return ls, nil
	}
	return linkStats{}, fmt.Errorf("%s does not list %s", from.Name, to.Name)
}

// iptables runs iptables args inside n's namespace.
func iptables(ctx context.Context, n *cluster.Node, args ...string) error {
	if _, err := n.Host.Run(ctx, "iptables", args...); err != nil {
		return fmt.Errorf("%s: iptables: %w", n.Name, err)
	}
	return nil
}

// startIperfServer starts 'iperf3 -s' bound to addr:port in h and waits
// until it listens. The lab stops it on Close.
func startIperfServer(ctx context.Context, h *netlab.Host, addr netip.Addr, port int) error {
	p, err := h.Start("iperf3", "-s", "-B", addr.String(), "-p", strconv.Itoa(port), "--forceflush")
	if err != nil {
		return fmt.Errorf("start iperf3 server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(string(p.Output()), "Server listening") {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("iperf3 server on %s:%d exited: %s", addr, port, p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("iperf3 server on %s:%d not listening after 10s: %s", addr, port, p.Output())
}
