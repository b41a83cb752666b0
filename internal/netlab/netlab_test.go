//go:build linux

package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testPrefix = "cbt"

func mustP(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func must[T any](t testing.TB) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// reach checks that from reaches to: with ping (up to 3 tries) when the
// ping binary exists, else with a TCP connection made inside from's
// namespace to a listener inside the namespace of toHost.
func reach(t *testing.T, from, toHost *Host, to netip.Addr) error {
	t.Helper()
	if _, err := exec.LookPath("ping"); err == nil {
		var err error
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = from.Run(ctx, "ping", "-c1", "-W1", to.String())
			cancel()
			if err == nil {
				return nil
			}
		}
		return err
	}
	return tcpExchange(from, toHost, to)
}

// tcpExchange listens inside toHost on to, dials from inside from and
// checks a message goes through. It returns the remote address the
// listener saw.
func tcpExchange(from, toHost *Host, to netip.Addr) error {
	_, err := tcpExchangeAddr(from, toHost, to)
	return err
}

func tcpExchangeAddr(from, toHost *Host, to netip.Addr) (netip.AddrPort, error) {
	var ln net.Listener
	err := toHost.Exec(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(to, 0).String())
		return err
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer ln.Close()
	type res struct {
		remote netip.AddrPort
		msg    string
		err    error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		ch <- res{remote: c.RemoteAddr().(*net.TCPAddr).AddrPort(), msg: string(b), err: err}
	}()
	err = from.Exec(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
		if err != nil {
			return err
		}
		_, err = c.Write([]byte("hello"))
		return errors.Join(err, c.Close())
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	select {
	case r := <-ch:
		if r.err == nil && r.msg != "hello" {
			r.err = fmt.Errorf("got %q, want hello", r.msg)
		}
		return netip.AddrPortFrom(r.remote.Addr().Unmap(), r.remote.Port()), r.err
	case <-time.After(5 * time.Second):
		return netip.AddrPort{}, errors.New("tcp exchange timed out")
	}
}

func nsList(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

func TestValidation(t *testing.T) {
	for _, p := range []string{"", "Cbt", "1cbt", "cbt-", "toolongpx"} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%q): want error", p)
		}
	}
	for _, n := range []string{"", "lo", "br0", "a/b", "a b", "abcdefghijklmnop"} {
		if err := validName(n); err == nil {
			t.Errorf("validName(%q): want error", n)
		}
	}
	for _, n := range []string{"a", "wan", "host-1", "abcdefghijklmno"} {
		if err := validName(n); err != nil {
			t.Errorf("validName(%q): %v", n, err)
		}
	}
	for ns, want := range map[string]string{
		"cbt3f2a-h": "cbt3f2a", "cbt3f2a-": "", "cbt3f2ah": "", "cbt3g2a-h": "", "cbx3f2a-h": "", "cbt3f2a-wan": "cbt3f2a",
	} {
		id, ok := labIDOf(ns, "cbt")
		if id != want || ok != (want != "") {
			t.Errorf("labIDOf(%q) = %q, %v; want %q", ns, id, ok, want)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := string(b.Bytes()); got != "cdefghij" {
		t.Fatalf("got %q", got)
	}
	b.Write([]byte("0123456789"))
	if got := string(b.Bytes()); got != "23456789" {
		t.Fatalf("got %q", got)
	}
}

func TestSwitchTwoHosts(t *testing.T) {
	t.Parallel()
	lab := NewT(t, testPrefix)
	sw := must[*Switch](t)(lab.Switch("net", mustP("10.201.0.0/24")))
	a := must[*Host](t)(lab.Host("a"))
	b := must[*Host](t)(lab.Host("b"))
	ok(t, sw.Attach(a, sw.Addr(1)))
	ok(t, sw.Attach(b, sw.Addr(2)))

	if got := a.Addr(sw); got != mustP("10.201.0.1/24") {
		t.Fatalf("a.Addr = %v", got)
	}
	if err := sw.Attach(a, sw.Addr(3)); err == nil {
		t.Fatal("second Attach of a: want error")
	}
	if err := sw.Attach(b, mustP("10.202.0.1/24")); err == nil {
		t.Fatal("Attach outside the segment: want error")
	}
	if _, err := lab.Host("a"); err == nil {
		t.Fatal("duplicate host name: want error")
	}

	ok(t, reach(t, a, b, sw.Addr(2).Addr()))
	ok(t, reach(t, b, a, sw.Addr(1).Addr()))
	ok(t, tcpExchange(a, b, sw.Addr(2).Addr()))

	// Inside the namespace only lo and the switch's interface exist.
	var names []string
	ok(t, a.Exec(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	}))
	slices.Sort(names)
	if !slices.Equal(names, []string{"lo", "net"}) {
		t.Fatalf("interfaces in %s: %v", a.Namespace(), names)
	}
	ctx := context.Background()
	out := must[[]byte](t)(a.Run(ctx, "cat", "/proc/sys/net/ipv4/conf/all/promote_secondaries"))
	if strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("promote_secondaries = %q", out)
	}
}

