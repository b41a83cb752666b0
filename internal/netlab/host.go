//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is a network namespace of the lab: a machine with a loopback device
// and one interface per switch it is attached to (named after the switch).
type Host struct {
	n        *node
	attached map[string]netip.Prefix // switch name -> address given by Attach; guarded by lab.mu
}

// Host creates a new host (network namespace) with its loopback up.
func (l *Lab) Host(name string) (*Host, error) {
	l.mu.Lock()
	n, err := l.newNodeLocked(name)
	nodes := len(l.nodes)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	_ = roomForNeighbours(nodes) // best effort (neigh.go)
	h := &Host{n: n, attached: map[string]netip.Prefix{}}
	// Keep secondary addresses when the primary one is deleted (DelAddr
	// simulates a VM's underlay address change).
	for _, key := range []string{"net.ipv4.conf.all.promote_secondaries", "net.ipv4.conf.default.promote_secondaries"} {
		if err := n.setSysctl(key, "1"); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Name returns the host's name within the lab.
func (h *Host) Name() string { return h.n.name }

// Namespace returns the name of the host's network namespace, for use with
// "ip netns exec" and similar tools.
func (h *Host) Namespace() string { return h.n.ns }

// HostsFile returns the host's own hosts file, /etc/netns/<ns>/hosts,
// creating it (localhost only) if it does not exist. Commands run in the
// host (Run, Start) see it as /etc/hosts; the machine's /etc/hosts is never
// touched. It is deleted with the namespace.
func (h *Host) HostsFile() (string, error) {
	if err := h.n.checkOpen(); err != nil {
		return "", err
	}
	dir := filepath.Join(etcNetnsDir, h.n.ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("netns %s: hosts file: %w", h.n.ns, err)
	}
	path := filepath.Join(dir, "hosts")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("netns %s: hosts file: %w", h.n.ns, err)
	}
	_, err = f.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("netns %s: hosts file: %w", h.n.ns, err)
	}
	return path, nil
}

// Addr returns the address Attach gave the host on sw (the zero Prefix if
// the host is not attached to sw). The interface is named sw.Name().
func (h *Host) Addr(sw *Switch) netip.Prefix {
	h.n.lab.mu.RLock()
	defer h.n.lab.mu.RUnlock()
	return h.attached[sw.n.name]
}

// Run runs a command inside the host's namespace (ip netns exec) and returns
// its combined output. On failure the error names the namespace and command
// and includes the output. When ctx ends, the command's process group is
// killed.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return h.n.run(ctx, name, args...)
}

func (n *node) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if err := n.checkOpen(); err != nil {
		return nil, err
	}
	argv := append([]string{"netns", "exec", n.ns, name}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s: %w%s", n.ns, quoteArgs(name, args), err, outputSuffix(out))
	}
	return out, nil
}

// Start starts name with args in the background inside the host's
// namespace, its stdout and stderr captured (see Proc.Output). The process
// gets its own process group; Lab.Close stops it if it still runs.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	l := h.n.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errClosed
	}
	p := &Proc{
		ns:   h.n.ns,
		argv: quoteArgs(name, args),
		out:  &tailBuffer{max: maxOutput},
		done: make(chan struct{}),
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.n.ns, name}, args...)...)
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("netns %s: start %s: %w", h.n.ns, p.argv, err)
	}
	p.cmd = cmd
	l.procs[p] = struct{}{}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		l.mu.Lock()
		delete(l.procs, p)
		l.mu.Unlock()
	}()
	return p, nil
}

// Exec runs fn on a goroutine locked to an OS thread that has entered the
// host's namespace, and returns fn's error. Sockets (listeners, dialed
// connections) created inside fn stay in the namespace and may be used from
// any goroutine afterwards. Goroutines started by fn do NOT run in the
// namespace. fn must not call t.FailNow and friends; a panic in fn is
// returned as an error. The thread's original namespace is restored
// afterwards; if that fails, the thread is discarded.
func (h *Host) Exec(fn func() error) error { return h.n.exec(fn) }

func (n *node) exec(fn func() error) error {
	type result struct {
		err      error
		returned bool
		panicked bool
		pv       any
		stack    []byte
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		defer func() { ch <- r }()
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			r.err, r.returned = fmt.Errorf("netns %s: get current namespace: %w", n.ns, err), true
			return
		}
		defer orig.Close()
		n.lab.mu.RLock()
		if n.lab.closed {
			err = errClosed
		} else {
			err = netns.Set(n.h)
		}
		n.lab.mu.RUnlock()
		if err != nil {
			runtime.UnlockOSThread()
			r.err, r.returned = fmt.Errorf("netns %s: enter: %w", n.ns, err), true
			return
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				// Leave the thread locked: it is terminated when this
				// goroutine exits instead of running other goroutines
				// in the wrong namespace.
				r.err = errors.Join(r.err, fmt.Errorf("netns %s: restore namespace: %w", n.ns, err))
				return
			}
			runtime.UnlockOSThread()
		}()
		defer func() {
			if v := recover(); v != nil {
				r.panicked, r.pv, r.stack = true, v, debug.Stack()
			}
		}()
		r.err = fn()
		r.returned = true
	}()
	r := <-ch
	switch {
	case r.panicked:
		return fmt.Errorf("netns %s: panic in Exec: %v\n%s", n.ns, r.pv, r.stack)
	case !r.returned:
		return errors.Join(r.err, fmt.Errorf("netns %s: Exec function called runtime.Goexit (t.FailNow, t.Fatal and t.Skip must not be used inside Exec)", n.ns))
	}
	return r.err
}

