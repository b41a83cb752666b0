package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want []string }{
		{[]string{"cbnode", "join", "lab", "--token", "T", "--no-tun"}, []string{"cbnode", "join", "--token", "T", "--no-tun", "--", "lab"}},
		{[]string{"cbnode", "cladnet", "create", "lab", "--dir=x"}, []string{"cbnode", "cladnet", "create", "--dir=x", "--", "lab"}},
		{[]string{"cbnode", "peers", "--json"}, []string{"cbnode", "peers", "--json"}},
		{[]string{"cbnode", "ping", "vm2", "-c", "2"}, []string{"cbnode", "ping", "-c", "2", "--", "vm2"}},
		{[]string{"cbnode", "--help"}, []string{"cbnode", "--help"}},
		{[]string{"cbnode", "cladnet"}, []string{"cbnode", "cladnet"}},
		{[]string{"cbnode", "cladnet", "create", "q", "--dir"}, []string{"cbnode", "cladnet", "create", "--dir"}},
		{[]string{"cbnode", "ping", "vm2", "-c1"}, []string{"cbnode", "ping", "-c", "1", "--", "vm2"}},
		{[]string{"cbnode", "join", "lab", "--no-tun"}, []string{"cbnode", "join", "--no-tun", "--", "lab"}},
		{[]string{"cbnode", "ping", "vm2", "--generate-bash-completion"}, []string{"cbnode", "ping", "vm2", "--generate-bash-completion"}},
	} {
		if got := interspersed(app, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCLI runs the real binary: creating CLADNets, issuing tokens and the
// one-line refusals of bad join tokens.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cbnode")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CBNODE_API=127.0.0.1:1") // never reach a real node
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	cl := filepath.Join(dir, "cl")
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("cbnode %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustRun("cladnet", "create", "lab", "--dir", cl)
	mustRun("cladnet", "create", "other", "--dir", cl)
	out := mustRun("cladnet", "create", "auto1", "--dir", cl, "--cidr", "auto", "--subnet", "10.0.0.0/8", "--subnet", "172.16.0.0/12", "--hosts", "20")
	if !strings.Contains(out, `"ipv4AddressSpace": "192.168.0.0/26"`) {
		t.Errorf("--cidr auto with 10/8 and 172.16/12 in use: %s", out)
	}
	mustRun("cladnet", "issue", "other", "--dir", cl, "--host", "x", "--out", filepath.Join(dir, "other.token"))
	mustRun("cladnet", "issue", "lab", "--dir", cl, "--host", "old", "--ttl", "1ns", "--out", filepath.Join(dir, "old.token"))
	tok := strings.TrimSpace(mustRun("cladnet", "issue", "lab", "--dir", cl, "--host", "vm1",
		"--bootstrap", "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK"))
	if !strings.HasPrefix(tok, "cbnode-token-v1:") {
		t.Fatalf("token: %q", tok)
	}
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"other CLADNet", []string{"join", "lab", "--token-file", filepath.Join(dir, "other.token")}, "is for CLADNet other", exitUsage},
		{"expired", []string{"join", "lab", "--token-file", filepath.Join(dir, "old.token")}, "expired", exitCredential},
		{"garbled", []string{"join", "lab", "--token", tok[:len(tok)-40] + "%%%"}, "garbled", exitCredential},
		{"truncated", []string{"join", "lab", "--token", tok[:60]}, "garbled", exitCredential},
		{"not a token", []string{"join", "lab", "--token", "hello"}, "not a cbnode join token", exitCredential},
		{"no token", []string{"join", "lab"}, "no join token", exitCredential},
		{"no token file", []string{"join", "lab", "--token-file", filepath.Join(dir, "nope")}, "token file", exitCredential},
		{"ip outside", []string{"join", "lab", "--token", tok, "--ip", "192.168.9.9"}, "outside", exitUsage},
		{"bad bootstrap", []string{"join", "lab", "--token", tok, "--bootstrap", "/ip4/1.2.3.4/tcp/1"}, "bootstrap", exitUsage},
		{"bad mtu", []string{"join", "lab", "--token", tok, "--mtu", "100"}, "--mtu 100", exitUsage},
		{"bad port", []string{"join", "lab", "--token", tok, "--port", "70000"}, "--port 70000", exitUsage},
		{"bad full mesh", []string{"join", "lab", "--token", tok, "--full-mesh-max", "-3"}, "--full-mesh-max -3", exitUsage},
		{"bad tunnel idle", []string{"join", "lab", "--token", tok, "--tunnel-idle", "-1s"}, "--tunnel-idle -1s", exitUsage},
		{"bad probe interval", []string{"join", "lab", "--token", tok, "--probe-interval", "1ms"}, "--probe-interval 1ms", exitUsage},
		{"suspicion below probe", []string{"join", "lab", "--token", tok, "--probe-interval", "2s", "--suspicion-timeout", "1s"}, "--suspicion-timeout 1s", exitUsage},
		{"bad listen", []string{"join", "lab", "--token", tok, "--listen", "eth0"}, `--listen "eth0" is not an IP address`, exitUsage},
		{"bad api", []string{"join", "lab", "--token", tok, "--api", "7470"}, `--api "7470"`, exitUsage},
		{"bad tun name", []string{"join", "lab", "--token", tok, "--tun-name", "cb/net"}, "invalid device name", exitUsage},
		{"bootstrap bad listen", []string{"bootstrap", "--listen", "nope", "--state-dir", filepath.Join(dir, "bs")}, `--listen "nope"`, exitUsage},
		{"bad dns", []string{"join", "lab", "--token", tok, "--dns", "dnsmasq"}, "--dns: unknown names mode \"dnsmasq\": give one of auto, resolved, hosts, server, off", exitUsage},
		{"unknown flag", []string{"join", "lab", "--frobnicate"}, "flag provided but not defined", exitUsage},
		{"no name", []string{"join", "--token", tok}, "need exactly one CLADNet NAME", exitUsage},
		{"missing cladnet", []string{"cladnet", "issue", "nope", "--dir", cl}, "not found", exitNotFound},
		{"host name with a tab", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm\t1"}, "invalid host name", exitUsage},
		{"bad cidr", []string{"cladnet", "create", "x", "--dir", cl, "--cidr", "10.0.0.1/24"}, "host bits", exitFailure},
		{"bad subnet", []string{"ipam", "recommend", "--subnet", "fd00::/8", "--hosts", "3"}, "IPv6", exitFailure},
		{"no node", []string{"status"}, "cannot reach the cbnode API", exitUnreachable},
		{"no node to ping", []string{"ping", "vm2", "-c2"}, "cannot reach the cbnode API", exitUnreachable},
		{"duplicate host", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm1"}, "vm1 is issued to peer", exitUsage},
		{"bad peer id", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm9", "--peer-id", "notapeerid"}, "is not a peer ID", exitUsage},
		{"bound ip outside the range", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm9", "--ip", "10.200.0.1"}, "is not in CLADNet lab's range", exitUsage},
		{"bound ip not an address", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm9", "--ip", "vm9"}, `--ip "vm9" is not an IPv4 address`, exitUsage},
		{"bound ip for an operator", []string{"cladnet", "issue", "lab", "--dir", cl, "--host", "vm9", "--ip", "10.77.0.9", "--role", "operator"}, "an operator certificate claims no overlay address", exitUsage},
		{"public range", []string{"cladnet", "create", "pub", "--dir", cl, "--cidr", "8.8.8.0/24"}, "is not private", exitFailure},
		{"dangling value flag", []string{"cladnet", "create", "q", "--dir"}, "flag needs an argument", exitUsage},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`, exitUsage},
		{"operator beyond loopback without auth", []string{"operator", "--dir", filepath.Join(dir, "op"), "--listen", "0.0.0.0:0"}, "needs --auth-file", exitUsage},
		{"operator tls cert without key", []string{"operator", "--dir", filepath.Join(dir, "op"), "--listen", "127.0.0.1:0", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together", exitUsage},
		{"operator bad listen", []string{"operator", "--dir", filepath.Join(dir, "op"), "--listen", "7480"}, `--listen "7480"`, exitUsage},
		{"no operator", []string{"cladnet", "list", "--operator", "http://127.0.0.1:1"}, "cannot reach the operator", exitUnreachable},
		{"bad operator url", []string{"cladnet", "get", "lab", "--operator", "127.0.0.1:7480"}, "give the operator's URL", exitUsage},
		{"unknown subcommand", []string{"cladnet", "frob"}, `unknown command "frob"`, exitUsage},
	} {
		out, err := run(append(tc.args, "--state-dir", state)...)
		if tc.args[0] != "join" {
			out, err = run(tc.args...)
		}
		if err == nil {
			t.Errorf("%s: exit 0, want an error: %s", tc.name, out)
			continue
		}
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != tc.code {
			t.Errorf("%s: %v, want exit code %d", tc.name, err, tc.code)
		}
		if n := strings.Count(strings.TrimSpace(out), "\n"); n != 0 || !strings.HasPrefix(out, "cbnode: ") {
			t.Errorf("%s: want one line starting with 'cbnode: ', got %q", tc.name, out)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: %q does not mention %q", tc.name, out, tc.want)
		}
	}
	// A name held by an expired certificate is free again; --replace takes
	// a live one.
	mustRun("cladnet", "issue", "lab", "--dir", cl, "--host", "old")
	mustRun("cladnet", "issue", "lab", "--dir", cl, "--host", "vm1", "--replace", "--out", filepath.Join(dir, "vm1b.token"))
	if out := mustRun("cladnet", "issue", "lab", "--dir", cl, "--host", "nb"); !strings.Contains(out, "warning: the token names no bootstrap node") {
		t.Errorf("issue without --bootstrap: no warning: %s", out)
	}
	if _, err := os.Stat("q"); err == nil {
		t.Error("a dangling --dir created ./q")
	}
	// --check validates and exits without joining.
	out = mustRun("join", "lab", "--token", tok, "--no-tun", "--check", "--state-dir", state)
	if !strings.Contains(out, "ok: would join CLADNet lab") {
		t.Errorf("join --check: %s", out)
	}
	// M5: a token in argv, or in a file others can read, is warned about.
	if !strings.Contains(out, "--token puts the join token in the process list") {
		t.Errorf("join --token: no warning about argv: %s", out)
	}
	tf := filepath.Join(dir, "vm1.token")
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o600, false}} {
		if err := os.WriteFile(tf, []byte(tok+"\n"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tf, tc.mode); err != nil {
			t.Fatal(err)
		}
		out := mustRun("join", "lab", "--token-file", tf, "--no-tun", "--check", "--state-dir", state)
		if got := strings.Contains(out, "readable by other users"); got != tc.warn || strings.Contains(out, "process list") {
			t.Errorf("token file mode %#o: warned %v, want %v: %s", tc.mode, got, tc.warn, out)
		}
	}
	if out := mustRun("cladnet", "issue", "--help"); !strings.Contains(out, "--peer-id") || !strings.Contains(out, "30 days") {
		t.Errorf("cladnet issue --help does not explain the --peer-id flow and the lifetime: %s", out)
	}
	// Every command explains itself.
	for _, c := range [][]string{{"--help"}, {"join", "--help"}, {"cladnet", "issue", "--help"}, {"bootstrap", "--help"}} {
		out := mustRun(c...)
		if !strings.Contains(out, "USAGE") && !strings.Contains(out, "Usage") {
			t.Errorf("%v: no usage text: %s", c, out)
		}
	}
}
