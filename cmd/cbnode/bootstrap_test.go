package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func buildCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cbnode")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	return bin
}

// startBootstrap runs 'cbnode bootstrap args...' on 127.0.0.1 and returns
// the process and its first stdout line (or fails).
func startBootstrap(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"bootstrap", "--state-dir", t.TempDir(), "--listen", "127.0.0.1"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		if s.Scan() {
			lines <- s.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatal("cbnode bootstrap printed nothing")
		}
		return cmd, line
	case <-time.After(20 * time.Second):
		t.Fatal("cbnode bootstrap printed nothing within 20 s")
	}
	return nil, ""
}

// TestBootstrapAnnounce: the announced IP is what 'cbnode bootstrap'
// prints for members (it is only advertised: the node dials nothing).
func TestBootstrapAnnounce(t *testing.T) {
	bin := buildCLI(t)
	cmd, line := startBootstrap(t, bin, "--port", "0", "--announce", "203.0.113.7")
	if !regexp.MustCompile(`^--bootstrap /ip4/203\.0\.113\.7/tcp/[1-9][0-9]*/p2p/12D3KooW[1-9A-HJ-NP-Za-km-z]+$`).MatchString(line) {
		t.Errorf("printed %q, want --bootstrap /ip4/203.0.113.7/tcp/<port>/p2p/<id>", line)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v, want exit 0", err)
	}

	// Without --announce, on loopback only: the loopback TCP address.
	cmd, line = startBootstrap(t, bin, "--port", "0")
	if !regexp.MustCompile(`^--bootstrap /ip4/127\.0\.0\.1/tcp/[1-9][0-9]*/p2p/12D3KooW`).MatchString(line) {
		t.Errorf("printed %q, want --bootstrap /ip4/127.0.0.1/tcp/<port>/p2p/<id>", line)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()

	for _, bad := range []string{"203.0.113.7:7460", "0.0.0.0", "not_a_name", "/ip4/203.0.113.7/tcp/7460/p2p/12D3KooWCXRj666AtjwTDBZK4AYDSYrHWVfyi5UERWsxu14VWzdL"} {
		out, err := exec.Command(bin, "bootstrap", "--state-dir", t.TempDir(), "--listen", "127.0.0.1", "--port", "0", "--announce", bad).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("--announce %q: %v, want exit code %d: %s", bad, err, exitUsage, out)
			continue
		}
		if s := strings.TrimSpace(string(out)); strings.Contains(s, "\n") || !strings.HasPrefix(s, "cbnode: --announce: ") {
			t.Errorf("--announce %q: want one line 'cbnode: --announce: ...', got %q", bad, out)
		}
	}
}

// TestSecondNodeOnSamePortExits: a second bootstrap or member on the port a
// bootstrap node holds exits at once, non-zero, saying so.
func TestSecondNodeOnSamePortExits(t *testing.T) {
	bin := buildCLI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	first, _ := startBootstrap(t, bin, "--port", fmt.Sprint(port))
	defer func() {
		_ = first.Process.Signal(syscall.SIGTERM)
		_ = first.Wait()
	}()

	dir := t.TempDir()
	cl := filepath.Join(dir, "cl")
	if out, err := exec.Command(bin, "cladnet", "create", "lab", "--dir", cl).CombinedOutput(); err != nil {
		t.Fatalf("cladnet create: %v: %s", err, out)
	}
	tok, err := exec.Command(bin, "cladnet", "issue", "lab", "--dir", cl, "--host", "vm1").Output()
	if err != nil {
		t.Fatalf("cladnet issue: %v", err)
	}
	want := fmt.Sprintf("cbnode: another cbnode (or something else) listens on TCP 127.0.0.1:%d: stop it or give --port", port)
	for _, args := range [][]string{
		{"bootstrap", "--state-dir", filepath.Join(dir, "b2"), "--listen", "127.0.0.1", "--port", fmt.Sprint(port)},
		{"join", "lab", "--token", strings.TrimSpace(string(tok)), "--no-tun", "--api", "", "--state-dir", filepath.Join(dir, "m"),
			"--listen", "127.0.0.1", "--port", fmt.Sprint(port)},
	} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CBNODE_API=")
		done := make(chan struct{})
		var out []byte
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("cbnode %s on a port in use kept running", args[0])
			continue
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Errorf("cbnode %s on a port in use: %v, want exit code %d: %s", args[0], err, exitFailure, out)
		}
		if !strings.Contains(string(out), want) {
			t.Errorf("cbnode %s on a port in use said %q, want the line %q", args[0], out, want)
		}
	}
}
