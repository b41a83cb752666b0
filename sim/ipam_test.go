package sim

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
)

// The address allocator is goroutine code over a blocking DHT, so it runs
// here in a synctest bubble (virtual time for real goroutines) rather than on
// the event engine: the real ipam.Allocator, many at once, over a replicated
// in-memory DHT whose replicas lag and miss writes, with the members' view
// of each other's announced claims lagging too.

// missRate is the probability that a write misses a replica.
var missRate = 0.1

// laggyDHT is a DHT of replicas: a write reaches each replica after up to
// 400 ms and misses one with probability 0.1; a read asks three random
// replicas and returns the best value by the claim validator.
type laggyDHT struct {
	v    *ipam.Validator
	mu   sync.Mutex
	rnd  *rand.Rand
	reps []map[string][]byte
}

func newLaggyDHT(spec *cladnet.Spec, replicas int, seed uint64) *laggyDHT {
	d := &laggyDHT{v: ipam.NewValidator(spec), rnd: rand.New(rand.NewPCG(seed, 1))}
	for range replicas {
		d.reps = append(d.reps, map[string][]byte{})
	}
	return d
}

func (d *laggyDHT) delay(max time.Duration) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.rnd.Int64N(int64(max)))
}

func (d *laggyDHT) store(r int, key string, val []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.reps[r][key]; ok {
		if i, err := d.v.Select(key, [][]byte{val, old}); err != nil || i != 0 {
			return
		}
	}
	d.reps[r][key] = bytes.Clone(val)
}

func (d *laggyDHT) PutValue(ctx context.Context, key string, val []byte, _ ...routing.Option) error {
	if err := d.v.Validate(key, val); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for r := range d.reps {
		d.mu.Lock()
		miss := d.rnd.Float64() < missRate
		d.mu.Unlock()
		if miss {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(d.delay(400 * time.Millisecond))
			d.store(r, key, val)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

func (d *laggyDHT) GetValue(ctx context.Context, key string, _ ...routing.Option) ([]byte, error) {
	time.Sleep(50*time.Millisecond + d.delay(150*time.Millisecond))
	d.mu.Lock()
	var vals [][]byte
	for _, r := range d.rnd.Perm(len(d.reps))[:3] {
		if v, ok := d.reps[r][key]; ok && d.v.Validate(key, v) == nil {
			vals = append(vals, v)
		}
	}
	d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, routing.ErrNotFound
	}
	i, err := d.v.Select(key, vals)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(vals[i]), nil
}

// gossipView is the members' announced claims as every member sees them,
// refreshed every 200 ms (the gossip's lag); each member's view leaves
// itself out.
type gossipView struct {
	mu     sync.Mutex
	claims []ipam.MemberClaim
}

type memberView struct {
	g    *gossipView
	self peer.ID
}

func (v memberView) MemberClaims() []ipam.MemberClaim {
	v.g.mu.Lock()
	defer v.g.mu.Unlock()
	var out []ipam.MemberClaim
	for _, c := range v.g.claims {
		if c.Peer != v.self {
			out = append(out, c)
		}
	}
	return out
}

func (v memberView) MemberIPs() map[netip.Addr]peer.ID {
	out := map[netip.Addr]peer.ID{}
	for _, c := range v.MemberClaims() {
		out[c.IP] = c.Peer
	}
	return out
}

type allocMember struct {
	id     peer.ID
	a      *ipam.Allocator
	cancel context.CancelFunc
	done   chan struct{}
}

// TestIPAMChurnNoDuplicates: 60 real allocators start at once, then 10 % of
// them are replaced per minute for three minutes (half release their
// address, half crash); at no 100 ms step do two live members hold the
// same address.
func TestIPAMChurnNoDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("three virtual minutes of 60 allocators: skipped in -short mode")
	}
	synctest.Test(t, func(t *testing.T) {
		const n = 60
		o, err := cladnet.Create(t.TempDir(), "sim", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		dht := newLaggyDHT(o.Spec, 8, 11)
		g := &gossipView{}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		var members []*allocMember
		start := func(host string) {
			k, _, _ := crypto.GenerateEd25519Key(nil)
			id, _ := peer.IDFromPrivateKey(k)
			cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, time.Now(), 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			a, err := ipam.NewAllocator(ipam.AllocatorConfig{Spec: o.Spec, Cert: cert, Key: k, DHT: dht,
				Members: memberView{g: g, self: id}, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			m := &allocMember{id: id, a: a, cancel: cancel, done: make(chan struct{})}
			go func() { defer close(m.done); _ = a.Run(ctx) }()
			members = append(members, m)
		}
		for i := range n {
			start("m" + itoa(i))
		}
		var worst, steps, dupSteps int
		check := func() {
			seen := map[netip.Addr]int{}
			var claims []ipam.MemberClaim
			for _, m := range members {
				if ip := m.a.Current(); ip.IsValid() {
					seen[ip]++
					claims = append(claims, ipam.MemberClaim{IP: ip, Peer: m.id, ClaimedAt: m.a.ClaimedAt()})
				}
			}
			d := 0
			for _, c := range seen {
				d += c - 1
			}
			worst = max(worst, d)
			steps++
			if d > 0 {
				dupSteps++
			}
			g.mu.Lock()
			changed := !sameClaims(g.claims, claims)
			g.claims = claims
			g.mu.Unlock()
			if changed {
				for _, m := range members {
					m.a.CheckConflicts() // the daemon does this on every table change
				}
			}
		}
		run := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				time.Sleep(100 * time.Millisecond)
				check()
			}
		}
		run(30 * time.Second)
		assigned := 0
		for _, m := range members {
			if m.a.Current().IsValid() {
				assigned++
			}
		}
		if assigned != n {
			t.Fatalf("cold start: %d of %d allocators hold an address after 30 s", assigned, n)
		}
		rnd := rand.New(rand.NewPCG(12, 0))
		replaced := 0
		for k := range 18 { // 10 % of 60 per minute, 3 minutes
			i := rnd.IntN(len(members))
			m := members[i]
			members = append(members[:i], members[i+1:]...)
			if k%2 == 0 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = m.a.Release(ctx)
				cancel()
			}
			m.cancel()
			<-m.done
			start("c" + itoa(k))
			replaced++
			run(10 * time.Second)
		}
		run(30 * time.Second)
		for _, m := range members {
			if !m.a.Current().IsValid() {
				t.Errorf("after churn, a member holds no address (state %s)", m.a.State())
			}
		}
		t.Logf("%d allocators, %d replaced: %d checks, %d with a duplicate, at most %d duplicates at once", n, replaced, steps, dupSteps, worst)
		if dupSteps > 0 {
			t.Fatalf("two live members held one address in %d of %d checks (at most %d at once)", dupSteps, steps, worst)
		}
		for _, m := range members {
			m.cancel()
			<-m.done
		}
	})
}

func sameClaims(a, b []ipam.MemberClaim) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].IP != b[i].IP || a[i].Peer != b[i].Peer || !a[i].ClaimedAt.Equal(b[i].ClaimedAt) {
			return false
		}
	}
	return true
}

func itoa(i int) string { return idOf(i)[1:] }
