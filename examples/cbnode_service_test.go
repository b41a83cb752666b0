// This test keeps cbnode.service valid and sandboxed.

package examples

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest "Overall exposure level" systemd-analyze
// security may give cbnode.service, in tenths (its --threshold unit).
// Measured: 1.8 "OK" with systemd 252 (Debian 12); the old unit had 9.7
// "UNSAFE". What remains is what the daemon needs: the host's network,
// CAP_NET_ADMIN, /dev/net/tun, netlink, INET and UNIX sockets.
const maxExposure = 20

const unitFile = "cbnode.service"

// requireAnalyze skips the test without systemd-analyze, or fails it under
// CI=true (.ci/run installs it), like netlab.RequireCommand.
func requireAnalyze(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs systemd-analyze (package systemd) (CI=true: not skipping)")
		}
		t.Skip("needs systemd-analyze (package systemd)")
	}
	return path
}

// unitCopy writes cbnode.service to a temporary directory with the
// cbnode binary replaced by path, which exists (verify checks that
// ExecStart= and ExecStartPre= commands are executable).
func unitCopy(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("/usr/local/bin/cbnode ")) {
		t.Fatal("unit does not run /usr/local/bin/cbnode")
	}
	b = bytes.ReplaceAll(b, []byte("/usr/local/bin/cbnode "), []byte(path+" "))
	f := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUnitVerifies(t *testing.T) {
	analyze := requireAnalyze(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f := unitCopy(t, self)
	out, err := exec.Command(analyze, "verify", f).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Unknown keys and unparsable values are only warnings (exit 0).
	// Ignore warnings about other units of this machine.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, f) || strings.Contains(line, unitFile+":") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

var overallRE = regexp.MustCompile(`Overall exposure level for \S+: (\d+)\.(\d)`)

func TestUnitSecurity(t *testing.T) {
	analyze := requireAnalyze(t)
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold="+strconv.Itoa(maxExposure), unitFile).CombinedOutput()
	m := overallRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v, no overall exposure level in\n%s", err, out)
	}
	whole, _ := strconv.Atoi(string(m[1]))
	tenth, _ := strconv.Atoi(string(m[2]))
	got := whole*10 + tenth
	t.Logf("exposure %d.%d (limit %d.%d)", whole, tenth, maxExposure/10, maxExposure%10)
	if got > maxExposure || err != nil {
		t.Fatalf("systemd-analyze security: exposure %d.%d, want at most %d.%d (exit: %v)\n%s",
			whole, tenth, maxExposure/10, maxExposure%10, err, out)
	}
}

// TestUnitRestartPolicy pins what the exit codes in the unit's comment
// promise: usage (2) and credential (3) errors are not restarted.
func TestUnitRestartPolicy(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Restart=on-failure\n",
		"RestartPreventExitStatus=2 3\n",
		"DynamicUser=yes\n",
		"CapabilityBoundingSet=CAP_NET_ADMIN\n",
		"AmbientCapabilities=CAP_NET_ADMIN\n",
		"LoadCredential=token:/etc/cbnode/token\n",
		"Environment=CBNODE_TOKEN_FILE=%d/token\n",
		"DeviceAllow=/dev/net/tun rw\n",
	} {
		if !bytes.Contains(b, []byte("\n"+want)) {
			t.Errorf("%s lacks %q", unitFile, strings.TrimSpace(want))
		}
	}
}
