//go:build linux

package netlab

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test unless it runs as root with the iproute2 "ip"
// command available. Under CI (CI=true) the test fails instead, so that a
// misconfigured CI cannot silently skip the network tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "needs the iproute2 'ip' command for network namespaces")
	}
}

// RequireCommand skips the test if the command is not in PATH (failing it
// under CI=true), e.g. RequireCommand(t, "iptables").
func RequireCommand(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		skipOrFail(t, "needs the "+name+" command")
	}
}

func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: not skipping)")
	}
	t.Skip(msg)
}

// NewT is New for tests: it calls RequireRoot, fails the test if the lab
// cannot be created, and closes the lab in t.Cleanup (which also runs when
// the test fails or panics).
func NewT(t testing.TB, prefix string) *Lab {
	t.Helper()
	RequireRoot(t)
	l, err := New(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: close lab %s: %v", l.ID(), err)
		}
	})
	return l
}
