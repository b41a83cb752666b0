package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/filter"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/names"
	"github.com/cloud-barista/cbnode/overlay/pathlog"
	"github.com/cloud-barista/cbnode/overlay/paths"
	"github.com/cloud-barista/cbnode/overlay/swim"
	"github.com/cloud-barista/cbnode/relay"
	"github.com/cloud-barista/cbnode/renew"
)

// Member is a running member node: one handle for everything it runs.
type Member struct {
	cfg     Config
	log     *slog.Logger
	spec    *cladnet.Spec
	prefix  netip.Prefix
	node    *node.Node
	mem     *overlay.Membership
	alloc   *ipam.Allocator
	engine  *forward.Engine
	filter  *filter.Filter // the data plane's inbound packet filter
	adm     *overlay.Admission
	intro   atomic.Pointer[overlay.Introducer] // nil until the membership runs
	dev     Device
	link    *overlay.Link
	resv    *relay.Reserver
	relay   io.Closer // the relay service, if Config.Relay
	rules   *overlay.Rules
	revs    *overlay.Revocations // read under mu: libp2p's gater asks early
	control *overlay.Control
	renewer *renew.Renewer
	paths   *paths.Policy
	history *pathlog.Log
	names   *names.Service // nil without DNS
	meter   meter
	metrics *metrics
	started time.Time
	// stateDir is this CLADNet's state directory (under Config.StateDir).
	stateDir string

	apiAddr net.Addr
	apiDone <-chan error

	// Every goroutine the member starts runs under ctx and is counted in
	// wg; Stop cancels ctx and waits.
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{} // closed by the first fail or by Stop
	failOnce sync.Once
	err      error
	stopOnce sync.Once

	mu sync.Mutex
	ip netip.Addr

	twinCh chan struct{} // an identity conflict this node survives
	// down: the CLADNet's DOWN command is in force; lastTest: the run ID
	// of the last connectivity test request seen (see control.go).
	down     bool
	lastTest string

	// revCh is signalled when a new revocation list was applied; taken
	// when the revocations start, so a list that arrives before the event
	// loop runs (a bootstrap node hands it to a newcomer at once) is seen.
	revCh <-chan struct{}
}

// Run joins the CLADNet and serves until ctx ends or the member fails, then
// leaves gracefully. It returns the failure, if any.
func Run(ctx context.Context, cfg Config) error {
	m, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(m)
	}
	select {
	case <-ctx.Done():
	case <-m.Done():
	}
	m.Stop()
	return m.Err()
}

