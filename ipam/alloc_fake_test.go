package ipam

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/cloud-barista/cbnode/cladnet"
)

// memDHT is a one-store DHT with kad-dht's value rules: records are
// validated, and a PUT that Select ranks below the stored record is refused.
type memDHT struct {
	v  *Validator
	mu sync.Mutex
	m  map[string][]byte
}

func newMemDHT(specs ...*cladnet.Spec) *memDHT {
	return &memDHT{v: NewValidator(specs...), m: make(map[string][]byte)}
}

func (d *memDHT) PutValue(_ context.Context, key string, val []byte, _ ...routing.Option) error {
	if err := d.v.Validate(key, val); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.m[key]; ok && d.v.Validate(key, old) == nil {
		if i, err := d.v.Select(key, [][]byte{val, old}); err != nil || i != 0 {
			return errors.New("can't replace a newer value with an older value")
		}
	}
	d.m[key] = bytes.Clone(val)
	return nil
}

func (d *memDHT) GetValue(_ context.Context, key string, _ ...routing.Option) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.m[key]
	if !ok || d.v.Validate(key, v) != nil {
		return nil, routing.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// force stores val regardless of what is there, as after a partition heals.
func (d *memDHT) force(key string, val []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[key] = val
}

func (d *memDHT) get(t *testing.T, spec *cladnet.Spec, ip netip.Addr) *Claim {
	t.Helper()
	b, err := d.GetValue(context.Background(), ClaimKey(spec.ID, ip))
	if err != nil {
		return nil
	}
	c, err := ParseClaim(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// staticView is a MemberView over a fixed, replaceable map.
type staticView struct {
	mu sync.Mutex
	m  map[netip.Addr]peer.ID
}

func (v *staticView) MemberIPs() map[netip.Addr]peer.ID {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[netip.Addr]peer.ID, len(v.m))
	for k, p := range v.m {
		out[k] = p
	}
	return out
}

func (v *staticView) set(ip netip.Addr, p peer.ID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[netip.Addr]peer.ID)
	}
	v.m[ip] = p
}

// syncBuffer collects log output for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(w io.Writer) *slog.Logger {
	if w == nil {
		w = io.Discard
		if testing.Verbose() && os.Getenv("IPAM_TEST_LOG") != "" {
			w = os.Stderr
		}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// fastConfig is an allocator config with test timings.
func fastConfig(o *cladnet.Owner, who testIdentity, d DHT, dir string) AllocatorConfig {
	return AllocatorConfig{
		Spec: o.Spec, Cert: who.cert, Key: who.key, DHT: d, StateDir: dir,
		Logger:           testLogger(nil),
		RetryInterval:    100 * time.Millisecond,
		ConflictInterval: 100 * time.Millisecond,
		ConfirmDelay:     time.Millisecond,
		OpTimeout:        5 * time.Second,
	}
}

// runAlloc starts a.Run and returns a channel with its result; the test's
// cleanup stops it.
func runAlloc(t *testing.T, a *Allocator) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return done
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitChange returns the next address on a's Changes channel.
func waitChange(t *testing.T, a *Allocator) netip.Addr {
	t.Helper()
	select {
	case ip := <-a.Changes():
		return ip
	case <-time.After(5 * time.Second):
		t.Fatal("no address change")
		return netip.Addr{}
	}
}

func TestAllocatorPersistsAndRenews(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	me := newIdentity(t, o, "vm1")
	d := newMemDHT(o.Spec)
	dir := filepath.Join(t.TempDir(), "state")
	cfg := fastConfig(o, me, d, dir)
	cfg.RenewInterval = 50 * time.Millisecond
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, a)
	ip := waitChange(t, a)
	want := newHostRange(netip.MustParsePrefix(o.Spec.CIDR))
	if ip != want.at(want.hashIndex(me.id)) {
		t.Errorf("first address %s is not the peer ID's hash slot %s", ip, want.at(want.hashIndex(me.id)))
	}
	if a.Current() != ip || a.State() != StateAssigned {
		t.Fatalf("Current %s, State %q", a.Current(), a.State())
	}
	first := d.get(t, o.Spec, ip)
	waitFor(t, 5*time.Second, "two renewals", func() bool {
		c := d.get(t, o.Spec, ip)
		return c != nil && c.Seq > first.Seq+1
	})
	c := d.get(t, o.Spec, ip)
	if !c.ClaimedAt.Equal(first.ClaimedAt) || !c.Expires.After(first.Expires) {
		t.Errorf("renewal changed ClaimedAt or did not extend the lease: %+v -> %+v", first, c)
	}
	st, err := os.Stat(filepath.Join(dir, LeaseFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("lease file mode %v, want 0600", st.Mode().Perm())
	}
	l, err := loadLease(dir)
	if err != nil || l.addr() != ip || l.PeerID != me.id.String() {
		t.Fatalf("persisted lease %+v, %v", l, err)
	}
}

func TestAllocatorPrefersPersistedAddress(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	me := newIdentity(t, o, "vm1")
	dir := t.TempDir()
	want := netip.MustParseAddr("10.77.0.200")
	if err := saveLease(dir, &leaseState{CladnetID: o.Spec.ID, PeerID: me.id.String(), IP: want.String(), Seq: 5}); err != nil {
		t.Fatal(err)
	}
	a, err := NewAllocator(fastConfig(o, me, newMemDHT(o.Spec), dir))
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, a)
	if ip := waitChange(t, a); ip != want {
		t.Fatalf("got %s, want the persisted %s", ip, want)
	}
	// A corrupt or foreign lease file is ignored, not fatal.
	for _, content := range []string{"{corrupt", `{"cladnetId":"cnother","peerId":"x","ip":"10.77.0.9"}`} {
		dir2 := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir2, LeaseFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if a2, err := NewAllocator(fastConfig(o, me, newMemDHT(o.Spec), dir2)); err != nil || a2.last != nil {
			t.Errorf("lease %q: allocator %v, last %+v", content, err, a2.last)
		}
	}
}

