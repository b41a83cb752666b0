//go:build linux

// Command dataplane benchmarks cbnode's data plane in a network-namespace
// lab (package internal/cluster: a bootstrap node and two members on one
// switch) and writes a Markdown report:
//
//   - side by side in one pass (compare.go, peers.go): raw veth,
//     wireguard-go and Nebula (built from the Go module proxy at pinned
//     versions, run in the same two namespaces as cbnode's default lab) and
//     cbnode variants (default, --mtu 1420, --tun-offload=false, and with
//     -bin-before an older binary): 1 and 4 TCP streams, ping avg/p99,
//     daemon CPU, CPU-seconds per GB at iperf3 -b 1G, system calls per MB
//     (perf stat), peak RSS, ratios to raw and to the best peer;
//   - iperf3 TCP throughput n1 → n2 over cbnet0 and over the raw veth
//     underlay, 1 and 4 streams, median and range of -reps runs;
//   - ping RTT over both paths and the RTT the overlay adds;
//   - CPU and memory of both cbnode daemons during the 1-stream overlay test;
//   - the transport the packet stream rides on, and a comparison of QUIC
//     and TCP (each forced with iptables inside the lab namespaces);
//   - an MTU sweep of cbnet0 (one fresh lab per MTU, also with TCP forced);
//   - if perf is installed, CPU profiles of an extra overlay test with the
//     default and with the TCP transport.
//
// The machine may be shared: before each test the program waits (at most
// -quiet-wait) for other work to pause, and it reports the CPU that
// processes outside the lab used during the tests.
//
// It needs root, iperf3 and ping; perf is optional; the peers need go
// (for go install) and wg (Debian wireguard-tools). Nothing runs outside
// the lab's namespaces except perf (which only observes) and the cbnode
// CLI for 'cladnet create/issue' (files only). Ctrl-C stops and cleans up.
//
//	make build && go run ./bench/dataplane -bin bin/cbnode -out bench/dataplane.md
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
)

