//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// TestUnreachableBootstrapSaysSo: a member whose token names a bootstrap
// address where nothing answers (the real bootstrap node's peer ID at a
// wrong IP) warns in its log, does not log that it joined, and `cbnode
// status` and `cbnode netcheck` say the bootstrap node is unreachable.
func TestUnreachableBootstrapSaysSo(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	netlab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := cluster.NewLab(ctx, bin, cluster.Options{Prefix: "cbl4", Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	if c.LAN, err = c.Lab.Switch("lan", cluster.Underlay); err != nil {
		t.Fatal(err)
	}
	boot, err := c.AddHost("boot", c.LAN, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartBootstrap(ctx, boot); err != nil {
		t.Fatal(err)
	}
	wrongIP := c.LAN.Addr(99).Addr().String() // on the switch, no host there
	good := "/ip4/" + boot.Underlay.Addr().String() + "/"
	if !strings.HasPrefix(c.BootAddr, good) {
		t.Fatalf("bootstrap address %s", c.BootAddr)
	}
	c.BootAddr = "/ip4/" + wrongIP + "/" + strings.TrimPrefix(c.BootAddr, good)
	n, err := c.AddHost("n1", c.LAN, 11)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddMember(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(n); err != nil {
		t.Fatal(err)
	}

	warn := "at " + c.BootAddr[:strings.Index(c.BootAddr, "/p2p/")] + " unreachable after 3 tries: check the address and that TCP/UDP 7460 is open to it"
	var status string
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := n.CLI(ctx, "status")
		status = string(out)
		if err == nil && strings.Contains(status, "offline: no member connected and bootstrap") &&
			strings.Contains(status, wrongIP+"/tcp/7460") && strings.Contains(status, "unreachable (") &&
			strings.Contains(string(n.Proc.Output()), warn) {
			break
		}
		if n.Proc.Exited() {
			t.Fatalf("join exited: %s", n.Proc.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: status (err %v):\n%s\nwant the bootstrap node unreachable, and %q in the log", err, status, warn)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("cbnode status:\n%s", status)
	if log := string(n.Proc.Output()); strings.Contains(log, "joined CLADNet") {
		t.Errorf("the log says it joined:\n%s", log)
	}
	out, err := n.CLI(ctx, "netcheck")
	t.Logf("cbnode netcheck (%v):\n%s", err, out)
	if err == nil || !strings.Contains(string(out), "FAILED") || !strings.Contains(string(out), wrongIP) {
		t.Errorf("netcheck: want a failure naming %s", wrongIP)
	}
}