func TestAllocatorFullRangeThenRelease(t *testing.T) {
	o := testOwner(t, "tiny", "10.77.0.0/30") // 2 usable
	d := newMemDHT(o.Spec)
	now := time.Now()
	x, y := newIdentity(t, o, "x"), newIdentity(t, o, "y")
	_, bx := signedClaim(t, o.Spec, x, "10.77.0.1", now, 1, nil)
	_, by := signedClaim(t, o.Spec, y, "10.77.0.2", now, 1, nil)
	k1, k2 := ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.1")), ClaimKey(o.Spec.ID, netip.MustParseAddr("10.77.0.2"))
	if d.PutValue(context.Background(), k1, bx) != nil || d.PutValue(context.Background(), k2, by) != nil {
		t.Fatal("seeding the DHT failed")
	}
	me := newIdentity(t, o, "me")
	logs := &syncBuffer{}
	cfg := fastConfig(o, me, d, t.TempDir())
	cfg.Logger = testLogger(logs)
	cfg.RetryInterval = time.Hour // only CheckConflicts wakes it
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := runAlloc(t, a)
	const msg = "CLADNet tiny is full: 2 of 2 addresses claimed"
	waitFor(t, 5*time.Second, "state full", func() bool { return a.State() == "full: "+msg })
	if !strings.Contains(logs.String(), msg) {
		t.Errorf("the full state was not logged: %s", logs)
	}
	// y leaves gracefully.
	_, rel := signedClaim(t, o.Spec, y, "10.77.0.2", now, 2, func(c *Claim) { c.Released = true })
	if err := d.PutValue(context.Background(), k2, rel); err != nil {
		t.Fatalf("release refused: %v", err)
	}
	a.CheckConflicts()
	if ip := waitChange(t, a); ip != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("got %s after the release", ip)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v", err)
	default:
	}
}

func TestAllocatorMovesOnLaterConflict(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/28")
	d := newMemDHT(o.Spec)
	me, rival := newIdentity(t, o, "me"), newIdentity(t, o, "rival")
	logs := &syncBuffer{}
	cfg := fastConfig(o, me, d, t.TempDir())
	cfg.Logger = testLogger(logs)
	cfg.ConflictInterval = time.Hour // only CheckConflicts
	view := &staticView{}
	cfg.Members = view
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, a)
	ip := waitChange(t, a)
	mine := d.get(t, o.Spec, ip)

	// A member announcing our address without a better claim must move, not us.
	view.set(ip, rival.id)
	a.CheckConflicts()
	waitFor(t, 5*time.Second, "the announcement to be noted", func() bool {
		return strings.Contains(logs.String(), "holds no better claim")
	})
	if a.Current() != ip {
		t.Fatalf("moved away from %s without a better claim", ip)
	}

	// A partition heals: the rival claimed the same address earlier.
	_, better := signedClaim(t, o.Spec, rival, ip.String(), mine.ClaimedAt.Add(-time.Second), 1, nil)
	d.force(ClaimKey(o.Spec.ID, ip), better)
	a.CheckConflicts()
	if got := waitChange(t, a); got.IsValid() {
		// The coalescing channel may already hold the new address.
		if got == ip {
			t.Fatalf("still on %s", ip)
		}
	} else if next := waitChange(t, a); !next.IsValid() || next == ip {
		t.Fatalf("moved to %s", next)
	}
	waitFor(t, 5*time.Second, "a new address", func() bool { return a.Current().IsValid() && a.Current() != ip })
	if s := logs.String(); !strings.Contains(s, "lost to a better claim") || !strings.Contains(s, "earliest claim wins") {
		t.Errorf("the move was not explained in the log:\n%s", s)
	}
}