// config holds the command-line settings.
type config struct {
	bin        string
	out        string
	duration   time.Duration
	reps       int
	mtuReps    int
	mtus       []int
	transports bool
	transReps  int
	mtuTCP     bool
	perf       bool
	quietWait  time.Duration
	compare    bool   // the side-by-side phase
	peers      bool   // with wireguard-go and Nebula
	peersDir   string // where their binaries are built
	binBefore  string // an older cbnode binary measured as "before"
	pings      int
	syscalls   bool
	main       bool // the original main measurements
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin/cbnode", "cbnode binary (make build)")
	flag.StringVar(&cfg.out, "out", "bench/dataplane.md", "Markdown report to write")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of one iperf3 test (whole seconds)")
	flag.IntVar(&cfg.reps, "reps", 3, "repetitions of each main throughput test")
	flag.IntVar(&cfg.mtuReps, "mtu-reps", 2, "repetitions per MTU in the MTU study")
	mtus := flag.String("mtus", "1280,1420,9000,16000", "cbnet0 MTUs for the MTU study, comma-separated (empty skips it)")
	flag.BoolVar(&cfg.compare, "compare", true, "measure raw veth, wireguard-go, Nebula and cbnode variants side by side in one pass")
	flag.BoolVar(&cfg.peers, "peers", true, "include wireguard-go and Nebula in the comparison (built with 'go install' from the module proxy at pinned versions; needs wg)")
	flag.StringVar(&cfg.peersDir, "peers-dir", "bin/peers", "where the peers' binaries are built (kept between runs)")
	flag.StringVar(&cfg.binBefore, "bin-before", "", "an older cbnode binary to measure as \"before\" in the comparison (e.g. built from main)")
	flag.IntVar(&cfg.pings, "pings", 300, "pings per system in the comparison (10 ms apart)")
	flag.BoolVar(&cfg.syscalls, "syscalls", true, "count the daemons' system calls with perf stat during the -b 1G test")
	flag.BoolVar(&cfg.main, "main", true, "the main measurements of cbnode's default lab (throughput, RTT, load, counters)")
	flag.BoolVar(&cfg.transports, "transports", false, "compare QUIC and TCP (forced with iptables inside the lab)")
	flag.IntVar(&cfg.transReps, "transport-reps", 2, "repetitions per transport in the transport comparison")
	flag.BoolVar(&cfg.mtuTCP, "mtu-tcp", false, "repeat the MTU study with TCP forced")
	flag.DurationVar(&cfg.quietWait, "quiet-wait", 30*time.Second, "before each test, wait up to this long for other work on the machine to pause")
	flag.BoolVar(&cfg.perf, "perf", true, "profile one extra overlay test with 'perf record -a' if perf is installed")
	flag.Parse()

	var err error
	if cfg.mtus, err = parseInts(*mtus); err != nil {
		fatal(fmt.Errorf("-mtus: %w", err))
	}
	if err := run(cfg); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "dataplane: %v\n", err)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (c *config) check() error {
	if err := cluster.Check(); err != nil {
		return err
	}
	if c.duration < time.Second || c.duration%time.Second != 0 {
		return fmt.Errorf("-duration %s: want whole seconds, at least 1s", c.duration)
	}
	if c.reps < 1 || c.mtuReps < 1 || c.transReps < 1 {
		return errors.New("-reps, -mtu-reps and -transport-reps must be at least 1")
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("cbnode binary: %w (run 'make build')", err)
	}
	for _, tool := range []string{"iperf3", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is needed: %w (apt-get install -y %s)", tool, err, tool)
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil && (c.transports || c.mtuTCP) {
		return fmt.Errorf("iptables is needed for -transports and -mtu-tcp: %w", err)
	}
	if _, err := exec.LookPath("perf"); err != nil && (c.perf || c.syscalls) {
		fmt.Fprintln(os.Stderr, "dataplane: perf not found, skipping the profile and the system call counts")
		c.perf, c.syscalls = false, false
	}
	if c.binBefore != "" {
		if _, err := os.Stat(c.binBefore); err != nil {
			return fmt.Errorf("-bin-before: %w", err)
		}
	}
	return nil
}

func run(cfg config) error {
	if err := cfg.check(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	r := &report{cfg: cfg, start: time.Now(), machine: machineInfo()}
	// Labs run a private copy: bin/cbnode may be rebuilt while we run.
	tmp, err := os.MkdirTemp("", "cbdp-bin-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if r.binInfo, err = copyBinary(cfg.bin, filepath.Join(tmp, "cbnode")); err != nil {
		return err
	}
	cfg.bin = filepath.Join(tmp, "cbnode")
	if cfg.binBefore != "" {
		// Named cbnode too: the labs find the daemon by its command name.
		dir := filepath.Join(tmp, "before")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		if r.binBeforeInfo, err = copyBinary(cfg.binBefore, filepath.Join(dir, "cbnode")); err != nil {
			return err
		}
		cfg.binBefore = filepath.Join(dir, "cbnode")
	}
	b := &bench{cfg: cfg, rep: r}
	phases := []struct {
		name string
		on   bool
		fn   func(context.Context) error
	}{
		{"comparison", cfg.compare, b.comparePhase},
		{"main measurements", cfg.main, b.mainPhase},
		{"transport comparison", cfg.transports, b.transportPhase},
		{"MTU study", len(cfg.mtus) > 0, b.mtuPhase},
	}
	for _, ph := range phases {
		if !ph.on {
			continue
		}
		if err := ph.fn(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: interrupted (lab removed)", ph.name)
			}
			return fmt.Errorf("%s: %w", ph.name, err)
		}
	}
	r.end = time.Now()
	r.loadEnd = readFirstLine("/proc/loadavg")
	if err := os.WriteFile(cfg.out, []byte(r.markdown()), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	logf("report written to %s", cfg.out)
	return nil
}

// copyBinary copies the cbnode binary to dst and describes the original
// (sha256 prefix, modification time).
func copyBinary(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("read cbnode binary: %w", err)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("cbnode binary: %w", err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		return "", fmt.Errorf("copy cbnode binary: %w", err)
	}
	sum := sha256.Sum256(b)
	return fmt.Sprintf("`%s`, sha256 %x…, built %s", src, sum[:6], fi.ModTime().UTC().Format("2006-01-02 15:04 MST")), nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
