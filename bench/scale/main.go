// Command scale runs the membership simulator (package sim) for several
// CLADNet sizes and writes a Markdown report with an SVG plot of the idle
// control traffic per member against N:
//
//	go run ./bench/scale -out bench/scale.md -n 100,1000,10000
//
// Every number is from virtual time: the simulator runs the daemon's
// failure detector and anti-entropy (overlay/swim) over a modelled network;
// see the report's Setup section for what is modelled.
package main

import (
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/overlay/swim"
	"github.com/cloud-barista/cbnode/sim"
)

func main() {
	out := flag.String("out", "bench/scale.md", "Markdown report to write (the SVG plot goes next to it, same name .svg)")
	ns := flag.String("n", "100,1000,10000", "comma-separated CLADNet sizes")
	seed := flag.Uint64("seed", 1, "simulation seed (same seed, same numbers)")
	loss := flag.Float64("loss", 0.01, "probability that a direct message is lost")
	realNs := flag.String("real", "", "comma-separated sizes to run as real 'cbnode join' processes in network namespaces (needs root and -bin), e.g. 10,25,50")
	bin := flag.String("bin", "bin/cbnode", "cbnode binary for -real")
	realIdle := flag.Duration("real-idle", time.Minute, "idle window of a -real run")
	realSettle := flag.Duration("real-settle", 90*time.Second, "wait between convergence and the idle window of a -real run (lazy tunnels trim the join's surplus connections after 1 min)")
	realLogs := flag.String("real-logs", "", "directory to write every node's log to when a -real run fails to converge")
	realLevel := flag.String("real-log-level", "info", "log level of the -real runs' nodes (their logs: -real-logs)")
	realArgs := flag.String("real-args", "", "extra 'cbnode join' flags for -real runs, space-separated (e.g. \"--full-mesh-max 100\")")
	flag.Parse()
	sizes := parseSizes("-n", *ns)
	var reals []realResult
	var realSims []sim.Result
	realNote := ""
	if *realNs != "" {
		if err := cluster.Check(); err != nil {
			realNote = fmt.Sprintf("Real-process runs skipped: %v.", err)
			log.Print(realNote)
		} else {
			for _, n := range parseSizes("-real", *realNs) {
				log.Printf("real N=%d: starting %d 'cbnode join' processes in namespaces…", n, n)
				rr := runReal(*bin, n, *realIdle, *realSettle, strings.Fields(*realArgs), *realLogs, *realLevel)
				log.Printf("real N=%d: %+v", n, rr)
				reals = append(reals, rr)
				sr, err := sim.Measure(sim.MeasureConfig{N: n, Seed: *seed, Net: sim.NetConfig{Loss: *loss}})
				if err != nil {
					log.Fatal(err)
				}
				realSims = append(realSims, sr)
			}
		}
	}
	var results []sim.Result
	for _, n := range sizes {
		log.Printf("N=%d: simulating…", n)
		r, err := sim.Measure(sim.MeasureConfig{N: n, Seed: *seed, Net: sim.NetConfig{Loss: *loss}})
		if err != nil {
			log.Fatal(err)
		}
		log.Printf("N=%d: converged %v in %v, idle %.0f B/s per member, crash seen in %v (max %v), wall %v",
			n, r.Converged, r.Convergence, r.IdleBytesPerNode, r.CrashMean, r.CrashMax, r.Wall.Round(time.Second))
		results = append(results, r)
	}
	svg := strings.TrimSuffix(*out, filepath.Ext(*out)) + ".svg"
	if err := os.WriteFile(svg, []byte(plot(results)), 0o644); err != nil {
		log.Fatal(err)
	}
	rep := report(results, *seed, *loss, filepath.Base(svg), *ns) + realReport(reals, realSims, realNote, *realNs, *realIdle, *realSettle)
	if err := os.WriteFile(*out, []byte(rep), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s and %s", *out, svg)
}

func parseSizes(flagName, list string) []int {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			log.Fatalf("%s: %q is not a size of at least 2 members", flagName, f)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

func realReport(rs []realResult, sims []sim.Result, note, ns string, idle, settle time.Duration) string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("\n## Real processes in namespaces, side by side with the simulator\n\n")
	if note != "" {
		p("%s\n", note)
		return b.String()
	}
	if len(rs) == 0 {
		p("Not run (`-real %s`; `sudo make bench` runs 10, 25 and 50).\n", ns)
		return b.String()
	}
	p("`-real %s`: one bootstrap node and N `cbnode join` processes (TUN and data plane on, default timings), each host in its own\n", ns)
	p("network namespace on one lab switch (internal/cluster), all on this machine's 2 shared cores. Converged: every member's\n")
	p("`cbnode peers` lists all N with an address, in state tunneling (polled; the time includes starting the processes). Idle: rx + tx\n")
	p("bytes of every member's underlay interface (all of libp2p: probes, digests, DHT, identify, gossipsub, QUIC/TCP and IP headers)\n")
	p("over %v, from %v after convergence, per member per second. Crash: SIGKILL of one member until the last other member logged\n", idle, settle)
	p("its loss. The simulator's numbers are for the same N (its bytes are the membership protocol's only, see Setup).\n\n")
	p("| N | real: converged | real: idle B/s per member (underlay) | real: bootstrap B/s | real: crash seen by all | sim: converged | sim: idle B/s per member |\n")
	p("|---|---|---|---|---|---|---|\n")
	for i, r := range rs {
		conv, idleS, boot, crash := "no: "+r.Err, "—", "—", "—"
		if r.Converged {
			conv = fmt.Sprintf("%.1f s", r.Convergence.Seconds())
			if r.Err == "" {
				idleS = fmt.Sprintf("%.0f", r.IdleBytes)
				boot = fmt.Sprintf("%.0f", r.BootBytes)
				if r.CrashSeen == r.N-1 {
					crash = fmt.Sprintf("%.1f s", r.Crash.Seconds())
				} else {
					crash = fmt.Sprintf("%d of %d within 60 s", r.CrashSeen, r.N-1)
				}
			} else {
				idleS = "error: " + r.Err
			}
		}
		s := sims[i]
		p("| %d | %s | %s | %s | %s | %.1f s | %.0f |\n", r.N, conv, idleS, boot, crash, s.Convergence.Seconds(), s.IdleBytesPerNode)
	}
	return b.String()
}

func report(rs []sim.Result, seed uint64, loss float64, svg, ns string) string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("# Membership at scale (simulation)\n\n")
	p("Generated by `go run ./bench/scale -out bench/scale.md -n %s -seed %d -loss %g` on %s (`make bench` runs it); Go %s, %d CPUs.\n\n",
		ns, seed, loss, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.Version(), runtime.NumCPU())
	p("## Results\n\n")
	p("| N | converged (cold start) | idle B/s per member (in + out) | crash seen by all: mean / max | leave seen by all (max) | deaths published per crash | bytes per member until converged | simulated events | wall time |\n")
	p("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		conv := fmt.Sprintf("%.1f s", r.Convergence.Seconds())
		if !r.Converged {
			conv = fmt.Sprintf("no (> %.0f s)", r.Convergence.Seconds())
		}
		p("| %d | %s | %.0f | %.1f s / %.1f s | %.2f s | %.1f | %.1f MiB | %d | %v |\n", r.N, conv, r.IdleBytesPerNode,
			r.CrashMean.Seconds(), r.CrashMax.Seconds(), r.LeaveMax.Seconds(), r.ConfirmsPerCrash, r.ConvergeBytes/(1<<20), r.Events, r.Wall.Round(time.Second))
	}
	p("\n![idle control traffic per member against N](%s)\n\n", svg)
	p("Targets (issue 14): 1,000 members converge in ≤ 60 s, 10,000 in ≤ 5 min; idle ≤ 1 KB/s per member at N = 1,000 and not growing with N;\n")
	p("a crash seen by every member within 10 s; a leave within 2 s; 0 duplicate addresses, also under churn (see IPAM under Not simulated).\n\n")
	p("### Idle traffic by message kind (per member per second, in + out)\n\n")
	p("| N | kind | messages/s | B/s |\n|---|---|---|---|\n")
	for _, r := range rs {
		for _, k := range r.IdleByKind {
			p("| %d | %s | %.3f | %.1f |\n", r.N, k.Kind, k.MsgsPerSec, k.BytesPerS)
		}
	}
	p("\n### Big-O of every periodic message, per member\n\n")
	p("| message | period | size | per member per second |\n|---|---|---|---|\n")
	p("| ping + ack (direct probe) | %v | ~290 B with stream set-up | O(1): one probe sent and, on average, one answered |\n", swim.DefaultProbeInterval)
	p("| ping-req + relayed ping + ack | only when a probe times out | ~300 B each | O(1), k = %d |\n", swim.DefaultIndirectProbes)
	p("| digest (anti-entropy) | %v (2 s for a newcomer's first rounds and after a difference) | %d buckets × 8 B (~1.6 KB JSON) | O(1) |\n", swim.DefaultDigestInterval, swim.Buckets)
	p("| digest reply + push/pull | only when tables differ | the differing buckets' entries, the differing records | O(changes) |\n")
	p("| topic announcement | only on a change (join, address, state, cloud facts, refutation) | ~1.5 KB | O(changes × N) network-wide, O(changes) per member |\n")
	p("| topic death notice | once per confirmed death (by each detector that confirmed it) | ~330 B | O(deaths) |\n")
	p("| DHT rendezvous lookup (daemon, not simulated) | until connected to ≥ 8 members (or all), then only when fewer, at most every 30 min | ≤ 16 provider records | O(1); was every 1–5 min, O(N) at the DHT servers |\n")
	p("| connection keep-alives (daemon, not simulated) | 30 s per connection (yamux) | ~100 B each way | O(connections): ≤ 31 in a full mesh (≤ 32 members), else ~16 + the gossip mesh + active tunnels |\n")
	p("| heartbeat, periodic full announcement | **removed** | | was O(N) per member: every heartbeat of every member reached every member |\n\n")
	p("## Setup\n\n")
	p("- **Code under test**: every member runs `overlay/swim.Detector` — the failure detector and anti-entropy the daemon runs (`overlay/liveness.go`) —\n")
	p("  with the simulator's Clock (virtual time) and Transport (in-memory links). Defaults: probe every %v, ping timeout %v, %d indirect probes,\n",
		swim.DefaultProbeInterval, swim.DefaultProbeTimeout, swim.DefaultIndirectProbes)
	p("  suspicion timeout %v, digest every %v (first %d rounds and 2 after a difference every %v).\n",
		swim.DefaultSuspicionTimeout, swim.DefaultDigestInterval, swim.DefaultFastDigests, swim.DefaultFastDigestInterval)
	p("- **Members table**: the simulator's compact table (`sim/roster.go`) with the overlay table's rules (newest sequence number wins; a leave or\n")
	p("  death notice at sequence s removes records up to s; a member refutes a suspicion or its death with a newer announcement).\n")
	p("- **Network**: 8 regions, 1 ms one-way inside one, 10–120 ms (seeded) between two, +≤10 %% per link; direct messages lost with probability %g.\n", loss)
	p("- **Topic (gossipsub) model**: a publication reaches every member that joined the topic ≥ 1 s earlier after the link latency plus ⌈log₆ N⌉−1\n")
	p("  mean hops; each member is charged 7.5 copies in and out (the issue's measurement on the real gossipsub, flood publishing on).\n")
	p("- **Wire sizes**: JSON as the overlay sends it (`sim.wireSize`), plus 34 B framing per message and 180 B per stream (yamux open/close,\n")
	p("  multistream-select); announcement 1,500 B, death notice 330 B. Modelled, not captured: TCP/QUIC headers and ACKs are not counted.\n")
	p("- **Cold start**: N members start at uniform random times within 1 s; 0.5 s later each announces itself on the topic and runs a digest\n")
	p("  exchange with a random member started before it (the DHT rendezvous and table pull). Converged: every member's table digest equals the\n")
	p("  digest of the live members at their newest records (polled every 100 ms of virtual time).\n")
	p("- **Idle window**: 60 s from 10 s after convergence. **Crashes**: 5 random members, one at a time; time until no live member lists it.\n")
	p("  **Leaves**: 3, one at a time.\n\n")
	p("## Not simulated\n\n")
	p("- **IPAM** is not on the event engine (the allocator is goroutine code over a blocking DHT). `go test ./sim -run IPAM` runs 60 real\n")
	p("  `ipam.Allocator`s in a synctest bubble (virtual time) over a replicated in-memory DHT whose writes reach each of 8 replicas after\n")
	p("  up to 400 ms and miss one 10 %% of the time (reads ask 3), with a members view lagging 100 ms: a cold start, then 10 %% of the\n")
	p("  members replaced per minute for 3 minutes (half release, half crash): no two live members held one address in any of its\n")
	p("  2,400 checks (every 100 ms). With 85 %% of writes lost, or without the members view, still none.\n")
	p("- **The rest of libp2p**: DHT routing-table refresh and provider records, identify, connection keep-alives, gossipsub's own\n")
	p("  heartbeat (GRAFT/PRUNE; IHAVE is empty at idle because nothing is published). The real-process numbers are in bench/controlplane.md.\n")
	p("- **Connections**: the simulator's members probe any member (every link exists). The daemon probes the members it is connected\n")
	p("  to — every member in a full mesh (at most `--full-mesh-max` = 32 members), beyond it its gossip mesh, DHT neighbours and packet\n")
	p("  peers — and for 30 s those whose connection ended, so a crashed member is found by the members connected to it: not simulated.\n")
	return b.String()
}

