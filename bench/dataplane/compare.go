//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloud-barista/cbnode/internal/netlab"
)

// The comparison phase: raw veth, wireguard-go, Nebula and cbnode variants
// measured in one pass, the peers in the same two namespaces as cbnode's
// default lab, each with the same tests.

// sysResult is everything measured for one system.
type sysResult struct {
	name, note string
	peer       bool // a peer overlay (wireguard-go, Nebula), not cbnode or raw
	raw        bool
	mtu        int
	p1, p4     []iperfResult
	ping       []float64  // per-packet RTTs, ms
	cpuP1      [2]float64 // daemons' CPU during the 1-stream tests, % of a core
	cpuPerGB   float64    // CPU-seconds of both daemons per GB at -b 1G
	gbAt1G     float64    // Gbit/s reached at -b 1G
	sys        [2]sysCalls
	hwm        [2]uint64 // peak RSS (VmHWM), bytes
	foreign    float64   // CPU of processes outside the lab during the tests, % of a core
}

// sysCalls counts one daemon's system calls during the -b 1G test.
type sysCalls struct {
	total, reads, writes, futex, epoll uint64
	mb                                 float64 // MB moved in that test (received by iperf3)
}

func (s sysCalls) perMB(n uint64) float64 {
	if s.mb == 0 {
		return 0
	}
	return float64(n) / s.mb
}

// target is a system under test: n1 → dst in two namespaces.
type target struct {
	h1, h2 *netlab.Host
	dst    netip.Addr
	port   int
	pids   [2]int // daemons (0: none, raw)
}

// measureSystem runs the comparison tests against t.
func (b *bench) measureSystem(ctx context.Context, l *lab, t target, res *sysResult) error {
	reps := b.cfg.reps
	// Ping first, idle: 300 at 10 ms.
	rtts, err := pingAll(ctx, t.h1, t.dst, b.cfg.pings)
	if err != nil {
		return fmt.Errorf("%s: %w", res.name, err)
	}
	res.ping = rtts
	var cpu [2]time.Duration
	var wall time.Duration
	others0 := l.outsideCPU()
	start := time.Now()
	for rep := 1; rep <= reps; rep++ {
		for _, streams := range []int{1, 4} {
			if err := b.settle(ctx, l); err != nil {
				return err
			}
			var before [2]procStat
			for i, pid := range t.pids {
				if pid != 0 {
					before[i], _ = readProc(pid)
				}
			}
			t0 := time.Now()
			r, err := iperf(ctx, t.h1, t.dst, t.port, streams, b.cfg.duration)
			if err != nil {
				return fmt.Errorf("%s: %w", res.name, err)
			}
			if streams == 1 {
				wall += time.Since(t0)
				for i, pid := range t.pids {
					if pid != 0 {
						after, _ := readProc(pid)
						cpu[i] += after.cpu - before[i].cpu
					}
				}
				res.p1 = append(res.p1, r)
			} else {
				res.p4 = append(res.p4, r)
			}
			logf("%-28s rep %d/%d -P %d: %6.2f Gbit/s", res.name, rep, reps, streams, r.gbps)
		}
	}
	var foreign time.Duration
	for pid, c := range l.outsideCPU() {
		foreign += c - others0[pid]
	}
	res.foreign = 100 * foreign.Seconds() / time.Since(start).Seconds()
	for i := range cpu {
		if wall > 0 {
			res.cpuP1[i] = 100 * cpu[i].Seconds() / wall.Seconds()
		}
	}
	// Fixed load: -b 1G, CPU-seconds per GB and system calls per MB.
	if err := b.settle(ctx, l); err != nil {
		return err
	}
	var before [2]procStat
	for i, pid := range t.pids {
		if pid != 0 {
			before[i], _ = readProc(pid)
		}
	}
	var counts [2]sysCalls
	var wg sync.WaitGroup
	pctx, cancel := context.WithCancel(ctx)
	secs := int(b.cfg.duration / time.Second)
	for i, pid := range t.pids {
		if pid == 0 || !b.cfg.syscalls {
			continue
		}
		wg.Go(func() { counts[i] = countSyscalls(pctx, pid, secs) })
	}
	r, err := iperfRate(ctx, t.h1, t.dst, t.port, "1G", b.cfg.duration)
	cancel()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("%s at -b 1G: %w", res.name, err)
	}
	res.gbAt1G = r.gbps
	gb := r.gbps * b.cfg.duration.Seconds() / 8 // GB received
	var cs time.Duration
	for i, pid := range t.pids {
		if pid == 0 {
			continue
		}
		after, err := readProc(pid)
		if err != nil {
			return err
		}
		cs += after.cpu - before[i].cpu
		res.hwm[i] = after.hwm
		counts[i].mb = gb * 1000
	}
	if gb > 0 {
		res.cpuPerGB = cs.Seconds() / gb
	}
	res.sys = counts
	return nil
}

