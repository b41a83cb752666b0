package tumblebug

import (
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

func TestReserved(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vnets []VNet
		want  string
		err   string
	}{
		{"none", nil, "", ""},
		{"tumblebug vnets reserve all of 10/8", []VNet{
			{ID: "v1", CidrBlock: "10.0.0.0/16", SubnetInfoList: []Subnet{{ID: "s1", IPv4CIDR: "10.0.1.0/24"}}},
			{ID: "v2", CidrBlock: "10.1.0.0/16", SubnetInfoList: []Subnet{{ID: "s2", IPv4CIDR: "10.1.1.0/24"}, {ID: "s3", IPv4CIDR: "10.1.2.0/24"}}},
		}, "10.0.0.0/16 10.0.0.0/8 10.0.1.0/24 10.1.0.0/16 10.1.1.0/24 10.1.2.0/24", ""},
		{"outside 10/8 only the vnets", []VNet{{ID: "v", CidrBlock: "192.168.0.0/16", SubnetInfoList: []Subnet{{ID: "s", IPv4CIDR: "192.168.3.0/24"}}}},
			"192.168.0.0/16 192.168.3.0/24", ""},
		{"duplicates once, masked", []VNet{{ID: "a", CidrBlock: "172.16.0.1/16"}, {ID: "b", CidrBlock: "172.16.0.0/16"}}, "172.16.0.0/16", ""},
		{"a subnet without a vnet cidr still counts", []VNet{{ID: "a", SubnetInfoList: []Subnet{{ID: "s", IPv4CIDR: "172.31.5.0/24"}}}}, "172.31.5.0/24", ""},
		{"bad cidr", []VNet{{ID: "a", CidrBlock: "10.0.0.0/33"}}, "", `vNet a: CIDR "10.0.0.0/33"`},
		{"ipv6 refused", []VNet{{ID: "a", SubnetInfoList: []Subnet{{ID: "s", IPv4CIDR: "fd00::/64"}}}}, "", "not an IPv4 prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Reserved(tc.vnets)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if err != nil || strings.Join(s, " ") != tc.want {
				t.Fatalf("got %v %v, want %s", s, err, tc.want)
			}
		})
	}
}

func TestCheckFree(t *testing.T) {
	res := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24")}
	for _, tc := range []struct {
		cidr, err string
	}{
		{"172.16.0.0/23", ""},
		{"192.168.2.0/24", ""},
		{"10.77.0.0/24", "where Tumblebug puts its vNets"},
		{"192.168.0.0/16", "overlaps 192.168.1.0/24, a vNet or subnet"},
		{"junk", "not a prefix"},
	} {
		err := CheckFree(tc.cidr, res)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("CheckFree(%s) = %v, want %q", tc.cidr, err, tc.err)
		}
	}
}

