package ipam

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/cloud-barista/cbnode/cladnet"
)

// DHT is the part of the DHT the allocator uses; *dht.IpfsDHT satisfies it.
type DHT interface {
	PutValue(ctx context.Context, key string, value []byte, opts ...routing.Option) error
	GetValue(ctx context.Context, key string, opts ...routing.Option) ([]byte, error)
}

// MemberView reports the overlay addresses that live members announce (in the
// gossip members table), self excluded.
type MemberView interface {
	MemberIPs() map[netip.Addr]peer.ID
}

// ClaimView may be implemented by a MemberView: with the announced claim
// times, two members that announce the same address resolve the conflict by
// the DHT's own rule (earliest claim, then lowest peer ID) at once, from the
// gossip alone, even when a DHT read still sees only one of the claims.
type ClaimView interface {
	MemberClaims() []MemberClaim
}

// Defaults of AllocatorConfig.
const (
	DefaultLease            = 48 * time.Hour
	DefaultQuorum           = 3
	DefaultRetryInterval    = 5 * time.Second
	DefaultConflictInterval = 5 * time.Minute // gossip settles duplicates at once; this is the backstop
	DefaultConfirmDelay     = time.Second
	DefaultOpTimeout        = 30 * time.Second
	// maxRenewInterval keeps records fresh in kad-dht, which drops a value
	// record MaxRecordAge (48 h by default) after it received it.
	maxRenewInterval = 12 * time.Hour
)

// AllocatorConfig configures an Allocator.
type AllocatorConfig struct {
	Spec *cladnet.Spec
	Cert *cladnet.Certificate // this node's certificate
	Key  crypto.PrivKey       // this node's libp2p key
	DHT  DHT
	// StateDir is the per-CLADNet state directory; the allocator keeps
	// LeaseFile (0600) there. Empty disables persistence.
	StateDir string
	// Requested is a fixed address (--ip). If another live member holds it,
	// Run fails with ErrAddressTaken instead of picking another one.
	Requested netip.Addr
	// Lease is the lease a claim carries (default DefaultLease, at most
	// MaxLease). It must outlast the longest suspension that should keep the
	// address.
	Lease time.Duration
	// Members, optional, lists the addresses live members announce.
	Members MemberView
	// Revoked, optional, reports whether a claimant's certificate is
	// revoked: its claims count as absent (their addresses are free) and
	// its announced addresses are not skipped. Give the DHT's validator the
	// same check (Validator.WithRevoked), or the DHT keeps selecting the
	// revoked claim.
	Revoked func(*cladnet.Certificate) bool
	// DHTValidator, optional, is the validator the DHT node runs: a read
	// that found no valid record but records it refused (planted or forged
	// claims) counts the address as unknown, not free.
	DHTValidator *Validator
	Logger       *slog.Logger
	// Quorum is how many valid DHT responses a read waits for (kad-dht's
	// dht.Quorum; the read ends after Quorum+1 values, counting the node's
	// own store, or when the lookup completes). 0 means DefaultQuorum; a
	// negative value waits for the full lookup.
	Quorum int
	// RetryInterval is the pause before searching again when the range is
	// full or the DHT failed (default DefaultRetryInterval).
	RetryInterval time.Duration
	// TakenGrace: a Requested address found held is searched again for
	// this long after the start before it is given up (0: at once) — a
	// newcomer may read a revoked member's claim before the revocation
	// list reaches it.
	TakenGrace time.Duration
	// RenewInterval is how often the lease is renewed (default Lease/4,
	// at most 12 h: a node suspended just before a renewal still has 3/4 of
	// its lease left).
	RenewInterval time.Duration
	// ConflictInterval is how often the claim is re-read to find conflicts
	// (default DefaultConflictInterval).
	ConflictInterval time.Duration
	// ConfirmDelay is the pause between publishing a claim and the quorum
	// read that confirms it, so concurrent claims have landed (default
	// DefaultConfirmDelay).
	ConfirmDelay time.Duration
	// OpTimeout bounds one DHT read or write (default DefaultOpTimeout).
	OpTimeout time.Duration
}

// ErrAddressTaken is matched (errors.Is) by the error Run returns when the
// requested address is held by another live member.
var ErrAddressTaken = errors.New("address is taken")

// TakenError tells who holds a requested address.
type TakenError struct {
	Addr   netip.Addr
	Holder string // "host (peer ID)"
}

func (e *TakenError) Error() string {
	return fmt.Sprintf("address %s is held by %s", e.Addr, e.Holder)
}

// Is makes errors.Is(err, ErrAddressTaken) true.
func (e *TakenError) Is(target error) bool { return target == ErrAddressTaken }

