package tumblebug

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloud-barista/cbnode/api"
)

// ownerKeyRe is a base64 owner key (it goes into the bootstrap node's
// command line as --cladnet-owner).
var ownerKeyRe = regexp.MustCompile(`^[A-Za-z0-9+/]{40,}={0,2}$`)

// Operator is the operator's API (an *api.Client with its credentials).
type Operator interface {
	Do(ctx context.Context, method, path string, in, out any) error
}

// Config is one deploy (or plan) of a Tumblebug infra.
type Config struct {
	TB          *Client
	Op          Operator
	OperatorURL string // for messages
	NS, Infra   string
	Cladnet     string // CLADNet name (default: the infra's ID as a host name)
	CIDR        string // CLADNet range; "" recommends one free of every vNet and subnet
	RuleType    string
	Hosts       int // expected members, sizes a recommended range
	Bootstrap   []string
	BootNode    string
	Layout      Layout
	Binary      []byte // the cbnode binary to install (linux, the nodes' architecture)
	Unit        string // the member's systemd unit (examples/cbnode.service)
	TokenTTL    time.Duration
	Env         []string // extra CBNODE_ lines for /etc/cbnode/env
	StateFile   string
	Wait        time.Duration // for every node to be a member
	Out         io.Writer     // progress lines and the final table
	Plan        bool          // print the commands, change nothing
	Parallel    int           // nodes set up at once after the bootstrap node (default 4; plan: 1)
}

// Row is one node of the final table.
type Row struct {
	Node, Host, IP string
	Paths          []string // "host scope selected-ip"
}

// Result is what a deploy did.
type Result struct {
	CladnetID string
	Bootstrap []string
	Changed   map[string][]Action // node ID -> actions taken (or planned)
	Revoked   []string
	Failed    map[string]error
	Rows      []Row
}

