//go:build linux

// Command demo runs a local CLADNet in network namespaces: a bootstrap node
// and three members on one switch, each with its own cbnet0. It prints every
// node's members table, pings every node from every node over cbnet0, prints
// the RTT matrix and cleans everything up (also on Ctrl-C). Needs root.
//
//	go run ./examples/demo --bin ./bin/cbnode
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
)

func main() {
	bin := flag.String("bin", "./bin/cbnode", "cbnode binary")
	nodes := flag.Int("nodes", 3, "number of members")
	hold := flag.Bool("hold", false, "keep the network up until Ctrl-C")
	flag.Parse()
	if err := run(*bin, *nodes, *hold); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

func run(bin string, nodes int, hold bool) error {
	if err := cluster.Check(); err != nil {
		return fmt.Errorf("%w: run 'sudo make demo'", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	step("building the lab: switch %s, a bootstrap node and %d members in network namespaces", cluster.Underlay, nodes)
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: "cbdemo", Nodes: nodes})
	if err != nil {
		return err
	}
	defer func() {
		step("cleaning up: stopping nodes, deleting namespaces")
		if err := c.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: %v\n", err)
		}
	}()
	fmt.Printf("bootstrap node: %s\n", c.BootAddr)
	start := time.Now()
	if err := c.StartAll(); err != nil {
		return err
	}
	step("waiting for every member to see every member with an overlay IP")
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = c.WaitConverged(wctx)
	cancel()
	if err != nil {
		for _, n := range c.Nodes {
			if n.Proc != nil {
				fmt.Fprintf(os.Stderr, "--- %s log:\n%s\n", n.Name, n.Proc.Output())
			}
		}
		return err
	}
	fmt.Printf("converged in %s\n", time.Since(start).Round(time.Millisecond))

	ips := map[string]netip.Addr{}
	for _, n := range c.Nodes {
		out, err := n.CLI(ctx, "peers")
		if err != nil {
			return err
		}
		step("members table on %s (%s)", n.Name, n.Underlay.Addr())
		fmt.Print(string(out))
		if ips[n.Name], err = n.IP(ctx); err != nil {
			return err
		}
	}

	step("ping over cbnet0: every node to every node (ICMP, 5 packets, average RTT in ms)")
	rtt := regexp.MustCompile(`= [\d.]+/([\d.]+)/`)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "from \\ to\t")
	for _, n := range c.Nodes {
		fmt.Fprintf(w, "%s %s\t", n.Name, ips[n.Name])
	}
	fmt.Fprintln(w)
	failed := 0
	for _, from := range c.Nodes {
		fmt.Fprintf(w, "%s\t", from.Name)
		for _, to := range c.Nodes {
			if from == to {
				fmt.Fprint(w, "-\t")
				continue
			}
			out, err := from.Host.Run(ctx, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", "cbnet0", ips[to.Name].String())
			m := rtt.FindSubmatch(out)
			if err != nil || m == nil {
				failed++
				fmt.Fprint(w, "FAIL\t")
				continue
			}
			fmt.Fprintf(w, "%s\t", m[1])
		}
		fmt.Fprintln(w)
	}
	w.Flush()

	step("cbnode ping (the overlay's own probe, with the path it took)")
	if len(c.Nodes) >= 2 {
		out, err := c.Nodes[0].CLI(ctx, "ping", "--count", "2", c.Nodes[1].Name)
		fmt.Print(string(out))
		if err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d pings failed", failed)
	}
	if hold {
		step("network is up; try: ip netns exec %s bash  (Ctrl-C to stop)", c.Nodes[0].Host.Namespace())
		<-ctx.Done()
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("\n== %s\n", strings.TrimSpace(fmt.Sprintf(format, args...)))
}