func TestAllocatorRequestedTaken(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	d := newMemDHT(o.Spec)
	holder := newIdentity(t, o, "db-1")
	ip := netip.MustParseAddr("10.77.0.5")
	_, b := signedClaim(t, o.Spec, holder, ip.String(), time.Now(), 1, nil)
	if err := d.PutValue(context.Background(), ClaimKey(o.Spec.ID, ip), b); err != nil {
		t.Fatal(err)
	}
	me := newIdentity(t, o, "me")
	cfg := fastConfig(o, me, d, t.TempDir())
	cfg.Requested = ip
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	want := "address 10.77.0.5 is held by db-1 (" + holder.id.String() + ")"
	if !errors.Is(err, ErrAddressTaken) || err.Error() != want {
		t.Fatalf("Run = %v, want %q", err, want)
	}
	if !strings.HasPrefix(a.State(), StateTaken) {
		t.Errorf("State = %q", a.State())
	}
}

func TestAllocatorRelease(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	d := newMemDHT(o.Spec)
	me := newIdentity(t, o, "me")
	dir := t.TempDir()
	a, err := NewAllocator(fastConfig(o, me, d, dir))
	if err != nil {
		t.Fatal(err)
	}
	done := runAlloc(t, a)
	ip := waitChange(t, a)
	if err := a.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Release = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running after Release")
	}
	if c := d.get(t, o.Spec, ip); c == nil || !c.Released {
		t.Fatalf("DHT holds %+v, want a released claim", c)
	}
	if a.Current().IsValid() || a.State() != StateReleased || waitChange(t, a).IsValid() {
		t.Fatalf("after release: Current %s, State %q", a.Current(), a.State())
	}
	if l, _ := loadLease(dir); l == nil || !l.Released || l.addr() != ip {
		t.Fatalf("persisted lease after release: %+v", l)
	}
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("Run after Release succeeded")
	}
}

func TestNewAllocatorRejectsBadConfig(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	other := testOwner(t, "other", "10.88.0.0/24")
	me := newIdentity(t, o, "me")
	foreign := newIdentity(t, other, "me")
	d := newMemDHT(o.Spec)
	for name, mut := range map[string]func(*AllocatorConfig){
		"network address":   func(c *AllocatorConfig) { c.Requested = netip.MustParseAddr("10.77.0.0") },
		"broadcast address": func(c *AllocatorConfig) { c.Requested = netip.MustParseAddr("10.77.0.255") },
		"outside the range": func(c *AllocatorConfig) { c.Requested = netip.MustParseAddr("10.78.0.1") },
		"lease too long":    func(c *AllocatorConfig) { c.Lease = 31 * 24 * time.Hour },
		"negative lease":    func(c *AllocatorConfig) { c.Lease = -time.Hour },
		"renew >= lease":    func(c *AllocatorConfig) { c.Lease = time.Hour; c.RenewInterval = time.Hour },
		"foreign cert":      func(c *AllocatorConfig) { c.Cert = foreign.cert },
		"cert of another":   func(c *AllocatorConfig) { c.Key = foreign.key },
		"no DHT":            func(c *AllocatorConfig) { c.DHT = nil },
	} {
		cfg := fastConfig(o, me, d, "")
		mut(&cfg)
		if _, err := NewAllocator(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	a, err := NewAllocator(AllocatorConfig{Spec: o.Spec, Cert: me.cert, Key: me.key, DHT: d})
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.Lease != DefaultLease || a.cfg.RenewInterval != 12*time.Hour || a.quorum != DefaultQuorum || a.State() != StateIdle {
		t.Errorf("defaults: %+v", a.cfg)
	}
}

func TestChangesNeverBlock(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	me := newIdentity(t, o, "me")
	a, err := NewAllocator(fastConfig(o, me, newMemDHT(o.Spec), ""))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		a.emit(netip.AddrFrom4([4]byte{10, 77, 0, byte(i + 1)}))
	}
	if got := <-a.Changes(); got != netip.MustParseAddr("10.77.0.100") {
		t.Fatalf("coalesced value %s, want the latest", got)
	}
}

// claimView is a MemberView that also reports announced claim times.
type claimView struct {
	staticView
	claims []MemberClaim
}

func (v *claimView) MemberClaims() []MemberClaim {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]MemberClaim(nil), v.claims...)
}

