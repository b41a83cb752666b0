package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/names"
	"github.com/cloud-barista/cbnode/overlay/swim"
	"github.com/cloud-barista/cbnode/overlay/tun"
	"github.com/cloud-barista/cbnode/relay"
)

func stateDirFlag(def string) *cli.StringFlag {
	return &cli.StringFlag{Name: "state-dir", Usage: "where the node keeps its key and leases (0700)", Value: def, EnvVars: []string{"CBNODE_STATE_DIR"}}
}

var (
	listenFlag    = &cli.StringSliceFlag{Name: "listen", Usage: "IP address to listen on (repeatable)", Value: cli.NewStringSlice("0.0.0.0"), EnvVars: []string{"CBNODE_LISTEN"}}
	portFlag      = &cli.IntFlag{Name: "port", Usage: "TCP and UDP (QUIC) listen port; 0 picks random ones", Value: node.DefaultPort, EnvVars: []string{"CBNODE_PORT"}}
	bootstrapFlag = &cli.StringSliceFlag{Name: "bootstrap", Usage: "bootstrap multiaddr with /p2p/ID (repeatable, or comma-separated in the env var); added to the token's", EnvVars: []string{"CBNODE_BOOTSTRAP"}}
	logLevelFlag  = &cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: []string{"CBNODE_LOG_LEVEL"}}
)

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "join a CLADNet and run the node in the foreground",
		ArgsUsage: "NAME",
		Description: `Runs the node until SIGINT/SIGTERM, then leaves gracefully (releases its
address, tells the members). Needs a join token from 'cbnode cladnet issue'.
NAME must be the CLADNet the token is for (its name or ID). The data plane
(TUN device cbnet0) needs root or CAP_NET_ADMIN; --no-tun runs membership and
IPAM only. --check validates everything and exits without joining.

` + exitCodesHelp,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "token", Usage: "join token", EnvVars: []string{"CBNODE_TOKEN"}},
			&cli.StringFlag{Name: "token-file", Usage: "file holding the join token", EnvVars: []string{"CBNODE_TOKEN_FILE"}},
			stateDirFlag("/var/lib/cbnode"),
			listenFlag, portFlag, bootstrapFlag,
			&cli.StringFlag{Name: "api", Usage: "local API address (empty disables it)", Value: api.DefaultAddr, EnvVars: []string{"CBNODE_API"}},
			&cli.StringFlag{Name: "ip", Usage: "ask for this overlay address (fails if another member holds it)", EnvVars: []string{"CBNODE_IP"}},
			&cli.DurationFlag{Name: "lease", Usage: "overlay address lease (renewed at half-life; survives a suspend shorter than this)", Value: 48 * time.Hour, EnvVars: []string{"CBNODE_LEASE"}},
			&cli.DurationFlag{Name: "heartbeat", Usage: "period of the anti-entropy exchange (a table digest with one random member; changes are announced at once, liveness is probed every second)", Value: overlay.DefaultHeartbeat, EnvVars: []string{"CBNODE_HEARTBEAT"}},
			&cli.IntFlag{Name: "missed-heartbeats", Usage: "no longer used: failed members are found by probing (kept so existing command lines keep working)", Value: overlay.DefaultMissedHeartbeats, EnvVars: []string{"CBNODE_MISSED_HEARTBEATS"}},
			&cli.StringFlag{Name: "tun-name", Usage: "TUN device name", Value: "cbnet0", EnvVars: []string{"CBNODE_TUN_NAME"}},
			&cli.IntFlag{Name: "mtu", Usage: fmt.Sprintf("TUN device MTU (0: %d with TUN offloads, %d without)", daemon.DefaultMTU, daemon.DefaultMTUNoOffload), Value: 0, DefaultText: "auto", EnvVars: []string{"CBNODE_MTU"}},
			&cli.BoolFlag{Name: "tun-offload", Usage: "use the TUN's segmentation offloads (IFF_VNET_HDR: 64 KiB TCP super-packets per read and frame) where the kernel has them; false: one packet per read, the plain TUN", Value: true, EnvVars: []string{"CBNODE_TUN_OFFLOAD"}},
			&cli.StringSliceFlag{Name: "subnet-router", Usage: "accept overlay packets addressed to this CIDR besides the node's own address (repeatable; the node forwards them on itself, members do not route subnets to it automatically); every other destination is dropped", EnvVars: []string{"CBNODE_SUBNET_ROUTER"}},
			&cli.BoolFlag{Name: "no-tun", Usage: "run without the data plane (no root needed)", EnvVars: []string{"CBNODE_NO_TUN"}},
			&cli.BoolFlag{Name: "relay", Usage: "offer a relay for fellow members even where this node cannot tell it is publicly reachable (by default a member relays once AutoNAT, or a peer seeing it at its own interface address, says it is public)", EnvVars: []string{"CBNODE_RELAY"}},
			&cli.BoolFlag{Name: "no-relay", Usage: "never relay for fellow members (opt out of the default)", EnvVars: []string{"CBNODE_NO_RELAY"}},
			&cli.IntFlag{Name: "full-mesh-max", Usage: "keep a connection to every member while the CLADNet has at most this many members; beyond, tunnels are lazy: opened by the first packet, closed after --tunnel-idle without packets (0: always lazy)", Value: overlay.DefaultFullMeshMax, EnvVars: []string{"CBNODE_FULL_MESH_MAX"}},
			&cli.DurationFlag{Name: "tunnel-idle", Usage: "close a lazy tunnel (and its connection, if nothing else uses it) after this long without packets (0: never)", Value: forward.DefaultIdleTimeout, EnvVars: []string{"CBNODE_TUNNEL_IDLE"}},
			&cli.DurationFlag{Name: "probe-interval", Usage: "failure detector: probe one member per interval (a crashed member is found in about interval + suspicion timeout)", Value: swim.DefaultProbeInterval, EnvVars: []string{"CBNODE_PROBE_INTERVAL"}},
			&cli.DurationFlag{Name: "suspicion-timeout", Usage: "failure detector: how long a member that failed its probes has to answer before it is declared dead", Value: swim.DefaultSuspicionTimeout, EnvVars: []string{"CBNODE_SUSPICION_TIMEOUT"}},
			&cli.StringFlag{Name: "dns", Usage: "members' names (vm2, vm2.<cladnet>.cbnode): auto (systemd-resolved if it runs, else the hosts file), resolved, hosts, server (the DNS server on the overlay address only) or off", Value: names.ModeAuto, EnvVars: []string{"CBNODE_DNS"}},
			&cli.StringFlag{Name: "hosts-file", Usage: "the hosts file whose cbnode block --dns hosts manages", Value: names.DefaultHostsFile, EnvVars: []string{"CBNODE_HOSTS_FILE"}},
			&cli.BoolFlag{Name: "check", Usage: "check the token, the flags and the permission to create the TUN device, then exit (0: ready)"},
			logLevelFlag, logFormatFlag,
		}, cloudFlags()...),
		Action: join,
	}
}

func cloudFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "cloud provider (aws, gcp, azure, alibaba, ...)", EnvVars: []string{"CBNODE_PROVIDER"}},
		&cli.StringFlag{Name: "region", Usage: "cloud region ID", EnvVars: []string{"CBNODE_REGION"}},
		&cli.StringFlag{Name: "zone", Usage: "availability zone ID", EnvVars: []string{"CBNODE_ZONE"}},
		&cli.StringFlag{Name: "vpc", Usage: "VPC / virtual network ID", EnvVars: []string{"CBNODE_VPC"}},
		&cli.StringFlag{Name: "subnet-id", Usage: "subnet ID", EnvVars: []string{"CBNODE_SUBNET_ID"}},
		&cli.StringSliceFlag{Name: "private-ip", Usage: "underlay private IP (repeatable)", EnvVars: []string{"CBNODE_PRIVATE_IP"}},
		&cli.StringFlag{Name: "public-ip", Usage: "underlay public IP", EnvVars: []string{"CBNODE_PUBLIC_IP"}},
	}
}

func cloudInfo(c *cli.Context) (cost.CloudInfo, error) {
	ci := cost.CloudInfo{
		ProviderName: c.String("provider"), RegionID: c.String("region"), AvailabilityZoneID: c.String("zone"),
		VirtualNetworkID: c.String("vpc"), SubnetID: c.String("subnet-id"),
		PrivateIPs: splitList(c.StringSlice("private-ip")), PublicIP: c.String("public-ip"),
	}
	ci.Normalize()
	return ci, ci.Validate()
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func parseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	return node.ParseBootstrap(splitList(addrs))
}

