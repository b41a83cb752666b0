//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/internal/netlab"
)

// Peer overlays run in the same two namespaces as cbnode's n1 and n2 (the
// main lab), on their own overlay subnets, one at a time. Their binaries
// are built from the Go module proxy at pinned versions (see peerVersions)
// into -peers-dir; wireguard-go needs wg (Debian wireguard-tools) for keys
// and configuration.

// Pinned peer versions. Nebula v1.12.0 (the first release with TUN
// offloads, tun.use_offloads) cannot be built from the module proxy (it
// needs go >= 1.27.3 and dependencies the proxy refuses with 403), so the
// newest release that builds is used (v1.11.2 needs github.com/DefinedNet/netlink
// v1.3.2-dn.1, also refused).
const (
	wireguardModule = "golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446"
	nebulaVersion   = "v1.11.1"
)

// peerBinaries builds (or finds) wireguard-go, nebula and nebula-cert in dir.
func peerBinaries(ctx context.Context, dir string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bins := map[string]string{
		"wireguard-go": filepath.Join(dir, "wireguard"),
		"nebula":       filepath.Join(dir, "nebula"),
		"nebula-cert":  filepath.Join(dir, "nebula-cert"),
	}
	for _, m := range []struct{ bin, pkg string }{
		{"wireguard-go", wireguardModule},
		{"nebula", "github.com/slackhq/nebula/cmd/nebula@" + nebulaVersion},
		{"nebula-cert", "github.com/slackhq/nebula/cmd/nebula-cert@" + nebulaVersion},
	} {
		if _, err := os.Stat(bins[m.bin]); err == nil {
			continue
		}
		logf("building %s (go install %s)", m.bin, m.pkg)
		cmd := exec.CommandContext(ctx, "go", "install", m.pkg)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go install %s: %w: %s", m.pkg, err, out)
		}
	}
	if _, err := exec.LookPath("wg"); err != nil {
		return nil, fmt.Errorf("wg is needed for wireguard-go: %w (apt-get install --no-install-recommends wireguard-tools)", err)
	}
	return bins, nil
}

// peerRun is a running peer overlay between h1 and h2.
type peerRun struct {
	dst   netip.Addr // h2's overlay address
	procs [2]*netlab.Proc
	pids  [2]int
	stop  func()
}

// startWireGuard runs wireguard-go in h1 and h2 (interfaces cbwg1/cbwg2,
// 10.200.0.1/2, MTU 1420, the WireGuard default) over the underlay
// addresses u1, u2.
func startWireGuard(ctx context.Context, bin, dir string, h [2]*netlab.Host, u [2]netip.Addr) (*peerRun, error) {
	var keys, pubs [2]string
	for i := range 2 {
		k, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return nil, fmt.Errorf("wg genkey: %w", err)
		}
		keys[i] = strings.TrimSpace(string(k))
		c := exec.CommandContext(ctx, "wg", "pubkey")
		c.Stdin = strings.NewReader(keys[i])
		p, err := c.Output()
		if err != nil {
			return nil, fmt.Errorf("wg pubkey: %w", err)
		}
		pubs[i] = strings.TrimSpace(string(p))
	}
	r := &peerRun{dst: netip.MustParseAddr("10.200.0.2")}
	r.stop = func() {
		for _, p := range r.procs {
			if p != nil {
				_ = p.Stop()
			}
		}
	}
	for i := range 2 {
		dev := fmt.Sprintf("cbwg%d", i+1)
		p, err := h[i].Start(bin, "-f", dev)
		if err != nil {
			r.stop()
			return nil, err
		}
		r.procs[i] = p
		if err := waitLink(ctx, h[i], dev, p); err != nil {
			r.stop()
			return nil, err
		}
		kf := filepath.Join(dir, dev+".key")
		if err := os.WriteFile(kf, []byte(keys[i]+"\n"), 0o600); err != nil {
			r.stop()
			return nil, err
		}
		o := 1 - i
		for _, args := range [][]string{
			{"wg", "set", dev, "private-key", kf, "listen-port", "51820", "peer", pubs[o],
				"endpoint", netip.AddrPortFrom(u[o], 51820).String(), "allowed-ips", fmt.Sprintf("10.200.0.%d/32", o+1)},
			{"ip", "addr", "add", fmt.Sprintf("10.200.0.%d/24", i+1), "dev", dev},
			{"ip", "link", "set", dev, "mtu", "1420", "up"},
		} {
			if out, err := h[i].Run(ctx, args[0], args[1:]...); err != nil {
				r.stop()
				return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
			}
		}
		r.pids[i] = p.PID()
	}
	return r, nil
}