// iperfRate runs a 1-stream iperf3 client limited to rate (e.g. "1G").
func iperfRate(ctx context.Context, h *netlab.Host, addr netip.Addr, port int, rate string, d time.Duration) (iperfResult, error) {
	return iperfArgs(ctx, h, addr, port, 1, d, "-b", rate)
}

var pingTimeRe = regexp.MustCompile(`time=([\d.]+) ms`)

// pingAll sends count pings at 10 ms intervals and returns each RTT.
func pingAll(ctx context.Context, h *netlab.Host, dst netip.Addr, count int) ([]float64, error) {
	out, err := h.Run(ctx, "ping", "-c", strconv.Itoa(count), "-i", "0.01", "-W", "2", dst.String())
	if err != nil {
		return nil, fmt.Errorf("ping %s: %w", dst, err)
	}
	var v []float64
	for _, m := range pingTimeRe.FindAllSubmatch(out, -1) {
		f, _ := strconv.ParseFloat(string(m[1]), 64)
		v = append(v, f)
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("ping %s: no replies: %s", dst, out)
	}
	return v, nil
}

// countSyscalls counts pid's system calls for secs seconds with perf stat
// (tracepoints raw_syscalls:sys_enter and a few syscalls:sys_enter_*).
func countSyscalls(ctx context.Context, pid, secs int) sysCalls {
	events := []string{"raw_syscalls:sys_enter", "syscalls:sys_enter_read", "syscalls:sys_enter_write",
		"syscalls:sys_enter_futex", "syscalls:sys_enter_epoll_pwait"}
	out, err := exec.CommandContext(ctx, "perf", "stat", "-x", ",", "-e", strings.Join(events, ","),
		"-p", strconv.Itoa(pid), "--", "sleep", strconv.Itoa(max(1, secs-1))).CombinedOutput()
	var s sysCalls
	if err != nil {
		logf("perf stat -p %d: %v: %s", pid, err, out)
		return s
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch f[2] {
		case events[0]:
			s.total = n
		case events[1]:
			s.reads = n
		case events[2]:
			s.writes = n
		case events[3]:
			s.futex = n
		case events[4]:
			s.epoll = n
		}
	}
	return s
}

