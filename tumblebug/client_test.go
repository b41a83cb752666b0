package tumblebug_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/tumblebugtest"
	"github.com/cloud-barista/cbnode/tumblebug"
)

// recorder is a node that runs nothing: it records each command and
// answers with canned output.
type recorder struct {
	mu   sync.Mutex
	cmds []string
	out  string
}

func (r *recorder) run(_ context.Context, home, command string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, command)
	return r.out, nil
}

func (r *recorder) commands() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.cmds...)
}

func standIn(t *testing.T) (*tumblebugtest.Server, map[string]*recorder) {
	t.Helper()
	s := tumblebugtest.New()
	s.User, s.Password = "u", "p"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(ln)
	t.Cleanup(s.Close)
	s.AddVNet("ns", tumblebug.VNet{ID: "vnet-1", CidrBlock: "10.0.0.0/16", SubnetInfoList: []tumblebug.Subnet{{ID: "sn-1", IPv4CIDR: "10.0.1.0/24"}}})
	s.AddSecurityGroup("ns", tumblebug.SecurityGroup{ID: "sg-1", FirewallRules: []tumblebug.FirewallRule{{Port: "22", Protocol: "TCP", Direction: "inbound", CIDR: "0.0.0.0/0"}}})
	recs := map[string]*recorder{}
	for i, id := range []string{"g1-1", "g1-2"} {
		home := t.TempDir()
		if err := os.Mkdir(filepath.Join(home, ".cbnode-deploy"), 0o700); err != nil {
			t.Fatal(err)
		}
		recs[id] = &recorder{out: "cbnode-deploy x=1\n"}
		s.AddNode("ns", "infra01", &tumblebugtest.Node{Home: home, Run: recs[id].run, Info: tumblebug.Node{
			ID: id, ConnectionConfig: tumblebug.ConnConfig{ProviderName: "AWS"}, Region: tumblebug.RegionInfo{Region: "ap-northeast-2"},
			VNetID: "vnet-1", SubnetID: "sn-1", SecurityGroupIDs: []string{"sg-1"},
			PrivateIP: "10.0.1." + string(rune('5'+i)), PublicIP: "203.0.113." + string(rune('5'+i))}})
	}
	return s, recs
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestClientErrors(t *testing.T) {
	s, _ := standIn(t)
	good, err := tumblebug.NewClient(strings.TrimSuffix(s.URL(), "/tumblebug"), "u", "p") // base path added
	if err != nil {
		t.Fatal(err)
	}
	if in, err := good.Infra(ctx(t), "ns", "infra01"); err != nil || len(in.Node) != 2 || in.Node[0].ConnectionConfig.ProviderName != "AWS" {
		t.Fatalf("infra: %+v %v", in, err)
	}
	bad, _ := tumblebug.NewClient(s.URL(), "u", "wrong")
	if rz, err := bad.Readyz(ctx(t)); err != nil || !rz.Ready {
		t.Fatalf("readyz needs no credentials: %+v %v", rz, err)
	}
	_, err = bad.Infra(ctx(t), "ns", "infra01")
	if !errors.Is(err, tumblebug.ErrUnauthorized) || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), "TB_API_PASSWORD") {
		t.Fatalf("wrong password: %v", err)
	}
	_, err = good.Infra(ctx(t), "ns", "nosuch")
	if !errors.Is(err, tumblebug.ErrNotFound) || !strings.Contains(err.Error(), "The infra nosuch does not exist") {
		t.Fatalf("missing infra: %v", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	gone, _ := tumblebug.NewClient("http://"+addr, "u", "p")
	if _, err := gone.Readyz(ctx(t)); !errors.Is(err, tumblebug.ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach Tumblebug at http://"+addr+"/tumblebug") {
		t.Fatalf("unreachable: %v", err)
	}
	// A Tumblebug before v0.12.6 has no infra routes: echo's 404.
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Not Found"}`))
	}))
	defer old.Close()
	oc, _ := tumblebug.NewClient(old.URL, "", "")
	if _, err := oc.Infra(ctx(t), "ns", "mci01"); !errors.Is(err, tumblebug.ErrNotFound) || !strings.Contains(err.Error(), "older than v0.12.6") {
		t.Fatalf("old tumblebug: %v", err)
	}
	if _, err := tumblebug.NewClient("localhost:1323", "", ""); err == nil {
		t.Fatal("a URL without scheme was accepted")
	}
}

