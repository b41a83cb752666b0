//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/cluster"
	"github.com/cloud-barista/cbnode/internal/netlab"
	"github.com/cloud-barista/cbnode/internal/tumblebugtest"
	"github.com/cloud-barista/cbnode/tumblebug"
)

// tbLab is a Tumblebug infra in namespaces: two "clouds" (an AWS VPC and a
// GCP VPC, one switch each) whose VMs also have a public IP on the WAN; the
// operator, the Tumblebug stand-in and the deploy command on their own host.
type tbLab struct {
	t        *testing.T
	c        *cluster.Cluster
	tb       *tumblebugtest.Server
	op       *cluster.Node
	wan      *netlab.Switch
	vpc      map[string]*netlab.Switch // "a", "b"
	nodes    map[string]*cluster.Node  // Tumblebug node ID -> host
	home     map[string]string
	state    string
	opDir    string
	opProc   *netlab.Proc
	wanIndex int
}

const tbNS, tbInfra, tbUser, tbPass = "default", "infra01", "tbuser", "tbsecret"

func newTBLab(t *testing.T) *tbLab {
	c := newRouterLab(t, cluster.Options{Prefix: "cbtb", External: true})
	l := &tbLab{t: t, c: c, tb: tumblebugtest.New(), vpc: map[string]*netlab.Switch{}, nodes: map[string]*cluster.Node{},
		home: map[string]string{}, state: filepath.Join(c.Dir, "deploy-state.json"), opDir: filepath.Join(c.Dir, "operator"), wanIndex: 10}
	var err error
	if l.wan, err = c.Lab.Switch("wan", wanNet); err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct{ k, cidr string }{{"a", "10.0.1.0/24"}, {"b", "10.1.1.0/24"}} {
		if l.vpc[v.k], err = c.Lab.Switch("vpc"+v.k, netip.MustParsePrefix(v.cidr)); err != nil {
			t.Fatal(err)
		}
	}
	l.tb.User, l.tb.Password = tbUser, tbPass
	l.tb.AddVNet(tbNS, tumblebug.VNet{ID: "vnet-aws", CspResourceID: "vpc-0aws", CidrBlock: "10.0.0.0/16",
		SubnetInfoList: []tumblebug.Subnet{{ID: "subnet-aws", CspResourceID: "subnet-0aws", IPv4CIDR: "10.0.1.0/24"}}})
	l.tb.AddVNet(tbNS, tumblebug.VNet{ID: "vnet-gcp", CspResourceID: "vpc-gcp", CidrBlock: "10.1.0.0/16",
		SubnetInfoList: []tumblebug.Subnet{{ID: "subnet-gcp", CspResourceID: "subnet-gcp", IPv4CIDR: "10.1.1.0/24"}}})
	ssh := []tumblebug.FirewallRule{{Port: "22", Protocol: "TCP", Direction: "inbound", CIDR: "0.0.0.0/0"}}
	l.tb.AddSecurityGroup(tbNS, tumblebug.SecurityGroup{ID: "sg-aws", VNetID: "vnet-aws", FirewallRules: ssh})
	l.tb.AddSecurityGroup(tbNS, tumblebug.SecurityGroup{ID: "sg-gcp", VNetID: "vnet-gcp", FirewallRules: ssh})

	// The operator's host serves the stand-in on its loopback; deploy
	// runs there, as on an operator's machine.
	if l.op, err = c.AddHost("op", l.wan, 2); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := l.op.Host.Exec(func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	l.tb.Serve(ln)
	t.Cleanup(l.tb.Close)
	l.startOperator()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if l.opProc != nil {
			t.Logf("--- operator log (tail):\n%s", tail(l.opProc.Output(), 4000))
		}
		for id, h := range l.home {
			for _, f := range []string{"cbnode.log", "cbnode-bootstrap.log"} {
				if b, err := os.ReadFile(filepath.Join(h, "root/run/cbnode", f)); err == nil {
					t.Logf("--- %s %s (tail):\n%s", id, f, tail(b, 3000))
				}
			}
		}
	})
	return l
}

