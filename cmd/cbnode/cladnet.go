package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

var dirFlag = &cli.StringFlag{
	Name:    "dir",
	Usage:   "directory holding the operator's CLADNets (owner keys: keep it safe)",
	Value:   "./cladnets",
	EnvVars: []string{"CBNODE_CLADNET_DIR"},
}

func cladnetCommand() *cli.Command {
	return &cli.Command{
		Name:  "cladnet",
		Usage: "operator tools: create a CLADNet, issue join tokens; list, get, delete through an operator",
		Subcommands: append([]*cli.Command{
			{
				Name:      "create",
				Usage:     "create a CLADNet: a fresh owner key and its spec",
				ArgsUsage: "NAME",
				Description: `Creates DIR/NAME/owner.key (0600, the key that signs every node certificate)
and DIR/NAME/spec.json. The CLADNet ID derives from the owner key.
--cidr auto picks a range that overlaps none of the --subnet ranges (the VMs'
underlay subnets) and holds --hosts nodes with room to double.`,
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "cidr", Usage: "overlay IPv4 range, or 'auto'", Value: cladnet.DefaultCIDR, EnvVars: []string{"CBNODE_CIDR"}},
					&cli.StringSliceFlag{Name: "subnet", Usage: "underlay subnet in use by members (with --cidr auto; repeatable)", EnvVars: []string{"CBNODE_SUBNET"}},
					&cli.IntFlag{Name: "hosts", Usage: "expected number of nodes (with --cidr auto)", Value: 0, EnvVars: []string{"CBNODE_HOSTS"}},
					&cli.StringFlag{Name: "rule-type", Usage: "path rule: basic or cost-prioritized", Value: cladnet.RuleBasic, EnvVars: []string{"CBNODE_RULE_TYPE"}},
					&cli.StringFlag{Name: "description", Usage: "free text", EnvVars: []string{"CBNODE_DESCRIPTION"}},
				},
				Action: cladnetCreate,
			},
			{
				Name:      "issue",
				Usage:     "issue a join token for one VM",
				ArgsUsage: "NAME",
				Description: `Prints (or writes with --out, 0600) a join token: a node certificate signed
by the owner key, the CLADNet spec and the bootstrap addresses.

The recommended flow keeps every private key where it was born: run 'cbnode
key' on the VM (it prints the node's peer ID), then issue with --peer-id
<ID>: the token carries no key and is no secret. Without --peer-id the token
carries a fresh node key — a bearer identity: treat it as a secret, pass it
with --token-file (0600) rather than --token, and delete it after the first
start (the node keeps its key in its state directory).

Certificates live --ttl (30 days by default); a running 'cbnode operator'
for the CLADNet renews them before they end. Without one, re-issue in time
or give a longer --ttl.

Host names are one DNS label (RFC 1123) and unique in the CLADNet: the
CLADNet directory lists what was issued (issued.json), and a name held by
another node's live certificate is refused unless --replace.`,
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "host", Usage: "host name of the VM (default: node-<peer id suffix>)", EnvVars: []string{"CBNODE_HOST"}},
					&cli.DurationFlag{Name: "ttl", Usage: "certificate validity (renewed by a running operator before it ends)", Value: DefaultIssueTTL, EnvVars: []string{"CBNODE_TTL"}},
					&cli.StringSliceFlag{Name: "bootstrap", Usage: "bootstrap multiaddr with /p2p/ID (repeatable)", EnvVars: []string{"CBNODE_BOOTSTRAP"}},
					&cli.StringSliceFlag{Name: "group", Usage: "group to put in the certificate (repeatable)", EnvVars: []string{"CBNODE_GROUPS"}},
					&cli.StringFlag{Name: "peer-id", Usage: "sign for this existing node key instead of making one", EnvVars: []string{"CBNODE_PEER_ID"}},
					&cli.StringFlag{Name: "out", Usage: "write the token to this file (0600) instead of stdout"},
					&cli.BoolFlag{Name: "replace", Usage: "issue the host name even though a live certificate of another node holds it"},
					&cli.StringFlag{Name: "role", Usage: "certificate role: member, or operator (the operator service; it claims no overlay IP)", Value: cladnet.RoleMember},
					&cli.StringFlag{Name: "ip", Usage: "bind this overlay address in the certificate: the node may hold no other, and its claim beats any unbound one"},
				},
				Action: cladnetIssue,
			},
			{
				Name:      "revoke",
				Usage:     "revoke a node: add it to the CLADNet's signed revocation list",
				ArgsUsage: "NAME",
				Description: `Adds the node to DIR/NAME/revocations.json (owner-signed, version bumped by
one) and prints the signed list (or writes it with --out). --host looks the
node up in the issued certificates (issued.json) and revokes its peer ID and
certificate; --peer-id revokes a node key directly. Push the list to any
member with 'cbnode revocation push FILE': members gossip it, close the
revoked node's connections, ignore its announcements and free its address.`,
				Flags: []cli.Flag{dirFlag,
					&cli.StringFlag{Name: "host", Usage: "host name of the node to revoke (looked up in issued.json)"},
					&cli.StringFlag{Name: "peer-id", Usage: "peer ID of the node to revoke"},
					&cli.StringFlag{Name: "reason", Usage: "free text kept in the list (at most 200 bytes)"},
					&cli.StringFlag{Name: "out", Usage: "also write the signed list to this file"},
				},
				Action: cladnetRevoke,
			},
			{
				Name:      "revocations",
				Usage:     "print a CLADNet's signed revocation list",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dirFlag},
				Action: func(c *cli.Context) error {
					o, err := loadOwner(c)
					if err != nil {
						return err
					}
					r, err := o.Revocations(c.String("dir"))
					if err != nil {
						return err
					}
					if r == nil {
						fmt.Fprintf(os.Stderr, "CLADNet %s has revoked no node\n", o.Spec.Name)
						return nil
					}
					return printJSON(r)
				},
			},
			{
				Name:      "rules",
				Usage:     "sign a cost-rules document for the CLADNet",
				ArgsUsage: "NAME",
				Description: `Reads an operator's rules file, e.g.
  {"ruleType": "cost-prioritized",
   "prices": {"default": {"internet": 0.09}, "providers": {"aws": {"cross-zone": 0.02}}},
   "version": 7}
(ruleType required; prices are overrides on the built-in list prices; version
defaults to the current Unix time), signs it with the owner key and prints
the signed document (or writes it with --out). Push it to any member with
'cbnode rules push FILE': members apply the newest signed version and gossip it.`,
				Flags: []cli.Flag{dirFlag,
					&cli.StringFlag{Name: "file", Usage: "rules file (JSON)", Required: true},
					&cli.StringFlag{Name: "out", Usage: "write the signed document here instead of stdout"}},
				Action: cladnetRules,
			},
			{
				Name:      "show",
				Usage:     "print a CLADNet's spec as JSON",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{dirFlag},
				Action: func(c *cli.Context) error {
					o, err := loadOwner(c)
					if err != nil {
						return err
					}
					return printJSON(o.Spec)
				},
			},
		}, operatorClientCommands()...),
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", withCode(exitUsage, fmt.Errorf("%s: need exactly one %s (see '%s --help')", c.Command.FullName(), what, c.Command.HelpName))
	}
	return c.Args().First(), nil
}