// parseAnnounce parses --announce (repeatable, comma-separated): a bad
// value is a usage error.
func parseAnnounce(in []string) ([]ma.Multiaddr, error) {
	var out []ma.Multiaddr
	for _, s := range splitList(in) {
		a, err := node.ParseAnnounce(s)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("--announce: %w", err))
		}
		out = append(out, a)
	}
	return out, nil
}

// tokenWarnings logs what is unsafe about how the join token was given:
// on the command line (the process list), or in a file other users can
// read. joinConfig calls it once the configuration is valid.
func tokenWarnings(c *cli.Context, log *slog.Logger) {
	if s := c.String("token"); s != "" && os.Getenv("CBNODE_TOKEN") != s {
		log.Warn("--token puts the join token in the process list (ps, /proc/*/cmdline), readable by every user of this machine: give --token-file (0600) or CBNODE_TOKEN instead")
	}
	if f := c.String("token-file"); f != "" {
		if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the token file is readable by other users: a join token is a secret (it may carry the node key): chmod 600 it", "file", f, "mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
		}
	}
}

func readToken(c *cli.Context) (*cladnet.Token, error) {
	s := c.String("token")
	if f := c.String("token-file"); f != "" {
		if s != "" {
			return nil, withCode(exitUsage, errors.New("give either --token or --token-file, not both"))
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, withCode(exitCredential, fmt.Errorf("token file: %w", err))
		}
		s = string(b)
	}
	if strings.TrimSpace(s) == "" {
		return nil, withCode(exitCredential, errors.New("no join token: give --token, --token-file or CBNODE_TOKEN (from 'cbnode cladnet issue')"))
	}
	tok, err := cladnet.DecodeToken(s)
	return tok, withCode(exitCredential, err)
}

func join(c *cli.Context) error {
	cfg, err := joinConfig(c)
	if err != nil {
		return err
	}
	if c.Bool("check") {
		return checkJoin(cfg)
	}
	if len(cfg.Bootstrap) == 0 {
		cfg.Logger.Warn("no bootstrap addresses: this node can only be found by nodes that bootstrap from it")
	}
	cfg.Ready = func(m *daemon.Member) {
		if a := m.APIAddr(); a != "" {
			cfg.Logger.Info("local API listening", "addr", a)
		}
	}
	return daemon.Run(c.Context, cfg)
}

// checkJoin is 'join --check': the token and flags were valid (joinConfig);
// check the data plane's permission too, then say what would run.
func checkJoin(cfg daemon.Config) error {
	if cfg.TUN {
		if err := tun.CheckPermission(); err != nil {
			return err
		}
	}
	id, _ := peer.IDFromPrivateKey(cfg.Key)
	dp := "data plane " + cfg.TUNName
	if !cfg.TUN {
		dp = "no data plane (--no-tun)"
	}
	fmt.Printf("ok: would join CLADNet %s (%s) as %s (peer %s), certificate valid until %s, %d bootstrap node(s), %s\n",
		cfg.Token.Spec.Name, cfg.Token.Spec.ID, cfg.Token.Cert.HostName, id,
		cfg.Token.Cert.NotAfter.Format(time.RFC3339), len(cfg.Bootstrap), dp)
	return nil
}