func (l *tbLab) startOperator(args ...string) {
	l.t.Helper()
	if l.opProc != nil {
		if err := l.opProc.Stop(); err != nil {
			l.t.Logf("operator stop: %v", err)
		}
	}
	p, err := l.op.Host.Start(bin, append([]string{"operator", "--dir", l.opDir, "--log-level", "info"}, args...)...)
	if err != nil {
		l.t.Fatal(err)
	}
	l.opProc = p
	op := newOpClient(l.t, l.op.Host)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _, err := op.do("GET", "/health", nil, nil); err == nil && code == http.StatusOK {
			return
		}
		if p.Exited() || time.Now().After(deadline) {
			l.t.Fatalf("operator not healthy: %s", p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addNode makes a VM in cloud k ("a": aws, "b": gcp) with a private IP in
// its VPC and a public IP on the WAN, and lists it in the infra.
func (l *tbLab) addNode(id, k string, idx int) *cluster.Node {
	l.t.Helper()
	n, err := l.c.AddHost(strings.ReplaceAll(id, "-", ""), l.vpc[k], idx)
	if err != nil {
		l.t.Fatal(err)
	}
	l.wanIndex++
	pub := l.wan.Addr(l.wanIndex)
	if err := l.wan.Attach(n.Host, pub); err != nil {
		l.t.Fatal(err)
	}
	home := filepath.Join(l.c.Dir, "home-"+id)
	if err := os.MkdirAll(home, 0o700); err != nil {
		l.t.Fatal(err)
	}
	l.home[id], l.nodes[id] = home, n
	info := tumblebug.Node{ID: id, Name: id, Status: "Running", NodeUserName: "cb-user", SSHPort: 22,
		PrivateIP: n.Underlay.Addr().String(), PublicIP: pub.Addr().String()}
	if k == "a" {
		info.ConnectionConfig = tumblebug.ConnConfig{ConfigName: "aws-ap-northeast-2", ProviderName: "AWS"}
		info.Region = tumblebug.RegionInfo{Region: "ap-northeast-2", Zone: "ap-northeast-2a"}
		info.VNetID, info.SubnetID, info.CspVNetID, info.CspSubnetID = "vnet-aws", "subnet-aws", "vpc-0aws", "subnet-0aws"
		info.SecurityGroupIDs = []string{"sg-aws"}
	} else {
		info.ConnectionConfig = tumblebug.ConnConfig{ConfigName: "gcp-asia-northeast3", ProviderName: "GCP"}
		info.Region = tumblebug.RegionInfo{Region: "asia-northeast3", Zone: "asia-northeast3-a"}
		info.VNetID, info.SubnetID, info.CspVNetID, info.CspSubnetID = "vnet-gcp", "subnet-gcp", "vpc-gcp", "subnet-gcp"
		info.SecurityGroupIDs = []string{"sg-gcp"}
	}
	h := n.Host
	l.tb.AddNode(tbNS, tbInfra, &tumblebugtest.Node{Info: info, Home: home,
		// A remote command runs inside the node's namespace, as the SSH
		// user would run it: HOME and the working directory are its home.
		Run: func(ctx context.Context, home, command string) (string, error) {
			out, err := h.Run(ctx, "sh", "-c", fmt.Sprintf("cd %s && export HOME=%s && %s", home, home, command))
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return string(out), fmt.Errorf("Process exited with status %d", ee.ExitCode())
			}
			return string(out), err
		}})
	return n
}

// deploy runs 'cbnode tumblebug deploy' (or plan) on the operator's host.
func (l *tbLab) deploy(sub string, extra ...string) (string, error) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The credentials come from Tumblebug's own variables, as docs/tumblebug.md advises.
	args := []string{"TB_API_USERNAME=" + tbUser, "TB_API_PASSWORD=" + tbPass, bin,
		"tumblebug", sub, "--tumblebug", l.tb.URL(), "--ns", tbNS, "--infra", tbInfra, "--operator", "http://127.0.0.1:7480",
		"--service", "background", "--root", "$HOME/root", "--sudo=", "--binary", bin, "--state-file", l.state,
		"--env", "CBNODE_DNS=off", "--env", "CBNODE_HEARTBEAT=1s", "--env", "CBNODE_LOG_LEVEL=debug", "--wait", "90s"}
	start := time.Now()
	out, err := l.op.Host.Run(ctx, "env", append(args, extra...)...)
	l.t.Logf("cbnode tumblebug %s %s (%.1f s):\n%s", sub, strings.Join(extra, " "), time.Since(start).Seconds(), out)
	return string(out), err
}

func (l *tbLab) members(ids ...string) []*cluster.Node {
	var out []*cluster.Node
	for _, id := range ids {
		out = append(out, l.nodes[id])
	}
	return out
}

// checkMesh waits for every pair of nodes to ping over cbnet0 and for
// each one's path to the others to follow the VPCs: private (intra, the
// VPC's subnet) inside a cloud, public (inter, the WAN) across.
func (l *tbLab) checkMesh(ids ...string) {
	l.t.Helper()
	ns := l.members(ids...)
	addr := map[*cluster.Node]netip.Addr{}
	cloud := map[string]string{}
	for _, id := range ids {
		ip, err := l.nodes[id].IP(context.Background())
		if err != nil {
			l.t.Fatal(err)
		}
		addr[l.nodes[id]] = ip
		cloud[tumblebug.HostName(id)] = id[:2]
	}
	if d, err := waitPings(pairsOf(ns), addr, true, time.Now(), 60*time.Second); err != nil {
		l.t.Fatal(err)
	} else {
		l.t.Logf("every pair of %d nodes pings over cbnet0 (%.2f s)", len(ns), d.Seconds())
	}
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			var nr api.NetworkingRule
			err := l.nodes[id].CLIJSON(context.Background(), &nr, "networking-rule")
			bad := ""
			if err != nil {
				bad = err.Error()
			}
			seen := 0
			for _, r := range nr.Rules {
				want, pfx := "inter", wanNet
				if cloud[r.HostName] == id[:2] {
					want, pfx = "intra", l.vpc[map[string]string{"g1": "a", "g2": "b"}[id[:2]]].Prefix()
				}
				ip, _ := netip.ParseAddr(r.SelectedIP)
				if _, ours := cloud[r.HostName]; !ours {
					continue
				}
				seen++
				if r.PeerScope != want || !pfx.Contains(ip) || r.Relayed {
					bad = fmt.Sprintf("%s -> %s: want %s via %s, have %s %s relayed=%v", id, r.HostName, want, pfx, r.PeerScope, r.SelectedIP, r.Relayed)
				}
			}
			if bad == "" && seen == len(ids)-1 {
				break
			}
			if time.Now().After(deadline) {
				l.t.Fatalf("paths of %s: %s (rows for %d of %d peers)", id, bad, seen, len(ids)-1)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
}

func pidOf(t *testing.T, home string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(home, "root/run/cbnode/cbnode.pid"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTumblebugDeploy: 'cbnode tumblebug deploy' takes a 4-node infra in
// two clouds to a running CLADNet through a Tumblebug stand-in whose
// remote commands run in the nodes' namespaces; then rerun (no-op),
// scale-out with a node whose commands fail, rerun after the failure,
// scale-in (revocation), and Tumblebug unreachable or refusing the
// password.
func TestTumblebugDeploy(t *testing.T) {
	l := newTBLab(t)
	l.addNode("g1-1", "a", 11)
	l.addNode("g1-2", "a", 12)
	l.addNode("g2-1", "b", 11)
	l.addNode("g2-2", "b", 12)
	four := []string{"g1-1", "g1-2", "g2-1", "g2-2"}

	// Failure cases first, against the fresh infra: nothing is changed.
	out, err := l.deploy("deploy", "--password", "wrong")
	if err == nil || !strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, "TB_API_PASSWORD") {
		t.Fatalf("wrong password: %v: %s", err, out)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("wrong password: exit %v, want 3", err)
	}
	out, err = l.deploy("deploy", "--tumblebug", "http://127.0.0.1:9/tumblebug")
	if err == nil || !strings.Contains(out, "cannot reach Tumblebug at http://127.0.0.1:9/tumblebug") {
		t.Fatalf("unreachable: %v: %s", err, out)
	}
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("unreachable: exit %v, want 4", err)
	}
	out, err = l.deploy("deploy", "--infra", "nosuch")
	if err == nil || !strings.Contains(out, "The infra nosuch does not exist") {
		t.Fatalf("no such infra: %v: %s", err, out)
	}

	// plan prints and changes nothing.
	out, err = l.deploy("plan")
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, want := range []string{"would create: POST", "would add inbound TCP 7460,7461", "transferFileAndCmd", "issued at apply, never printed", "[4/4] g2-2: would install binary"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
	if _, err := os.Stat(l.state); err == nil {
		t.Error("plan wrote the state file")
	}
	if sg := l.tb.SecurityGroup(tbNS, "sg-aws"); len(sg.FirewallRules) != 1 {
		t.Errorf("plan changed the security group: %+v", sg.FirewallRules)
	}

	// Deploy the 4 nodes.
	start := time.Now()
	out, err = l.deploy("deploy")
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	t.Logf("deploy of 4 nodes in 2 clouds took %.1f s", time.Since(start).Seconds())
	for _, want := range []string{"cladnet infra01: created 172.16.", "firewall sg-aws: opened inbound TCP 7460,7461, UDP 7460,7461", "all 4 nodes are members", "NODE"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy output lacks %q", want)
		}
	}
	l.checkMesh(four...)
	// Tokens travelled as files: none is in Tumblebug's command history.
	hist := strings.Join(l.tb.History(), "\n")
	for id, h := range l.home {
		tok, err := os.ReadFile(filepath.Join(h, "root/etc/cbnode/token"))
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) < 100 || strings.Contains(hist, strings.TrimSpace(string(tok))) {
			t.Errorf("%s: token (%d bytes) missing or in the command history", id, len(tok))
		}
		if st, err := os.Stat(filepath.Join(h, "root/etc/cbnode/token")); err != nil {
			t.Errorf("%s: token file: %v", id, err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: token file mode %v, want 0600", id, st.Mode())
		}
		if left, _ := filepath.Glob(filepath.Join(h, ".cbnode-deploy/*")); len(left) != 0 {
			t.Errorf("%s: staged files left behind: %v", id, left)
		}
	}

	// The operator, restarted with the bootstrap node deploy started, sees
	// the members; a rerun changes nothing.
	st, err := tumblebug.LoadState(l.state)
	if err != nil || len(st.Bootstrap) != 1 || len(st.Nodes) != 4 {
		t.Fatalf("state: %+v %v", st, err)
	}
	l.startOperator("--bootstrap", st.Bootstrap[0])
	op := newOpClient(t, l.op.Host)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var ps api.Peers
		op.must(http.StatusOK, "GET", "/v1/cladnet/"+st.CladnetID+"/peer", nil, &ps)
		if len(ps.Peers) == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted operator sees %d members, want 4", len(ps.Peers))
		}
		time.Sleep(300 * time.Millisecond)
	}
	pids := map[string]string{}
	for _, id := range four {
		pids[id] = pidOf(t, l.home[id])
	}
	out, err = l.deploy("deploy")
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if n := strings.Count(out, ": up to date"); n != 4 {
		t.Errorf("rerun: %d nodes up to date, want 4", n)
	}
	if !strings.Contains(out, "operator sees 4 members") {
		t.Errorf("rerun: the operator does not see the 4 members")
	}
	for _, id := range four {
		if p := pidOf(t, l.home[id]); p != pids[id] {
			t.Errorf("rerun restarted %s (pid %s -> %s)", id, pids[id], p)
		}
	}

	// Scale-out: two more GCP nodes, one of which fails its commands.
	l.addNode("g2-3", "b", 13)
	l.addNode("g2-4", "b", 14)
	l.tb.FailCommands("g2-4", "install -m 0755")
	out, err = l.deploy("deploy")
	if err == nil || !strings.Contains(out, "1 of 6 nodes failed") || !strings.Contains(out, "node g2-4: Process exited with status 1") {
		t.Fatalf("deploy with a failing node: %v: %s", err, out)
	}
	if n := strings.Count(out, ": up to date"); n != 4 || !strings.Contains(out, "g2-3: install binary, write env, issue token, start cbnode: done") {
		t.Errorf("scale-out: %d nodes up to date (want 4) or g2-3 not added", n)
	}
	l.tb.FailCommands("g2-4", "")
	out, err = l.deploy("deploy")
	if err != nil {
		t.Fatalf("rerun after the failure: %v", err)
	}
	if n := strings.Count(out, ": up to date"); n != 5 || !strings.Contains(out, "g2-4: install binary") {
		t.Errorf("rerun after the failure: %d up to date (want 5), or g2-4 not completed", n)
	}
	six := append(slices.Clone(four), "g2-3", "g2-4")
	l.checkMesh(six...)
	// Nothing duplicated: one member per host name.
	ps, err := l.nodes["g1-1"].Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, p := range ps {
		names[p.HostName]++
	}
	for h, k := range names {
		if k != 1 {
			t.Errorf("host %s listed %d times: %+v", h, k, ps)
		}
	}

	// Scale-in: g1-2 leaves the infra; deploy revokes it and its cbnode
	// (still running here, unlike a deleted VM) exits.
	gonePID := pidOf(t, l.home["g1-2"])
	l.tb.RemoveNode(tbNS, tbInfra, "g1-2")
	out, err = l.deploy("deploy")
	if err != nil || !strings.Contains(out, "revoked g1-2") || !strings.Contains(out, "list handed to g") {
		t.Fatalf("scale-in: %v: %s", err, out)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		ps, err := l.nodes["g2-1"].Peers(context.Background())
		listed := false
		for _, p := range ps {
			listed = listed || (p.HostName == "g1-2" && p.State != api.StateRevoked)
		}
		alive := exec.Command("kill", "-0", gonePID).Run() == nil
		if err == nil && !listed && !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after revocation: g1-2 still listed %v or running %v (%v)", listed, alive, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	out, err = l.deploy("deploy")
	if err != nil || strings.Count(out, ": up to date") != 5 || strings.Contains(out, "revoked") {
		t.Fatalf("rerun after scale-in: %v: %s", err, out)
	}
}