func TestRunAndTransfer(t *testing.T) {
	s, recs := standIn(t)
	c, _ := tumblebug.NewClient(s.URL(), "u", "p")
	out, err := c.Run(ctx(t), "ns", "infra01", "g1-2", "echo hi")
	if err != nil || out != "cbnode-deploy x=1\n" {
		t.Fatalf("run: %q %v", out, err)
	}
	if got := recs["g1-2"].commands(); len(got) != 1 || got[0] != "echo hi" || len(recs["g1-1"].commands()) != 0 {
		t.Fatalf("the command went to %v / %v", got, recs["g1-1"].commands())
	}
	s.FailCommands("g1-1", "false")
	_, err = c.Run(ctx(t), "ns", "infra01", "g1-1", "false")
	var ce *tumblebug.CmdError
	if !errors.As(err, &ce) || !errors.Is(err, tumblebug.ErrCommand) || ce.Node != "g1-1" || !strings.Contains(err.Error(), "node g1-1: Process exited with status 1") {
		t.Fatalf("failing command: %v", err)
	}
	outs, errs, err := c.RunAll(ctx(t), "ns", "infra01", "false")
	if err != nil || outs["g1-2"] != "cbnode-deploy x=1\n" || !errors.Is(errs["g1-1"], tumblebug.ErrCommand) || len(outs)+len(errs) != 2 {
		t.Fatalf("run on all nodes: %v %v %v", outs, errs, err)
	}
	if _, err := c.Run(ctx(t), "ns", "infra01", "g9-9", "true"); !errors.Is(err, tumblebug.ErrCommand) || !strings.Contains(err.Error(), "g9-9") {
		t.Fatalf("node not in the infra: %v", err)
	}

	secret := bytes.Repeat([]byte("s3cr3t"), 20)
	if _, err := c.TransferAndRun(ctx(t), "ns", "infra01", "g1-2", tumblebug.Staging, "token", secret, "install token"); err != nil {
		t.Fatal(err)
	}
	home := nodeHome(t, s, "g1-2")
	if b, err := os.ReadFile(filepath.Join(home, ".cbnode-deploy", "token")); err != nil || !bytes.Equal(b, secret) {
		t.Fatalf("transferred file: %q %v", b, err)
	}
	if got := recs["g1-2"].commands(); got[len(got)-1] != "install token" {
		t.Fatalf("command after transfer: %v", got)
	}
	for _, h := range s.History() {
		if strings.Contains(h, "s3cr3t") {
			t.Fatalf("the file's content is in the command history: %q", h)
		}
	}
	if _, err := c.TransferAndRun(ctx(t), "ns", "infra01", "g1-2", "~/missing", "f", []byte("x"), "true"); !errors.Is(err, tumblebug.ErrCommand) || !strings.Contains(err.Error(), "No such file or directory") {
		t.Fatalf("transfer to a missing directory: %v", err)
	}
	resp, err := c.AddRules(ctx(t), "ns", "sg-1", []tumblebug.FirewallRuleReq{{Ports: "7460", Protocol: "UDP", Direction: "inbound", CIDR: "0.0.0.0/0"}})
	if err != nil || !resp.Success || len(resp.Updated.FirewallRules) != 2 {
		t.Fatalf("add rules: %+v %v", resp, err)
	}
}

func nodeHome(t *testing.T, s *tumblebugtest.Server, id string) string {
	t.Helper()
	h, ok := s.NodeHome("ns", "infra01", id)
	if !ok {
		t.Fatalf("no node %s", id)
	}
	return h
}