func TestAddrChange(t *testing.T) {
	t.Parallel()
	lab := NewT(t, testPrefix)
	sw := must[*Switch](t)(lab.Switch("net", mustP("10.203.0.0/24")))
	a := must[*Host](t)(lab.Host("a"))
	b := must[*Host](t)(lab.Host("b"))
	ok(t, sw.Attach(a, sw.Addr(1)))
	ok(t, sw.Attach(b, sw.Addr(2)))

	// Simulate a VM whose underlay address changes from .2 to .20.
	ok(t, b.AddAddr("net", sw.Addr(20)))
	ok(t, b.DelAddr("net", sw.Addr(2)))
	got := must[[]netip.Prefix](t)(b.Addrs("net"))
	if !slices.Equal(got, []netip.Prefix{sw.Addr(20)}) {
		t.Fatalf("addresses after change: %v", got)
	}
	ok(t, reach(t, a, b, sw.Addr(20).Addr()))
	if err := b.DelAddr("net", sw.Addr(2)); err == nil {
		t.Fatal("deleting a missing address: want error")
	}
	if err := b.AddAddr("nosuchdev", sw.Addr(3)); err == nil || !strings.Contains(err.Error(), b.Namespace()) {
		t.Fatalf("AddAddr on a missing device: %v", err)
	}
}

func TestRunAndProcs(t *testing.T) {
	t.Parallel()
	lab := NewT(t, testPrefix)
	h := must[*Host](t)(lab.Host("h"))
	ctx := context.Background()

	out, err := h.Run(ctx, "sh", "-c", "echo oops; exit 2")
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 2 ||
		!strings.Contains(err.Error(), h.Namespace()) || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("Run failure: out %q, err %v", out, err)
	}

	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start := time.Now()
	_, err = h.Run(cctx, "sh", "-c", "sleep 30 & sleep 30")
	cancel()
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Run with expiring context: %v after %v", err, time.Since(start))
	}

	p := must[*Proc](t)(h.Start("sh", "-c", "echo hello; echo err >&2; exec sleep 300"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(p.Output()), "err") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if o := string(p.Output()); !strings.Contains(o, "hello") || !strings.Contains(o, "err") {
		t.Fatalf("output %q", o)
	}
	err = p.Stop()
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Stop: %v", err)
	}

	p = must[*Proc](t)(h.Start("sh", "-c", "exit 3"))
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Wait: %v", err)
	}
	if err := p.Stop(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("Stop after exit: %v", err)
	}

	p = must[*Proc](t)(h.Start("sleep", "300"))
	ok(t, p.Kill())
	if !p.Exited() {
		t.Fatal("Kill: still running")
	}

	// A process ignoring SIGTERM is killed after the grace period.
	p = must[*Proc](t)(h.Start("sh", "-c", "trap '' TERM; echo ready; sleep 300"))
	for !strings.Contains(string(p.Output()), "ready") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start = time.Now()
	err = p.Stop()
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Stop of a TERM-ignoring process: %v", err)
	}
	if d := time.Since(start); d < stopTimeout || d > stopTimeout+3*time.Second {
		t.Fatalf("Stop took %v", d)
	}

	if _, err := h.Start("/nonexistent/binary"); err != nil {
		// ip netns exec starts fine and fails later; either is acceptable.
		t.Logf("Start of a missing binary: %v", err)
	}

	if err := h.Exec(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Exec panic: %v", err)
	}
	want := errors.New("fn error")
	if err := h.Exec(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Exec error: %v", err)
	}
}

