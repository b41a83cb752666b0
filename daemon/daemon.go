// Package daemon runs a cbnode member (`cbnode join`) or bootstrap node
// (`cbnode bootstrap`): it wires the libp2p node, membership, IPAM, the data
// plane and the local API together and tears them down in order.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/tun"
	"github.com/cloud-barista/cbnode/relay"
)

// DefaultMTU is cbnet0's MTU. Packets ride a reliable stream that
// re-segments them, so the overlay MTU is not bound by the underlay's: in
// bench/dataplane.md a larger MTU moves fewer, larger packets per TUN read
// and write and per frame: over TCP, 1.34 Gbit/s at 1420 against 2.16 at
// 16000, and the inner TCP's retransmits fell from thousands to none
// (README "MTU").
const DefaultMTU = 16000

// Config configures a member.
type Config struct {
	Token     *cladnet.Token
	Key       crypto.PrivKey
	StateDir  string
	ListenIPs []string
	Port      int
	Bootstrap []peer.AddrInfo
	APIAddr   string // "" disables the API

	Heartbeat        time.Duration
	MissedHeartbeats int
	Cloud            cost.CloudInfo

	RequestedIP netip.Addr
	Lease       time.Duration

	// Relay makes this member a relay for fellow members (the bootstrap
	// nodes may relay too: see BootstrapConfig).
	Relay bool

	// TUN enables the data plane device (needs root / CAP_NET_ADMIN).
	TUN     bool
	TUNName string
	MTU     int

	Logger *slog.Logger
	// Ready, if set, is called once the node is up (API listening).
	Ready func(*Member)
}

// Member is a running member node.
type Member struct {
	cfg     Config
	log     *slog.Logger
	spec    *cladnet.Spec
	prefix  netip.Prefix
	node    *node.Node
	mem     *overlay.Membership
	alloc   *ipam.Allocator
	engine  *forward.Engine
	dev     *tun.Device
	link    *overlay.Link
	resv    *relay.Reserver
	rules   *overlay.Rules
	paths   pathPolicy
	meter   meter
	started time.Time
	apiAddr string

	mu sync.Mutex
	ip netip.Addr
}

// Run joins the CLADNet and serves until ctx ends, then leaves gracefully.
func Run(ctx context.Context, cfg Config) error {
	m, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(m)
	}
	err = m.wait(ctx)
	m.Stop()
	return err
}

