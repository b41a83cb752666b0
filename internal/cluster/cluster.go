//go:build linux

// Package cluster runs a cbnode network of real processes in network
// namespaces (package netlab): a bootstrap node and members on one switch,
// each member with its own cbnet0. The demo, the end-to-end tests and the
// data-plane benchmark use it.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/netlab"
)

// Underlay is the lab switch's segment; the CLADNet range must not overlap it.
var Underlay = netip.MustParsePrefix("10.250.0.0/24")

// Options shape a cluster.
type Options struct {
	Prefix    string // lab name prefix (default "cbc")
	Nodes     int    // members (default 3)
	CIDR      string // CLADNet range (default 10.77.0.0/24)
	Heartbeat time.Duration
	JoinArgs  []string // extra flags for every 'cbnode join'
	LogLevel  string
	Relay     bool   // the bootstrap node relays for the lab's CLADNet
	RuleType  string // the CLADNet's rule type (default basic)
	// External: NewLab creates no CLADNet; the test makes it elsewhere
	// (through an operator's API) and gives each member its token file.
	// The members still join by the name "lab".
	External bool
	// Groups puts certificate groups into members' tokens, by node name.
	Groups map[string][]string
}

// Cluster is a running lab.
type Cluster struct {
	Lab      *netlab.Lab
	LAN      *netlab.Switch
	Bin      string
	Dir      string // scratch: CLADNet dir, state dirs, tokens
	Boot     *Node
	BootAddr string
	Nodes    []*Node
	OwnerKey string // the CLADNet's owner public key
	opts     Options
}

// Node is one host of the lab.
type Node struct {
	Name      string
	Host      *netlab.Host
	Proc      *netlab.Proc
	Underlay  netip.Prefix
	StateDir  string
	TokenFile string
	Args      []string // extra join flags for this node
	c         *Cluster
}

// Build compiles cbnode from the module at root into dir and returns its path.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "cbnode")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/cbnode")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build cbnode: %w: %s", err, out)
	}
	return bin, nil
}

