//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// TestSecondCladnetOnSameMachine: two machines each join a second CLADNet
// next to the first; each CLADNet gets its own device and range, and both
// carry traffic.
func TestSecondCladnetOnSameMachine(t *testing.T) {
	c := newCluster(t, 2)
	first := ips(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := c.CladnetDir()
	if out, err := exec.CommandContext(ctx, bin, "cladnet", "create", "second", "--dir", dir, "--cidr", "10.78.0.0/24").CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	type joined struct {
		proc *netlab.Proc
		ip   netip.Addr
	}
	var second []joined
	for i, n := range c.Nodes {
		tok := filepath.Join(c.Dir, fmt.Sprintf("second-%d.token", i))
		if out, err := exec.CommandContext(ctx, bin, "cladnet", "issue", "second", "--dir", dir, "--host", n.Name+"-b",
			"--bootstrap", c.BootAddr, "--out", tok).CombinedOutput(); err != nil {
			t.Fatalf("issue: %v: %s", err, out)
		}
		hosts, err := n.Host.HostsFile() // shared with the first CLADNet's node
		if err != nil {
			t.Fatal(err)
		}
		p, err := n.Host.Start(bin, "join", "second", "--token-file", tok, "--state-dir", n.StateDir+"-second",
			"--tun-name", "cbnet1", "--port", "7461", "--api", "127.0.0.1:7471", "--heartbeat", "1s",
			"--dns", "hosts", "--hosts-file", hosts)
		if err != nil {
			t.Fatal(err)
		}
		second = append(second, joined{proc: p})
	}
	// Wait for both second-CLADNet addresses.
	for i, n := range c.Nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := n.Host.Run(ctx, bin, "status", "--json", "--api", "127.0.0.1:7471")
			var st api.Status
			if err == nil && json.Unmarshal(out, &st) == nil && st.IP != "" && st.Members == 2 {
				second[i].ip = netip.MustParseAddr(st.IP)
				if st.Device != "cbnet1" || st.CIDR != "10.78.0.0/24" {
					t.Fatalf("%s second CLADNet: device %q, range %q", n.Name, st.Device, st.CIDR)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never joined the second CLADNet: %s %v\n%s", n.Name, out, err, second[i].proc.Output())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Each CLADNet carries its own traffic on its own device.
	if err := pingOK(c.Nodes[0], first[c.Nodes[1]], 2); err != nil {
		t.Error(err)
	}
	out, err := c.Nodes[0].Host.Run(ctx, "ping", "-c", "2", "-i", "0.2", "-W", "2", "-I", "cbnet1", second[1].ip.String())
	if err != nil {
		t.Errorf("ping over cbnet1: %v: %s", err, out)
	}
	// The ranges stay apart: the first CLADNet's device holds no second-range address.
	addrs, err := c.Nodes[0].Host.Addrs("cbnet0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if netip.MustParsePrefix("10.78.0.0/24").Contains(a.Addr()) {
			t.Errorf("cbnet0 holds %s from the second CLADNet", a)
		}
	}
	for _, j := range second {
		if err := j.proc.Stop(); err != nil {
			t.Logf("stop: %v", err)
		}
	}
}