// Start brings a member up; Stop it when done.
func Start(ctx context.Context, cfg Config) (_ *Member, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	t := cfg.Token
	if t == nil || t.Spec == nil || t.Cert == nil {
		return nil, errors.New("no join token")
	}
	spec := t.Spec
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if err := t.Cert.Verify(spec, self, time.Now()); err != nil {
		return nil, fmt.Errorf("join token for CLADNet %s: %w", spec.Name, err)
	}
	prefix, err := spec.Prefix()
	if err != nil {
		return nil, err
	}
	stateDir := filepath.Join(cfg.StateDir, spec.ID)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	m := &Member{cfg: cfg, log: log, spec: spec, prefix: prefix, started: time.Now(),
		meter: meter{m: cost.NewMeter(), last: map[peer.ID]uint64{}}}
	defer func() {
		if err != nil {
			m.Stop()
		}
	}()

	var relayFor []string
	if cfg.Relay {
		relayFor = []string{spec.OwnerKey}
	}
	var resv *relay.Reserver
	m.node, err = node.New(ctx, node.Config{
		Key: cfg.Key, ListenIPs: cfg.ListenIPs, Port: cfg.Port,
		Bootstrap: cfg.Bootstrap, PubSub: true, HolePunching: true, RelayFor: relayFor,
		Blocked:    []netip.Prefix{prefix},
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator(spec)},
		AllowAddr:  m.paths.allow,
		ExtraAddrs: func() []ma.Multiaddr {
			if resv == nil {
				return nil
			}
			return resv.Addrs()
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	relay.ServeCert(m.node.Host, t.Cert)
	m.mem, err = overlay.StartMembership(ctx, overlay.MembershipConfig{
		Spec: spec, Cert: t.Cert, Key: cfg.Key, Node: m.node,
		Heartbeat: cfg.Heartbeat, MissedHeartbeats: cfg.MissedHeartbeats,
		Cloud: cfg.Cloud, Relay: cfg.Relay, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	resv = relay.NewReserver(m.node.Host, m.relayCandidates, m.mem.Republish, log)
	m.resv = resv
	if m.rules, err = overlay.StartRules(ctx, spec, m.node, stateDir, log); err != nil {
		return nil, err
	}
	m.recompute()
	m.alloc, err = ipam.NewAllocator(ipam.AllocatorConfig{
		Spec: spec, Cert: t.Cert, Key: cfg.Key, DHT: m.node.DHT,
		StateDir: stateDir, Requested: cfg.RequestedIP, Lease: cfg.Lease,
		Members: m.mem, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.TUN {
		if err := m.startDataPlane(); err != nil {
			return nil, err
		}
	}
	if cfg.APIAddr != "" {
		srv := api.NewServer(m, log)
		addr, _, err := srv.Serve(ctx, cfg.APIAddr)
		if err != nil {
			return nil, err
		}
		m.apiAddr = addr.String()
	}
	log.Info("joined CLADNet", "cladnet", spec.Name, "id", spec.ID, "peer", self, "host", t.Cert.HostName, "addrs", m.node.Addrs())
	return m, nil
}

func (m *Member) startDataPlane() error {
	name := m.cfg.TUNName
	if name == "" {
		name = "cbnet0"
	}
	mtu := m.cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	dev, err := tun.Open(name, mtu)
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	m.dev = dev
	m.link = &overlay.Link{Host: m.node.Host, IsMember: m.mem.IsMember, ConnScore: m.connScore}
	m.engine = forward.New(dev, m.link, forward.Options{Logger: m.log})
	m.link.Serve(m.engine)
	m.link.WatchConns(m.engine)
	return nil
}

// wait runs the event loop: IPAM changes and membership changes.
func (m *Member) wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go m.resv.Run(ctx)
	punch := &overlay.PunchRetry{Host: m.node.Host, Members: m.memberIDs, Log: m.log}
	go punch.Run(ctx)
	allocErr := make(chan error, 1)
	go func() { allocErr <- m.alloc.Run(ctx) }()
	engineErr := make(chan error, 1)
	if m.engine != nil {
		go func() { engineErr <- m.engine.Run(ctx) }()
	}
	go m.meterLoop(ctx, time.Second)
	enforce := time.NewTicker(2 * time.Second)
	defer enforce.Stop()
	changes, stop := m.mem.Watch()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-allocErr:
			if err != nil {
				return err
			}
			return nil
		case err := <-engineErr:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("data plane: %w", err)
			}
		case ip := <-m.alloc.Changes():
			if err := m.setIP(ip); err != nil {
				return err
			}
		case <-changes:
			if m.ipamShouldCheck() {
				m.alloc.CheckConflicts()
			}
			if len(m.recompute()) > 0 {
				m.enforcePaths(ctx)
			}
			m.updateRoutes()
		case <-m.rules.Changes():
			m.recompute()
			m.enforcePaths(ctx)
		case <-enforce.C:
			m.enforcePaths(ctx)
		}
	}
}

// setIP applies a new (or lost) overlay address everywhere.
func (m *Member) setIP(ip netip.Addr) error {
	m.mu.Lock()
	old := m.ip
	m.ip = ip
	m.mu.Unlock()
	if old == ip {
		return nil
	}
	if !ip.IsValid() {
		m.log.Warn("overlay address lost", "old", old)
	}
	if m.dev != nil && ip.IsValid() {
		if err := m.dev.SetAddr(netip.PrefixFrom(ip, m.prefix.Bits())); err != nil {
			return fmt.Errorf("address %s on %s: %w", ip, m.dev.Name(), err)
		}
	}
	if m.engine != nil {
		m.engine.SetLocal(ip)
	}
	m.mem.SetOverlayIP(ip, m.alloc.ClaimedAt())
	state := overlay.StateConfiguring
	if ip.IsValid() && (m.dev != nil || !m.cfg.TUN) {
		state = overlay.StateTunneling
	}
	m.mem.SetState(state)
	m.updateRoutes()
	return nil
}

// updateRoutes hands the data plane a fresh overlay-IP → peer snapshot. When
// two members announce the same address (a conflict IPAM is resolving), the
// one seen first keeps the route.
func (m *Member) updateRoutes() {
	if m.engine == nil {
		return
	}
	routes := map[netip.Addr]peer.ID{}
	first := map[netip.Addr]time.Time{}
	for _, mem := range m.mem.Members() {
		if mem.Self || mem.Ann.OverlayIP == "" {
			continue
		}
		ip, err := netip.ParseAddr(mem.Ann.OverlayIP)
		if err != nil {
			continue
		}
		if t, dup := first[ip]; dup && !mem.FirstSeen.Before(t) {
			continue
		}
		routes[ip], first[ip] = mem.ID, mem.FirstSeen
	}
	m.engine.SetRoutes(routes)
}

// Stop leaves the CLADNet gracefully and releases everything. The address
// release (a DHT write) and the leave announcement run side by side within
// two seconds, so a service manager's stop timeout is never reached.
func (m *Member) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.log.Info("leaving CLADNet", "cladnet", m.spec.Name)
	var wg sync.WaitGroup
	if m.alloc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.alloc.Release(ctx); err != nil {
				m.log.Debug("release overlay address", "err", err)
			}
		}()
	}
	if m.rules != nil {
		m.rules.Close()
	}
	if m.mem != nil {
		if err := m.mem.Leave(ctx); err != nil {
			m.log.Debug("leave", "err", err)
		}
	}
	wg.Wait()
	if m.link != nil {
		m.link.Stop()
	}
	if m.engine != nil {
		m.engine.Close()
	}
	if m.dev != nil {
		m.dev.Close()
	}
	if m.node != nil {
		m.node.Close()
	}
}

// ipamShouldCheck reports whether a members-table change concerns IPAM:
// while we have no address (a full range may just have freed one), or when
// another member announces our address. A conflict check is a quorum DHT
// read, too costly for every change in a large CLADNet; the allocator also
// re-checks on its own every ConflictInterval.
func (m *Member) ipamShouldCheck() bool {
	ip := m.IP()
	if !ip.IsValid() {
		return true
	}
	for _, mem := range m.mem.Members() {
		if !mem.Self && mem.Ann.OverlayIP == ip.String() {
			return true
		}
	}
	return false
}

// memberIDs lists the other members.
func (m *Member) memberIDs() []peer.ID {
	var out []peer.ID
	for _, mem := range m.mem.Members() {
		if !mem.Self {
			out = append(out, mem.ID)
		}
	}
	return out
}

// relayCandidates are the bootstrap nodes and the members that relay.
func (m *Member) relayCandidates() []peer.AddrInfo {
	out := append([]peer.AddrInfo(nil), m.cfg.Bootstrap...)
	for _, mem := range m.mem.Members() {
		if mem.Self || !mem.Ann.Relay {
			continue
		}
		info := peer.AddrInfo{ID: mem.ID}
		for _, s := range mem.Ann.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
					info.Addrs = append(info.Addrs, a)
				}
			}
		}
		out = append(out, info)
	}
	return out
}
