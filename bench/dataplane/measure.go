//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// iperfResult is one iperf3 client run.
type iperfResult struct {
	gbps    float64 // end.sum_received.bits_per_second / 1e9
	retrans int     // end.sum_sent.retransmits
}

// iperf runs an iperf3 TCP client in h against addr:port.
func iperf(ctx context.Context, h *netlab.Host, addr netip.Addr, port, streams int, d time.Duration) (iperfResult, error) {
	return iperfArgs(ctx, h, addr, port, streams, d)
}

// iperfArgs is iperf with extra client flags.
func iperfArgs(ctx context.Context, h *netlab.Host, addr netip.Addr, port, streams int, d time.Duration, extra ...string) (iperfResult, error) {
	secs := int(d / time.Second)
	ctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	args := append([]string{"-c", addr.String(), "-p", strconv.Itoa(port),
		"-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams), "-J", "--connect-timeout", "5000"}, extra...)
	out, runErr := h.Run(ctx, "iperf3", args...)
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		if runErr != nil {
			return iperfResult{}, fmt.Errorf("iperf3 to %s: %w", addr, runErr)
		}
		return iperfResult{}, fmt.Errorf("iperf3 to %s: decode JSON: %w", addr, err)
	}
	if j.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3 to %s: %s", addr, j.Error)
	}
	if runErr != nil {
		return iperfResult{}, fmt.Errorf("iperf3 to %s: %w", addr, runErr)
	}
	return iperfResult{gbps: j.End.SumReceived.BitsPerSecond / 1e9, retrans: j.End.SumSent.Retransmits}, nil
}

// rtt is a ping summary in milliseconds.
type rtt struct {
	avg, mdev, min, max float64
	loss                string
}

