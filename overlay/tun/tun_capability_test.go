//go:build linux

package tun

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/internal/netlab"
	"golang.org/x/sys/unix"
)

// helperEnv, when set in the environment of the test binary, turns it into
// the helper process of TestOnlyCapNetAdmin instead of running the tests.
const helperEnv = "CBNODE_TUN_CAPHELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := capHelper(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// capHelper is what a non-root "cbnode join" does with the device: Open,
// SetAddr, re-address from another goroutine, Close. It reports each step
// on out and waits for a line on in before the next one, so that the test
// can inspect the namespace in between.
func capHelper(in io.Reader, out io.Writer) error {
	// Make sure the test is not vacuous: no uid 0, no capability but
	// CAP_NET_ADMIN, in none of the sets.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	want := fmt.Sprintf("%016x", uint64(1)<<unix.CAP_NET_ADMIN)
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff", "CapPrm", "CapBnd", "CapAmb":
			if v != want {
				return fmt.Errorf("%s = %s, want only CAP_NET_ADMIN (%s)", k, v, want)
			}
		case "Uid":
			if strings.Fields(v)[1] == "0" {
				return fmt.Errorf("runs as root (Uid: %s)", v)
			}
		}
	}
	fmt.Fprintln(out, "caps ok")

	lines := bufio.NewScanner(in)
	next := func(want string) error {
		if !lines.Scan() {
			return fmt.Errorf("waiting for %q: %v", want, lines.Err())
		}
		if lines.Text() != want {
			return fmt.Errorf("got %q, want %q", lines.Text(), want)
		}
		return nil
	}

	d, err := Open(DefaultName, 1400)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.SetAddr(devAddr); err != nil {
		return err
	}
	fmt.Fprintln(out, "addr set")

	if err := next("readdr"); err != nil {
		return err
	}
	// From a goroutine that is not the one that opened the device (and
	// not locked to its thread), as the daemon does on an address change.
	done := make(chan error, 1)
	go func() { done <- d.SetAddr(netip.MustParsePrefix("10.77.0.6/24")) }()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintln(out, "readdressed")

	if err := next("close"); err != nil {
		return err
	}
	go func() { done <- d.Close() }()
	if err := <-done; err != nil {
		return err
	}
	fmt.Fprintln(out, "closed")
	return nil
}

// TestOnlyCapNetAdmin runs Open, SetAddr and Close in a process that is not
// root and has CAP_NET_ADMIN as its only capability (ambient, as a systemd
// unit with AmbientCapabilities=CAP_NET_ADMIN or a setcap'ed binary gives
// it), inside a fresh namespace: what README promises for "cbnode join".
func TestOnlyCapNetAdmin(t *testing.T) {
	t.Parallel()
	netlab.RequireCommand(t, "setpriv")
	lab := netlab.NewT(t, "cbtcap")
	h, err := lab.Host("h")
	if err != nil {
		t.Fatal(err)
	}

	// A copy of the test binary that uid 65534 can execute (the go test
	// work directory is private to root).
	dir, err := os.MkdirTemp("", "cbtcap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper")
	copyFile(t, self, helper, 0o755)

	// /dev/net/tun is normally mode 0666; some containers create it 0600.
	// Then the helper gets a 0666 node of the same device, bind-mounted over
	// /dev/net/tun in the private mount namespace "ip netns exec" creates
	// for it: nothing changes outside.
	prog := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
		"--bounding-set=-all,+net_admin", helper}
	if unix.Access("/dev/net/tun", unix.R_OK|unix.W_OK) != nil {
		t.Fatal("/dev/net/tun missing or not usable")
	}
	if fi, err := os.Stat("/dev/net/tun"); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm()&0o006 != 0o006 {
		tunNode := filepath.Join(dir, "tun")
		if err := unix.Mknod(tunNode, unix.S_IFCHR|0o666, int(unix.Mkdev(10, 200))); err != nil {
			t.Fatalf("/dev/net/tun is mode %v and mknod %s failed: %v", fi.Mode().Perm(), tunNode, err)
		}
		if err := os.Chmod(tunNode, 0o666); err != nil { // umask
			t.Fatal(err)
		}
		prog = append([]string{"sh", "-c", `mount --bind "$0" /dev/net/tun && exec "$@"`, tunNode}, prog...)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Namespace()}, prog...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	wait := func() error {
		waited = true
		stdin.Close()
		return cmd.Wait()
	}
	defer func() {
		if !waited {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		t.Helper()
		if lines.Scan() && lines.Text() == want {
			return
		}
		got := lines.Text()
		err := wait()
		t.Fatalf("helper said %q, want %q (exit: %v)\nstderr: %s", got, want, err, stderr.String())
	}
	addrs := func() string {
		return strings.TrimSpace(run(t, h, "ip", "-4", "-o", "addr", "show", "dev", DefaultName))
	}

	expect("caps ok")
	expect("addr set")
	link := run(t, h, "ip", "-o", "link", "show", "dev", DefaultName)
	if !strings.Contains(link, "mtu 1400") || !strings.Contains(link, ",UP") || !strings.Contains(link, "qlen 2000") {
		t.Errorf("link: %s", link)
	}
	if a := addrs(); !strings.Contains(a, devAddr.String()) {
		t.Errorf("addresses: %s", a)
	}
	if r := run(t, h, "ip", "-4", "route", "get", "10.77.0.123"); !strings.Contains(r, "dev "+DefaultName) {
		t.Errorf("route: %s", r)
	}

	fmt.Fprintln(stdin, "readdr")
	expect("readdressed")
	if a := addrs(); !strings.Contains(a, "10.77.0.6/24") || strings.Contains(a, "10.77.0.5/") {
		t.Errorf("addresses after re-address: %s", a)
	}

	fmt.Fprintln(stdin, "close")
	expect("closed")
	if err := wait(); err != nil {
		t.Fatalf("helper: %v\nstderr: %s", err, stderr.String())
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if out, err := h.Run(ctx2, "ip", "link", "show", "dev", DefaultName); err == nil {
		t.Fatalf("link still exists after Close: %s", out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
