//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
)

// bench runs the phases and fills the report.
type bench struct {
	cfg config
	rep *report
}

// tput is one throughput test: all its runs.
type tput struct {
	path    string // "raw veth" or "cbnet0"
	overlay bool
	streams int
	runs    []iperfResult
}

// row is one lab variant of the 1-stream overlay test (transport, MTU).
type row struct {
	name      string
	mtu       int
	transport string
	forcedTCP bool
	rtt       rtt
	runs      []iperfResult
	load      load
}

// settle runs before every test: it lets the iperf3 server and TCP state
// settle for a second and then waits, at most -quiet-wait, until processes
// outside the lab used under a quarter of a core over one second, so that
// tests do not start in the middle of other work on the shared machine.
func (b *bench) settle(ctx context.Context, l *lab) error {
	deadline := time.Now().Add(b.cfg.quietWait)
	for {
		before := l.outsideCPU()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		var used time.Duration
		for pid, t := range l.outsideCPU() {
			used += t - before[pid]
		}
		if used < 250*time.Millisecond {
			return nil
		}
		if time.Now().After(deadline) {
			logf("machine still busy (outside the lab: %.0f%% of a core); testing anyway", 100*used.Seconds())
			return nil
		}
	}
}

// mainPhase: throughput over both paths, RTT, daemon load, transport, profile.
func (b *bench) mainPhase(ctx context.Context) error {
	logf("main lab: two members, default join flags")
	l, err := startLab(ctx, b.cfg.bin, nil, nil)
	if err != nil {
		return err
	}
	defer l.close()
	r := b.rep
	r.version, r.mainMTU = l.version, l.mtu
	raw := l.n2.Underlay.Addr()

	logf("ping n1 → n2: raw %s, overlay %s, %d rounds", raw, l.ip2, b.cfg.reps)
	for range b.cfg.reps {
		for _, x := range []struct {
			addr netip.Addr
			out  *[]rtt
		}{{raw, &r.rttRaw}, {l.ip2, &r.rttOverlay}} {
			res, err := ping(ctx, l.n1.Host, x.addr, 50)
			if err != nil {
				return err
			}
			*x.out = append(*x.out, res)
		}
	}

	tests := []*tput{
		{path: "raw veth", streams: 1}, {path: "raw veth", streams: 4},
		{path: "cbnet0", overlay: true, streams: 1}, {path: "cbnet0", overlay: true, streams: 4},
	}
	// Repetitions are interleaved so that slow drifts of the shared
	// machine hit every test alike.
	for rep := 1; rep <= b.cfg.reps; rep++ {
		for _, t := range tests {
			addr, port := raw, rawPort
			if t.overlay {
				addr, port = l.ip2, overlayPort
			}
			if err := b.settle(ctx, l); err != nil {
				return err
			}
			var res iperfResult
			run := func() (err error) {
				res, err = iperf(ctx, l.n1.Host, addr, port, t.streams, b.cfg.duration)
				return err
			}
			if t.overlay && t.streams == 1 {
				ld, err := l.measured(ctx, run)
				if err != nil {
					return err
				}
				r.load.add(ld)
			} else if err := run(); err != nil {
				return err
			}
			t.runs = append(t.runs, res)
			logf("rep %d/%d %-8s -P %d: %6.2f Gbit/s, %d retransmits", rep, b.cfg.reps, t.path, t.streams, res.gbps, res.retrans)
		}
	}
	r.tputs = tests

	ls, err := link(ctx, l.n1, l.n2)
	if err != nil {
		return err
	}
	r.path = ls.Path
	logf("packet stream n1 → n2: %s via %s", ls.Path.Transport, ls.Path.Remote)

	if b.cfg.perf {
		if err := b.settle(ctx, l); err != nil {
			return err
		}
		pr, err := runProfile(ctx, l, b.cfg.duration)
		if err != nil {
			return err
		}
		pr.name = "default (" + r.path.Transport + ")"
		r.profiles = append(r.profiles, pr)
	}
	return nil
}

// overlayRow runs reps 1-stream overlay tests in l and returns them as a row.
func (b *bench) overlayRow(ctx context.Context, l *lab, name string, reps int) (*row, error) {
	rw := &row{name: name, mtu: l.mtu}
	var err error
	if rw.rtt, err = ping(ctx, l.n1.Host, l.ip2, 50); err != nil {
		return nil, err
	}
	for i := 1; i <= reps; i++ {
		if err := b.settle(ctx, l); err != nil {
			return nil, err
		}
		var res iperfResult
		ld, err := l.measured(ctx, func() (err error) {
			res, err = iperf(ctx, l.n1.Host, l.ip2, overlayPort, 1, b.cfg.duration)
			return err
		})
		if err != nil {
			return nil, err
		}
		rw.runs = append(rw.runs, res)
		rw.load.add(ld)
		logf("%s rep %d/%d: %6.2f Gbit/s, %d retransmits", name, i, reps, res.gbps, res.retrans)
	}
	ls, err := link(ctx, l.n1, l.n2)
	if err != nil {
		return nil, err
	}
	rw.transport = ls.Path.Transport
	return rw, nil
}

