package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
)

// realResult is one run of real 'cbnode join' processes in namespaces.
type realResult struct {
	N           int
	Converged   bool
	Convergence time.Duration
	// IdleBytes is the bytes per member per second (rx + tx) on the
	// members' underlay interfaces over the idle window; BootBytes the
	// bootstrap node's.
	IdleBytes, BootBytes float64
	// Crash is from SIGKILL of one member until the last other member
	// logged its loss; CrashSeen how many of the others did within a
	// minute.
	Crash     time.Duration
	CrashSeen int
	Err       string
}

// runReal starts n real members (and a bootstrap node, each in its own
// namespace on one lab switch), waits for convergence, measures idle bytes
// on the underlay interfaces, then kills one member and times its loss.
func runReal(bin string, n int, idle, settle time.Duration, args []string, logs, level string) realResult {
	r := realResult{N: n}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbsc", Nodes: n, LogLevel: level, Heartbeat: 30 * time.Second, JoinArgs: args})
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer c.Close()
	start := time.Now()
	if err := c.StartAll(); err != nil {
		r.Err = err.Error()
		return r
	}
	cctx, ccancel := context.WithTimeout(ctx, 5*time.Minute)
	err = c.WaitConverged(cctx)
	ccancel()
	r.Convergence = time.Since(start)
	if err != nil {
		r.Err = err.Error()
		if logs != "" {
			saveLogs(c, logs)
		}
		return r
	}
	r.Converged = true
	log.Printf("real N=%d: converged in %v; settling %v, then %v idle", n, r.Convergence.Round(100*time.Millisecond), settle, idle)
	time.Sleep(settle)
	dev := c.LAN.Name()
	before, bootBefore, err := counters(ctx, c, dev)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	t0 := time.Now()
	time.Sleep(idle)
	after, bootAfter, err := counters(ctx, c, dev)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	secs := time.Since(t0).Seconds()
	r.IdleBytes = float64(after-before) / float64(n) / secs
	r.BootBytes = float64(bootAfter-bootBefore) / secs

	victim := c.Nodes[len(c.Nodes)-1]
	killed := time.Now()
	if err := victim.Proc.Kill(); err != nil {
		r.Err = err.Error()
		return r
	}
	victim.Proc = nil
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		seen, last := 0, time.Time{}
		for _, m := range c.Nodes[:len(c.Nodes)-1] {
			if t, ok := lostAt(m.Proc.Output(), victim.Name, killed); ok {
				seen++
				if t.After(last) {
					last = t
				}
			}
		}
		r.CrashSeen = seen
		if seen == n-1 {
			r.Crash = last.Sub(killed)
			break
		}
	}
	return r
}

// counters sums rx+tx bytes of dev over the members, and the bootstrap's.
func counters(ctx context.Context, c *cluster.Cluster, dev string) (members, boot uint64, err error) {
	read := func(h *cluster.Node) (uint64, error) {
		out, err := h.Host.Run(ctx, "ip", "-j", "-s", "link", "show", "dev", dev)
		if err != nil {
			return 0, err
		}
		var links []struct {
			Stats struct {
				RX struct {
					Bytes uint64 `json:"bytes"`
				} `json:"rx"`
				TX struct {
					Bytes uint64 `json:"bytes"`
				} `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
			return 0, fmt.Errorf("%s: ip -j -s link show dev %s: %q: %v", h.Name, dev, out, err)
		}
		return links[0].Stats.RX.Bytes + links[0].Stats.TX.Bytes, nil
	}
	for _, m := range c.Nodes {
		b, err := read(m)
		if err != nil {
			return 0, 0, err
		}
		members += b
	}
	boot, err = read(c.Boot)
	return members, boot, err
}

// lostAt finds, in a member's log, when it logged the loss of host (a
// death confirmed by probing, or a death notice) after since.
func lostAt(logs []byte, host string, since time.Time) (time.Time, bool) {
	sc := bufio.NewScanner(bytes.NewReader(logs))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="member lost`) || !strings.Contains(line, " host="+host+" ") {
			continue
		}
		f, ok := strings.CutPrefix(line, "time=")
		if !ok {
			continue
		}
		ts, _, _ := strings.Cut(f, " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && t.After(since) {
			return t, true
		}
	}
	return time.Time{}, false
}

// saveLogs writes every node's output to dir/<name>.log.
func saveLogs(c *cluster.Cluster, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Printf("logs: %v", err)
		return
	}
	for _, nd := range append([]*cluster.Node{c.Boot}, c.Nodes...) {
		if nd == nil || nd.Proc == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, nd.Name+".log"), nd.Proc.Output(), 0o644); err != nil {
			log.Printf("logs: %v", err)
		}
	}
	log.Printf("node logs written to %s", dir)
}