func loadOwner(c *cli.Context) (*cladnet.Owner, error) {
	name, err := oneArg(c, "CLADNet NAME")
	if err != nil {
		return nil, err
	}
	return cladnet.Load(c.String("dir"), name)
}

func cladnetCreate(c *cli.Context) error {
	name, err := oneArg(c, "CLADNet NAME")
	if err != nil {
		return err
	}
	cidr := c.String("cidr")
	if cidr == "auto" {
		hosts := c.Int("hosts")
		if hosts <= 0 {
			return errors.New("--cidr auto needs --hosts N (the expected number of nodes)")
		}
		res, err := api.ComputeAddressSpaces(api.AddressSpaceRequest{IPv4CIDRs: c.StringSlice("subnet"), Hosts: hosts})
		if err != nil {
			return err
		}
		cidr = res.Recommended
	} else if c.IsSet("subnet") || c.IsSet("hosts") {
		return errors.New("--subnet and --hosts only apply with --cidr auto")
	}
	o, err := cladnet.Create(c.String("dir"), name, cidr, c.String("rule-type"), c.String("description"), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "created CLADNet %s (%s), range %s, rule %s; owner key in %s/%s/owner.key\n",
		o.Spec.Name, o.Spec.ID, o.Spec.CIDR, o.Spec.RuleType, c.String("dir"), o.Spec.Name)
	return printJSON(o.Spec)
}

// DefaultIssueTTL is the default certificate lifetime of 'cladnet issue':
// days, not a year, now that an operator renews certificates.
const DefaultIssueTTL = 30 * 24 * time.Hour