// SetSysctl writes a sysctl of the host's namespace, e.g.
// SetSysctl("net.ipv4.ip_forward", "1").
func (h *Host) SetSysctl(key, value string) error { return h.n.setSysctl(key, value) }

func (n *node) setSysctl(key, value string) error {
	if key == "" || strings.Contains(key, "..") || strings.ContainsAny(key, "/ \t\n") {
		return fmt.Errorf("netns %s: invalid sysctl key %q", n.ns, key)
	}
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := n.exec(func() error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, werr := f.WriteString(value)
		return errors.Join(werr, f.Close())
	})
	if err != nil {
		return fmt.Errorf("netns %s: sysctl %s=%s: %w", n.ns, key, value, err)
	}
	return nil
}

// AddAddr adds address p (with its prefix length) to device dev. IPv6
// addresses skip duplicate address detection.
func (h *Host) AddAddr(dev string, p netip.Prefix) error {
	return h.n.withLink(dev, "add address "+p.String(), func(nl *netlink.Handle, link netlink.Link) error {
		a, err := nlAddr(p)
		if err != nil {
			return err
		}
		return nl.AddrAdd(link, a)
	})
}

// DelAddr removes address p from device dev.
func (h *Host) DelAddr(dev string, p netip.Prefix) error {
	return h.n.withLink(dev, "delete address "+p.String(), func(nl *netlink.Handle, link netlink.Link) error {
		a, err := nlAddr(p)
		if err != nil {
			return err
		}
		return nl.AddrDel(link, a)
	})
}

// Addrs lists the addresses of device dev, except IPv6 link-local ones.
func (h *Host) Addrs(dev string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := h.n.withLink(dev, "list addresses", func(nl *netlink.Handle, link netlink.Link) error {
		as, err := nl.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range as {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.Is6() && ip.IsLinkLocalUnicast() {
				continue
			}
			ones, _ := a.Mask.Size()
			out = append(out, netip.PrefixFrom(ip, ones))
		}
		return nil
	})
	return out, err
}

// SetDefaultRoute sets (replaces) the host's default route for gw's address
// family via gw, which must be reachable on an attached segment.
func (h *Host) SetDefaultRoute(gw netip.Addr) error {
	if !gw.IsValid() {
		return fmt.Errorf("netns %s: default route: invalid gateway", h.n.ns)
	}
	return h.n.withNL(func(nl *netlink.Handle) error {
		if err := nl.RouteReplace(&netlink.Route{Gw: net.IP(gw.Unmap().AsSlice())}); err != nil {
			return fmt.Errorf("netns %s: default route via %s: %w", h.n.ns, gw, err)
		}
		return nil
	})
}

var errClosed = errors.New("netlab: lab is closed")

func (n *node) checkOpen() error {
	n.lab.mu.RLock()
	defer n.lab.mu.RUnlock()
	if n.lab.closed {
		return errClosed
	}
	return nil
}

// withNL runs fn with the namespace's netlink handle, which stays valid (the
// lab cannot be closed) until fn returns. fn must not call lab methods.
func (n *node) withNL(fn func(nl *netlink.Handle) error) error {
	n.lab.mu.RLock()
	defer n.lab.mu.RUnlock()
	if n.lab.closed || n.nl == nil {
		return errClosed
	}
	return fn(n.nl)
}

func (n *node) withLink(dev, what string, fn func(nl *netlink.Handle, link netlink.Link) error) error {
	return n.withNL(func(nl *netlink.Handle) error {
		link, err := nl.LinkByName(dev)
		if err == nil {
			err = fn(nl, link)
		}
		if err != nil {
			return fmt.Errorf("netns %s: %s: %s: %w", n.ns, dev, what, err)
		}
		return nil
	})
}

// nlAddr converts p to a netlink address (IPv6 without DAD).
func nlAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("invalid prefix %v", p)
	}
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Unmap().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	ip := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	return &net.IPNet{IP: net.IP(ip.AsSlice()), Mask: net.CIDRMask(bits, ip.BitLen())}
}

func killGroup(pid int, sig syscall.Signal) error {
	if pid <= 0 {
		return nil
	}
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func quoteArgs(name string, args []string) string {
	parts := make([]string, 0, len(args)+1)
	for _, a := range append([]string{name}, args...) {
		if a == "" || strings.ContainsAny(a, " \t\n'\"") {
			a = fmt.Sprintf("%q", a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// outputSuffix formats command output for an error message (its tail if long).
func outputSuffix(out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return ""
	}
	const max = 2048
	if len(s) > max {
		s = "..." + s[len(s)-max:]
	}
	return ": " + s
}