// startNebula runs nebula in h1 and h2 (interfaces cbneb1/cbneb2,
// 10.201.0.1/2, tun MTU 1420 like the others; no lighthouse: a static
// host map; firewall open for the test).
func startNebula(ctx context.Context, bins map[string]string, dir string, h [2]*netlab.Host, u [2]netip.Addr) (*peerRun, error) {
	cert := bins["nebula-cert"]
	ca := filepath.Join(dir, "ca")
	if out, err := exec.CommandContext(ctx, cert, "ca", "-name", "cbnode-bench", "-out-crt", ca+".crt", "-out-key", ca+".key").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nebula-cert ca: %w: %s", err, out)
	}
	r := &peerRun{dst: netip.MustParseAddr("10.201.0.2")}
	r.stop = func() {
		for _, p := range r.procs {
			if p != nil {
				_ = p.Stop()
			}
		}
	}
	for i := range 2 {
		name := fmt.Sprintf("n%d", i+1)
		base := filepath.Join(dir, name)
		if out, err := exec.CommandContext(ctx, cert, "sign", "-ca-crt", ca+".crt", "-ca-key", ca+".key", "-name", name,
			"-ip", fmt.Sprintf("10.201.0.%d/24", i+1), "-out-crt", base+".crt", "-out-key", base+".key").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("nebula-cert sign: %w: %s", err, out)
		}
		o := 1 - i
		cfg := fmt.Sprintf(`pki:
  ca: %s.crt
  cert: %s.crt
  key: %s.key
static_host_map:
  "10.201.0.%d": ["%s"]
lighthouse:
  am_lighthouse: false
listen:
  host: %s
  port: 4242
punchy:
  punch: false
tun:
  dev: cbneb%d
  mtu: 1420
logging:
  level: warning
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
`, ca, base, base, o+1, netip.AddrPortFrom(u[o], 4242), u[i], i+1)
		cf := base + ".yml"
		if err := os.WriteFile(cf, []byte(cfg), 0o600); err != nil {
			r.stop()
			return nil, err
		}
		p, err := h[i].Start(bins["nebula"], "-config", cf)
		if err != nil {
			r.stop()
			return nil, err
		}
		r.procs[i] = p
		if err := waitLink(ctx, h[i], fmt.Sprintf("cbneb%d", i+1), p); err != nil {
			r.stop()
			return nil, err
		}
		r.pids[i] = p.PID()
	}
	return r, nil
}

// waitLink waits until dev exists in h (the daemon created its TUN).
func waitLink(ctx context.Context, h *netlab.Host, dev string, p *netlab.Proc) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.Run(ctx, "ip", "link", "show", dev); err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited: %s", p, p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: no link %s after 15s: %s", p, dev, p.Output())
}

// waitPing waits until dst answers pings from h (handshakes done).
func waitPing(ctx context.Context, h *netlab.Host, dst netip.Addr) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := h.Run(ctx, "ping", "-c", "1", "-W", "1", dst.String()); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s does not answer pings after 20s", dst)
}

// pidOf resolves 'ip netns exec' wrappers to the daemon process named comm.
func pidOf(pid int, name string) int {
	for range 50 {
		if comm(pid) == name {
			return pid
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil && comm(c) == name {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return pid
}