// joinConfig turns the join command's flags into the daemon's config: every
// flag lands in it (TestJoinConfigTakesEveryFlag), and nothing is started.
func joinConfig(c *cli.Context) (daemon.Config, error) {
	name, err := oneArg(c, "CLADNet NAME")
	if err != nil {
		return daemon.Config{}, err
	}
	log, err := newLogger(c)
	if err != nil {
		return daemon.Config{}, withCode(exitUsage, err)
	}
	tok, err := readToken(c)
	if err != nil {
		return daemon.Config{}, err
	}
	if name != tok.Spec.Name && name != tok.Spec.ID {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("the join token is for CLADNet %s (%s), not %s", tok.Spec.Name, tok.Spec.ID, name))
	}
	if err := cladnet.ValidateHostName(tok.Cert.HostName); err != nil {
		return daemon.Config{}, withCode(exitCredential, fmt.Errorf("join token: %w (issue a new token with a valid --host)", err))
	}
	stateDir := c.String("state-dir")
	var key crypto.PrivKey
	if tok.NodeKey != "" {
		if key, err = tok.PrivateKey(); err != nil {
			return daemon.Config{}, withCode(exitCredential, err)
		}
	} else if key, err = node.LoadOrCreateKey(stateDir); err != nil {
		return daemon.Config{}, err
	}
	id, _ := peer.IDFromPrivateKey(key)
	// A renewal saved in the state directory outlives the token's certificate.
	if err := daemon.RenewedCert(stateDir, tok.Spec, id, tok.Cert).Verify(tok.Spec, id, time.Now()); err != nil {
		if errors.Is(err, cladnet.ErrWrongPeer) {
			return daemon.Config{}, withCode(exitCredential, fmt.Errorf("the join token's certificate is for peer %s, but this node's key (%s) is %s", tok.Cert.PeerID, filepath.Join(stateDir, node.KeyFile), id))
		}
		return daemon.Config{}, withCode(exitCredential, fmt.Errorf("join token for CLADNet %s: %w", tok.Spec.Name, err))
	}
	boot, err := parseBootstrap(append(append([]string{}, tok.Bootstrap...), c.StringSlice("bootstrap")...))
	if err != nil {
		return daemon.Config{}, withCode(exitUsage, err)
	}
	ci, err := cloudInfo(c)
	if err != nil {
		return daemon.Config{}, withCode(exitUsage, err)
	}
	var reqIP netip.Addr
	if s := c.String("ip"); s != "" {
		if reqIP, err = netip.ParseAddr(s); err != nil {
			return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--ip %q: %w", s, err))
		}
		p, _ := tok.Spec.Prefix()
		if !p.Contains(reqIP) {
			return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--ip %s is outside CLADNet %s's range %s", reqIP, tok.Spec.Name, p))
		}
	}
	if c.Int("missed-heartbeats") < 1 || c.Duration("heartbeat") < 100*time.Millisecond {
		return daemon.Config{}, withCode(exitUsage, errors.New("--heartbeat must be at least 100ms and --missed-heartbeats at least 1"))
	}
	if c.Duration("lease") < time.Minute {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--lease %s is too short: give at least 1m (default 48h)", c.Duration("lease")))
	}
	mtu := c.Int("mtu")
	if mtu != 0 && (mtu < tun.MinMTU || mtu > tun.MaxMTU) {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--mtu %d: give %d..%d, or 0 for the default (%d with TUN offloads, %d without)", mtu, tun.MinMTU, tun.MaxMTU, daemon.DefaultMTU, daemon.DefaultMTUNoOffload))
	}
	if mtu == 0 {
		mtu = daemon.DefaultMTU
	}
	if err := tun.Validate(c.String("tun-name"), mtu); err != nil {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--tun-name: %w", err))
	}
	if err := checkListen(c); err != nil {
		return daemon.Config{}, withCode(exitUsage, err)
	}
	if a := c.String("api"); a != "" {
		if err := checkHostPort(a); err != nil {
			return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--api %q: %w (give host:port such as 127.0.0.1:7470, or '' to disable the API)", a, err))
		}
	}
	var subnets []netip.Prefix
	for _, s := range splitList(c.StringSlice("subnet-router")) {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() {
			return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--subnet-router %q: give an IPv4 CIDR such as 192.168.10.0/24", s))
		}
		subnets = append(subnets, p.Masked())
	}
	dnsMode, err := names.ParseMode(c.String("dns"))
	if err != nil {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--dns: %w", err))
	}
	fullMesh := c.Int("full-mesh-max")
	if fullMesh < 0 {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--full-mesh-max %d: give 0 (always lazy tunnels) or a member count such as %d", fullMesh, overlay.DefaultFullMeshMax))
	} else if fullMesh == 0 {
		fullMesh = -1 // the daemon's "never"
	}
	idle := c.Duration("tunnel-idle")
	if idle < 0 {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--tunnel-idle %s: give a duration such as 5m, or 0 to keep idle tunnels open", idle))
	} else if idle == 0 {
		idle = -1
	}
	probe, suspicion := c.Duration("probe-interval"), c.Duration("suspicion-timeout")
	if probe < 10*time.Millisecond || probe > time.Minute {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--probe-interval %s: give a duration from 10ms to 1m (default %s)", probe, swim.DefaultProbeInterval))
	}
	if suspicion < probe || suspicion > 10*time.Minute {
		return daemon.Config{}, withCode(exitUsage, fmt.Errorf("--suspicion-timeout %s: give a duration from --probe-interval (%s) to 10m (default %s)", suspicion, probe, swim.DefaultSuspicionTimeout))
	}
	tokenWarnings(c, log)
	return daemon.Config{
		Token: tok, Key: key, StateDir: stateDir,
		ListenIPs: splitList(c.StringSlice("listen")), Port: c.Int("port"), Bootstrap: boot,
		APIAddr:   c.String("api"),
		Heartbeat: c.Duration("heartbeat"), MissedHeartbeats: c.Int("missed-heartbeats"),
		Cloud:       ci,
		RequestedIP: reqIP, Lease: c.Duration("lease"),
		Relay: c.Bool("relay"), NoRelay: c.Bool("no-relay"),
		FullMeshMax: fullMesh, TunnelIdle: idle, ProbeInterval: probe, SuspicionTimeout: suspicion,
		TUN: !c.Bool("no-tun"), TUNName: c.String("tun-name"), MTU: c.Int("mtu"),
		TUNNoOffload: !c.Bool("tun-offload"),
		SubnetRoutes: subnets,
		DNS:          names.Options{Mode: dnsMode, HostsFile: c.String("hosts-file")},
		Logger:       log,
	}, nil
}

