package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Defaults for membership timing.
const (
	DefaultHeartbeat        = 30 * time.Second
	DefaultMissedHeartbeats = 3
	// DefaultFullMeshMax is the largest CLADNet in which every node keeps
	// a connection to every member.
	DefaultFullMeshMax = 32
)

// MembershipConfig configures a node's membership in one CLADNet.
type MembershipConfig struct {
	Spec *cladnet.Spec
	Cert *cladnet.Certificate
	Key  crypto.PrivKey
	Node *node.Node
	// Heartbeat is the period of the anti-entropy exchange with one random
	// member (liveness.go) unless Liveness.DigestInterval is set; nothing
	// is re-announced periodically any more. MissedHeartbeats is no longer
	// used: failed members are found by probing (Liveness).
	Heartbeat        time.Duration
	MissedHeartbeats int
	// Liveness tunes the failure detector and anti-entropy (overlay/swim:
	// probe interval and timeout, indirect probes, suspicion timeout,
	// digest intervals); zero values take swim's defaults, and Self,
	// Clock, Transport and Table are set here.
	Liveness swim.Config
	Cloud    cost.CloudInfo
	// OnMoved, if set, is told when a member announces other addresses
	// or a new instance (restarted true), after its connections were
	// sent to be probed (the path history; must not block).
	OnMoved func(id peer.ID, restarted bool)
	// Relay says this member relays for fellow members (at start; see
	// SetRelay).
	Relay  bool
	Logger *slog.Logger
	// Revoked, optional, reports whether a certificate (its peer or its
	// fingerprint) is revoked: such announcements are refused (counted
	// RejectRevoked) and such members dropped (see DropRevoked).
	Revoked func(*cladnet.Certificate) bool
	// OnIdentityConflict, if set, is called (from the membership's own
	// goroutines, once per other instance) when another live node with this
	// node's peer ID is found; c.Newer says this node has to stop.
	OnIdentityConflict func(c *IdentityConflict)
	// ClaimRecord, optional, returns the signed DHT record of the claim on
	// the overlay IP set with SetOverlayIP (the allocator's Record). Each
	// announcement carries it; without it, receivers refuse an
	// announcement that names an overlay IP (RejectClaim).
	ClaimRecord func() []byte
	// FullMeshMax: while the members table holds at most this many members
	// (this node included), the node keeps a connection to every member —
	// it dials each on its announcement and protects the connection from
	// the connection manager —, so the first packet to any member goes
	// out at once. Beyond it, connections follow the traffic (lazy
	// tunnels: see FullMesh). Zero: DefaultFullMeshMax; negative: never.
	FullMeshMax int
	// OnPeerJoin, if set, is called (from the membership's event loop)
	// for every peer that subscribes to the members topic (the daemon
	// introduces itself to it: see Introducer).
	OnPeerJoin func(peer.ID)
}

// enforceInterval is how often members whose certificate expired or was
// revoked are dropped (also at once on receipt, and by DropRevoked).
const enforceInterval = time.Second