// natLab is a public server on a WAN switch and a client behind a router.
type natLab struct {
	lab      *Lab
	wan, lan *Switch
	srv, cli *Host
	r        *Router
}

func newNATLab(t *testing.T, kind NATKind) *natLab {
	t.Helper()
	if kind != NoNAT {
		RequireCommand(t, "iptables")
	}
	lab := NewT(t, testPrefix)
	n := &natLab{lab: lab}
	n.wan = must[*Switch](t)(lab.Switch("wan", mustP("198.51.100.0/24")))
	n.lan = must[*Switch](t)(lab.Switch("lan", mustP("192.168.77.0/24")))
	n.srv = must[*Host](t)(lab.Host("srv"))
	ok(t, n.wan.Attach(n.srv, n.wan.Addr(10)))
	n.r = must[*Router](t)(lab.Router("r", n.wan, n.wan.Addr(1), n.lan, n.lan.Addr(1), kind))
	n.cli = must[*Host](t)(lab.Host("cli"))
	ok(t, n.lan.Attach(n.cli, n.lan.Addr(2)))
	ok(t, n.cli.SetDefaultRoute(n.lan.Addr(1).Addr()))
	// The server could reach the LAN through the router if nothing stopped it.
	ok(t, n.srv.SetDefaultRoute(n.wan.Addr(1).Addr()))
	return n
}

func listenUDP(t *testing.T, h *Host, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ok(t, h.Exec(func() error {
		pc, err := net.ListenPacket("udp4", addr)
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	}))
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNATRouter(t *testing.T) {
	for _, kind := range []NATKind{Cone, Symmetric, NoNAT} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			n := newNATLab(t, kind)
			srvIP := n.wan.Addr(10).Addr()
			ok(t, reach(t, n.cli, n.srv, srvIP))

			// TCP: the server sees the router's WAN address (or the client's
			// own address without NAT).
			remote, err := tcpExchangeAddr(n.cli, n.srv, srvIP)
			ok(t, err)
			wantIP := n.r.WANAddr().Addr()
			if kind == NoNAT {
				wantIP = n.lan.Addr(2).Addr()
			}
			if remote.Addr() != wantIP {
				t.Fatalf("server saw %v, want %v", remote, wantIP)
			}

			// UDP from one client port to three server ports: mappings.
			cli := listenUDP(t, n.cli, "192.168.77.2:40000")
			var mapped []netip.AddrPort
			for i := range 3 {
				srv := listenUDP(t, n.srv, fmt.Sprintf("%s:%d", srvIP, 7000+i))
				_, err := cli.WriteToUDPAddrPort([]byte("ping"), netip.AddrPortFrom(srvIP, uint16(7000+i)))
				ok(t, err)
				buf := make([]byte, 64)
				_ = srv.SetReadDeadline(time.Now().Add(3 * time.Second))
				_, from, err := srv.ReadFromUDPAddrPort(buf)
				ok(t, err)
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				mapped = append(mapped, from)
				// The reply must find its way back through the NAT.
				_, err = srv.WriteToUDPAddrPort([]byte("pong"), from)
				ok(t, err)
				_ = cli.SetReadDeadline(time.Now().Add(3 * time.Second))
				nr, _, err := cli.ReadFromUDPAddrPort(buf)
				ok(t, err)
				if string(buf[:nr]) != "pong" {
					t.Fatalf("reply %q", buf[:nr])
				}
			}
			t.Logf("%s: client 192.168.77.2:40000 mapped to %v", kind, mapped)
			for _, m := range mapped {
				if m.Addr() != wantIP {
					t.Fatalf("mapped address %v, want %v", m, wantIP)
				}
			}
			distinct := len(slices.Compact(slices.Sorted(slices.Values([]uint16{mapped[0].Port(), mapped[1].Port(), mapped[2].Port()}))))
			switch kind {
			case Cone, NoNAT:
				for _, m := range mapped {
					if m.Port() != 40000 {
						t.Fatalf("%s: port not preserved: %v", kind, mapped)
					}
				}
			case Symmetric:
				if distinct < 2 {
					t.Fatalf("symmetric NAT reused one mapping for all destinations: %v", mapped)
				}
			}

			// Unsolicited packets from the WAN to the LAN address.
			probe := listenUDP(t, n.srv, fmt.Sprintf("%s:7100", srvIP))
			_, err = probe.WriteToUDPAddrPort([]byte("unsolicited"), netip.MustParseAddrPort("192.168.77.2:40000"))
			ok(t, err)
			buf := make([]byte, 64)
			_ = cli.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			nr, _, err := cli.ReadFromUDPAddrPort(buf)
			if kind == NoNAT {
				ok(t, err)
			} else if err == nil {
				t.Fatalf("%s: unsolicited packet %q reached the LAN", kind, buf[:nr])
			}
		})
	}
}