// A duplicate seen only in the gossip (the DHT read still shows our claim
// alone) is settled at once by the same rule: the earlier claim stays.
func TestAllocatorMovesOnAnnouncedEarlierClaim(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/28")
	d := newMemDHT(o.Spec)
	me, rival := newIdentity(t, o, "me"), newIdentity(t, o, "rival")
	logs := &syncBuffer{}
	cfg := fastConfig(o, me, d, t.TempDir())
	cfg.Logger = testLogger(logs)
	cfg.ConflictInterval = time.Hour // only CheckConflicts
	view := &claimView{}
	cfg.Members = view
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runAlloc(t, a)
	ip := waitChange(t, a)
	mine := a.ClaimedAt()
	if mine.IsZero() {
		t.Fatal("no claim time for the announcement")
	}

	// A later claim on our address, announced: we stay.
	view.mu.Lock()
	view.claims = []MemberClaim{{IP: ip, Peer: rival.id, ClaimedAt: mine.Add(time.Second)}}
	view.mu.Unlock()
	a.CheckConflicts()
	time.Sleep(200 * time.Millisecond)
	if a.Current() != ip {
		t.Fatalf("moved away from %s for a later claim", ip)
	}

	// An earlier claim, announced: we move, although the DHT still holds ours.
	view.set(ip, rival.id)
	view.mu.Lock()
	view.claims = []MemberClaim{{IP: ip, Peer: rival.id, ClaimedAt: mine.Add(-time.Second)}}
	view.mu.Unlock()
	a.CheckConflicts()
	waitFor(t, 5*time.Second, "a new address", func() bool { return a.Current().IsValid() && a.Current() != ip })
	if s := logs.String(); !strings.Contains(s, "earliest claim wins") {
		t.Errorf("the move was not explained in the log:\n%s", s)
	}
}

// TestAllocatorRevokedClaimIsFree: an address held only by a revoked node is
// free for a newcomer, in the DHT (its validator refuses the revoked claim)
// and in the allocator.
func TestAllocatorRevokedClaimIsFree(t *testing.T) {
	o := testOwner(t, "lab", "10.77.0.0/24")
	holder := newIdentity(t, o, "db-1")
	var revoked sync.Map
	isRevoked := func(c *cladnet.Certificate) bool { _, ok := revoked.Load(c.PeerID); return ok }
	d := newMemDHT(o.Spec)
	d.v = d.v.WithRevoked(isRevoked)
	ip := netip.MustParseAddr("10.77.0.5")
	_, b := signedClaim(t, o.Spec, holder, ip.String(), time.Now(), 1, nil)
	if err := d.PutValue(context.Background(), ClaimKey(o.Spec.ID, ip), b); err != nil {
		t.Fatal(err)
	}
	try := func(name string) (*Allocator, error) {
		cfg := fastConfig(o, newIdentity(t, o, name), d, t.TempDir())
		cfg.Requested = ip
		cfg.Revoked = isRevoked
		a, err := NewAllocator(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done := make(chan struct{})
		defer func() { <-done }()
		go func() { // stop Run once it holds an address
			defer close(done)
			for !a.Current().IsValid() && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
		}()
		return a, a.Run(ctx)
	}
	if _, err := try("me"); !errors.Is(err, ErrAddressTaken) {
		t.Fatalf("before revocation: Run = %v, want taken", err)
	}
	revoked.Store(holder.id.String(), struct{}{})
	a, err := try("me2")
	if err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if a.Current() != ip {
		t.Fatalf("after revocation got %v, want %s", a.Current(), ip)
	}
	if err := NewValidator(o.Spec).WithRevoked(isRevoked).Validate(ClaimKey(o.Spec.ID, ip), b); !errors.Is(err, ErrClaimRevoked) {
		t.Fatalf("validator: %v", err)
	}
}
