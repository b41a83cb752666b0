package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// testNet is one bootstrap node (DHT server, no CLADNet spec) on loopback and
// the members started against it.
type testNet struct {
	t     *testing.T
	ctx   context.Context
	owner *cladnet.Owner
	boot  peer.AddrInfo

	mu      sync.Mutex
	members []*member
}

// member is a node with its allocator.
type member struct {
	who       testIdentity
	node      *node.Node
	closeNode func()
	alloc     *Allocator
	cancel    context.CancelFunc
	result    chan error    // Run's result
	done      chan struct{} // closed when Run returned
}

func newTestNet(t *testing.T, name, cidr string) *testNet {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(ctx, node.Config{
		Key:        k,
		ListenIPs:  []string{"127.0.0.1"},
		Server:     true,
		Validators: map[string]record.Validator{Namespace: NewValidator().WithUnknown()},
		Logger:     testLogger(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &testNet{
		t: t, ctx: ctx, owner: testOwner(t, name, cidr),
		boot: peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()},
	}
}

// startNode starts a member node (auto-server DHT) with the given identity and
// waits until its routing table is not empty. The returned func closes it
// (once; cleanup calls it too).
func (tn *testNet) startNode(who testIdentity) (*node.Node, func()) {
	tn.t.Helper()
	n, err := node.New(tn.ctx, node.Config{
		Key:        who.key,
		ListenIPs:  []string{"127.0.0.1"},
		Bootstrap:  []peer.AddrInfo{tn.boot},
		Validators: map[string]record.Validator{Namespace: NewValidator(tn.owner.Spec)},
		Logger:     testLogger(nil),
	})
	if err != nil {
		tn.t.Fatal(err)
	}
	closeNode := sync.OnceFunc(func() { n.Close() })
	tn.t.Cleanup(closeNode)
	waitFor(tn.t, 10*time.Second, "the bootstrap connection", func() bool { return n.DHT.RoutingTable().Size() > 0 })
	return n, closeNode
}

// view is the MemberView of one member: the other members' current addresses.
type view struct {
	tn   *testNet
	self peer.ID
}

func (v view) MemberIPs() map[netip.Addr]peer.ID {
	v.tn.mu.Lock()
	ms := append([]*member(nil), v.tn.members...)
	v.tn.mu.Unlock()
	out := make(map[netip.Addr]peer.ID)
	for _, m := range ms {
		if m.who.id != v.self && m.alloc != nil {
			if ip := m.alloc.Current(); ip.IsValid() {
				out[ip] = m.who.id
			}
		}
	}
	return out
}

// newMember makes a member with a node and an allocator (not yet running).
func (tn *testNet) newMember(who testIdentity, dir string, tweak func(*AllocatorConfig)) *member {
	tn.t.Helper()
	n, closeNode := tn.startNode(who)
	cfg := AllocatorConfig{
		Spec: tn.owner.Spec, Cert: who.cert, Key: who.key, DHT: n.DHT, StateDir: dir,
		Members:          view{tn: tn, self: who.id},
		Logger:           testLogger(nil).With("host", who.cert.HostName),
		RetryInterval:    300 * time.Millisecond,
		ConflictInterval: 500 * time.Millisecond,
		ConfirmDelay:     200 * time.Millisecond,
		OpTimeout:        10 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := NewAllocator(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	m := &member{who: who, node: n, closeNode: closeNode, alloc: a, result: make(chan error, 1), done: make(chan struct{})}
	tn.mu.Lock()
	tn.members = append(tn.members, m)
	tn.mu.Unlock()
	return m
}

// run starts the member's allocator; cleanup stops it before the nodes close.
func (m *member) run(t *testing.T, ctx context.Context) {
	ctx, m.cancel = context.WithCancel(ctx)
	go func() {
		defer close(m.done)
		m.result <- m.alloc.Run(ctx)
	}()
	t.Cleanup(m.stop)
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

// remove takes m out of the members table (it left).
func (tn *testNet) remove(m *member) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for i, x := range tn.members {
		if x == m {
			tn.members = append(tn.members[:i], tn.members[i+1:]...)
			return
		}
	}
}

// quorumHolder reads ip's claim through m's DHT with a full lookup and
// returns the claimant.
func (tn *testNet) quorumHolder(m *member, ip netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(tn.ctx, 10*time.Second)
	defer cancel()
	b, err := m.node.DHT.GetValue(ctx, ClaimKey(tn.owner.Spec.ID, ip), dht.Quorum(0))
	if err != nil {
		return "", err
	}
	c, err := ParseClaim(b)
	if err != nil {
		return "", err
	}
	if c.Released {
		return "", errors.New("released")
	}
	return c.PeerID, nil
}

// distinct reports whether every member in ms is assigned, with no two
// sharing an address.
func distinct(ms []*member) error {
	seen := make(map[netip.Addr]string)
	for _, m := range ms {
		ip := m.alloc.Current()
		if !ip.IsValid() || m.alloc.State() != StateAssigned {
			return fmt.Errorf("%s: %q", m.who.cert.HostName, m.alloc.State())
		}
		if h, dup := seen[ip]; dup {
			return fmt.Errorf("%s and %s share %s", h, m.who.cert.HostName, ip)
		}
		seen[ip] = m.who.cert.HostName
	}
	return nil
}

// waitConverged waits until ms hold distinct addresses that each wins a
// full-lookup read through its own node.
func (tn *testNet) waitConverged(ms []*member, timeout time.Duration) {
	tn.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		if last = distinct(ms); last != nil {
			continue
		}
		for _, m := range ms {
			ip := m.alloc.Current()
			holder, err := tn.quorumHolder(m, ip)
			if err == nil && holder != m.who.id.String() {
				err = fmt.Errorf("%s lost the quorum read of %s to %s", m.who.cert.HostName, ip, holder)
			}
			if err != nil {
				last = err
				break
			}
		}
		if last == nil {
			return
		}
		tn.t.Logf("not converged: %v", last)
	}
	tn.t.Fatalf("no convergence after %s: %v", timeout, last)
}

// slowChecks spaces out the conflict checks of many nodes: 20 nodes reading
// every 500 ms saturate two CPUs under the race detector.
func slowChecks(c *AllocatorConfig) { c.ConflictInterval = 3 * time.Second }

func TestDHTTwentyNodesGetDistinctAddresses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 21 libp2p hosts")
	}
	tn := newTestNet(t, "lab", "10.77.0.0/27") // 30 usable
	var ms []*member
	for i := range 20 {
		ms = append(ms, tn.newMember(newIdentity(t, tn.owner, fmt.Sprintf("vm%02d", i)), t.TempDir(), slowChecks))
	}
	start := time.Now()
	for _, m := range ms {
		m.run(t, tn.ctx)
	}
	waitFor(t, 60*time.Second, "20 assigned addresses", func() bool {
		n := 0
		for _, m := range ms {
			if m.alloc.Current().IsValid() {
				n++
			}
		}
		return n == len(ms)
	})
	t.Logf("20 nodes all held an address after %s", time.Since(start).Round(time.Millisecond))
	tn.waitConverged(ms, 60*time.Second)
	t.Logf("20 nodes held distinct, quorum-confirmed addresses after %s", time.Since(start).Round(time.Millisecond))
}

func TestDHTRestartKeepsAddress(t *testing.T) {
	tn := newTestNet(t, "lab", "10.77.0.0/24")
	other := tn.newMember(newIdentity(t, tn.owner, "other"), t.TempDir(), nil)
	other.run(t, tn.ctx)

	who := newIdentity(t, tn.owner, "vm1")
	dir := t.TempDir()
	// Last time this node held an address that is not its hash slot (nor
	// the other member's address: both identities are random).
	r := newHostRange(netip.MustParsePrefix(tn.owner.Spec.CIDR))
	waitFor(t, 15*time.Second, "the other member's address", func() bool { return other.alloc.Current().IsValid() })
	want := r.at((r.hashIndex(who.id) + 7) % r.n)
	if want == other.alloc.Current() {
		want = r.at((r.hashIndex(who.id) + 8) % r.n)
	}
	if err := saveLease(dir, &leaseState{CladnetID: tn.owner.Spec.ID, PeerID: who.id.String(), IP: want.String(), Seq: 1}); err != nil {
		t.Fatal(err)
	}
	m := tn.newMember(who, dir, nil)
	m.run(t, tn.ctx)
	waitFor(t, 15*time.Second, "the first address", func() bool { return m.alloc.Current().IsValid() })
	if got := m.alloc.Current(); got != want {
		t.Fatalf("first run got %s, want the persisted %s", got, want)
	}
	first := claimOf(m.alloc)

	// Stop without releasing (a crash, a reboot), then start a new host with
	// the same key and state directory.
	m.stop()
	tn.remove(m)
	m.closeNode()
	start := time.Now()
	m2 := tn.newMember(who, dir, nil)
	m2.run(t, tn.ctx)
	waitFor(t, 15*time.Second, "the address after restart", func() bool { return m2.alloc.Current().IsValid() })
	t.Logf("restarted node got its address back after %s", time.Since(start).Round(time.Millisecond))
	if got := m2.alloc.Current(); got != want {
		t.Fatalf("after restart got %s, want %s", got, want)
	}
	second := claimOf(m2.alloc)
	if !second.ClaimedAt.Equal(first.ClaimedAt) || second.Seq <= first.Seq {
		t.Errorf("restart: ClaimedAt %s -> %s, Seq %d -> %d; want the same first-claim time and a higher Seq",
			first.ClaimedAt, second.ClaimedAt, first.Seq, second.Seq)
	}
	tn.waitConverged([]*member{other, m2}, 15*time.Second)
}

func TestDHTRequestedAddressConflict(t *testing.T) {
	tn := newTestNet(t, "lab", "10.77.0.0/24")
	ip := netip.MustParseAddr("10.77.0.5")
	fixed := func(c *AllocatorConfig) { c.Requested = ip }
	a := tn.newMember(newIdentity(t, tn.owner, "web-a"), t.TempDir(), fixed)
	b := tn.newMember(newIdentity(t, tn.owner, "web-b"), t.TempDir(), fixed)
	// The bystander asks for another address: left to its peer-ID hash it
	// picks 10.77.0.5 itself about once in 250 runs.
	bystander := tn.newMember(newIdentity(t, tn.owner, "bystander"), t.TempDir(), func(c *AllocatorConfig) { c.Requested = netip.MustParseAddr("10.77.0.6") })
	bystander.run(t, tn.ctx)
	a.run(t, tn.ctx)
	b.run(t, tn.ctx)

	var winner, loser *member
	var err error
	select {
	case err = <-a.result:
		winner, loser = b, a
	case err = <-b.result:
		winner, loser = a, b
	case <-time.After(20 * time.Second):
		t.Fatalf("neither Run failed: a %q, b %q", a.alloc.State(), b.alloc.State())
	}
	if !errors.Is(err, ErrAddressTaken) || !strings.Contains(err.Error(), "address 10.77.0.5 is held by "+winner.who.cert.HostName) {
		t.Fatalf("%s: Run = %v", loser.who.cert.HostName, err)
	}
	t.Logf("loser's error: %v", err)
	tn.remove(loser)
	tn.waitConverged([]*member{winner, bystander}, 15*time.Second)
	if winner.alloc.Current() != ip || loser.alloc.Current().IsValid() {
		t.Fatalf("winner %s, loser %s", winner.alloc.Current(), loser.alloc.Current())
	}

	// A later node asking for the held address fails at once, naming the holder.
	late := tn.newMember(newIdentity(t, tn.owner, "web-c"), t.TempDir(), fixed)
	err = late.alloc.Run(tn.ctx)
	want := fmt.Sprintf("address 10.77.0.5 is held by %s (%s)", winner.who.cert.HostName, winner.who.id)
	if !errors.Is(err, ErrAddressTaken) || err.Error() != want {
		t.Fatalf("late Run = %v, want %q", err, want)
	}
}

func TestDHTFullRangeWaitsForRelease(t *testing.T) {
	tn := newTestNet(t, "tiny", "10.77.0.0/29") // 6 usable
	var ms []*member
	for i := range 7 {
		ms = append(ms, tn.newMember(newIdentity(t, tn.owner, fmt.Sprintf("vm%d", i)), t.TempDir(), nil))
	}
	for _, m := range ms {
		m.run(t, tn.ctx)
	}
	var full *member
	var assigned []*member
	waitFor(t, 30*time.Second, "6 assigned and 1 full", func() bool {
		full, assigned = nil, nil
		for _, m := range ms {
			switch {
			case strings.Contains(m.alloc.State(), "is full: 6 of 6"):
				full = m
			default:
				assigned = append(assigned, m)
			}
		}
		return full != nil && len(assigned) == 6 && distinct(assigned) == nil
	})
	want := "full: CLADNet tiny is full: 6 of 6 addresses claimed"
	if s := full.alloc.State(); s != want {
		t.Errorf("State = %q, want %q", s, want)
	}
	select {
	case err := <-full.result:
		t.Fatalf("the node of a full range stopped: %v", err)
	default:
	}

	leaver := assigned[0]
	freed := leaver.alloc.Current()
	start := time.Now()
	if err := leaver.alloc.Release(tn.ctx); err != nil {
		t.Fatal(err)
	}
	tn.remove(leaver)
	waitFor(t, 10*time.Second, "the waiting node to get the freed address", func() bool {
		return full.alloc.Current() == freed
	})
	t.Logf("freed address %s reassigned %s after the release", freed, time.Since(start).Round(time.Millisecond))
	tn.waitConverged(append(assigned[1:], full), 15*time.Second)
}

// claimOf returns a's current claim.
func claimOf(a *Allocator) *Claim {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.claim
}

// A partition heals: a rival that claimed the same address earlier on the
// other side publishes its claim. The later claimant must move and say why.
func TestDHTHealedPartitionConflict(t *testing.T) {
	tn := newTestNet(t, "lab", "10.77.0.0/24")
	rivalID := newIdentity(t, tn.owner, "rival") // certificate valid from a minute ago
	logs := &syncBuffer{}
	m := tn.newMember(newIdentity(t, tn.owner, "vm1"), t.TempDir(), func(c *AllocatorConfig) {
		c.Logger = testLogger(logs)
	})
	m.run(t, tn.ctx)
	waitFor(t, 15*time.Second, "an address", func() bool { return m.alloc.Current().IsValid() })
	ip := m.alloc.Current()
	mine := claimOf(m.alloc)

	rivalNode, _ := tn.startNode(rivalID)
	_, earlier := signedClaim(t, tn.owner.Spec, rivalID, ip.String(), mine.ClaimedAt.Add(-time.Second), 1, func(c *Claim) {
		c.Expires = time.Now().Add(time.Hour)
	})
	start := time.Now()
	if err := rivalNode.DHT.PutValue(tn.ctx, ClaimKey(tn.owner.Spec.ID, ip), earlier); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the later claimant to move", func() bool {
		cur := m.alloc.Current()
		return cur.IsValid() && cur != ip
	})
	t.Logf("conflict resolved %s after the rival's claim appeared; moved %s -> %s", time.Since(start).Round(time.Millisecond), ip, m.alloc.Current())
	if s := logs.String(); !strings.Contains(s, "lost to a better claim") || !strings.Contains(s, "rival") {
		t.Errorf("the move was not explained:\n%s", s)
	}
	if h, err := tn.quorumHolder(m, ip); err != nil || h != rivalID.id.String() {
		t.Errorf("holder of %s: %s, %v", ip, h, err)
	}
}