// Membership keeps the members table of one CLADNet over gossipsub and finds
// fellow members through the DHT rendezvous keyed by the CLADNet ID.
type Membership struct {
	cfg   MembershipConfig
	log   *slog.Logger
	self  peer.ID
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	tab   *table

	mu        sync.Mutex // guards the local announcement fields below
	relay     bool       // this member offers a relay (SetRelay)
	cert      *cladnet.Certificate
	seq       uint64
	overlayIP netip.Addr
	claimedAt time.Time
	state     string
	cloud     cost.CloudInfo

	// instance and started identify this run (instance.go).
	instance   string
	started    time.Time
	fullBeats  atomic.Int32 // full announcements still owed after a twin
	witnessCh  chan peer.ID
	instMu     sync.Mutex
	lastInst   map[peer.ID]string // members' latest announced instance
	conflictMu sync.Mutex
	conflicts  map[string]IdentityConflict // by the other's instance
	connNotify *network.NotifyBundle

	detector   *liveness   // failure detector and anti-entropy
	fullMesh   atomic.Bool // see FullMesh
	certs      certCache
	claimVal   *ipam.Validator // verifies the claims announcements carry
	dates      claimDates      // when this node first saw each member's claim
	publishNow chan struct{}
	// staleDeathAt: when a notice of this node's death at an older record
	// last made it announce again (unix ns; see applyDeath).
	staleDeathAt atomic.Int64
	// readvertise: a bootstrap node is back; advertise under the
	// rendezvous key now (cap 1).
	readvertise chan struct{}
	// underlayChanged: a local address came or went (cap 1).
	underlayChanged chan struct{}
	rejected        sync.Map // reason → *atomic.Uint64
	warned          sync.Map // peer.ID → struct{}: first rejection logged at warn

	watchMu  sync.Mutex
	watchers map[chan struct{}]struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// TopicName is the gossipsub topic of a CLADNet's membership.
func TopicName(cladnetID string) string { return "/cbnode/cladnet/" + cladnetID + "/members" }

// RendezvousKey is the DHT rendezvous under which members advertise.
func RendezvousKey(cladnetID string) string { return "cbnode/cladnet/" + cladnetID }

// StartMembership joins the CLADNet's topic and starts announcing.
func StartMembership(ctx context.Context, cfg MembershipConfig) (*Membership, error) {
	if cfg.Node == nil || cfg.Node.PubSub == nil {
		return nil, errors.New("membership: node has no gossipsub")
	}
	if err := cfg.Cert.Verify(cfg.Spec, cfg.Node.Host.ID(), time.Now()); err != nil {
		return nil, fmt.Errorf("membership: own certificate: %w", err)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.MissedHeartbeats <= 0 {
		cfg.MissedHeartbeats = DefaultMissedHeartbeats
	}
	if cfg.FullMeshMax == 0 {
		cfg.FullMeshMax = DefaultFullMeshMax
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Membership{
		cfg:             cfg,
		log:             log,
		self:            cfg.Node.Host.ID(),
		tab:             newTable(),
		state:           StateConfiguring,
		cert:            cfg.Cert,
		cloud:           cfg.Cloud,
		publishNow:      make(chan struct{}, 1),
		readvertise:     make(chan struct{}, 1),
		underlayChanged: make(chan struct{}, 1),
		watchers:        map[chan struct{}]struct{}{},
		instance:        newInstanceID(),
		started:         time.Now().UTC(),
		witnessCh:       make(chan peer.ID, 64),
		lastInst:        map[peer.ID]string{},
		conflicts:       map[string]IdentityConflict{},
		claimVal:        ipam.NewValidator(cfg.Spec), // revocation is checked on its own (RejectRevoked)
	}
	m.fullMesh.Store(cfg.FullMeshMax >= 1)
	gt, err := joinTopic(cfg.Node.PubSub, TopicName(cfg.Spec.ID), m.validate)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	addrSub, err := cfg.Node.Host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	if err != nil {
		gt.evts.Cancel()
		gt.sub.Cancel()
		gt.topic.Close()
		_ = cfg.Node.PubSub.UnregisterTopicValidator(TopicName(cfg.Spec.ID))
		return nil, fmt.Errorf("membership: address events: %w", err)
	}
	m.topic, m.sub = gt.topic, gt.sub
	evts := gt.evts
	cfg.Node.Host.SetStreamHandler(syncProtocol(cfg.Spec.ID), m.serveSync)
	cfg.Node.Host.SetStreamHandler(instanceProtocol(cfg.Spec.ID), m.serveInstance)
	m.watchUnderlay()
	ctx, m.cancel = context.WithCancel(ctx)
	m.newLiveness() // before the notifiee, which uses it
	m.connNotify = &network.NotifyBundle{ConnectedF: m.connected, DisconnectedF: m.disconnected}
	cfg.Node.Host.Network().Notify(m.connNotify)
	m.wg.Add(8)
	go m.trimLoop(ctx)
	go m.enforceLoop(ctx)
	go m.witnessLoop(ctx)
	go m.receive(ctx)
	go m.announceLoop(ctx)
	go m.expireLoop(ctx)
	go m.discoverLoop(ctx)
	go m.eventLoop(ctx, evts, addrSub)
	m.detector.start()
	return m, nil
}

// validate is the gossipsub validator: only verified announcements of this
// CLADNet's members travel on.
func (m *Membership) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	from := msg.GetFrom()
	switch kindOf(msg.Data) {
	case KindHeartbeat:
		return m.validateHeartbeat(from, msg)
	case KindDeath:
		return m.validateDeath(from, msg)
	}
	// pubsub (strict signing) has verified the message signature with
	// from's key, so the node signature need not be checked again here.
	a, err := parseAnnouncement(msg.Data, from, m.cfg.Spec, time.Now(), parseOpts{transportSigned: true, certs: &m.certs, claims: m.claimVal})
	if err != nil {
		reason := RejectMalformed
		var ve *ValidationError
		if errors.As(err, &ve) {
			reason = ve.Reason
		}
		if errors.Is(err, cladnet.ErrExpired) {
			reason = RejectExpired
		}
		m.countReject(reason)
		if _, seen := m.warned.LoadOrStore(from, struct{}{}); !seen {
			m.log.Warn("rejected announcement", "from", from, "reason", err)
		} else {
			m.log.Debug("rejected announcement", "from", from, "reason", err)
		}
		return pubsub.ValidationReject
	}
	if m.revoked(a.Cert) {
		m.countReject(RejectRevoked)
		m.log.Debug("rejected announcement of a revoked node", "from", from, "host", a.HostName)
		return pubsub.ValidationReject
	}
	if a.Cert.RoleName() == cladnet.RoleOperator && a.OverlayIP != "" {
		m.countReject(RejectOperatorIP)
		if _, seen := m.warned.LoadOrStore(from, struct{}{}); !seen {
			m.log.Warn("rejected announcement: an operator claims no overlay address", "from", from, "host", a.HostName, "ip", a.OverlayIP)
		}
		return pubsub.ValidationReject
	}
	msg.ValidatorData = a
	return pubsub.ValidationAccept
}

func (m *Membership) revoked(c *cladnet.Certificate) bool {
	return m.cfg.Revoked != nil && m.cfg.Revoked(c)
}

// enforceLoop drops, every enforceInterval, members whose certificate
// expired or was revoked while they were in the table (an open stream must
// not outlive the certificate).
func (m *Membership) enforceLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(enforceInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.DropRevoked()
		}
	}
}