var (
	rttRe  = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms`)
	lossRe = regexp.MustCompile(`([\d.]+)% packet loss`)
)

// ping pings addr from h count times at 50 ms intervals.
func ping(ctx context.Context, h *netlab.Host, addr netip.Addr, count int) (rtt, error) {
	out, err := h.Run(ctx, "ping", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "2", "-q", addr.String())
	if err != nil {
		return rtt{}, fmt.Errorf("ping %s: %w", addr, err)
	}
	m := rttRe.FindSubmatch(out)
	if m == nil {
		return rtt{}, fmt.Errorf("ping %s: no rtt summary in %q", addr, out)
	}
	f := func(b []byte) float64 { v, _ := strconv.ParseFloat(string(b), 64); return v }
	r := rtt{min: f(m[1]), avg: f(m[2]), max: f(m[3]), mdev: f(m[4])}
	if l := lossRe.FindSubmatch(out); l != nil {
		r.loss = string(l[1]) + "%"
	}
	return r, nil
}

// procStat is one sample of a process's CPU time and memory.
type procStat struct {
	cpu      time.Duration // utime+stime of all threads
	rss, hwm uint64        // VmRSS and VmHWM, bytes
}

// userHZ is the unit of utime/stime in /proc/<pid>/stat (USER_HZ, 100 on Linux).
const userHZ = 100

func readProc(pid int) (procStat, error) {
	var s procStat
	var err error
	if s.cpu, err = readProcCPU(pid); err != nil {
		return s, err
	}
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("memory of pid %d: %s %q: %w", pid, k, v, err)
		}
		if k == "VmRSS" {
			s.rss = kb << 10
		} else {
			s.hwm = kb << 10
		}
	}
	return s, sc.Err()
}

// readProcCPU returns utime+stime of all of pid's threads.
func readProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu of pid %d: bad /proc stat %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu of pid %d: short /proc stat %q", pid, b)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cpu of pid %d: bad utime/stime in %q", pid, b)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// sysCPU is the machine-wide time from /proc/stat, in ticks: busy
// (excluding steal), steal (taken by the hypervisor) and total.
type sysCPU struct{ busy, steal, total uint64 }

func readSysCPU() (sysCPU, error) {
	line := readFirstLine("/proc/stat")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return sysCPU{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		n, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return sysCPU{}, fmt.Errorf("/proc/stat: %w", err)
		}
		v[i] = n
	}
	idle := v[3] + v[4]
	busy := v[0] + v[1] + v[2] + v[5] + v[6]
	return sysCPU{busy: busy, steal: v[7], total: busy + v[7] + idle}, nil
}

// load is what the daemons and the machine did during one or more tests.
type load struct {
	wall      time.Duration
	cpu       [2]time.Duration // cbnode n1, n2
	rssBefore [2]uint64
	rssAfter  [2]uint64
	rssPeak   [2]uint64     // largest VmRSS sampled during the tests
	hwm       [2]uint64     // VmHWM after the tests
	sys       sysCPU        // machine-wide deltas
	foreign   time.Duration // CPU time of processes outside the lab
	tx        [2]linkDelta
	net       [2]netCounters // deltas
}

// linkDelta is the change of one direction's data-plane counters.
type linkDelta struct{ packets, writes, drops, reconnects uint64 }

func (d linkDelta) add(o linkDelta) linkDelta {
	return linkDelta{d.packets + o.packets, d.writes + o.writes, d.drops + o.drops, d.reconnects + o.reconnects}
}

func (d linkDelta) perWrite() float64 {
	if d.writes == 0 {
		return 0
	}
	return float64(d.packets) / float64(d.writes)
}

// add merges another test's load into l (l's "before" values win).
func (l *load) add(o *load) {
	first := l.wall == 0
	l.wall += o.wall
	l.sys.busy += o.sys.busy
	l.sys.steal += o.sys.steal
	l.sys.total += o.sys.total
	l.foreign += o.foreign
	for i := range 2 {
		l.cpu[i] += o.cpu[i]
		if first {
			l.rssBefore[i] = o.rssBefore[i]
		}
		l.rssAfter[i] = o.rssAfter[i]
		l.rssPeak[i] = max(l.rssPeak[i], o.rssPeak[i])
		l.hwm[i] = max(l.hwm[i], o.hwm[i])
		l.tx[i] = l.tx[i].add(o.tx[i])
		l.net[i] = l.net[i].add(o.net[i])
	}
}

func (l *load) cpuPercent(i int) float64 {
	if l.wall == 0 {
		return 0
	}
	return 100 * l.cpu[i].Seconds() / l.wall.Seconds()
}

// foreignPercent is the CPU time used outside the lab, in % of one core.
func (l *load) foreignPercent() float64 {
	if l.wall == 0 {
		return 0
	}
	return 100 * l.foreign.Seconds() / l.wall.Seconds()
}

// sysPercent returns the machine's busy and steal time in % of all CPUs.
func (l *load) sysPercent() (busy, steal float64) {
	if l.sys.total == 0 {
		return 0, 0
	}
	return 100 * float64(l.sys.busy) / float64(l.sys.total), 100 * float64(l.sys.steal) / float64(l.sys.total)
}

// measured runs fn (one iperf3 test) while recording the daemons' CPU time,
// memory and data-plane counters and the machine's CPU use.
func (lb *lab) measured(ctx context.Context, fn func() error) (*load, error) {
	pids := [2]int{lb.pid1, lb.pid2}
	var before, after [2]procStat
	var ld load
	var lk [2]linkStats
	var err error
	if lk[0], err = link(ctx, lb.n1, lb.n2); err != nil {
		return nil, err
	}
	if lk[1], err = link(ctx, lb.n2, lb.n1); err != nil {
		return nil, err
	}
	for i, pid := range pids {
		if before[i], err = readProc(pid); err != nil {
			return nil, err
		}
		ld.rssBefore[i], ld.rssPeak[i] = before[i].rss, before[i].rss
	}
	var net0, net1 [2]netCounters
	for i, n := range lb.c.Nodes {
		if net0[i], err = readNetCounters(ctx, n); err != nil {
			return nil, err
		}
	}
	others0 := lb.outsideCPU()
	sys0, err := readSysCPU()
	if err != nil {
		return nil, err
	}
	start := time.Now()

	// Sample VmRSS while the test runs.
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			for i, pid := range pids {
				if s, err := readProc(pid); err == nil {
					ld.rssPeak[i] = max(ld.rssPeak[i], s.rss)
				}
			}
		}
	})
	err = fn()
	stop()
	wg.Wait()
	if err != nil {
		return nil, err
	}

	ld.wall = time.Since(start)
	sys1, err := readSysCPU()
	if err != nil {
		return nil, err
	}
	ld.sys = sysCPU{busy: sys1.busy - sys0.busy, steal: sys1.steal - sys0.steal, total: sys1.total - sys0.total}
	for pid, t := range lb.outsideCPU() {
		ld.foreign += t - others0[pid] // processes started meanwhile count fully
	}
	for i, n := range lb.c.Nodes {
		if net1[i], err = readNetCounters(ctx, n); err != nil {
			return nil, err
		}
		ld.net[i] = net1[i].sub(net0[i])
	}
	for i, pid := range pids {
		if after[i], err = readProc(pid); err != nil {
			return nil, err
		}
		ld.cpu[i] = after[i].cpu - before[i].cpu
		ld.rssAfter[i], ld.hwm[i] = after[i].rss, after[i].hwm
		ld.rssPeak[i] = max(ld.rssPeak[i], after[i].rss)
	}
	var lk2 [2]linkStats
	if lk2[0], err = link(ctx, lb.n1, lb.n2); err != nil {
		return nil, err
	}
	if lk2[1], err = link(ctx, lb.n2, lb.n1); err != nil {
		return nil, err
	}
	for i := range 2 {
		ld.tx[i] = linkDelta{
			packets:    lk2[i].TxPackets - lk[i].TxPackets,
			writes:     lk2[i].TxWrites - lk[i].TxWrites,
			drops:      lk2[i].dropTotal() - lk[i].dropTotal(),
			reconnects: lk2[i].Reconnects - lk[i].Reconnects,
		}
	}
	return &ld, nil
}

func readFirstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// netCounters are kernel counters of a member's namespace.
type netCounters struct {
	tunTxDrops   uint64 // cbnet0 tx_dropped: the TUN queue overflowed (daemon too slow to read)
	udpRcvbufErr uint64 // Udp RcvbufErrors: QUIC datagrams dropped at the socket
}

func (c netCounters) add(o netCounters) netCounters {
	return netCounters{c.tunTxDrops + o.tunTxDrops, c.udpRcvbufErr + o.udpRcvbufErr}
}

func (c netCounters) sub(o netCounters) netCounters {
	return netCounters{c.tunTxDrops - o.tunTxDrops, c.udpRcvbufErr - o.udpRcvbufErr}
}

func readNetCounters(ctx context.Context, n *cluster.Node) (netCounters, error) {
	var c netCounters
	// /proc/net is per network namespace: read it from a process inside.
	out, err := n.Host.Run(ctx, "cat", "/sys/class/net/cbnet0/statistics/tx_dropped", "/proc/net/snmp")
	if err != nil {
		return c, fmt.Errorf("%s: kernel counters: %w", n.Name, err)
	}
	lines := strings.Split(string(out), "\n")
	if c.tunTxDrops, err = strconv.ParseUint(strings.TrimSpace(lines[0]), 10, 64); err != nil {
		return c, fmt.Errorf("%s: cbnet0 tx_dropped %q: %w", n.Name, lines[0], err)
	}
	var names []string
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				c.udpRcvbufErr, _ = strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return c, nil
}

// outsideCPU returns the CPU time so far of every process whose network
// namespace is not one of the lab's (other work on the machine, and this
// program). Processes that exit during a test are missed, so the sum of
// the deltas is a lower bound.
func (lb *lab) outsideCPU() map[int]time.Duration {
	m := map[int]time.Duration{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil || lb.nsLinks[ns] {
			continue
		}
		if s, err := readProcCPU(pid); err == nil {
			m[pid] = s
		}
	}
	return m
}