// comparePhase measures raw, the peers and the cbnode variants in one pass.
func (b *bench) comparePhase(ctx context.Context) error {
	var bins map[string]string
	if b.cfg.peers {
		var err error
		if bins, err = peerBinaries(ctx, b.cfg.peersDir); err != nil {
			return err
		}
	}
	scratch, err := os.MkdirTemp("", "cbdp-peers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)

	type variant struct {
		name, note string
		bin        string
		args       []string
		main       bool // also measure raw and the peers in this lab
	}
	vs := []variant{{name: "cbnode (default)", bin: b.cfg.bin, main: true}}
	vs = append(vs,
		variant{name: "cbnode --mtu 1420", bin: b.cfg.bin, args: []string{"--mtu", "1420"}},
		variant{name: "cbnode --tun-offload=false", bin: b.cfg.bin, args: []string{"--tun-offload=false"}},
		variant{name: "cbnode --mtu 1420 --tun-offload=false", bin: b.cfg.bin, args: []string{"--mtu", "1420", "--tun-offload=false"}},
	)
	if b.cfg.binBefore != "" {
		vs = append(vs,
			variant{name: "cbnode before (main)", note: "the binary of -bin-before: one packet per read", bin: b.cfg.binBefore},
			variant{name: "cbnode before (main) --mtu 1420", bin: b.cfg.binBefore, args: []string{"--mtu", "1420"}},
		)
	}
	for _, v := range vs {
		logf("comparison lab: %s", v.name)
		l, err := startLab(ctx, v.bin, v.args, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		err = func() error {
			defer l.close()
			h := [2]*netlab.Host{l.n1.Host, l.n2.Host}
			u := [2]netip.Addr{l.n1.Underlay.Addr(), l.n2.Underlay.Addr()}
			if v.main {
				b.rep.cmpMachine = readFirstLine("/proc/loadavg")
				raw := &sysResult{name: "raw veth", raw: true, mtu: 1500}
				if err := b.measureSystem(ctx, l, target{h1: h[0], h2: h[1], dst: u[1], port: rawPort}, raw); err != nil {
					return err
				}
				b.rep.cmp = append(b.rep.cmp, raw)
				if bins != nil {
					if err := b.measurePeer(ctx, l, "wireguard-go", h, func() (*peerRun, error) {
						return startWireGuard(ctx, bins["wireguard-go"], scratch, h, u)
					}, "wireguard"); err != nil {
						return err
					}
					if err := b.measurePeer(ctx, l, "Nebula "+nebulaVersion, h, func() (*peerRun, error) {
						return startNebula(ctx, bins, scratch, h, u)
					}, "nebula"); err != nil {
						return err
					}
				}
			}
			res := &sysResult{name: v.name, note: v.note, mtu: l.mtu}
			if err := b.measureSystem(ctx, l, target{h1: h[0], h2: h[1], dst: l.ip2, port: overlayPort, pids: [2]int{l.pid1, l.pid2}}, res); err != nil {
				return err
			}
			b.rep.cmp = append(b.rep.cmp, res)
			if b.cfg.perf && (v.name == "cbnode --mtu 1420" || v.name == "cbnode before (main) --mtu 1420") {
				if err := b.settle(ctx, l); err != nil {
					return err
				}
				pr, err := runProfile(ctx, l, b.cfg.duration)
				if err != nil {
					return err
				}
				pr.name = v.name
				b.rep.profiles = append(b.rep.profiles, pr)
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// measurePeer starts a peer overlay in the lab's n1 and n2, measures it
// and stops it.
func (b *bench) measurePeer(ctx context.Context, l *lab, name string, h [2]*netlab.Host, start func() (*peerRun, error), comm string) error {
	logf("peer: %s", name)
	pr, err := start()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer pr.stop()
	if err := waitPing(ctx, h[0], pr.dst); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	port := overlayPort + 10
	if err := startIperfServer(ctx, h[1], pr.dst, port); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	res := &sysResult{name: name, peer: true, mtu: 1420}
	pids := [2]int{pidOf(pr.procs[0].PID(), comm), pidOf(pr.procs[1].PID(), comm)}
	if err := b.measureSystem(ctx, l, target{h1: h[0], h2: h[1], dst: pr.dst, port: port, pids: pids}, res); err != nil {
		return err
	}
	b.rep.cmp = append(b.rep.cmp, res)
	return nil
}

// percentile returns the p-th percentile (0..100) of v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var t float64
	for _, x := range v {
		t += x
	}
	return t / float64(len(v))
}

// compareSection writes the comparison tables.
func (r *report) compareSection(p func(string, ...any)) {
	if len(r.cmp) == 0 {
		return
	}
	var raw *sysResult
	var best *sysResult // best peer by 1-stream throughput
	for _, s := range r.cmp {
		if s.raw {
			raw = s
		}
		if s.peer && (best == nil || median(gbpsOf(s.p1)) > median(gbpsOf(best.p1))) {
			best = s
		}
	}
	p("## Side by side: raw veth, peers and cbnode (one pass)\n\n")
	p("All systems ran in this one pass, the peers in the same two namespaces as cbnode's default lab (n1 → n2 over the same veth/bridge underlay), the cbnode variants each in a fresh lab of the same shape. iperf3 TCP n1 → n2, %d × %ds per test, medians; ping: %d × 10 ms idle; CPU = the two daemons' utime+stime during the 1-stream tests (%% of one core, sender + receiver); CPU-s/GB at `iperf3 -b 1G` (1 stream, %ds); syscalls/MB from `perf stat` tracepoints during that test; RSS = VmHWM at the end. Load average at the start of the pass: %s.\n\n",
		r.cfg.reps, int(r.cfg.duration/time.Second), r.cfg.pings, int(r.cfg.duration/time.Second), r.cmpMachine)
	p("| system | MTU | 1 stream Gbit/s | 4 streams Gbit/s | of raw (1) | vs best peer (1) | vs best peer (4) | RTT avg ms | RTT p99 ms | daemon CPU %% (1 stream) | CPU-s/GB @1G | Gbit/s @1G | syscalls/MB snd / rcv | peak RSS snd / rcv | outside-lab CPU |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.cmp {
		g1, g4 := median(gbpsOf(s.p1)), median(gbpsOf(s.p4))
		ofRaw, vsBest, vsBest4 := "—", "—", "—"
		if raw != nil && !s.raw {
			ofRaw = fmt.Sprintf("%.2f", g1/median(gbpsOf(raw.p1)))
		}
		if best != nil && !s.raw {
			vsBest = fmt.Sprintf("%.2f×", g1/median(gbpsOf(best.p1)))
			vsBest4 = fmt.Sprintf("%.2f×", g4/median(gbpsOf(best.p4)))
		}
		cpu, cpg, sc, rss := "—", "—", "—", "—"
		if !s.raw {
			cpu = fmt.Sprintf("%.0f (%.0f + %.0f)", s.cpuP1[0]+s.cpuP1[1], s.cpuP1[0], s.cpuP1[1])
			cpg = fmt.Sprintf("%.2f", s.cpuPerGB)
			sc = fmt.Sprintf("%.0f / %.0f", s.sys[0].perMB(s.sys[0].total), s.sys[1].perMB(s.sys[1].total))
			rss = mib(s.hwm[0]) + " / " + mib(s.hwm[1])
		}
		name := s.name
		if s.name == "cbnode (default)" || s.name == "cbnode --mtu 1420" {
			name = "**" + s.name + "**"
		}
		p("| %s | %d | %.2f (%s) | %.2f | %s | %s | %s | %.3f | %.3f | %s | %s | %.2f | %s | %s | %.0f%% |\n",
			name, s.mtu, g1, span(gbpsOf(s.p1)), g4, ofRaw, vsBest, vsBest4, mean(s.ping), percentile(s.ping, 99), cpu, cpg, s.gbAt1G, sc, rss, s.foreign)
	}
	p("\n")
	if best != nil {
		p("Best peer in this pass (1 stream): **%s** (%.2f Gbit/s).\n\n", best.name, median(gbpsOf(best.p1)))
	}
	p("System calls per MB at `-b 1G` (sender / receiver daemon): all, read, write, futex, epoll_pwait.\n\n")
	p("| system | all | read | write | futex | epoll_pwait |\n|---|---:|---:|---:|---:|---:|\n")
	for _, s := range r.cmp {
		if s.raw {
			continue
		}
		f := func(a, b uint64) string {
			return fmt.Sprintf("%.0f / %.0f", s.sys[0].perMB(a), s.sys[1].perMB(b))
		}
		p("| %s | %s | %s | %s | %s | %s |\n", s.name, f(s.sys[0].total, s.sys[1].total), f(s.sys[0].reads, s.sys[1].reads),
			f(s.sys[0].writes, s.sys[1].writes), f(s.sys[0].futex, s.sys[1].futex), f(s.sys[0].epoll, s.sys[1].epoll))
	}
	p("\n")
}
