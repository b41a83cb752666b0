package names

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/cloud-barista/cbnode/overlay"
)

// liveMember is member() with a certificate valid around the real clock.
func liveMember(t *testing.T, host, ip string) overlay.Member {
	m := member(newPeer(t), host, ip)
	m.Ann.Cert.NotBefore, m.Ann.Cert.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	return m
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startService(t *testing.T, opts Options, prep func(*Service)) (*Service, *logBuf, func()) {
	t.Helper()
	var logs logBuf
	s := New(opts, testSpec, "cbnet0", slog.New(slog.NewTextHandler(&logs, nil)))
	s.present = func() bool { return false }
	if prep != nil {
		prep(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return s, &logs, stop
}

func resolve(t *testing.T, s *Service, name string) (string, int) {
	t.Helper()
	addr, ok := s.ServerAddr()
	if !ok {
		return "", -1
	}
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(query(name, dns.TypeA), addr.String())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(aOf(r), ","), r.Rcode
}

// TestServiceHosts: with the hosts file, names appear in the block and the
// DNS server as members come, leave it as they go, and the block goes away
// when the service stops.
func TestServiceHosts(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte(machineHosts), 0o644); err != nil {
		t.Fatal(err)
	}
	s, logs, stop := startService(t, Options{Mode: ModeHosts, HostsFile: hosts, Addr: netip.MustParseAddr("127.0.0.1")}, nil)
	read := func() string {
		b, _ := os.ReadFile(hosts)
		return string(b)
	}
	vm1, vm2 := liveMember(t, "vm1", "10.77.0.11"), liveMember(t, "vm2", "10.77.0.12")
	vm1.Self = true
	s.Update([]overlay.Member{vm1, vm2})
	// No address of our own yet: the others are out of reach, no block.
	waitUntil(t, "the DNS server", func() bool { _, ok := s.ServerAddr(); return ok })
	if got := read(); got != machineHosts {
		t.Errorf("hosts file changed before the node had an address:\n%s", got)
	}
	s.SetAddr(netip.MustParseAddr("10.77.0.11"))
	waitUntil(t, "vm2 in the hosts file", func() bool { return strings.Contains(read(), "10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n") })
	if !strings.HasPrefix(read(), machineHosts) {
		t.Errorf("the machine's lines were not kept:\n%s", read())
	}
	if ip, rc := resolve(t, s, "vm2.lab.cbnode."); ip != "10.77.0.12" {
		t.Errorf("DNS vm2.lab.cbnode. → %q (rcode %d)", ip, rc)
	}
	// vm2 is lost: it leaves the file and the server.
	s.Update([]overlay.Member{vm1})
	waitUntil(t, "vm2 out of the hosts file", func() bool { return !strings.Contains(read(), "vm2") })
	if _, rc := resolve(t, s, "vm2.lab.cbnode."); rc != dns.RcodeNameError {
		t.Errorf("DNS vm2 after it was lost: rcode %d, want NXDOMAIN", rc)
	}
	// Two members claim one name: neither resolves, and it is logged.
	s.Update([]overlay.Member{vm1, liveMember(t, "vm3", "10.77.0.13"), liveMember(t, "vm3", "10.77.0.14")})
	waitUntil(t, "the conflict logged", func() bool { return strings.Contains(logs.String(), "resolves to none of them") })
	if strings.Contains(read(), "vm3") {
		t.Errorf("a shared name is in the hosts file:\n%s", read())
	}
	stop()
	if got := read(); got != machineHosts {
		t.Errorf("hosts file after stop:\n%s", got)
	}
	if _, ok := s.ServerAddr(); ok {
		t.Error("the DNS server still listens after stop")
	}
	t.Logf("logs:\n%s", logs)
}

// TestServiceRebinds: the server follows the node's address.
func TestServiceRebinds(t *testing.T) {
	hosts := filepath.Join(t.TempDir(), "hosts")
	// Any free port: the addresses are loopback ones.
	s, _, _ := startService(t, Options{Mode: ModeServer, HostsFile: hosts}, func(s *Service) { s.opts.Port = 0 })
	s.Update([]overlay.Member{liveMember(t, "vm2", "10.77.0.12")})
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		s.SetAddr(netip.MustParseAddr(ip))
		waitUntil(t, "the server on "+ip, func() bool { a, ok := s.ServerAddr(); return ok && a.Addr().String() == ip })
		if got, _ := resolve(t, s, "vm2.cbnode."); got != "10.77.0.12" {
			t.Errorf("on %s: vm2.cbnode. → %q", ip, got)
		}
	}
	s.SetAddr(netip.Addr{})
	waitUntil(t, "the server to stop with the address", func() bool { _, ok := s.ServerAddr(); return !ok })
	if _, err := os.Stat(hosts); err == nil {
		t.Error("--dns server wrote the hosts file")
	}
}

// TestServiceResolved: with systemd-resolved, the link gets the server and
// the domains, and loses them on stop.
func TestServiceResolved(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeResolved} {
		t.Run(mode, func(t *testing.T) {
			hosts := filepath.Join(t.TempDir(), "hosts")
			var mu sync.Mutex
			var calls []string
			s := New(Options{Mode: mode, HostsFile: hosts, Addr: netip.MustParseAddr("127.0.0.1")}, testSpec, "cbnet0", quiet)
			s.present = func() bool { return true }
			s.res.run = func(_ context.Context, args ...string) error {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, strings.Join(args, " "))
				return nil
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			s.Update([]overlay.Member{liveMember(t, "vm2", "10.77.0.12")})
			s.SetAddr(netip.MustParseAddr("10.77.0.11"))
			waitUntil(t, "resolvectl", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) >= 3 })
			cancel()
			<-done
			mu.Lock()
			got := strings.Join(calls, "; ")
			mu.Unlock()
			if !strings.HasPrefix(got, "dns cbnet0 127.0.0.1:") || !strings.Contains(got, "; domain cbnet0 lab.cbnode ~cbnode; default-route cbnet0 false") ||
				!strings.HasSuffix(got, "; revert cbnet0") || strings.Count(got, "dns cbnet0") != 1 {
				t.Errorf("resolvectl calls: %s", got)
			}
			if _, err := os.Stat(hosts); err == nil {
				t.Error("wrote the hosts file although systemd-resolved is there")
			}
		})
	}
	// resolvectl installed but failing: auto falls back to the hosts file.
	hosts := filepath.Join(t.TempDir(), "hosts")
	s := New(Options{Mode: ModeAuto, HostsFile: hosts, Addr: netip.MustParseAddr("127.0.0.1")}, testSpec, "cbnet0", quiet)
	s.present = func() bool { return true }
	s.res.run = func(_ context.Context, args ...string) error {
		return fmt.Errorf("resolvectl %s: Failed to connect to bus", args[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	s.Update([]overlay.Member{liveMember(t, "vm2", "10.77.0.12")})
	s.SetAddr(netip.MustParseAddr("10.77.0.11"))
	waitUntil(t, "the hosts file", func() bool { b, _ := os.ReadFile(hosts); return strings.Contains(string(b), "vm2") })
}

func TestParseMode(t *testing.T) {
	for _, m := range Modes {
		if got, err := ParseMode(m); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %q, %v", m, got, err)
		}
	}
	if got, err := ParseMode(""); err != nil || got != ModeOff {
		t.Errorf(`ParseMode("") = %q, %v`, got, err)
	}
	if _, err := ParseMode("dnsmasq"); err == nil || !strings.Contains(err.Error(), "auto, resolved, hosts, server, off") {
		t.Errorf("ParseMode(dnsmasq): %v", err)
	}
	var none *Service
	none.Update(nil)
	none.SetAddr(netip.Addr{})
	none.Run(context.Background())
	if none.Table() != nil {
		t.Error("nil service has a table")
	}
}