// States reported by Allocator.State. A full range reads
// "full: CLADNet X is full: N of N addresses claimed".
const (
	StateIdle           = "idle"
	StateAcquiring      = "acquiring"
	StateAssigned       = "assigned"
	StateFull           = "full"
	StateConflictMoving = "conflict-moving"
	StateTaken          = "taken"
	StateReleased       = "released"
)

// Allocator claims, keeps and renews this node's overlay address in the DHT.
type Allocator struct {
	cfg    AllocatorConfig
	self   peer.ID
	hosts  hostRange
	name   string // CLADNet name for messages
	val    *Validator
	log    *slog.Logger
	quorum int

	nudge   chan struct{} // CheckConflicts
	changes chan netip.Addr
	emitMu  sync.Mutex

	mu           sync.Mutex
	current      netip.Addr
	state        string
	claim        *Claim      // our latest published claim on current
	last         *leaseState // persisted or latest claim, for preferences
	lastSeq      uint64
	renewAt      time.Time            // wall clock
	cert         *cladnet.Certificate // this node's certificate (SetCert replaces it)
	foreign      uint64               // records of our address another node with our key wrote
	lastForeign  time.Time            // when the latest of them was found
	assignedAt   time.Time            // when current was confirmed
	sightings    map[string]time.Time // other peers' claims on current: first seen (backdating check)
	backdated    uint64               // backdated claims on our address refused
	unknownReads uint64               // reads that found only refused records
	running      bool
	released     bool
	stopRun      context.CancelFunc
	runDone      chan struct{}
}

// NewAllocator checks cfg, applies defaults and loads the persisted lease.
func NewAllocator(cfg AllocatorConfig) (*Allocator, error) {
	if cfg.Spec == nil || cfg.Cert == nil || cfg.Key == nil || cfg.DHT == nil {
		return nil, errors.New("ipam: allocator needs a spec, a certificate, a node key and a DHT")
	}
	prefix, err := cfg.Spec.Prefix()
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	if err := cladnet.ValidateRange(prefix); err != nil {
		return nil, fmt.Errorf("ipam: CLADNet %s: %w", cfg.Spec.Name, err)
	}
	self, err := peer.IDFromPrivateKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("ipam: node key: %w", err)
	}
	if _, err := self.ExtractPublicKey(); err != nil {
		return nil, fmt.Errorf("ipam: node key %s: claims need a key embedded in the peer ID (use Ed25519): %w", self, err)
	}
	if err := cfg.Cert.Verify(cfg.Spec, self, time.Now()); err != nil {
		return nil, fmt.Errorf("ipam: node certificate: %w", err)
	}
	hosts := newHostRange(prefix)
	if b := cfg.Cert.BoundIP(); b.IsValid() {
		if cfg.Requested.IsValid() && cfg.Requested != b {
			return nil, fmt.Errorf("ipam: requested address %s, but this node's certificate binds %s: drop --ip or ask the operator for a certificate without a fixed address", cfg.Requested, b)
		}
		cfg.Requested = b
	}
	if cfg.Requested.IsValid() {
		if _, ok := hosts.index(cfg.Requested); !ok {
			return nil, fmt.Errorf("ipam: requested address %s is not a usable host address of CLADNet %s (%s)", cfg.Requested, cfg.Spec.Name, prefix)
		}
	}
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}
	a := &Allocator{
		cfg:     cfg,
		self:    self,
		hosts:   hosts,
		name:    cfg.Spec.Name,
		val:     NewValidator(cfg.Spec).WithRevoked(cfg.Revoked),
		quorum:  cfg.Quorum,
		nudge:   make(chan struct{}, 1),
		changes: make(chan netip.Addr, 1),
		state:   StateIdle,
		cert:    cfg.Cert,
	}
	if a.name == "" {
		a.name = cfg.Spec.ID
	}
	a.log = cfg.Logger.With("cladnet", a.name)
	if a.quorum < 0 {
		a.quorum = 0 // kad-dht: 0 = no early stop, full lookup
	}
	a.loadState()
	return a, nil
}

