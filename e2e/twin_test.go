//go:build linux

package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// TestTwinIdentity: n1's token and state directory copied to another host
// (a cloned VM image with a baked-in token) and started there while n1 and
// n2 run. The copy exits with code 1 and the identity-conflict message; n1
// keeps its address and its membership, and says so in its status.
func TestTwinIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace end-to-end test skipped in -short mode")
	}
	c := newClusterPrefix(t, "cbl2", 2)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ip, err := n1.IP(ctx)
	if err != nil {
		t.Fatal(err)
	}

	clone, err := c.AddHost("clone", c.LAN, 30)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", n1.StateDir, clone.StateDir).CombinedOutput(); err != nil {
		t.Fatalf("copy the state directory: %v: %s", err, out)
	}
	clone.TokenFile = n1.TokenFile
	if err := c.Start(clone); err != nil {
		t.Fatal(err)
	}
	p := clone.Proc
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Stop()
		}
		if t.Failed() {
			t.Logf("--- clone log (tail):\n%s", tail(p.Output(), 6000))
		}
	})
	select {
	case <-p.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the copy still runs 60 s after it started")
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("the copy exited with %v, want exit code 1", err)
	}
	out := string(p.Output())
	msg := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "another node is running with this identity") {
			msg = line
		}
	}
	if msg == "" || !strings.Contains(msg, "cbnode cladnet issue") || !strings.Contains(msg, n1.Underlay.Addr().String()) {
		t.Fatalf("the copy's output names no identity conflict with n1 (%s):\n%s", n1.Underlay.Addr(), tail(p.Output(), 3000))
	}
	t.Logf("the copy: %s", msg)
	if strings.Contains(out, "released overlay address") {
		t.Errorf("the copy released the shared address")
	}

	st, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.IdentityConflict == "" {
		t.Errorf("n1's status reports no identity conflict")
	}
	t.Logf("n1's status: %s", st.IdentityConflict)
	// Three heartbeats later n1 still holds its address, n2 still lists it
	// there, tunneling, and packets flow.
	time.Sleep(3 * time.Second)
	if got, err := n1.IP(ctx); err != nil || got != ip {
		t.Fatalf("n1's address %s (%v), want %s", got, err, ip)
	}
	converge(t, c)
	if err := pingOK(n2, ip, 3); err != nil {
		t.Fatal(err)
	}
	if text, err := n1.CLI(ctx, "status"); err != nil || !strings.Contains(string(text), "Identity conflict") {
		t.Errorf("cbnode status on n1: %v\n%s", err, text)
	} else {
		t.Logf("cbnode status on n1:\n%s", text)
	}
}

// newClusterPrefix is newCluster with a lab name prefix of its own.
func newClusterPrefix(t *testing.T, prefix string, nodes int) *cluster.Cluster {
	t.Helper()
	netlab.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.New(ctx, bin, cluster.Options{Prefix: prefix, Nodes: nodes, LogLevel: "debug"})
	if err != nil {
		t.Fatal(err)
	}
	cleanupLab(t, c)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	converge(t, c)
	return c
}