// DropRevoked drops at once every member whose certificate is revoked or
// past its NotAfter, and closes its connections; call it when a new
// revocation list arrived. It returns the dropped peers.
func (m *Membership) DropRevoked() []peer.ID {
	now := time.Now()
	gone := m.tab.drop(func(mem *Member) string {
		switch {
		case mem.Self:
			return ""
		case m.revoked(mem.Ann.Cert):
			return RejectRevoked
		case !now.Before(mem.Ann.Cert.NotAfter):
			return RejectExpired
		}
		return ""
	})
	for id, g := range gone {
		m.countReject(g.reason)
		m.cfg.Node.Host.ConnManager().Unprotect(id, "cbnode-member")
		_ = m.cfg.Node.Host.Network().ClosePeer(id)
		if g.reason == RejectRevoked {
			m.log.Warn("member dropped: certificate revoked", "host", g.host, "peer", id)
		} else {
			m.log.Warn("member dropped: certificate expired", "host", g.host, "peer", id, "notAfter", g.notAfter.Format(time.RFC3339))
		}
	}
	if len(gone) == 0 {
		return nil
	}
	m.notify()
	out := make([]peer.ID, 0, len(gone))
	for id := range gone {
		out = append(out, id)
	}
	return out
}

// validateHeartbeat admits a heartbeat of a known member (or our own); one
// from a peer the table does not hold yet is dropped without penalty — its
// full announcement will come.
func (m *Membership) validateHeartbeat(from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	var hb Heartbeat
	if len(msg.Data) > maxHeartbeatSize || json.Unmarshal(msg.Data, &hb) != nil || hb.Seq == 0 {
		m.countReject(RejectMalformed)
		return pubsub.ValidationReject
	}
	if from != m.self && !m.known(from) {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = &hb
	return pubsub.ValidationAccept
}

func (m *Membership) countReject(reason string) {
	c, _ := m.rejected.LoadOrStore(reason, new(atomic.Uint64))
	c.(*atomic.Uint64).Add(1)
}

// Rejected returns how many announcements were refused, by reason.
func (m *Membership) Rejected() map[string]uint64 {
	out := map[string]uint64{}
	m.rejected.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

func (m *Membership) receive(ctx context.Context) {
	defer m.wg.Done()
	for {
		msg, err := m.sub.Next(ctx)
		if err != nil {
			return
		}
		switch v := msg.ValidatorData.(type) {
		case *Announcement:
			m.apply(ctx, v)
		case deathMessage:
			m.applyDeath(v, time.Now())
		case *Heartbeat:
			m.tab.heartbeat(msg.GetFrom(), v.Seq, time.Now())
			m.noteInstance(msg.GetFrom(), v.Instance)
		}
	}
}

func (m *Membership) apply(ctx context.Context, a *Announcement) {
	id, err := peer.Decode(a.PeerID)
	if err != nil {
		return
	}
	self := id == m.self
	if !self && m.revoked(a.Cert) {
		m.countReject(RejectRevoked) // pulled from a table, or a sync request
		return
	}
	if a.Cert.RoleName() == cladnet.RoleOperator && a.OverlayIP != "" {
		m.countReject(RejectOperatorIP)
		return
	}
	m.noteInstance(id, a.Instance)
	if !self {
		m.dateClaim(id, a)
	}
	prev, had := m.tab.get(id)
	changed, err := m.tab.apply(id, a, time.Now(), self)
	if err != nil || !changed {
		return
	}
	if !self {
		if a.Kind == KindLeave {
			if m.detector != nil {
				m.detector.noteLeave(id, a)
			}
			m.cfg.Node.Host.ConnManager().Unprotect(id, memberTag)
			m.checkFullMesh(ctx)
			m.log.Info("member left", "host", a.HostName, "peer", id)
		} else {
			m.learnAddrs(id, a)
			if had && prev.Ann != nil && movedOrRestarted(prev.Ann, a) {
				m.moved(id, prev.Ann, a)
			}
			if m.checkFullMesh(ctx) {
				m.cfg.Node.Host.ConnManager().Protect(id, memberTag)
				m.connect(ctx, id, a.Addrs)
			} else if !had && rand.IntN(m.tab.size()) < lazyGossipConns {
				// Lazy tunnels: a newcomer is dialled by about
				// lazyGossipConns members (each with probability
				// lazyGossipConns/N), so it is in the gossip even when
				// its own rendezvous dials fail.
				m.connect(directOnly(ctx), id, a.Addrs)
			}
		}
	}
	m.notify()
}

// memberTag protects the connections of a small CLADNet's full mesh.
const memberTag = "cbnode-member"

// FullMesh reports whether this node keeps a connection to every member
// (the table holds at most MembershipConfig.FullMeshMax members); when it
// does not, tunnels are lazy: the data plane opens a connection with the
// first packet and closes it when idle, and the failure detector probes
// the members it is connected to.
func (m *Membership) FullMesh() bool { return m.fullMesh.Load() }

// checkFullMesh updates FullMesh from the table's size and returns it. On
// leaving full-mesh mode the members' connections lose their protection
// (they are closed when idle); on entering it every member is dialled.
func (m *Membership) checkFullMesh(ctx context.Context) bool {
	full := m.cfg.FullMeshMax >= 0 && m.tab.size() <= m.cfg.FullMeshMax
	if m.fullMesh.Swap(full) == full {
		return full
	}
	cm := m.cfg.Node.Host.ConnManager()
	for _, mem := range m.tab.list() {
		if mem.Self || mem.Ann == nil || mem.Ann.Kind == KindLeave {
			continue
		}
		if full {
			cm.Protect(mem.ID, memberTag)
			m.connect(ctx, mem.ID, mem.Ann.Addrs)
		} else {
			cm.Unprotect(mem.ID, memberTag)
		}
	}
	if full {
		m.log.Info("full mesh: keeping a connection to every member", "members", m.tab.size(), "max", m.cfg.FullMeshMax)
	} else {
		m.log.Info("lazy tunnels: connections follow the traffic", "members", m.tab.size(), "fullMeshMax", m.cfg.FullMeshMax)
	}
	return full
}

// connect dials a member at the addresses it announced, unless connected
// (with directOnly's ctx, at the direct ones only).
func (m *Membership) connect(ctx context.Context, id peer.ID, addrs []string) {
	h := m.cfg.Node.Host
	if h.Network().Connectedness(id) == network.Connected {
		return
	}
	info := peer.AddrInfo{ID: id}
	var skipped int
	info.Addrs, skipped = dialAddrs(addrs)
	if skipped > 0 {
		m.countReject(RejectTooManyAddrs)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := h.Connect(cctx, info); err != nil && ctx.Err() == nil {
			m.log.Debug("connect to member failed", "peer", id, "err", err)
		}
	}()
}

// announcement builds and signs the node's current announcement.
func (m *Membership) announcement(kind string) (*Announcement, error) {
	m.mu.Lock()
	// Sequence numbers start from the clock, so a restarted node's
	// announcements supersede those of its previous run.
	seq := uint64(time.Now().UnixNano())
	if seq <= m.seq {
		seq = m.seq + 1
	}
	m.seq = seq
	a := &Announcement{
		Kind:     kind,
		PeerID:   m.self.String(),
		Cert:     m.cert,
		HostName: m.cert.HostName,
		Cloud:    m.cloud,
		State:    m.state,
		Relay:    m.relay,
		Seq:      seq,
		Time:     time.Now().UTC(),
		Instance: m.instance,
		Started:  m.started,
	}
	if m.overlayIP.IsValid() {
		a.OverlayIP = m.overlayIP.String()
		a.ClaimedAt = m.claimedAt
	}
	m.mu.Unlock()
	m.attachClaim(a)
	for _, addr := range m.cfg.Node.CurrentAddrs() {
		a.Addrs = append(a.Addrs, addr.String())
	}
	if len(a.Addrs) > 64 {
		a.Addrs = a.Addrs[:64]
	}
	if err := a.Sign(m.cfg.Key); err != nil {
		return nil, err
	}
	return a, nil
}

func (m *Membership) publish(ctx context.Context, kind string) error {
	a, err := m.announcement(kind)
	if err != nil {
		return err
	}
	b, err := a.Marshal()
	if err != nil {
		return fmt.Errorf("encode announcement: %w", err)
	}
	if err := m.topic.Publish(ctx, b); err != nil {
		return fmt.Errorf("publish announcement: %w", err)
	}
	return nil
}

// SetRelay says whether this member offers a relay to fellow members; a
// change is announced at once.
func (m *Membership) SetRelay(on bool) {
	m.mu.Lock()
	changed := m.relay != on
	m.relay = on
	m.mu.Unlock()
	if changed {
		m.log.Info("relay for fellow members", "offered", on)
		m.Republish()
	}
}

// Republish asks for an announcement now (coalesced with pending ones).
func (m *Membership) Republish() {
	select {
	case m.publishNow <- struct{}{}:
	default:
	}
}

// fullEvery: every fullEvery-th heartbeat is a full announcement (anti-
// entropy for members that missed one); the others are compact.
const fullEvery = 6

func (m *Membership) announceLoop(ctx context.Context) {
	defer m.wg.Done()
	full := true
	for {
		var err error
		owed := m.fullBeats.Load() > 0
		if owed {
			m.fullBeats.Add(-1)
		}
		// No periodic announcements or heartbeats: the failure detector
		// probes, anti-entropy repairs missed announcements (liveness.go).
		if full || owed {
			err = m.publish(ctx, KindAnnounce)
		}
		if err != nil && ctx.Err() == nil {
			m.log.Warn("announce failed", "err", err)
		}
		full = false
		// ±10 % jitter keeps a large CLADNet's heartbeats from aligning.
		hb := m.cfg.Heartbeat
		d := hb - hb/10 + time.Duration(rand.Int64N(int64(hb/5)+1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-m.publishNow:
			t.Stop()
			full = true
			// Coalesce bursts (several peers joining at once).
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			select {
			case <-m.publishNow:
			default:
			}
		}
	}
}

func (m *Membership) expireLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := time.NewTicker(m.cfg.Heartbeat / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.DropRevoked() // expired certificates: counted, connections closed
		// Silence drops no member any more (the failure detector does);
		// this drops those whose certificate expired.
		gone := m.tab.expire(time.Time{}, time.Now(), nil)
		for _, id := range gone {
			m.cfg.Node.Host.ConnManager().Unprotect(id, memberTag)
			m.checkFullMesh(ctx)
			m.log.Info("member dropped after missed heartbeats", "peer", id)
		}
		if len(gone) > 0 {
			m.notify()
		}
	}
}

// Members returns the members table, self included, sorted by host name.
// Operators (certificate role operator) are not members: they route no
// packets, hold no address and have no name; Operators lists them.
func (m *Membership) Members() []Member { return m.list(false) }

// Operators returns the operators taking part in the CLADNet's gossip
// (self included if this node is one), sorted by host name.
func (m *Membership) Operators() []Member { return m.list(true) }

func (m *Membership) list(operators bool) []Member {
	all := m.tab.list()
	out := all[:0]
	for _, mem := range all {
		if mem.Operator() == operators {
			out = append(out, mem)
		}
	}
	return out
}

// Member returns one member (not an operator) by peer ID.
func (m *Membership) Member(id peer.ID) (Member, bool) {
	mem, ok := m.tab.get(id)
	if !ok || mem.Operator() {
		return Member{}, false
	}
	return mem, true
}

// Lookup finds a member (not an operator) by peer ID, host name or overlay
// IP.
func (m *Membership) Lookup(key string) (Member, bool) {
	mem, err := m.Find(key)
	return mem, err == nil
}

// IsMember reports whether p is a verified, live member: in the table,
// with a certificate neither expired nor revoked, and not an operator (an
// operator exchanges no packets).
func (m *Membership) IsMember(p peer.ID) bool {
	mem, ok := m.tab.get(p)
	return ok && !mem.Operator() && m.live(mem)
}

// Known reports whether p holds a certificate this node verified: a row
// in the table (member or operator) with a live certificate. It is the
// check behind Admission.
func (m *Membership) Known(p peer.ID) bool { return m.known(p) }

// known reports whether p is in the table (member or operator) with a
// live certificate: its heartbeats count.
func (m *Membership) known(p peer.ID) bool {
	mem, ok := m.tab.get(p)
	return ok && m.live(mem)
}

func (m *Membership) live(mem Member) bool {
	return mem.Self || (time.Now().Before(mem.Ann.Cert.NotAfter) && !m.revoked(mem.Ann.Cert))
}

// Cert returns the certificate this node announces.
func (m *Membership) Cert() *cladnet.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cert
}

// SetCert replaces the certificate this node announces (a renewal: it
// must verify for this node and CLADNet) and re-announces at once.
func (m *Membership) SetCert(c *cladnet.Certificate) error {
	if err := c.Verify(m.cfg.Spec, m.self, time.Now()); err != nil {
		return fmt.Errorf("membership: new certificate: %w", err)
	}
	m.mu.Lock()
	m.cert = c
	m.mu.Unlock()
	m.Republish()
	return nil
}

// Self returns this node's peer ID.
func (m *Membership) Self() peer.ID { return m.self }

// Spec returns the CLADNet spec.
func (m *Membership) Spec() *cladnet.Spec { return m.cfg.Spec }

// SetOverlayIP sets the address announced (invalid addr: none), with the
// first-claim time of its claim, and re-announces.
func (m *Membership) SetOverlayIP(ip netip.Addr, claimedAt time.Time) {
	m.mu.Lock()
	m.overlayIP, m.claimedAt = ip, claimedAt.UTC()
	m.mu.Unlock()
	m.Republish()
}

// SetState sets the announced state and re-announces.
func (m *Membership) SetState(s string) {
	m.mu.Lock()
	m.state = s
	m.mu.Unlock()
	m.Republish()
}

// SetCloud replaces this node's cloud information and re-announces.
func (m *Membership) SetCloud(c cost.CloudInfo) error {
	c.Normalize()
	if err := c.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	m.cloud = c
	m.mu.Unlock()
	m.Republish()
	return nil
}

// Cloud returns this node's cloud information.
func (m *Membership) Cloud() cost.CloudInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cloud
}