func applyDefaults(cfg *AllocatorConfig) error {
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < 0 || cfg.Lease > MaxLease {
		return fmt.Errorf("ipam: lease %s: must be positive and at most %s", cfg.Lease, MaxLease)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Quorum == 0 {
		cfg.Quorum = DefaultQuorum
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RetryInterval, DefaultRetryInterval)
	def(&cfg.RenewInterval, min(cfg.Lease/4, maxRenewInterval))
	def(&cfg.ConflictInterval, DefaultConflictInterval)
	def(&cfg.ConfirmDelay, DefaultConfirmDelay)
	def(&cfg.OpTimeout, DefaultOpTimeout)
	if cfg.RenewInterval >= cfg.Lease {
		return fmt.Errorf("ipam: renew interval %s must be shorter than the lease %s", cfg.RenewInterval, cfg.Lease)
	}
	return nil
}

// loadState reads the persisted lease; a bad or foreign file is ignored.
func (a *Allocator) loadState() {
	if a.cfg.StateDir == "" {
		return
	}
	l, err := loadLease(a.cfg.StateDir)
	switch {
	case err != nil:
		a.log.Warn("ignoring the persisted lease", "err", err)
	case l == nil:
	case l.CladnetID != a.cfg.Spec.ID || l.PeerID != a.self.String():
		a.log.Warn("ignoring a persisted lease of another CLADNet or node", "file", LeaseFile, "cladnet", l.CladnetID, "peer", l.PeerID)
	default:
		if _, ok := a.hosts.index(l.addr()); !ok {
			a.log.Warn("ignoring a persisted address outside the CLADNet range", "ip", l.IP)
			return
		}
		a.last = l
		a.lastSeq = l.Seq
	}
}

// SetCert replaces this node's certificate (a renewal: same peer, same
// CLADNet, NotBefore not later than the old one's) and re-publishes the
// claim with it at once, so the claim stays valid after the old
// certificate's NotAfter.
func (a *Allocator) SetCert(c *cladnet.Certificate) error {
	if err := c.Verify(a.cfg.Spec, a.self, time.Now()); err != nil {
		return fmt.Errorf("ipam: new certificate: %w", err)
	}
	a.mu.Lock()
	a.cert = c
	a.renewAt = time.Time{}
	a.mu.Unlock()
	select {
	case a.nudge <- struct{}{}:
	default:
	}
	return nil
}

func (a *Allocator) certNow() *cladnet.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cert
}

// Current returns the address this node holds, invalid while it has none.
func (a *Allocator) Current() netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.current
}

// State describes what the allocator is doing, e.g. "assigned" or
// "full: CLADNet lab is full: 6 of 6 addresses claimed".
func (a *Allocator) State() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// Changes delivers each new address, and an invalid address when the node
// lost or released its address. The channel holds only the latest value: a
// slow reader misses intermediate ones but never blocks the allocator.
func (a *Allocator) Changes() <-chan netip.Addr { return a.changes }

// ClaimedAt returns the first-claim time of the current address (zero while
// none), for the member announcement.
func (a *Allocator) ClaimedAt() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.claim == nil {
		return time.Time{}
	}
	return a.claim.ClaimedAt
}

// Record returns the signed DHT record of the current claim (nil while the
// node holds no address), for the member announcement: receivers route to
// and settle conflicts by verified claims only.
func (a *Allocator) Record() []byte {
	a.mu.Lock()
	c := a.claim
	a.mu.Unlock()
	if c == nil {
		return nil
	}
	b, err := c.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// BackdatedClaims counts claims of other peers on our address that the DHT
// selected over ours but that turned up long after the time they state (see
// Dated): the allocator kept the address.
func (a *Allocator) BackdatedClaims() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.backdated
}

// UnknownReads counts DHT reads that found no valid claim but claims the
// node's DHT validator refused: the address was not taken as free.
func (a *Allocator) UnknownReads() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unknownReads
}

// CheckConflicts asks the allocator to re-verify its claim now (or, while the
// range is full, to search again). It never blocks.
func (a *Allocator) CheckConflicts() {
	select {
	case a.nudge <- struct{}{}:
	default:
	}
}

func (a *Allocator) setState(s string) {
	a.mu.Lock()
	a.state = s
	a.mu.Unlock()
}

// emit publishes addr on the coalescing Changes channel.
func (a *Allocator) emit(addr netip.Addr) {
	a.emitMu.Lock()
	defer a.emitMu.Unlock()
	for {
		select {
		case a.changes <- addr:
			return
		default:
		}
		select {
		case <-a.changes: // drop the stale value
		default:
		}
	}
}

// Run acquires an address, then renews it and watches for conflicts until ctx
// ends (it then returns nil, keeping the lease: a restart asks for the same
// address). It returns an error wrapping ErrAddressTaken when the requested
// address is held by another live claim. A full range or DHT trouble is not
// an error: the allocator reports it in State and keeps trying.
func (a *Allocator) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("ipam: allocator is already running")
	}
	if a.released {
		a.mu.Unlock()
		return errors.New("ipam: allocator has released its address")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	a.running, a.stopRun, a.runDone = true, cancel, done
	a.mu.Unlock()
	defer func() {
		cancel()
		a.mu.Lock()
		a.running, a.stopRun = false, nil
		a.mu.Unlock()
		close(done)
	}()
	a.setState(StateAcquiring)
	for {
		err := a.acquire(ctx)
		if err == nil {
			err = a.maintain(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// The claim was lost to a better one: search again.
	}
}