// TestRouterErrors is not parallel: it changes PATH.
func TestRouterErrors(t *testing.T) {
	lab := NewT(t, testPrefix)
	wan := must[*Switch](t)(lab.Switch("wan", mustP("198.51.100.0/24")))
	lan := must[*Switch](t)(lab.Switch("lan", mustP("192.168.77.0/24")))
	if _, err := lab.Router("r", wan, wan.Addr(1), wan, wan.Addr(2), Cone); err == nil {
		t.Fatal("same switch twice: want error")
	}
	if _, err := lab.Router("r", wan, wan.Addr(1), lan, lan.Addr(1), NATKind(9)); err == nil {
		t.Fatal("bad kind: want error")
	}
	t.Setenv("PATH", t.TempDir())
	_, err := lab.Router("r", wan, wan.Addr(1), lan, lan.Addr(1), Cone)
	if !errors.Is(err, ErrNoIptables) {
		t.Fatalf("without iptables: %v", err)
	}
}

func TestCloseCleansUp(t *testing.T) {
	t.Parallel()
	RequireRoot(t)
	lab, err := New(testPrefix)
	ok(t, err)
	t.Cleanup(func() { lab.Close() })
	if _, err := os.Stat(lab.ownerFile); err != nil {
		t.Fatal(err)
	}
	sw := must[*Switch](t)(lab.Switch("net", mustP("10.204.0.0/24")))
	h := must[*Host](t)(lab.Host("h"))
	ok(t, sw.Attach(h, sw.Addr(1)))
	if _, err := exec.LookPath("iptables"); err == nil {
		lan := must[*Switch](t)(lab.Switch("lan", mustP("10.205.0.0/24")))
		must[*Router](t)(lab.Router("r", sw, sw.Addr(254), lan, lan.Addr(1), Symmetric))
	}
	p1 := must[*Proc](t)(h.Start("sleep", "300"))
	p2 := must[*Proc](t)(h.Start("sh", "-c", "sleep 300 & wait"))
	// A grandchild that leaves the process group still dies with the lab.
	ctx := context.Background()
	must[[]byte](t)(h.Run(ctx, "sh", "-c", "setsid sleep 300 >/dev/null 2>&1 </dev/null &"))

	for _, ns := range lab.Namespaces() {
		if !strings.Contains(nsList(t), ns) {
			t.Fatalf("namespace %s missing from ip netns list", ns)
		}
	}
	start := time.Now()
	ok(t, lab.Close())
	t.Logf("Close took %v", time.Since(start))
	if l := nsList(t); strings.Contains(l, lab.ID()) {
		t.Fatalf("namespaces left after Close:\n%s", l)
	}
	if !p1.Exited() || !p2.Exited() {
		t.Fatal("processes still running after Close")
	}
	if _, err := os.Stat(lab.ownerFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("owner file: %v", err)
	}
	ok(t, lab.Close())
	if _, err := lab.Host("x"); err == nil {
		t.Fatal("Host after Close: want error")
	}
	if _, err := h.Run(ctx, "true"); err == nil {
		t.Fatal("Run after Close: want error")
	}
	if err := h.AddAddr("net", sw.Addr(2)); err == nil {
		t.Fatal("AddAddr after Close: want error")
	}
	if err := h.Exec(func() error { return nil }); err == nil {
		t.Fatal("Exec after Close: want error")
	}
}