type deployer struct {
	Config
	st       *State
	res      *Result
	spec     api.CLADNetSpecification
	binSHA   string
	binArch  string
	unitSHA  string
	bootAddr []string
	boot     Bootstrap
	nodes    []Node          // the running nodes, deployed to
	inInfra  map[string]bool // every node ID the infra lists (running or not)
	facts    map[string]Facts

	outMu sync.Mutex // Out
	mu    sync.Mutex // st and res while nodes deploy in parallel
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// logf prints a progress line (nodes deploy in parallel: one line at a time).
func (d *deployer) logf(format string, a ...any) {
	d.outMu.Lock()
	defer d.outMu.Unlock()
	fmt.Fprintf(d.Out, format+"\n", a...)
}

// Run deploys cbnode to every running node of the infra (or, with Plan,
// prints what it would do): see docs/tumblebug.md for the steps.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Layout.Check(); err != nil {
		return nil, err
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Hosts <= 0 {
		cfg.Hosts = 250
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.RuleType == "" {
		cfg.RuleType = "cost-prioritized"
	}
	if len(cfg.Binary) == 0 {
		return nil, errors.New("no cbnode binary to install: give --binary")
	}
	if len(cfg.Binary) > 50<<20 {
		return nil, fmt.Errorf("--binary is %d MiB, over Tumblebug's 50 MiB file-transfer limit: use a stripped build ('make release')", len(cfg.Binary)>>20)
	}
	binArch, err := BinaryArch(cfg.Binary)
	if err != nil {
		return nil, err
	}
	d := &deployer{Config: cfg, binArch: binArch, res: &Result{Changed: map[string][]Action{}, Failed: map[string]error{}},
		binSHA: sha(cfg.Binary), facts: map[string]Facts{}, inInfra: map[string]bool{}}
	if cfg.Layout.Service == ServiceSystemd {
		d.unitSHA = sha([]byte(cfg.Unit))
	}
	if d.st, err = LoadState(cfg.StateFile); err != nil {
		return nil, err
	}
	if err := d.readInfra(ctx); err != nil {
		return nil, err
	}
	reserved, err := d.reserved(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.cladnet(ctx, reserved); err != nil {
		return nil, err
	}
	if d.boot, err = ChooseBootstrap(d.nodes, cfg.Bootstrap, cfg.BootNode); err != nil {
		return nil, err
	}
	if err := d.firewall(ctx); err != nil {
		return nil, err
	}
	if err := d.deployNodes(ctx); err != nil {
		return d.res, err
	}
	d.revokeGone(ctx)
	if !cfg.Plan {
		if err := d.st.Save(cfg.StateFile); err != nil {
			return d.res, err
		}
		d.wait(ctx)
		d.table()
		d.checkOperator(ctx)
	}
	if n := len(d.res.Failed); n > 0 {
		var ids []string
		for id := range d.res.Failed {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var msgs []string
		for _, id := range ids {
			msgs = append(msgs, d.res.Failed[id].Error())
		}
		return d.res, fmt.Errorf("%d of %d nodes failed (%s); fix them and run deploy again: the nodes that work are left as they are", n, len(d.nodes), strings.Join(msgs, "; "))
	}
	return d.res, nil
}

func (d *deployer) readInfra(ctx context.Context) error {
	rz, err := d.TB.Readyz(ctx)
	if err != nil {
		return err
	}
	if !rz.Ready {
		return fmt.Errorf("tumblebug at %s is not ready (%s): wait for it to finish starting", d.TB.Base(), rz.Message)
	}
	d.logf("tumblebug %s: ready", d.TB.Base())
	in, err := d.TB.Infra(ctx, d.NS, d.Infra)
	if err != nil {
		return err
	}
	var skipped []string
	for _, n := range in.Node {
		if err := safeValue("node ID", n.ID); err != nil || n.ID == "" {
			return fmt.Errorf("infra %s: node ID %q: use IDs of letters, digits and -", d.Infra, n.ID)
		}
		d.inInfra[n.ID] = true
		if n.Status != "" && !strings.EqualFold(n.Status, "Running") {
			skipped = append(skipped, n.ID+" ("+n.Status+")")
			continue
		}
		f, err := FactsOf(n)
		if err != nil {
			return err
		}
		d.facts[n.ID] = f
		d.nodes = append(d.nodes, n)
	}
	sort.Slice(d.nodes, func(i, j int) bool { return d.nodes[i].ID < d.nodes[j].ID })
	if len(d.nodes) == 0 {
		return fmt.Errorf("infra %s/%s has no running node (skipped: %s)", d.NS, d.Infra, strings.Join(skipped, ", "))
	}
	seen := map[string]string{}
	var ids []string
	for _, n := range d.nodes {
		h := HostName(n.ID)
		if o, dup := seen[h]; dup {
			return fmt.Errorf("nodes %s and %s both become host name %s: rename one in Tumblebug", o, n.ID, h)
		}
		seen[h] = n.ID
		ids = append(ids, n.ID)
	}
	d.logf("infra %s/%s: %d running nodes: %s", d.NS, d.Infra, len(d.nodes), strings.Join(ids, " "))
	if len(skipped) > 0 {
		d.logf("  skipped (not running): %s", strings.Join(skipped, ", "))
	}
	return nil
}

func (d *deployer) reserved(ctx context.Context) ([]string, error) {
	var vnets []VNet
	seen := map[string]bool{}
	for _, n := range d.nodes {
		if n.VNetID == "" || seen[n.VNetID] {
			continue
		}
		seen[n.VNetID] = true
		v, err := d.TB.VNet(ctx, d.NS, n.VNetID)
		if err != nil {
			return nil, fmt.Errorf("vNet %s of node %s: %w", n.VNetID, n.ID, err)
		}
		vnets = append(vnets, v)
	}
	res, err := Reserved(vnets)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range res {
		out = append(out, p.String())
	}
	d.logf("vNets %d: the CLADNet stays out of %s", len(vnets), strings.Join(out, " "))
	return out, nil
}

func (d *deployer) opErr(err error) error {
	var ue *api.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach the operator at %s (is 'cbnode operator' running? --operator gives its URL): %v", d.OperatorURL, ue.Err)
	}
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnauthorized {
		return fmt.Errorf("operator: %v (give --auth-file or CBNODE_OPERATOR_TOKEN)", err)
	}
	return fmt.Errorf("operator: %w", err)
}

func (d *deployer) cladnet(ctx context.Context, reserved []string) error {
	name := d.Config.Cladnet
	if name == "" {
		name = HostName(d.Infra)
	}
	if err := safeValue("CLADNet name", name); err != nil {
		return err
	}
	resPfx, _ := toPrefixes(reserved)
	err := d.Op.Do(ctx, http.MethodGet, "/v1/cladnet/"+url.PathEscape(name), nil, &d.spec)
	var se *api.StatusError
	switch {
	case err == nil:
		if err := CheckFree(d.spec.IPv4AddressSpace, resPfx); err != nil {
			return fmt.Errorf("existing CLADNet %s: %w", name, err)
		}
		d.logf("cladnet %s: exists, %s (id %s)", name, d.spec.IPv4AddressSpace, d.spec.ID)
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
		if d.CIDR != "" {
			if err := CheckFree(d.CIDR, resPfx); err != nil {
				return err
			}
		}
		body := map[string]any{"name": name, "ipv4AddressSpace": d.CIDR, "ruleType": d.RuleType,
			"description": fmt.Sprintf("Tumblebug %s/%s", d.NS, d.Infra), "ipv4Cidrs": reserved, "hosts": d.Hosts}
		if d.Plan {
			b, _ := json.Marshal(body)
			d.logf("cladnet %s: would create: POST %s/v1/cladnet %s", name, d.OperatorURL, b)
			d.spec = api.CLADNetSpecification{Name: name, ID: "<new CLADNet>"}
			return nil
		}
		if err := d.Op.Do(ctx, http.MethodPost, "/v1/cladnet", body, &d.spec); err != nil {
			return d.opErr(fmt.Errorf("create CLADNet %s: %w", name, err))
		}
		if err := CheckFree(d.spec.IPv4AddressSpace, resPfx); err != nil {
			return fmt.Errorf("the operator created CLADNet %s in a range the infra uses (delete it with 'cbnode cladnet delete %s --operator ...'): %w", name, name, err)
		}
		d.logf("cladnet %s: created %s, rule %s (id %s)", name, d.spec.IPv4AddressSpace, d.spec.RuleType, d.spec.ID)
	default:
		return d.opErr(err)
	}
	if d.spec.OwnerKey != "" && !ownerKeyRe.MatchString(d.spec.OwnerKey) {
		return fmt.Errorf("operator: CLADNet %s has owner key %q, not base64: is %s a cbnode operator?", name, d.spec.OwnerKey, d.OperatorURL)
	}
	if d.st.CladnetID != "" && d.st.CladnetID != d.spec.ID {
		return fmt.Errorf("state file %s belongs to CLADNet %s, the operator's %s is %s: give the right --cladnet or --state-file", d.StateFile, d.st.CladnetID, name, d.spec.ID)
	}
	d.st.Tumblebug, d.st.NS, d.st.Infra, d.st.Cladnet = d.TB.Base(), d.NS, d.Infra, name
	if !d.Plan {
		d.st.CladnetID = d.spec.ID
	}
	d.res.CladnetID = d.spec.ID
	return nil
}

func toPrefixes(ss []string) ([]netipPrefix, error) { return parsePrefixes(ss) }

func (d *deployer) firewall(ctx context.Context) error {
	ports := map[string][]int{}
	var order []string
	for _, n := range d.nodes {
		for _, sg := range n.SecurityGroupIDs {
			if _, ok := ports[sg]; !ok {
				order = append(order, sg)
				ports[sg] = []int{d.Layout.Port}
			}
			if n.ID == d.boot.Node && !containsInt(ports[sg], d.Layout.BootstrapPort) {
				ports[sg] = append(ports[sg], d.Layout.BootstrapPort)
			}
		}
	}
	for _, id := range order {
		if err := safeValue("security group ID", id); err != nil {
			return err
		}
		sg, err := d.TB.SecurityGroup(ctx, d.NS, id)
		if err != nil {
			return fmt.Errorf("security group %s: %w", id, err)
		}
		miss := MissingRules(sg, ports[id])
		if len(miss) == 0 {
			d.logf("firewall %s: TCP and UDP %s open", id, joinInts(ports[id]))
			continue
		}
		var what []string
		for _, r := range miss {
			what = append(what, r.Protocol+" "+r.Ports)
		}
		if d.Plan {
			b, _ := json.Marshal(SecurityGroupUpdateReq{FirewallRules: miss})
			d.logf("firewall %s: would add inbound %s: POST %s/ns/%s/resources/securityGroup/%s/rules %s", id, strings.Join(what, ", "), d.TB.Base(), d.NS, id, b)
			continue
		}
		if _, err := d.TB.AddRules(ctx, d.NS, id, miss); err != nil {
			return fmt.Errorf("security group %s: open %s: %w", id, strings.Join(what, ", "), err)
		}
		d.logf("firewall %s: opened inbound %s from 0.0.0.0/0", id, strings.Join(what, ", "))
	}
	return nil
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinInts(list []int) string {
	var s []string
	for _, v := range list {
		s = append(s, fmt.Sprint(v))
	}
	return strings.Join(s, ",")
}

// run runs command on node, or prints it (plan).
func (d *deployer) run(ctx context.Context, node, what, command string) (string, error) {
	if d.Plan {
		d.logf("    %s: POST /ns/%s/cmd/infra/%s?nodeId=%s {\"command\":[%q]}", what, d.NS, d.Infra, node, command)
		return "", nil
	}
	return d.TB.Run(ctx, d.NS, d.Infra, node, command)
}

// send transfers a file then runs command, or prints it (plan); a secret's
// content is never printed.
func (d *deployer) send(ctx context.Context, node, what, name string, data []byte, secret bool, command string) (string, error) {
	if d.Plan {
		content := fmt.Sprintf("%d bytes", len(data))
		if secret {
			content = "issued at apply, never printed"
		}
		d.logf("    %s: POST /ns/%s/transferFileAndCmd/infra/%s?nodeId=%s path=%s file=%s (%s) command=%q", what, d.NS, d.Infra, node, Staging, name, content, command)
		return "", nil
	}
	return d.TB.TransferAndRun(ctx, d.NS, d.Infra, node, Staging, name, data, command)
}
