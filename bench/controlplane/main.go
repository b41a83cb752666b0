// Command controlplane simulates a CLADNet's control plane in one process:
// a bootstrap node and N members on 127.0.0.1, each a real go-libp2p host
// built by node.New and wired like daemon.Start (membership, rules, IPAM),
// without TUN. For each N it measures the time until every node lists every
// member with the address that member's allocator holds, duplicate addresses
// seen in any view, idle control-plane bytes per node, memory and goroutines
// per node, and writes a Markdown report.
//
//	go run ./bench/controlplane -out bench/controlplane.md [-n 50,100,200,1000] [-heartbeat 10s] [-idle 30s]
//
// Each N runs in a child process (this program re-executed), so memory and
// goroutine counts of one run do not leak into the next.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/overlay"
)

// resultPrefix marks the child's result line on its stdout.
const resultPrefix = "CONTROLPLANE-RESULT "

type config struct {
	out     string
	sizes   []int
	sim     simOptions
	budget  time.Duration
	child   bool
	command string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		return err
	}
	if cfg.child {
		res := simulate(cfg.sim)
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("encode result: %w", err)
		}
		fmt.Printf("%s%s\n", resultPrefix, b)
		return nil
	}
	return runAll(cfg)
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("controlplane", flag.ContinueOnError)
	var cfg config
	var sizes string
	var maxRSS float64
	fs.StringVar(&cfg.out, "out", "bench/controlplane.md", "Markdown report to write")
	fs.StringVar(&sizes, "n", "50,100,200,500,1000", "comma-separated numbers of members; a size whose projected memory exceeds -max-rss-gib is skipped")
	fs.DurationVar(&cfg.sim.heartbeat, "heartbeat", overlay.DefaultHeartbeat, "membership heartbeat")
	fs.IntVar(&cfg.sim.missed, "missed", overlay.DefaultMissedHeartbeats, "missed heartbeats before a member is dropped")
	fs.DurationVar(&cfg.sim.idle, "idle", 30*time.Second, "idle window for the traffic measurement")
	fs.DurationVar(&cfg.sim.settle, "settle", 10*time.Second, "pause between convergence and the idle window")
	fs.DurationVar(&cfg.sim.timeout, "timeout", 120*time.Second, "give up on convergence after this long")
	fs.StringVar(&cfg.sim.cidr, "cidr", "10.77.0.0/20", "CLADNet range")
	fs.Float64Var(&maxRSS, "max-rss-gib", 14, "stop starting members (and skip larger sizes) above this RSS")
	fs.IntVar(&cfg.sim.workers, "workers", 4, "members started concurrently")
	fs.Float64Var(&cfg.sim.joinRate, "join-rate", 0, "members started per second (0: all at once, as fast as -workers allows)")
	fs.DurationVar(&cfg.budget, "budget", 15*time.Minute, "skip the remaining sizes once this much time has passed")
	fs.BoolVar(&cfg.child, "child", false, "internal: run one size and print its result")
	fs.StringVar(&cfg.sim.cpuProf, "cpuprofile", "", "with -child: write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return cfg, fmt.Errorf("-n: %q is not a number of members ≥ 2", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if cfg.sim.heartbeat <= 0 || cfg.sim.missed <= 0 || cfg.sim.idle <= 0 || cfg.sim.timeout <= 0 || cfg.sim.workers <= 0 {
		return cfg, errors.New("-heartbeat, -missed, -idle, -timeout and -workers must be positive")
	}
	cfg.sim.maxRSS = int64(maxRSS * (1 << 30))
	cfg.sim.n = cfg.sizes[0]
	cfg.command = "go run ./bench/controlplane " + strings.Join(args, " ")
	return cfg, nil
}

// runAll runs every size in a child process and writes the report.
func runAll(cfg config) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	rep := &report{cfg: cfg, machine: machineInfo(), date: time.Now()}
	begin := time.Now()
	var prev *result
	failed := 0 // sizes in a row that did not converge
	for _, n := range cfg.sizes {
		why := skipReason(cfg, prev, n, time.Since(begin))
		if why == "" && failed >= 2 {
			why = "two smaller sizes in a row did not converge"
		}
		if why != "" {
			progress("n=%d: skipped: %s", n, why)
			rep.skipped = append(rep.skipped, skip{n, why})
			continue
		}
		progress("n=%d: starting", n)
		res, err := runChild(exe, cfg, n)
		if err != nil {
			res = result{N: n, Error: err.Error(), ConvergedSec: -1, IdleMean: -1, IdleMax: -1}
		}
		rep.results = append(rep.results, res)
		failed++
		if res.Converged {
			failed = 0
		}
		if res.Started == n && res.RSSMiB > 0 {
			prev = &rep.results[len(rep.results)-1]
		}
		// Write after every size, so a later crash leaves a report.
		if err := rep.write(cfg.out); err != nil {
			return err
		}
	}
	if err := rep.write(cfg.out); err != nil {
		return err
	}
	progress("report written to %s", cfg.out)
	return nil
}

// skipReason says why size n should not run: the time budget is spent, or
// the previous size projects too much memory. Members keep a connection to
// every other member, so memory per node grows with N: total memory is
// projected as RSS per node × N × N/prevN.
func skipReason(cfg config, prev *result, n int, elapsed time.Duration) string {
	if elapsed > cfg.budget {
		return fmt.Sprintf("time budget of %s spent (%s elapsed)", cfg.budget, elapsed.Round(time.Second))
	}
	if prev == nil {
		return ""
	}
	scale := float64(n) / float64(prev.N)
	proj := prev.RSSMiB * float64(n) * scale / 1024
	if limit := float64(cfg.sim.maxRSS) / (1 << 30); proj > limit {
		return fmt.Sprintf("projected RSS %.1f GiB (%.1f MiB per node at N=%d × %d nodes × %.1f for the larger mesh) exceeds -max-rss-gib %.0f",
			proj, prev.RSSMiB, prev.N, n, scale, limit)
	}
	return ""
}

// runChild runs one size in a child process and decodes its result.
func runChild(exe string, cfg config, n int) (result, error) {
	limit := cfg.sim.timeout + cfg.sim.settle + cfg.sim.idle + 10*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	args := []string{"-child", "-n", strconv.Itoa(n),
		"-heartbeat", cfg.sim.heartbeat.String(), "-missed", strconv.Itoa(cfg.sim.missed),
		"-idle", cfg.sim.idle.String(), "-settle", cfg.sim.settle.String(),
		"-timeout", cfg.sim.timeout.String(), "-cidr", cfg.sim.cidr,
		"-max-rss-gib", strconv.FormatFloat(float64(cfg.sim.maxRSS)/(1<<30), 'f', -1, 64),
		"-workers", strconv.Itoa(cfg.sim.workers),
		"-join-rate", strconv.FormatFloat(cfg.sim.joinRate, 'f', -1, 64)}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	runErr := cmd.Run()
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			var res result
			if err := json.Unmarshal([]byte(line), &res); err != nil {
				return result{}, fmt.Errorf("decode result of N=%d: %w", n, err)
			}
			return res, nil
		}
	}
	if runErr != nil {
		return result{}, fmt.Errorf("child process for N=%d: %w", n, runErr)
	}
	return result{}, fmt.Errorf("child process for N=%d printed no result", n)
}