// New builds the single-switch lab (Underlay), starts the bootstrap node,
// creates the CLADNet and issues a token per member. Members are not
// started: call StartAll.
func New(ctx context.Context, bin string, o Options) (_ *Cluster, err error) {
	c, err := NewLab(ctx, bin, o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.LAN, err = c.Lab.Switch("lan", Underlay); err != nil {
		return nil, err
	}
	boot, err := c.AddHost("boot", c.LAN, 1)
	if err != nil {
		return nil, err
	}
	if err := c.StartBootstrap(ctx, boot); err != nil {
		return nil, err
	}
	for i := 1; i <= c.opts.Nodes; i++ {
		n, err := c.AddHost(fmt.Sprintf("n%d", i), c.LAN, 10+i)
		if err != nil {
			return nil, err
		}
		if err := c.AddMember(ctx, n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// NewLab makes an empty lab and the CLADNet (none with Options.External);
// build the topology with Lab/AddHost, then StartBootstrap and AddMember.
func NewLab(ctx context.Context, bin string, o Options) (*Cluster, error) {
	if o.Prefix == "" {
		o.Prefix = "cbc"
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.CIDR == "" {
		o.CIDR = "10.77.0.0/24"
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = time.Second
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.RuleType == "" {
		o.RuleType = "basic"
	}
	dir, err := os.MkdirTemp("", "cbnode-cluster-")
	if err != nil {
		return nil, err
	}
	lab, err := netlab.New(o.Prefix)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{Lab: lab, Bin: bin, Dir: dir, opts: o}
	if o.External {
		return c, nil
	}
	out, err := exec.CommandContext(ctx, bin, "cladnet", "create", "lab", "--dir", c.CladnetDir(), "--cidr", o.CIDR, "--rule-type", o.RuleType).Output()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cladnet create: %w", err)
	}
	var spec struct {
		OwnerKey string `json:"ownerKey"`
	}
	if err := json.Unmarshal(out, &spec); err != nil {
		c.Close()
		return nil, fmt.Errorf("cladnet create: %w", err)
	}
	c.OwnerKey = spec.OwnerKey
	return c, nil
}

// CladnetDir is where the lab's CLADNet (owner key, spec) lives.
func (c *Cluster) CladnetDir() string { return filepath.Join(c.Dir, "cladnets") }

// AddHost makes a host attached to sw at the sw's idx-th address.
func (c *Cluster) AddHost(name string, sw *netlab.Switch, idx int) (*Node, error) {
	h, err := c.Lab.Host(name)
	if err != nil {
		return nil, err
	}
	addr := sw.Addr(idx)
	if err := sw.Attach(h, addr); err != nil {
		return nil, err
	}
	return &Node{Name: name, Host: h, Underlay: addr, StateDir: filepath.Join(c.Dir, "state-"+name), c: c}, nil
}

// AddMember issues n a join token (with the bootstrap address) and makes it
// a member; start it with Start.
func (c *Cluster) AddMember(ctx context.Context, n *Node) error {
	n.TokenFile = filepath.Join(c.Dir, n.Name+".token")
	args := []string{"cladnet", "issue", "lab", "--dir", c.CladnetDir(), "--host", n.Name, "--bootstrap", c.BootAddr, "--out", n.TokenFile}
	for _, g := range c.opts.Groups[n.Name] {
		args = append(args, "--group", g)
	}
	if out, err := exec.CommandContext(ctx, c.Bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("cladnet issue: %w: %s", err, out)
	}
	c.Nodes = append(c.Nodes, n)
	return nil
}

// RelayFor makes the bootstrap node relay for (and hold the revocation
// list of) the CLADNet with this owner key from its next StartBootstrap:
// for a CLADNet made through an operator's API after the lab was built.
func (c *Cluster) RelayFor(ownerKey string) {
	c.OwnerKey = ownerKey
	c.opts.Relay = true
}

// StartBootstrap runs the bootstrap node on host n (relaying for the lab's
// CLADNet if Options.Relay) and waits for its address.
func (c *Cluster) StartBootstrap(ctx context.Context, n *Node) error {
	c.Boot = n
	args := []string{"bootstrap", "--state-dir", n.StateDir, "--listen", n.Underlay.Addr().String(), "--log-level", c.opts.LogLevel}
	args = append(args, "--cladnet-owner", c.OwnerKey) // it stores the lab's claims
	if c.opts.Relay {
		args = append(args, "--relay")
	}
	p, err := n.Host.Start(c.Bin, args...)
	if err != nil {
		return err
	}
	n.Proc = p
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(string(p.Output()), "\n") {
			// 'cbnode bootstrap' prints "--bootstrap <multiaddr>".
			if a, ok := strings.CutPrefix(strings.TrimSpace(line), "--bootstrap "); ok {
				c.BootAddr = strings.TrimSpace(a)
				return nil
			}
		}
		if p.Exited() {
			return fmt.Errorf("bootstrap node exited: %s", p.Output())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("bootstrap node printed no address: %s", p.Output())
}

// Start starts node n's 'cbnode join'. Its names go to the host's own hosts
// file (netlab Host.HostsFile), never to the machine's /etc/hosts or
// systemd-resolved; JoinArgs and n.Args may override --dns.
func (c *Cluster) Start(n *Node) error {
	hosts, err := n.Host.HostsFile()
	if err != nil {
		return err
	}
	args := []string{"join", "lab", "--token-file", n.TokenFile, "--state-dir", n.StateDir,
		"--heartbeat", c.opts.Heartbeat.String(), "--log-level", c.opts.LogLevel,
		"--dns", "hosts", "--hosts-file", hosts}
	args = append(args, c.opts.JoinArgs...)
	args = append(args, n.Args...)
	p, err := n.Host.Start(c.Bin, args...)
	if err != nil {
		return err
	}
	n.Proc = p
	return nil
}

// StartAll starts every member.
func (c *Cluster) StartAll() error {
	for _, n := range c.Nodes {
		if err := c.Start(n); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops node n gracefully (SIGTERM).
func (n *Node) Stop() error {
	if n.Proc == nil {
		return nil
	}
	err := n.Proc.Stop()
	n.Proc = nil
	return err
}

// CLI runs 'cbnode args...' inside n's namespace.
func (n *Node) CLI(ctx context.Context, args ...string) ([]byte, error) {
	return n.Host.Run(ctx, n.c.Bin, args...)
}

func (n *Node) cliJSON(ctx context.Context, out any, args ...string) error {
	b, err := n.CLI(ctx, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: decode %q: %w", n.Name, b, err)
	}
	return nil
}

// Status is 'cbnode status --json' on n.
func (n *Node) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	return st, n.cliJSON(ctx, &st, "status")
}

// Peers is 'cbnode peers --json' ({"peers": [...]}) on n.
func (n *Node) Peers(ctx context.Context) ([]api.Peer, error) {
	var ps api.Peers
	return ps.Peers, n.cliJSON(ctx, &ps, "peers")
}

// IP returns n's overlay address as its API reports it.
func (n *Node) IP(ctx context.Context) (netip.Addr, error) {
	st, err := n.Status(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	if st.IP == "" {
		return netip.Addr{}, fmt.Errorf("%s has no overlay address yet (%s)", n.Name, st.IPAMState)
	}
	return netip.ParseAddr(st.IP)
}

// WaitConverged waits until every running member has an overlay address and
// sees every running member, each with an address, in state tunneling.
func (c *Cluster) WaitConverged(ctx context.Context) error {
	var last error
	for {
		last = c.converged(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not converged: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) converged(ctx context.Context) error {
	var running []*Node
	for _, n := range c.Nodes {
		if n.Proc != nil {
			if n.Proc.Exited() {
				return fmt.Errorf("%s exited: %s", n.Name, n.Proc.Output())
			}
			running = append(running, n)
		}
	}
	for _, n := range running {
		peers, err := n.Peers(ctx)
		if err != nil {
			return err
		}
		if len(peers) != len(running) {
			return fmt.Errorf("%s sees %d members, want %d", n.Name, len(peers), len(running))
		}
		for _, p := range peers {
			if p.IP == "" || p.State != "tunneling" {
				return fmt.Errorf("%s sees %s without an address or not tunneling (%q)", n.Name, p.HostName, p.State)
			}
		}
	}
	return nil
}

// Close stops everything and removes the lab and the scratch directory.
func (c *Cluster) Close() error {
	err := c.Lab.Close()
	if rerr := os.RemoveAll(c.Dir); err == nil {
		err = rerr
	}
	return err
}

// ErrNoRoot is returned by Check when the lab cannot be built.
var ErrNoRoot = errors.New("the lab needs root (network namespaces, TUN)")

// Check reports whether this process can build labs.
func Check() error {
	if os.Geteuid() != 0 {
		return ErrNoRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the lab needs iproute2's ip: %w", err)
	}
	return nil
}

// CLIJSON runs 'cbnode args... --json' on n and decodes the answer.
func (n *Node) CLIJSON(ctx context.Context, out any, args ...string) error {
	return n.cliJSON(ctx, out, args...)
}