func TestCleanupStale(t *testing.T) {
	t.Parallel()
	const prefix = "cbs"
	lab := NewT(t, prefix)
	must[*Host](t)(lab.Host("live"))

	// A namespace of a "crashed" run: no live owner, a process inside.
	var b [2]byte
	_, _ = rand.Read(b[:])
	stale := prefix + hex.EncodeToString(b[:]) + "-x"
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = deleteNamespace(stale) })
	ok(t, os.WriteFile(filepath.Join(ownerDir, stale[:len(prefix)+suffixLen]+".owner"), []byte("999999999 1\n"), 0o644))
	cmd := exec.Command("ip", "netns", "exec", stale, "sh", "-c", "echo ready; exec sleep 300")
	stdout, err := cmd.StdoutPipe()
	ok(t, err)
	ok(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Wait until the process runs inside the namespace.
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("process in the stale namespace: %q, %v", line, err)
	}

	ok(t, CleanupStale(prefix))
	l := nsList(t)
	if strings.Contains(l, stale) {
		t.Fatalf("stale namespace %s left:\n%s", stale, l)
	}
	if !strings.Contains(l, lab.ID()+"-live") {
		t.Fatalf("live lab's namespace removed:\n%s", l)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("process in the stale namespace still runs")
	}
	if _, err := os.Stat(filepath.Join(ownerDir, stale[:len(prefix)+suffixLen]+".owner")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale owner file: %v", err)
	}
}

// TestRootNamespaceUntouched checks that building a lab creates no
// interface in the test's own namespace and leaves its forwarding alone.
func TestRootNamespaceUntouched(t *testing.T) {
	RequireRoot(t)
	fwd := func() string {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		ok(t, err)
		return string(b)
	}
	ifnames := func() []string {
		ifs, err := net.Interfaces()
		ok(t, err)
		var names []string
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return names
	}
	fwdBefore := fwd()
	lab := NewT(t, testPrefix)
	wan := must[*Switch](t)(lab.Switch("rwan", mustP("198.51.100.0/24")))
	lan := must[*Switch](t)(lab.Switch("rlan", mustP("192.168.78.0/24")))
	h := must[*Host](t)(lab.Host("rhost"))
	ok(t, lan.Attach(h, lan.Addr(2)))
	must[*Router](t)(lab.Router("rrouter", wan, wan.Addr(1), lan, lan.Addr(1), NoNAT))
	for _, n := range ifnames() {
		if slices.Contains([]string{"rwan", "rlan", "rhost", "rrouter", bridgeName}, n) {
			t.Fatalf("lab interface %s appeared in the root namespace", n)
		}
	}
	if fwdAfter := fwd(); fwdAfter != fwdBefore {
		t.Fatalf("root ip_forward changed: %q -> %q", fwdBefore, fwdAfter)
	}
}

// TestNeighbourRoom: a lab of many hosts raises the kernel's (machine-wide)
// neighbour-table limits to room for 4 × nodes² entries — 50 hosts on one
// switch overflowed the default 1024 — and the last lab closed restores
// what it found.
func TestNeighbourRoom(t *testing.T) {
	RequireRoot(t)
	before, err := readNeigh()
	if err != nil {
		t.Skipf("no neighbour table limits here: %v", err)
	}
	lab, err := New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	const hosts = 20
	for i := range hosts {
		must[*Host](t)(lab.Host(fmt.Sprintf("h%d", i)))
	}
	during, err := readNeigh()
	if err != nil {
		t.Fatal(err)
	}
	if want := 4 * hosts * hosts; during[2] < want || during[1] > during[2] || during[0] > during[1] {
		t.Fatalf("limits with %d hosts: %v, want gc_thresh3 ≥ %d (and 1 ≤ 2 ≤ 3)", hosts, during, want)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := readNeigh()
	if err != nil {
		t.Fatal(err)
	}
	if owners, _ := filepath.Glob(filepath.Join(ownerDir, "*.owner")); len(owners) > 0 {
		t.Logf("other labs run (%d): the limits stay raised until the last closes: %v", len(owners), after)
		return
	}
	if before[2] < 4*hosts*hosts && after != before {
		t.Fatalf("limits after the last lab closed: %v, want %v back", after, before)
	}
}