// plot draws idle B/s per member against N (log-log), with the measured
// gossip-heartbeat design for comparison.
func plot(rs []sim.Result) string {
	const w, h, l, r, t, bt = 640, 400, 70, 20, 40, 50
	old := [][2]float64{{20, 5.8 * 1024}, {50, 15 * 1024}, {100, 27 * 1024}, {1000, 1.3 * 1024 * 1024}}
	xmin, xmax := 10.0, 20000.0
	ymin, ymax := 100.0, 4*1024*1024.0
	x := func(n float64) float64 {
		return l + (w-l-r)*(math.Log10(n)-math.Log10(xmin))/(math.Log10(xmax)-math.Log10(xmin))
	}
	y := func(v float64) float64 {
		return t + (h-t-bt)*(1-(math.Log10(v)-math.Log10(ymin))/(math.Log10(ymax)-math.Log10(ymin)))
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="20" font-size="14">Idle control traffic per member (in + out) against CLADNet size</text>`+"\n", l)
	for _, n := range []float64{10, 100, 1000, 10000} {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/><text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(n), t, x(n), h-bt, x(n), h-bt+16, n)
	}
	for _, v := range []float64{100, 1000, 10000, 100000, 1000000} {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", l, y(v), w-r, y(v), l-6, y(v)+4, human(v))
	}
	p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" stroke-dasharray="4 3"/><text x="%d" y="%.1f" fill="#c00">target 1 KB/s</text>`+"\n", l, y(1000), w-r, y(1000), l+6, y(1000)-4)
	p(`<text x="%d" y="%d" text-anchor="middle">members N (log)</text>`+"\n", (w+l)/2, h-12)
	p(`<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">bytes/s per member (log)</text>`+"\n", (h+t)/2, (h+t)/2)
	line := func(pts [][2]float64, color, label string, ly int, dash string) {
		var path []string
		for _, q := range pts {
			path = append(path, fmt.Sprintf("%.1f,%.1f", x(q[0]), y(q[1])))
			p(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>`+"\n", x(q[0]), y(q[1]), color)
		}
		p(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", strings.Join(path, " "), color, dash)
		p(`<text x="%d" y="%d" fill="%s">%s</text>`+"\n", l+10, ly, color, label)
	}
	line(old, "#888", "before: gossip heartbeats (measured N ≤ 100, modelled N = 1,000)", t+16, "5 3")
	var pts [][2]float64
	for _, r := range rs {
		if r.Converged {
			pts = append(pts, [2]float64{float64(r.N), r.IdleBytesPerNode})
		}
	}
	line(pts, "#06c", "SWIM probes + digest anti-entropy (simulated)", t+32, "")
	p("</svg>\n")
	return b.String()
}

func human(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%g MiB", v/(1<<20))
	case v >= 1000:
		return fmt.Sprintf("%g KB", v/1000)
	}
	return fmt.Sprintf("%g B", v)
}
