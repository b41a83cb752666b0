package tumblebug

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBootstrapUnitVerifies: the bootstrap node's unit passes
// systemd-analyze verify (with this test binary standing in for cbnode:
// verify checks that ExecStart is executable).
func TestBootstrapUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs systemd-analyze (package systemd) (CI=true: not skipping)")
		}
		t.Skip("needs systemd-analyze (package systemd)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Service: ServiceSystemd, Sudo: "sudo", Port: 7460, BootstrapPort: 7461}
	unit := l.BootstrapUnit("203.0.113.7", "ownerkeyexample")
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/cbnode bootstrap --state-dir /var/lib/cbnode-bootstrap --port 7461 --announce 203.0.113.7 --relay --cladnet-owner ownerkeyexample\n") {
		t.Fatalf("unexpected ExecStart:\n%s", unit)
	}
	f := filepath.Join(t.TempDir(), "cbnode-bootstrap.service")
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(unit, "/usr/local/bin/cbnode ", self+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", f).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, f) || strings.Contains(line, "cbnode-bootstrap.service:") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