func cladnetIssue(c *cli.Context) error {
	o, err := loadOwner(c)
	if err != nil {
		return err
	}
	tok := &cladnet.Token{Spec: o.Spec}
	for _, b := range c.StringSlice("bootstrap") {
		for _, s := range strings.Split(b, ",") {
			if s = strings.TrimSpace(s); s != "" {
				tok.Bootstrap = append(tok.Bootstrap, s)
			}
		}
	}
	if _, err := parseBootstrap(tok.Bootstrap); err != nil {
		return withCode(exitUsage, err)
	}
	var id peer.ID
	if s := c.String("peer-id"); s != "" {
		id, err = peer.Decode(s)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--peer-id %q is not a peer ID: give the ID 'cbnode key' prints on the node (12D3KooW...)", s))
		}
	} else {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			return err
		}
		if err := tok.SetPrivateKey(k); err != nil {
			return err
		}
		id, _ = peer.IDFromPrivateKey(k)
	}
	host := c.String("host")
	if host == "" {
		s := id.String()
		host = "node-" + strings.ToLower(s[len(s)-6:])
	}
	now := time.Now()
	if !c.Bool("replace") {
		if err := o.CheckHost(c.String("dir"), host, id.String(), now); err != nil {
			return withCode(exitUsage, err)
		}
	}
	if err := cladnet.ValidateRole(c.String("role")); err != nil {
		return withCode(exitUsage, fmt.Errorf("--role: %w", err))
	}
	var bound netip.Addr
	if s := c.String("ip"); s != "" {
		if bound, err = netip.ParseAddr(s); err != nil || !bound.Is4() {
			return withCode(exitUsage, fmt.Errorf("--ip %q is not an IPv4 address of CLADNet %s (%s)", s, o.Spec.Name, o.Spec.CIDR))
		}
		if c.String("role") == cladnet.RoleOperator {
			return withCode(exitUsage, errors.New("--ip: an operator certificate claims no overlay address"))
		}
	}
	tok.Cert, err = cladnet.SignCertificate(o.Key, o.Spec, id, host, c.StringSlice("group"), now, c.Duration("ttl"),
		cladnet.WithRole(c.String("role")), cladnet.WithIP(bound))
	if err != nil {
		return withCode(exitUsage, err)
	}
	if err := o.Record(c.String("dir"), tok.Cert, now); err != nil {
		return err
	}
	if len(tok.Bootstrap) == 0 {
		fmt.Fprintln(os.Stderr, "warning: the token names no bootstrap node (--bootstrap): the member will need 'cbnode join --bootstrap ...' to find the CLADNet")
	}
	s, err := tok.Encode()
	if err != nil {
		return err
	}
	if out := c.String("out"); out != "" {
		if err := atomicfile.Write(out, []byte(s+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote join token for %s (peer %s, valid until %s) to %s\n", host, id, tok.Cert.NotAfter.Format(time.RFC3339), out)
		return nil
	}
	fmt.Println(s)
	return nil
}

func cladnetRules(c *cli.Context) error {
	o, err := loadOwner(c)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(c.String("file"))
	if err != nil {
		return fmt.Errorf("rules file: %w", err)
	}
	r, err := cost.LoadRulesFile(b, o.Spec.ID, time.Now())
	if err != nil {
		return err
	}
	if err := cost.SignRules(o.Key, r); err != nil {
		return err
	}
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if f := c.String("out"); f != "" {
		if err := atomicfile.Write(f, append(out, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote rules version %d (%s) for %s to %s\n", r.Version, r.RuleType, o.Spec.Name, f)
		return nil
	}
	fmt.Println(string(out))
	return nil
}

func cladnetRevoke(c *cli.Context) error {
	o, err := loadOwner(c)
	if err != nil {
		return err
	}
	dir := c.String("dir")
	host, pid := c.String("host"), c.String("peer-id")
	if (host == "") == (pid == "") {
		return withCode(exitUsage, errors.New("cladnet revoke: give exactly one of --host H or --peer-id P"))
	}
	e := cladnet.Revocation{Reason: c.String("reason")}
	if pid != "" {
		id, err := peer.Decode(pid)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("--peer-id %q is not a peer ID (12D3KooW...)", pid))
		}
		e.PeerID = id.String()
	}
	list, err := o.IssuedList(dir)
	if err != nil {
		return err
	}
	for _, is := range list {
		if (host != "" && is.HostName == host) || (pid != "" && is.PeerID == e.PeerID) {
			e.HostName, e.PeerID, e.Fingerprint = is.HostName, is.PeerID, is.Fingerprint
		}
	}
	if e.PeerID == "" {
		return withCode(exitUsage, fmt.Errorf("cladnet revoke: no certificate for host %s in %s/%s/issued.json: give --peer-id (the member list shows it)", host, dir, o.Spec.Name))
	}
	r, err := o.Revoke(dir, e, time.Now())
	if err != nil {
		return err
	}
	who := e.PeerID
	if e.HostName != "" {
		who = e.HostName + " (" + e.PeerID + ")"
	}
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	if f := c.String("out"); f != "" {
		if err := atomicfile.Write(f, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "revoked %s: revocation list version %d (%d entries) written to %s/%s/%s and %s; push it with 'cbnode revocation push %s'\n",
			who, r.Version, len(r.Entries), dir, o.Spec.Name, cladnet.RevocationsFile, f, f)
		return nil
	}
	fmt.Fprintf(os.Stderr, "revoked %s: revocation list version %d (%d entries) written to %[4]s; push it with 'cbnode revocation push %[4]s' on any member\n",
		who, r.Version, len(r.Entries), filepath.Join(dir, o.Spec.Name, cladnet.RevocationsFile))
	_, err = os.Stdout.Write(b)
	return err
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