// Start brings a member up and starts all of its goroutines. ctx carries
// values only: the member's lifetime ends with Stop (so the leave can still
// be announced after the caller's context was cancelled by a signal).
func Start(ctx context.Context, cfg Config) (_ *Member, err error) {
	cfg = cfg.withDefaults()
	log := cfg.Logger
	t := cfg.Token
	if t == nil || t.Spec == nil || t.Cert == nil {
		return nil, errors.New("no join token")
	}
	if cfg.Key == nil {
		return nil, errors.New("no node key")
	}
	spec := t.Spec
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	prefix, err := spec.Prefix()
	if err != nil {
		return nil, err
	}
	adoptTokenKey(cfg.StateDir, t, cfg.Key, log)
	stateDir := filepath.Join(cfg.StateDir, spec.ID)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	cert := renewedCert(stateDir, spec, self, t.Cert, log) // a renewal outlives the token's certificate
	if err := cert.Verify(spec, self, time.Now()); err != nil {
		return nil, fmt.Errorf("join token for CLADNet %s: %w", spec.Name, err)
	}
	base := context.WithoutCancel(ctx)
	m := &Member{cfg: cfg, log: log, spec: spec, prefix: prefix, started: time.Now(), stateDir: stateDir,
		paths: paths.New(log), history: pathlog.New(0), meter: newMeter(), done: make(chan struct{}), twinCh: make(chan struct{}, 1)}
	m.ctx, m.cancel = context.WithCancel(base)
	m.adm = overlay.NewAdmission()
	m.metrics = newMetrics()
	m.metrics.reg.MustRegister(memberCollector{m})
	defer func() {
		if err != nil {
			m.Stop()
		}
	}()

	// The host's address factory asks for the relay circuit addresses from
	// libp2p's own goroutines, before the reserver exists: circuitAddrs
	// reads it under m.mu.
	// The DHT validator refuses a member's extra claims (a member holds
	// one address, the one its announcement proves); the members table
	// comes later: holderOf hands it over.
	var holderOf atomic.Pointer[overlay.Membership]
	claimVal := ipam.NewValidator(spec).WithRevoked(m.revokedCert).WithHolder(func(id string, p peer.ID) (netip.Addr, bool) {
		if mem := holderOf.Load(); mem != nil {
			return mem.AddressOf(id, p)
		}
		return netip.Addr{}, false
	})
	m.node, err = node.New(base, node.Config{
		Key: cfg.Key, ListenIPs: cfg.ListenIPs, Port: cfg.Port,
		Bootstrap: cfg.Bootstrap, PubSub: true, HolePunching: true,
		PubSubOptions:  m.adm.PubSubOptions(),
		Blocked:        []netip.Prefix{prefix},
		Validators:     map[string]record.Validator{ipam.Namespace: claimVal},
		ValueDatastore: ipam.NewStore(claimVal, ipam.StoreLimits{}),
		AllowAddr:      m.paths.Allow,
		Refuse:         m.revokedPeer,
		ExtraAddrs:     m.circuitAddrs,
		Metrics:        m.metrics.reg,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	m.paths.Host = m.node.Host
	m.node.OnHolePunch(m.recordPunch)
	revs, err := overlay.StartRevocations(base, spec, m.node, stateDir, log)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.revs = revs
	m.mu.Unlock()
	m.revCh = revs.Changes()
	if err := m.dissolved(); err != nil {
		return nil, err
	}
	if revs.RevokedCert(cert) {
		return nil, errRevoked("join CLADNet %s: this node's certificate (host %s, peer %s) is revoked: ask the operator for a new join token (a new node identity)", spec.Name, cert.HostName, self)
	}
	relay.ServeCertTo(m.node.Host, cert, m.certAsker)
	if !cfg.NoRelay {
		// Runs on every member (an idle relay costs nothing); announced,
		// so used, only while relayOffered says so.
		if m.relay, err = relay.Start(m.node.Host, []string{spec.OwnerKey}, log, relay.WithRevoked(m.revokedCert)); err != nil {
			return nil, err
		}
	}
	// The allocator starts after the membership, whose announcements carry
	// its claim: claimer hands it over.
	var claimer atomic.Pointer[ipam.Allocator]
	m.mem, err = overlay.StartMembership(base, overlay.MembershipConfig{
		Spec: spec, Cert: cert, Key: cfg.Key, Node: m.node,
		Heartbeat: cfg.Heartbeat, MissedHeartbeats: cfg.MissedHeartbeats,
		Cloud: startCloud(stateDir, cfg.Cloud, log), Relay: cfg.Relay && !cfg.NoRelay, Logger: log,
		FullMeshMax:        cfg.FullMeshMax,
		Liveness:           livenessConfig(cfg),
		Revoked:            m.revokedCert,
		OnIdentityConflict: m.identityConflict,
		OnPeerJoin:         m.introduce,
		OnMoved:            m.recordMoved,
		ClaimRecord: func() []byte {
			if a := claimer.Load(); a != nil {
				return a.Record()
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	holderOf.Store(m.mem)
	m.adm.Bind(m.gossipPeer)
	m.intro.Store(overlay.StartIntroducer(base, overlay.IntroducerConfig{
		Host: m.node.Host, Spec: spec, Cert: m.mem.Cert, Revoked: m.revokedCert, Admission: m.adm, Logger: log,
	}))
	revs.SetAdmission(m.adm)
	m.setReserver(relay.NewReserver(m.node.Host, m.relayCandidates, m.mem.Republish, log))
	if m.rules, err = overlay.StartRules(base, spec, m.node, stateDir, log); err != nil {
		return nil, err
	}
	m.rules.SetAdmission(m.adm)
	if m.control, err = overlay.StartControl(base, spec, m.node, stateDir, log); err != nil {
		return nil, err
	}
	m.control.SetAdmission(m.adm)
	m.recompute()
	m.alloc, err = ipam.NewAllocator(ipam.AllocatorConfig{
		Spec: spec, Cert: cert, Key: cfg.Key, DHT: m.node.DHT,
		StateDir: stateDir, Requested: cfg.RequestedIP, Lease: cfg.Lease, TakenGrace: 10 * time.Second,
		Members: m.mem, Revoked: m.revokedCert, DHTValidator: claimVal, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	claimer.Store(m.alloc)
	if cfg.TUN {
		if err := m.startDataPlane(); err != nil {
			return nil, err
		}
		mode, err := names.ParseMode(cfg.DNS.Mode)
		if err != nil {
			return nil, err
		}
		if mode != names.ModeOff {
			m.names = names.New(cfg.DNS, spec, cfg.TUNName, log)
		}
	}
	if cfg.APIAddr != "" {
		srv := api.NewServer(m, log)
		m.apiAddr, m.apiDone, err = srv.Serve(m.ctx, cfg.APIAddr)
		if err != nil {
			return nil, err
		}
	}
	m.applyControl(false) // a member restarted while DOWN stays down
	m.startLoops()
	m.startRenewer(cert)
	log.Info("starting", "cladnet", spec.Name, "id", spec.ID, "peer", self, "host", cert.HostName, "addrs", m.node.Addrs())
	return m, nil
}

// circuitAddrs is the host's extra addresses: the circuit addresses of the
// relay reservations (none until the reserver exists).
func (m *Member) circuitAddrs() []ma.Multiaddr {
	if r := m.reserver(); r != nil {
		return r.Addrs()
	}
	return nil
}

// revocations is the revocation component (nil before it started).
func (m *Member) revocations() *overlay.Revocations {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.revs
}

// revokedCert reports whether the CLADNet revoked certificate c.
func (m *Member) revokedCert(c *cladnet.Certificate) bool {
	r := m.revocations()
	return r != nil && r.RevokedCert(c)
}

// revokedPeer reports whether the CLADNet revoked node p (by peer ID).
func (m *Member) revokedPeer(p peer.ID) bool {
	r := m.revocations()
	return r != nil && r.RevokedPeer(p)
}

func (m *Member) setReserver(r *relay.Reserver) {
	m.mu.Lock()
	m.resv = r
	m.mu.Unlock()
}

// Names is the member's names service (nil without DNS).
func (m *Member) Names() *names.Service { return m.names }

func (m *Member) reserver() *relay.Reserver {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resv
}

func (m *Member) startDataPlane() error {
	dev, err := m.cfg.OpenDevice(m.cfg.TUNName, m.cfg.MTU)
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	offload := "off (device without offloads)"
	if o, ok := dev.(interface{ OffloadStatus() string }); ok {
		offload = o.OffloadStatus()
		if od, ok := dev.(forward.Offloader); m.cfg.autoMTU && m.cfg.MTU == DefaultMTU && ok && !od.Offload() {
			// The kernel refused offloads: the plain TUN is faster at the
			// larger MTU.
			m.log.Info("TUN offloads unavailable, reopening the device with the MTU for plain TUNs", "mtu", DefaultMTUNoOffload, "offload", offload)
			if err := dev.Close(); err != nil {
				return fmt.Errorf("data plane: %w", err)
			}
			m.cfg.MTU = DefaultMTUNoOffload
			if dev, err = m.cfg.OpenDevice(m.cfg.TUNName, m.cfg.MTU); err != nil {
				return fmt.Errorf("data plane: %w", err)
			}
		}
	} else if o, ok := dev.(forward.Offloader); ok && o.Offload() {
		offload = "on"
	}
	m.dev = dev
	m.log.Info("data plane device", "name", m.cfg.TUNName, "mtu", m.cfg.MTU, "offload", offload, "batch", dev.BatchSize())
	m.link = &overlay.Link{Host: m.node.Host, IsMember: m.mem.IsMember, ConnScore: m.paths.Score, Probe: m.node.ProbeConn,
		OnIdleClose: m.mem.IdleClosed}
	m.filter = filter.New(filter.Options{})
	m.updateFilter()
	m.engine = forward.New(dev, m.link, forward.Options{Logger: m.log, OnPath: m.recordPath, Filter: m.filter, SubnetRoutes: m.cfg.SubnetRoutes,
		Lazy: !m.mem.FullMesh(), IdleTimeout: m.cfg.TunnelIdle})
	m.paths.Stream = func(p peer.ID) (forward.PathInfo, bool) {
		st, ok := m.engine.Stats(p)
		return st.Path, ok && st.StreamUp
	}
	m.paths.Rehome = m.engine.Rehome
	m.link.Serve(m.engine)
	m.link.WatchConns(m.engine)
	return nil
}

// livenessConfig is the failure detector's tuning from the config; a
// probe interval shorter than swim's default probe timeout takes half of
// it as its timeout.
func livenessConfig(cfg Config) swim.Config {
	c := swim.Config{ProbeInterval: cfg.ProbeInterval, SuspicionTimeout: cfg.SuspicionTimeout}
	if cfg.ProbeInterval > 0 && cfg.ProbeInterval <= swim.DefaultProbeTimeout {
		c.ProbeTimeout = cfg.ProbeInterval / 2
	}
	return c
}

// goFunc runs f under the member's context and wait group.
func (m *Member) goFunc(f func(ctx context.Context)) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f(m.ctx)
	}()
}

// identityConflict handles another live node with this node's peer ID: the
// one that started later stops (Run returns the conflict); the earlier one
// re-checks its address claim, which the other may have renewed.
func (m *Member) identityConflict(c *overlay.IdentityConflict) {
	if c.Newer {
		m.fail(c)
		return
	}
	select {
	case m.twinCh <- struct{}{}:
	default:
	}
}

// fail ends the member with err (the first failure wins): Run returns it.
func (m *Member) fail(err error) {
	m.failOnce.Do(func() {
		m.err = err
		close(m.done)
	})
}

// Done is closed when the member has failed (Err says why) or was stopped.
func (m *Member) Done() <-chan struct{} { return m.done }

// Err is the failure that ended the member, nil if none.
func (m *Member) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return nil
	}
}

// Stop leaves the CLADNet gracefully and releases everything, in order: the
// API stops answering, the loops and the data plane stop (and are waited
// for), the address release (a DHT write) and the leave announcement run
// side by side within two seconds — so a service manager's stop timeout is
// never reached — and the libp2p node closes last. Stop is idempotent and
// safe on a member whose Start failed half way.
func (m *Member) Stop() {
	m.stopOnce.Do(m.stop)
}

func (m *Member) stop() {
	m.fail(nil)
	// A node stopped because another one has its identity neither releases
	// the address nor announces a leave: both are signed with the shared
	// key and would end the other node's claim and membership.
	twin := errors.Is(m.err, overlay.ErrIdentityConflict)
	switch {
	case m.spec == nil || m.mem == nil:
	case twin:
		m.log.Info("stopping without a leave or an address release: they belong to the other node with this identity", "cladnet", m.spec.Name)
	default:
		m.log.Info("leaving CLADNet", "cladnet", m.spec.Name)
	}
	m.cancel()
	if m.apiDone != nil {
		if err := <-m.apiDone; err != nil {
			m.log.Debug("local API", "err", err)
		}
	}
	if m.link != nil {
		m.link.Stop()
	}
	if m.engine != nil {
		m.engine.Close()
	}
	if m.dev != nil {
		_ = m.dev.Close() // unblocks the engine's pending Read
	}
	m.wg.Wait()
	m.paths.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	if m.alloc != nil && !twin {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.alloc.Release(ctx); err != nil {
				m.log.Debug("release overlay address", "err", err)
			}
		}()
	}
	if in := m.intro.Load(); in != nil {
		in.Close()
	}
	if m.rules != nil {
		m.rules.Close()
	}
	if m.control != nil {
		m.control.Close()
	}
	if r := m.revocations(); r != nil {
		r.Close()
	}
	switch {
	case m.mem != nil && twin:
		m.mem.Close()
	case m.mem != nil:
		if err := m.mem.Leave(ctx); err != nil {
			m.log.Warn("leave announcement not sent", "err", err)
		}
	}
	wg.Wait()
	if m.relay != nil {
		_ = m.relay.Close()
	}
	if m.node != nil {
		_ = m.node.Close()
	}
}