func TestMissingRules(t *testing.T) {
	in := func(proto, port string) FirewallRule {
		return FirewallRule{Port: port, Protocol: proto, Direction: "inbound", CIDR: "0.0.0.0/0"}
	}
	for _, tc := range []struct {
		name  string
		rules []FirewallRule
		ports []int
		want  []FirewallRuleReq
	}{
		{"default template: only ssh", []FirewallRule{in("TCP", "22")}, []int{7460},
			[]FirewallRuleReq{{"7460", "TCP", "inbound", "0.0.0.0/0"}, {"7460", "UDP", "inbound", "0.0.0.0/0"}}},
		{"two ports", nil, []int{7460, 7461},
			[]FirewallRuleReq{{"7460,7461", "TCP", "inbound", "0.0.0.0/0"}, {"7460,7461", "UDP", "inbound", "0.0.0.0/0"}}},
		{"open already", []FirewallRule{in("TCP", "7460"), in("udp", "7460")}, []int{7460}, nil},
		{"a range covers", []FirewallRule{in("TCP", "1-65535"), in("UDP", "7000-8000")}, []int{7460, 7461}, nil},
		{"a list covers", []FirewallRule{in("TCP", "22,7460"), in("UDP", "22,7460")}, []int{7460}, nil},
		{"ALL covers both", []FirewallRule{{Port: "", Protocol: "ALL", Direction: "inbound", CIDR: "0.0.0.0/0"}}, []int{7460}, nil},
		{"only UDP missing", []FirewallRule{in("TCP", "7460")}, []int{7460}, []FirewallRuleReq{{"7460", "UDP", "inbound", "0.0.0.0/0"}}},
		{"outbound does not count", []FirewallRule{{Port: "7460", Protocol: "TCP", Direction: "outbound", CIDR: "0.0.0.0/0"}, in("UDP", "7460")}, []int{7460},
			[]FirewallRuleReq{{"7460", "TCP", "inbound", "0.0.0.0/0"}}},
		{"a narrower source does not count", []FirewallRule{{Port: "7460", Protocol: "TCP", Direction: "inbound", CIDR: "10.0.0.0/16"}, in("UDP", "7460")}, []int{7460},
			[]FirewallRuleReq{{"7460", "TCP", "inbound", "0.0.0.0/0"}}},
		{"half the ports", []FirewallRule{in("TCP", "7460"), in("UDP", "7460")}, []int{7460, 7461},
			[]FirewallRuleReq{{"7461", "TCP", "inbound", "0.0.0.0/0"}, {"7461", "UDP", "inbound", "0.0.0.0/0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MissingRules(SecurityGroup{FirewallRules: tc.rules}, tc.ports)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestChooseBootstrap(t *testing.T) {
	nodes := []Node{{ID: "g2-1", PublicIP: "7.7.7.3"}, {ID: "g1-2"}, {ID: "g1-1", PublicIP: "7.7.7.1"}}
	addr := "/ip4/203.0.113.7/tcp/7460/p2p/12D3KooWExample"
	for _, tc := range []struct {
		name  string
		nodes []Node
		given []string
		want  string
		res   Bootstrap
		err   string
	}{
		{"first node by ID with a public IP", nodes, nil, "", Bootstrap{Node: "g1-1", IP: "7.7.7.1"}, ""},
		{"the one asked for", nodes, nil, "g2-1", Bootstrap{Node: "g2-1", IP: "7.7.7.3"}, ""},
		{"asked for one without public IP", nodes, nil, "g1-2", Bootstrap{}, "g1-2 has no public IP"},
		{"asked for one not in the infra", nodes, nil, "g9-9", Bootstrap{}, "not a node of the infra"},
		{"none has a public IP", []Node{{ID: "a"}, {ID: "b"}}, nil, "", Bootstrap{}, "give --bootstrap"},
		{"given: none started", nodes, []string{addr}, "", Bootstrap{Given: []string{addr}}, ""},
		{"given without /p2p", nodes, []string{"/ip4/203.0.113.7/tcp/7460"}, "", Bootstrap{}, "with /p2p/ID"},
		{"both", nodes, []string{addr}, "g1-1", Bootstrap{}, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseBootstrap(tc.nodes, tc.given, tc.want)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.res) {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.res)
			}
		})
	}
}

func TestNodeActions(t *testing.T) {
	want := Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1"}
	healthy := Probe{BinSHA: "b", EnvSHA: "e", Token: true, Active: true, CladnetID: "c1", IP: "172.16.0.5"}
	mod := func(f func(*Probe)) Probe { p := healthy; f(&p); return p }
	for _, tc := range []struct {
		name string
		p    Probe
		w    Want
		want []Action
	}{
		{"fresh node", Probe{}, want, []Action{InstallBinary, WriteEnv, IssueToken, StartService}},
		{"healthy member: nothing", healthy, want, nil},
		{"new binary: restart, no new token", mod(func(p *Probe) { p.BinSHA = "old" }), want, []Action{InstallBinary, StartService}},
		{"env changed (facts, bootstrap)", mod(func(p *Probe) { p.EnvSHA = "old" }), want, []Action{WriteEnv, StartService}},
		{"stopped: a fresh token", mod(func(p *Probe) { p.Active = false }), want, []Action{IssueToken, StartService}},
		{"token file gone", mod(func(p *Probe) { p.Token = false }), want, []Action{IssueToken, StartService}},
		{"member of another CLADNet", mod(func(p *Probe) { p.CladnetID = "other" }), want, []Action{IssueToken, StartService}},
		{"systemd unit missing", healthy, Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1", UnitSHA: "u"}, []Action{WriteUnit, StartService}},
		{"bootstrap not running", mod(func(p *Probe) { p.BootID = "id" }), Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1", Bootstrap: true}, []Action{StartBootstrap}},
		{"bootstrap running", mod(func(p *Probe) { p.BootID = "id"; p.BootActive = true }), Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1", Bootstrap: true}, nil},
		{"bootstrap restarted with a new binary", mod(func(p *Probe) { p.BootID = "id"; p.BootActive = true; p.BinSHA = "old" }),
			Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1", Bootstrap: true}, []Action{InstallBinary, StartBootstrap, StartService}},
		{"bootstrap unit changed", mod(func(p *Probe) { p.BootID = "id"; p.BootActive = true; p.UnitSHA = "u"; p.BootUnitSHA = "old" }),
			Want{BinSHA: "b", EnvSHA: "e", CladnetID: "c1", UnitSHA: "u", Bootstrap: true, BootUnitSHA: "bu"}, []Action{WriteUnit, StartBootstrap, StartService}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NodeActions(tc.p, tc.w); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGone(t *testing.T) {
	dep := map[string]Deployed{"a": {Host: "a"}, "b": {Host: "b"}, "c": {Host: "c"}}
	if got := Gone(dep, []Node{{ID: "b"}, {ID: "d"}}); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Fatalf("Gone = %v", got)
	}
	if got := Gone(dep, []Node{{ID: "a"}, {ID: "b"}, {ID: "c"}}); got != nil {
		t.Fatalf("nothing gone: %v", got)
	}
}

func TestParseProbe(t *testing.T) {
	out := "noise\ncbnode-deploy bin=abc\ncbnode-deploy env=\ncbnode-deploy token=yes\ncbnode-deploy active=yes\n" +
		"cbnode-deploy bootactive=\ncbnode-deploy bootid=12D3KooWBoot\n" +
		`cbnode-deploy status={"peerId":"12D3KooWSelf","cladnetId":"c1","ip":"172.16.0.9","state":"tunneling"}` + "\n"
	want := Probe{BinSHA: "abc", Token: true, Active: true, BootID: "12D3KooWBoot", CladnetID: "c1", IP: "172.16.0.9", PeerID: "12D3KooWSelf"}
	if got := ParseProbe(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got := ParseProbe("cbnode-deploy status=\n"); got != (Probe{}) {
		t.Fatalf("empty status: %+v", got)
	}
}

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"g1-1": "g1-1", "AWS_Node.01": "aws-node-01", "--x--": "x", "": "node", "___": "node",
		strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := HostName(in); got != want {
			t.Errorf("HostName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFactsAndEnvFile(t *testing.T) {
	n := Node{ID: "g1-1", Status: "Running", ConnectionConfig: ConnConfig{ProviderName: "AWS"},
		Region: RegionInfo{Region: "ap-northeast-2", Zone: "ap-northeast-2a"}, VNetID: "vnet01", CspVNetID: "vpc-0abc",
		SubnetID: "subnet01", PrivateIP: "10.0.1.5", PublicIP: "203.0.113.20"}
	f, err := FactsOf(n)
	if err != nil {
		t.Fatal(err)
	}
	want := Facts{Provider: "aws", Region: "ap-northeast-2", Zone: "ap-northeast-2a", VPC: "vpc-0abc", Subnet: "subnet01",
		PrivateIP: "10.0.1.5", PublicIP: "203.0.113.20"}
	if f != want {
		t.Fatalf("facts %+v, want %+v", f, want)
	}
	env, err := EnvFile("lab", f, []string{"/ip4/203.0.113.20/tcp/7461/p2p/12D3KooWBoot"}, 7460, []string{"CBNODE_DNS=off", "CBNODE_HEARTBEAT=1s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"CBNODE_CLADNET=lab\n", "CBNODE_PROVIDER=aws\n", "CBNODE_VPC=vpc-0abc\n", "CBNODE_SUBNET_ID=subnet01\n",
		"CBNODE_PRIVATE_IP=10.0.1.5\n", "CBNODE_PUBLIC_IP=203.0.113.20\n", "CBNODE_BOOTSTRAP=/ip4/203.0.113.20/tcp/7461/p2p/12D3KooWBoot\n",
		"CBNODE_PORT=7460\n", "CBNODE_DNS=off\nCBNODE_HEARTBEAT=1s\n"} {
		if !strings.Contains(env, line) {
			t.Errorf("env file lacks %q:\n%s", line, env)
		}
	}
	// Tumblebug data never becomes shell code or a second env line.
	for _, bad := range []func(*Node){
		func(n *Node) { n.CspVNetID = "vpc-1; rm -rf /" },
		func(n *Node) { n.Region.Zone = "a\nCBNODE_TOKEN=x" },
		func(n *Node) { n.PrivateIP = "10.0.1.5 $(reboot)" },
		func(n *Node) { n.PrivateIP = "" },
	} {
		m := n
		bad(&m)
		if _, err := FactsOf(m); err == nil {
			t.Errorf("FactsOf accepted %+v", m)
		}
	}
	if _, err := EnvFile("lab", f, nil, 7460, []string{"PATH=/tmp"}); err == nil {
		t.Error("EnvFile accepted a non-CBNODE_ variable")
	}
	if _, err := EnvFile("lab", f, nil, 7460, []string{"CBNODE_X=$(id)"}); err == nil {
		t.Error("EnvFile accepted shell code")
	}
}

func TestLayoutCheck(t *testing.T) {
	ok := Layout{Service: ServiceSystemd, Sudo: "sudo", Port: 7460, BootstrapPort: 7461}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*Layout){
		func(l *Layout) { l.Root = "/opt/x" }, // systemd units name fixed paths
		func(l *Layout) { l.Service = "upstart" },
		func(l *Layout) { l.Service = ServiceBackground; l.Root = `/tmp/"x` },
		func(l *Layout) { l.Sudo = "doas; id" },
		func(l *Layout) { l.BootstrapPort = 7460 },
	} {
		l := ok
		bad(&l)
		if err := l.Check(); err == nil {
			t.Errorf("Check accepted %+v", l)
		}
	}
}

// TestScriptsParse checks that every command deploy sends, and the script
// each wraps, is valid sh (sh -n parses, runs nothing).
func TestScriptsParse(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	for _, l := range []Layout{
		{Service: ServiceSystemd, Sudo: "sudo", Port: 7460, BootstrapPort: 7461},
		{Service: ServiceBackground, Root: "$HOME/root", Port: 7460, BootstrapPort: 7461},
	} {
		for name, cmd := range map[string]string{
			"probe": l.ProbeCommand(true), "probe-ro": l.ProbeCommand(false), "binary": l.InstallBinaryCommand(),
			"unit": l.WriteUnitCommand(true), "env": l.WriteEnvCommand(), "key": l.KeyCommand(false), "bootkey": l.KeyCommand(true),
			"token": l.WriteTokenCommand(), "start": l.StartCommand(), "bootstrap": l.StartBootstrapCommand("203.0.113.7", "owner"),
			"report": l.ReportCommand(), "revocation": l.PushRevocationCommand(),
		} {
			inner := innerScript(t, cmd)
			for what, s := range map[string]string{"command": cmd, "script": inner} {
				if out, err := exec.Command("sh", "-n", "-c", s).CombinedOutput(); err != nil {
					t.Errorf("%s %s %s: %v: %s\n%s", l.Service, name, what, err, out, s)
				}
			}
			if strings.Contains(cmd, "$$Func(") { // Tumblebug would expand it
				t.Errorf("%s: %s", name, cmd)
			}
		}
	}
}

// innerScript undoes wrap's quoting.
func innerScript(t *testing.T, cmd string) string {
	t.Helper()
	i := strings.Index(cmd, "sh -c '")
	j := strings.LastIndex(cmd, "' cbnode-deploy ")
	if i < 0 || j < i {
		t.Fatalf("not a wrapped command: %s", cmd)
	}
	return strings.ReplaceAll(cmd[i+len("sh -c '"):j], `'\''`, "'")
}