func bootstrapCommand() *cli.Command {
	return &cli.Command{
		Name:  "bootstrap",
		Usage: "run a bootstrap node (private DHT server) in the foreground",
		Description: `A bootstrap node is where members meet: a DHT server with a stable identity
(kept in --state-dir). It holds no CLADNet key, cannot join or read any
CLADNet, and can serve many CLADNets at once. Once listening it prints one
line, "--bootstrap /ip4/.../tcp/7460/p2p/<id>": give that value to 'cbnode
cladnet issue --bootstrap' or 'cbnode join --bootstrap' (all its addresses
are logged at INFO). The address printed is an --announce one if given,
else a public, else a private one.

On a cloud VM the public IP is usually not on any interface (1:1 NAT): give
it, or a DNS name, with --announce (203.0.113.7, boot.example.com, or a
multiaddr such as /dns4/boot.example.com/tcp/7460); the node advertises it
with its listen ports besides the addresses it sees. It only advertises it:
nothing is dialled there.

It stores the IP claims (the DHT records of who holds which overlay address)
only of the CLADNets whose owner keys are given with --cladnet-owner (the
"ownerKey" of 'cbnode cladnet show'), verifying each claimant's certificate,
at most one live address per node and 2 KiB per record; claims of other
CLADNets are refused, so an outsider cannot plant or flood records. A shared
bootstrap that must serve CLADNets it is not told about opts in with
--any-cladnet (it then checks only signatures and leases).

With --relay it also relays, without time or byte limits, for members that
cannot reach each other directly (symmetric NATs) — but only for members of
the --cladnet-owner CLADNets: a relay for anyone would be an open proxy. A
relaying bootstrap node also keeps each of these CLADNets' owner-signed
revocation lists (in --state-dir/<CLADNet ID>/revocations.json), refuses
revoked members and hands the list to every node that joins.`,
		Flags: []cli.Flag{stateDirFlag("/var/lib/cbnode-bootstrap"), listenFlag, portFlag,
			&cli.StringSliceFlag{Name: "peer", Usage: "another bootstrap node's multiaddr (repeatable)", EnvVars: []string{"CBNODE_BOOTSTRAP_PEERS"}},
			&cli.StringSliceFlag{Name: "announce", Usage: "public IP or DNS name (or multiaddr) to advertise, e.g. the VM's public IP (repeatable or comma-separated)", EnvVars: []string{"CBNODE_ANNOUNCE"}},
			&cli.BoolFlag{Name: "relay", Usage: "relay for members of the --cladnet-owner CLADNets", EnvVars: []string{"CBNODE_RELAY"}},
			&cli.StringSliceFlag{Name: "cladnet-owner", Usage: "owner public key of a CLADNet to serve: store its IP claims, relay for it with --relay (repeatable)", EnvVars: []string{"CBNODE_CLADNET_OWNER"}},
			&cli.BoolFlag{Name: "any-cladnet", Usage: "also store IP claims of CLADNets not given with --cladnet-owner (unverified: signatures and leases only)", EnvVars: []string{"CBNODE_ANY_CLADNET"}},
			logLevelFlag, logFormatFlag},
		Action: func(c *cli.Context) error {
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			if err := checkListen(c); err != nil {
				return withCode(exitUsage, err)
			}
			owners := splitList(c.StringSlice("cladnet-owner"))
			var relayFor []string
			if c.Bool("relay") {
				relayFor = owners
			}
			if c.Bool("relay") && len(owners) == 0 {
				return withCode(exitUsage, errors.New("--relay needs --cladnet-owner: a relay serves the members of the CLADNets whose owner keys it is given"))
			}
			for _, k := range owners {
				if _, _, err := relay.ParseOwnerKey(k); err != nil {
					return withCode(exitUsage, err)
				}
			}
			announce, err := parseAnnounce(c.StringSlice("announce"))
			if err != nil {
				return err
			}
			key, err := node.LoadOrCreateKey(c.String("state-dir"))
			if err != nil {
				return err
			}
			return daemon.RunBootstrap(c.Context, daemon.BootstrapConfig{
				Key: key, ListenIPs: splitList(c.StringSlice("listen")), Port: c.Int("port"),
				Peers: splitList(c.StringSlice("peer")), Announce: announce, Cladnets: owners, RelayFor: relayFor, AnyCladnet: c.Bool("any-cladnet"),
				StateDir: c.String("state-dir"), Logger: log,
				Ready: func(n *node.Node) {
					best := n.BootstrapAddr()
					if best == nil {
						log.Warn("bootstrap node has no address to give members: check --listen")
					} else {
						fmt.Println("--bootstrap", best)
					}
					log.Info("bootstrap node running", "peer", n.Host.ID(), "addrs", n.Addrs())
				},
			})
		},
	}
}

func keyCommand() *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "print this node's peer ID, creating its key on first use",
		Description: `For certificates without moving keys: run 'cbnode key' on the VM, then
'cbnode cladnet issue NAME --peer-id <ID>' on the operator's machine.`,
		Flags: []cli.Flag{stateDirFlag("/var/lib/cbnode")},
		Action: func(c *cli.Context) error {
			k, err := node.LoadOrCreateKey(c.String("state-dir"))
			if err != nil {
				return err
			}
			id, err := peer.IDFromPrivateKey(k)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		},
	}
}

// checkListen checks --listen (IP addresses) and --port before anything
// binds.
func checkListen(c *cli.Context) error {
	if p := c.Int("port"); p < 0 || p > 65535 {
		return fmt.Errorf("--port %d: give 0..65535 (0 picks one)", p)
	}
	for _, s := range splitList(c.StringSlice("listen")) {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("--listen %q is not an IP address (give one such as 0.0.0.0, 10.0.1.5 or ::)", s)
		}
	}
	return nil
}

// checkHostPort checks a host:port listen address.
func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 0..65535", port)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" && host != "" {
		return fmt.Errorf("host %q is not an IP address or localhost", host)
	}
	return nil
}