// fakeOperator knows no CLADNet and records every call.
type fakeOperator struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeOperator) Do(_ context.Context, method, path string, in, out any) error {
	f.mu.Lock()
	f.calls = append(f.calls, method+" "+path)
	f.mu.Unlock()
	return &api.StatusError{Code: http.StatusNotFound, Msg: "no such CLADNet"}
}

// TestPlanChangesNothing: plan reads Tumblebug and the nodes (a read-only
// probe) and prints every step, but sends nothing that changes anything:
// no operator call but a GET, no rules, no file, no token.
func TestPlanChangesNothing(t *testing.T) {
	s, recs := standIn(t)
	c, _ := tumblebug.NewClient(s.URL(), "u", "p")
	op := &fakeOperator{}
	var out bytes.Buffer
	state := filepath.Join(t.TempDir(), "state.json")
	_, err := tumblebug.Run(ctx(t), tumblebug.Config{TB: c, Op: op, OperatorURL: "http://op", NS: "ns", Infra: "infra01",
		Layout: tumblebug.Layout{Service: tumblebug.ServiceSystemd, Sudo: "sudo", Port: 7460, BootstrapPort: 7461},
		Binary: tinyELF(t), Unit: "[Unit]\n", StateFile: state, Out: &out, Plan: true})
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out.String())
	}
	for _, call := range op.calls {
		if !strings.HasPrefix(call, "GET ") {
			t.Errorf("plan called the operator: %s", call)
		}
	}
	for _, call := range s.Calls() {
		if strings.HasPrefix(call, "POST ") && !strings.Contains(call, "/cmd/infra/") {
			t.Errorf("plan sent %s to Tumblebug", call)
		}
	}
	for id, r := range recs {
		for _, cmd := range r.commands() {
			if !strings.Contains(cmd, "cbnode-deploy bin=") || strings.Contains(cmd, "mkdir") {
				t.Errorf("%s: plan ran more than the read-only probe: %s", id, cmd)
			}
		}
	}
	if _, err := os.Stat(state); err == nil {
		t.Error("plan wrote the state file")
	}
	text := out.String()
	for _, want := range []string{"would create: POST http://op/v1/cladnet", `"ipv4Cidrs":["10.0.0.0/16","10.0.0.0/8","10.0.1.0/24"]`,
		"would add inbound TCP 7460,7461, UDP 7460,7461", "bootstrap: /ip4/203.0.113.5/tcp/7461/p2p/BOOTSTRAP-PEER-ID on g1-1",
		"[1/2] g1-1: would install binary, write unit, start bootstrap, write env, issue token, start cbnode",
		"issued at apply, never printed", "[2/2] g1-2: would install binary, write unit, write env, issue token, start cbnode"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan output lacks %q:\n%s", want, text)
		}
	}
}

func infoOf(t *testing.T, s *tumblebugtest.Server, id string) tumblebug.Node {
	t.Helper()
	c, _ := tumblebug.NewClient(s.URL(), "u", "p")
	in, err := c.Infra(ctx(t), "ns", "infra01")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range in.Node {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no node %s", id)
	return tumblebug.Node{}
}

func nodeWith(info tumblebug.Node, home string, run tumblebugtest.Runner) *tumblebugtest.Node {
	return &tumblebugtest.Node{Info: info, Home: home, Run: run}
}

// tinyELF is the smallest Linux x86_64 executable header debug/elf
// accepts: what deploy checks --binary with (it is never run).
func tinyELF(t *testing.T) []byte {
	t.Helper()
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(h[16:], 2)  // ET_EXEC
	binary.LittleEndian.PutUint16(h[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(h[20:], 1)  // EV_CURRENT
	binary.LittleEndian.PutUint16(h[52:], 64) // e_ehsize
	binary.LittleEndian.PutUint16(h[54:], 56) // e_phentsize
	binary.LittleEndian.PutUint16(h[58:], 64) // e_shentsize
	if arch, err := tumblebug.BinaryArch(h); err != nil || arch != "x86_64" {
		t.Fatalf("tinyELF: %q %v", arch, err)
	}
	return h
}