// Watch returns a channel that receives a value after every change of the
// members table (coalesced), and a function to stop watching.
func (m *Membership) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.watchMu.Lock()
	m.watchers[ch] = struct{}{}
	m.watchMu.Unlock()
	return ch, func() {
		m.watchMu.Lock()
		delete(m.watchers, ch)
		m.watchMu.Unlock()
	}
}

func (m *Membership) notify() {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	for ch := range m.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Leave announces a graceful departure and stops the membership. It waits
// briefly so the leave reaches the directly connected members.
func (m *Membership) Leave(ctx context.Context) error {
	if m.closed.Swap(true) {
		return nil
	}
	m.stopLoops() // no heartbeat may follow the leave
	err := m.publish(ctx, KindLeave)
	if err == nil {
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
	m.closeTopic()
	return err
}

// Close stops the membership without announcing a leave.
func (m *Membership) Close() {
	if m.closed.Swap(true) {
		return
	}
	m.stopLoops()
	m.closeTopic()
}

func (m *Membership) stopLoops() {
	m.detector.stop()
	m.cancel()
	m.wg.Wait()
}

func (m *Membership) closeTopic() {
	m.cfg.Node.Host.RemoveStreamHandler(syncProtocol(m.cfg.Spec.ID))
	m.cfg.Node.Host.RemoveStreamHandler(instanceProtocol(m.cfg.Spec.ID))
	m.cfg.Node.Host.Network().StopNotify(m.connNotify)
	m.sub.Cancel()
	m.topic.Close()
	_ = m.cfg.Node.PubSub.UnregisterTopicValidator(m.topic.String())
}
