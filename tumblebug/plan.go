package tumblebug

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The pure steps of a deployment: what to reserve, which rules to add,
// which node bootstraps, what each node needs, who is gone. No I/O here:
// plan_test.go drives every rule through tables.

// tumblebugVNets is where Tumblebug's vNet templates put each new vNet
// (10.k.0.0/16, k counting up): a CLADNet there would collide with a vNet
// made later, so it is reserved whole as soon as one vNet lies in it.
var tumblebugVNets = netip.MustParsePrefix("10.0.0.0/8")

// Reserved lists the ranges a CLADNet must stay out of: every vNet's CIDR
// and every subnet's, and all of 10.0.0.0/8 when one of them is in it.
// Unparsable CIDRs are an error (a recommendation that ignores one would
// be a guess).
func Reserved(vnets []VNet) ([]netip.Prefix, error) {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	add := func(what, s string) error {
		if s == "" {
			return nil
		}
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("%s: CIDR %q is not an IPv4 prefix", what, s)
		}
		p = p.Masked()
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
		return nil
	}
	in10 := false
	for _, v := range vnets {
		if err := add("vNet "+v.ID, v.CidrBlock); err != nil {
			return nil, err
		}
		for _, s := range v.SubnetInfoList {
			if err := add("vNet "+v.ID+" subnet "+s.ID, s.IPv4CIDR); err != nil {
				return nil, err
			}
		}
	}
	for _, p := range out {
		if tumblebugVNets.Overlaps(p) {
			in10 = true
		}
	}
	if in10 && !seen[tumblebugVNets] {
		out = append(out, tumblebugVNets)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// CheckFree fails if cidr overlaps one of reserved (every vNet and subnet).
func CheckFree(cidr string, reserved []netip.Prefix) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return fmt.Errorf("CLADNet range %q is not a prefix", cidr)
	}
	for _, r := range reserved {
		if r.Overlaps(p) {
			why := "a vNet or subnet of the infra"
			if r == tumblebugVNets {
				why = "where Tumblebug puts its vNets (10.k.0.0/16)"
			}
			return fmt.Errorf("CLADNet range %s overlaps %s, %s: give --cidr with a free range (or let deploy recommend one)", p, r, why)
		}
	}
	return nil
}

// MissingRules lists the inbound rules sg lacks so that TCP and UDP reach
// every port of ports from anywhere (members sit behind any NAT).
func MissingRules(sg SecurityGroup, ports []int) []FirewallRuleReq {
	var out []FirewallRuleReq
	for _, proto := range []string{"TCP", "UDP"} {
		var need []string
		for _, port := range ports {
			if !covered(sg.FirewallRules, proto, port) {
				need = append(need, strconv.Itoa(port))
			}
		}
		if len(need) > 0 {
			out = append(out, FirewallRuleReq{Ports: strings.Join(need, ","), Protocol: proto, Direction: "inbound", CIDR: "0.0.0.0/0"})
		}
	}
	return out
}

// covered reports whether an inbound rule open to 0.0.0.0/0 lets proto
// reach port.
func covered(rules []FirewallRule, proto string, port int) bool {
	for _, r := range rules {
		if !strings.EqualFold(r.Direction, "inbound") || r.CIDR != "0.0.0.0/0" {
			continue
		}
		if p := strings.ToUpper(r.Protocol); p != proto && p != "ALL" && p != "-1" {
			continue
		}
		if strings.ToUpper(r.Protocol) == "ALL" && (r.Port == "" || r.Port == "-1") {
			return true
		}
		for _, part := range strings.Split(r.Port, ",") {
			lo, hi, ok := portRange(strings.TrimSpace(part))
			if ok && lo <= port && port <= hi {
				return true
			}
		}
	}
	return false
}

func portRange(s string) (int, int, bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err := strconv.Atoi(b)
	if err != nil {
		return 0, 0, false
	}
	return lo, hi, true
}

// Bootstrap is the choice of bootstrap node: addresses given (none
// started), or a node of the infra that runs 'cbnode bootstrap'.
type Bootstrap struct {
	Given []string // --bootstrap multiaddrs
	Node  string   // node ID that runs the bootstrap
	IP    string   // its public IP (announced)
}