// forceQUIC and forceTCP make libp2p use one transport between the
// members by dropping the other one on the underlay inside n1's and n2's
// namespaces (cbnode has no transport switch). They run before the members
// start. TCP to the bootstrap node stays open: it is the only way to it.
func forceQUIC(ctx context.Context) func(*lab) error {
	return func(l *lab) error {
		for _, p := range [][2]*cluster.Node{{l.n1, l.n2}, {l.n2, l.n1}} {
			if err := iptables(ctx, p[0], "-A", "OUTPUT", "-o", l.c.LAN.Name(), "-p", "tcp", "-d", p[1].Underlay.Addr().String(), "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	}
}

func forceTCP(ctx context.Context) func(*lab) error {
	return func(l *lab) error {
		for _, n := range []*cluster.Node{l.n1, l.n2} {
			if err := iptables(ctx, n, "-A", "OUTPUT", "-o", l.c.LAN.Name(), "-p", "udp", "-j", "DROP"); err != nil {
				return err
			}
		}
		return nil
	}
}

// variant runs reps 1-stream overlay tests in a fresh lab, then, with
// prof, a profiled extra test.
func (b *bench) variant(ctx context.Context, name string, joinArgs []string, setup func(*lab) error, reps int, prof bool) (*row, error) {
	logf("lab: %s", name)
	l, err := startLab(ctx, b.cfg.bin, joinArgs, setup)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer l.close()
	rw, err := b.overlayRow(ctx, l, name, reps)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if prof {
		if err := b.settle(ctx, l); err != nil {
			return nil, err
		}
		pr, err := runProfile(ctx, l, b.cfg.duration)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		pr.name = name
		b.rep.profiles = append(b.rep.profiles, pr)
	}
	return rw, nil
}

// transportPhase compares QUIC and TCP, each forced, at the default MTU.
func (b *bench) transportPhase(ctx context.Context) error {
	for _, m := range []struct {
		name  string
		setup func(*lab) error
		prof  bool // the default transport (QUIC) is profiled in the main lab
	}{
		{"QUIC forced (member↔member TCP dropped)", forceQUIC(ctx), false},
		{"TCP forced (UDP dropped)", forceTCP(ctx), b.cfg.perf},
	} {
		rw, err := b.variant(ctx, m.name, nil, m.setup, b.cfg.transReps, m.prof)
		if err != nil {
			return err
		}
		b.rep.transports = append(b.rep.transports, rw)
	}
	return nil
}

// mtuPhase runs the 1-stream overlay test in a fresh lab per cbnet0 MTU,
// with libp2p's own transport choice and, with -mtu-tcp, with TCP forced.
func (b *bench) mtuPhase(ctx context.Context) error {
	type mode struct {
		suffix string
		setup  func(*lab) error
	}
	modes := []mode{{"", nil}}
	if b.cfg.mtuTCP {
		modes = append(modes, mode{", TCP forced", forceTCP(ctx)})
	}
	for _, m := range modes {
		for _, mtu := range b.cfg.mtus {
			name := "MTU " + strconv.Itoa(mtu) + m.suffix
			rw, err := b.variant(ctx, name, []string{"--mtu", strconv.Itoa(mtu)}, m.setup, b.cfg.mtuReps, false)
			if err != nil {
				return err
			}
			if rw.mtu != mtu {
				rw.name = fmt.Sprintf("%s (cbnet0 has %d)", name, rw.mtu)
			}
			rw.forcedTCP = m.setup != nil
			rw.mtu = mtu
			b.rep.mtus = append(b.rep.mtus, rw)
		}
	}
	return nil
}

// profile is a system-wide CPU profile of one overlay test.
type profile struct {
	name       string
	seconds    int
	byComm     []string    // all samples by command
	daemons    []string    // the two daemons' share of all samples
	bySym      []string    // the daemons' hottest symbols
	components []component // the daemons' share including callees
}

// component is a function's inclusive share of the daemons' samples.
type component struct {
	label, fn string
	share     float64
}

// components are the functions whose inclusive share the profile reports
// (those not seen are left out, e.g. yamux when the stream rides QUIC).
var components = []struct{ label, fn string }{
	{"send: TUN reader loop", "forward.(*Engine).Run"},
	{"send: TUN read syscalls", "tun.(*Device).Read"},
	{"send: peer writer (batch → stream Write)", "forward.(*peerState).run"},
	{"receive: stream read loop", "forward.(*Engine).receive"},
	{"receive: TUN write syscalls (incl. inner TCP receive)", "tun.(*Device).Write"},
	{"QUIC connection loop (pack, encrypt, ACKs, stream data)", "quic-go.(*Conn).run"},
	{"QUIC UDP send (sendmsg, GSO)", "quic-go.(*sendQueue).Run"},
	{"QUIC UDP receive (recvmmsg)", "quic-go.(*Transport).listen"},
	{"yamux send loop", "yamux/v5.(*Session).send"},
	{"yamux receive loop", "yamux/v5.(*Session).recv"},
	{"AES-GCM encrypt", "gcm.gcmAesEnc.abi0"},
	{"AES-GCM decrypt", "gcm.gcmAesDec.abi0"},
	{"ChaCha20-Poly1305 seal (Noise)", "chacha20poly1305.chacha20Poly1305Seal.abi0"},
	{"ChaCha20-Poly1305 open (Noise)", "chacha20poly1305.chacha20Poly1305Open.abi0"},
	{"Go GC workers", "runtime.gcBgMarkWorker"},
	{"Go scheduler", "runtime.schedule"},
	{"memmove (self)", "runtime.memmove"},
}

// runProfile samples all CPUs with perf (cpu-clock) during the middle of an
// extra 1-stream overlay test. It only observes; the result is not part of
// the throughput numbers.
func runProfile(ctx context.Context, l *lab, d time.Duration) (*profile, error) {
	f, err := os.CreateTemp("", "cbdp-perf-*.data")
	if err != nil {
		return nil, fmt.Errorf("perf data file: %w", err)
	}
	data := f.Name()
	f.Close()
	defer os.Remove(data)
	defer os.Remove(data + ".old")

	secs := max(1, int(d/time.Second)-2)
	logf("profiling an extra overlay test: perf record -a for %ds", secs)
	done := make(chan error, 1)
	go func() {
		_, err := iperf(ctx, l.n1.Host, l.ip2, overlayPort, 1, d)
		done <- err
	}()
	time.Sleep(time.Second)
	rec := exec.CommandContext(ctx, "perf", "record", "-a", "-g", "-e", "cpu-clock", "-F", "999", "-o", data, "--", "sleep", strconv.Itoa(secs))
	out, recErr := rec.CombinedOutput()
	if err := <-done; err != nil {
		return nil, err
	}
	if recErr != nil {
		return nil, fmt.Errorf("perf record: %w: %s", recErr, out)
	}
	// Other labs on the machine may run cbnode too: select the daemons by pid.
	pids := fmt.Sprintf("%d,%d", l.pid1, l.pid2)
	p := &profile{seconds: secs}
	for _, q := range []struct {
		out  *[]string
		args []string
	}{
		{&p.byComm, []string{"--no-children", "--sort", "comm", "--percent-limit", "1"}},
		{&p.daemons, []string{"--no-children", "--pid", pids, "--sort", "comm"}},
		{&p.bySym, []string{"--no-children", "--pid", pids, "--percentage", "relative", "--sort", "dso,sym", "--percent-limit", "1"}},
	} {
		if *q.out, err = perfReport(ctx, data, q.args...); err != nil {
			return nil, err
		}
	}
	children, err := perfReport(ctx, data, "--children", "--pid", pids, "--percentage", "relative", "--sort", "sym", "--percent-limit", "0.3")
	if err != nil {
		return nil, err
	}
	for _, c := range components {
		for _, line := range children {
			// "  28.21%     0.09%  [.] github.com/quic-go/quic-go.(*Conn).run"
			f := strings.Fields(line)
			if len(f) < 4 || !strings.HasSuffix(f[len(f)-1], c.fn) {
				continue
			}
			if v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64); err == nil {
				p.components = append(p.components, component{c.label, c.fn, v})
			}
			break
		}
	}
	return p, nil
}

func perfReport(ctx context.Context, data string, args ...string) ([]string, error) {
	args = append([]string{"report", "-i", data, "--stdio", "-g", "none"}, args...)
	out, err := exec.CommandContext(ctx, "perf", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("perf %s: %w", strings.Join(args, " "), err)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			lines = append(lines, strings.TrimRight(line, " "))
		}
	}
	return lines, nil
}