// ChooseBootstrap picks the bootstrap: the given addresses; else the node
// named by want; else the first node (by ID) with a public IP.
func ChooseBootstrap(nodes []Node, given []string, want string) (Bootstrap, error) {
	if len(given) > 0 {
		if want != "" {
			return Bootstrap{}, errors.New("give --bootstrap (an existing bootstrap node) or --bootstrap-node (start one on a node of the infra), not both")
		}
		for _, a := range given {
			if !strings.HasPrefix(a, "/") || !strings.Contains(a, "/p2p/") {
				return Bootstrap{}, fmt.Errorf("--bootstrap %q: want a multiaddr with /p2p/ID, as 'cbnode bootstrap' prints it", a)
			}
		}
		return Bootstrap{Given: given}, nil
	}
	sorted := append([]Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for _, n := range sorted {
		if want != "" && n.ID != want {
			continue
		}
		if n.PublicIP == "" {
			if want != "" {
				return Bootstrap{}, fmt.Errorf("--bootstrap-node %s has no public IP: members outside its VPC could not reach it; pick a node with one or give --bootstrap", want)
			}
			continue
		}
		return Bootstrap{Node: n.ID, IP: n.PublicIP}, nil
	}
	if want != "" {
		return Bootstrap{}, fmt.Errorf("--bootstrap-node %s is not a node of the infra", want)
	}
	return Bootstrap{}, errors.New("no node of the infra has a public IP to run the bootstrap node on: give --bootstrap with a reachable bootstrap node's multiaddr")
}

// Probe is what a node reported about its cbnode (probe script's lines
// "cbnode-deploy KEY=VALUE").
type Probe struct {
	BinSHA, EnvSHA, UnitSHA string
	Token, Active           bool
	CladnetID, IP, PeerID   string // from 'cbnode status --json' if it runs
	BootActive              bool
	BootUnitSHA             string
	BootID                  string
}

// Want is what a node should have.
type Want struct {
	BinSHA, EnvSHA, UnitSHA string // UnitSHA empty: no unit (background service)
	CladnetID               string
	Bootstrap               bool // this node runs the bootstrap too
	BootUnitSHA             string
}

// Action is one thing to do on a node.
type Action string

// The actions, in the order they run.
const (
	InstallBinary  Action = "install binary"
	WriteUnit      Action = "write unit"
	StartBootstrap Action = "start bootstrap"
	WriteEnv       Action = "write env"
	IssueToken     Action = "issue token"
	StartService   Action = "start cbnode"
)

// NodeActions says what a node needs, given what it reported: nothing for
// a node that runs this binary, unit and env and is a member of the
// CLADNet; a fresh token when it is not a member; a (re)start after any
// change.
func NodeActions(p Probe, w Want) []Action {
	var out []Action
	bin := p.BinSHA != w.BinSHA
	if bin {
		out = append(out, InstallBinary)
	}
	unit := w.UnitSHA != "" && (p.UnitSHA != w.UnitSHA || (w.Bootstrap && p.BootUnitSHA != w.BootUnitSHA))
	if unit {
		out = append(out, WriteUnit)
	}
	if w.Bootstrap && (bin || unit || !p.BootActive || p.BootID == "") {
		out = append(out, StartBootstrap)
	}
	env := p.EnvSHA != w.EnvSHA
	if env {
		out = append(out, WriteEnv)
	}
	member := p.Token && p.Active && p.CladnetID == w.CladnetID && p.CladnetID != ""
	if !member {
		out = append(out, IssueToken)
	}
	if bin || unit || env || !member {
		out = append(out, StartService)
	}
	return out
}

// Deployed is a node a previous deploy set up (the state file's record).
type Deployed struct {
	Host   string `json:"host"`
	PeerID string `json:"peerId"`
}

// Gone lists the deployed nodes no longer in the infra (to revoke), by
// node ID.
func Gone(deployed map[string]Deployed, nodes []Node) []string {
	in := map[string]bool{}
	for _, n := range nodes {
		in[n.ID] = true
	}
	var out []string
	for id := range deployed {
		if !in[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// ParseProbe reads the probe script's output.
func ParseProbe(out string) Probe {
	var p Probe
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cbnode-deploy ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		switch k {
		case "bin":
			p.BinSHA = v
		case "env":
			p.EnvSHA = v
		case "unit":
			p.UnitSHA = v
		case "bootunit":
			p.BootUnitSHA = v
		case "token":
			p.Token = v == "yes"
		case "active":
			p.Active = v == "yes"
		case "bootactive":
			p.BootActive = v == "yes"
		case "bootid":
			p.BootID = v
		case "status":
			p.CladnetID, p.IP, p.PeerID = statusFields(v)
		}
	}
	return p
}

type netipPrefix = netip.Prefix

func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
