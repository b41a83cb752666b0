package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/daemon"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
)

// signClaim signs a claim on ip by key with cert, dated at, for lease.
func signClaim(t *testing.T, key crypto.PrivKey, cert *cladnet.Certificate, cladnetID string, ip netip.Addr, at time.Time, lease time.Duration) []byte {
	t.Helper()
	c := &ipam.Claim{CladnetID: cladnetID, IP: ip.String(), Cert: cert, ClaimedAt: at, Seq: 1, Expires: time.Now().Add(lease)}
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// put writes a record through n's DHT (to its closest peers: here the
// bootstrap node), ignoring refusals.
func put(n *node.Node, key string, val []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.DHT.PutValue(ctx, key, val)
}

// outsider is a plain libp2p node with no certificate that stores whatever
// it is given (its own validator accepts any claim).
func (l *lab) outsider(t *testing.T) *node.Node {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"},
		Bootstrap:  []peer.AddrInfo{l.info},
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator().WithUnknown()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	eventually(t, 10*time.Second, "the outsider to reach the bootstrap", func() error {
		if n.DHT.RoutingTable().Size() == 0 {
			return fmt.Errorf("empty routing table")
		}
		return nil
	})
	return n
}

// One member claims the whole range: a member with a valid certificate
// signs a claim on every address of the /24 (dated its certificate's
// NotBefore, 30-day lease). Before the fix every claim was stored and a
// newcomer found the range full; now each DHT node keeps one live claim per
// peer per CLADNet, so the newcomer gets an address and the honest members
// keep theirs.
func TestAttackClaimWholeRange(t *testing.T) {
	t.Parallel()
	l := newLab(t, "")
	ms := []*member{l.member("a"), l.member("b"), l.member("c")}
	for _, m := range ms {
		m.start()
	}
	eventually(t, 30*time.Second, "three members converge", converged(ms))
	held := map[string]netip.Addr{}
	for _, m := range ms {
		held[m.name] = m.ip()
	}

	// The thief holds one address like any member, announced with its
	// claim, and claims every other one besides.
	var own []byte
	th := l.thief(t, "thief", time.Hour, func() []byte { return own })
	p, _ := l.owner.Spec.Prefix()
	mine := p.Addr().Next()
	for mine == held["a"] || mine == held["b"] || mine == held["c"] {
		mine = mine.Next()
	}
	own = signClaim(t, th.key, th.cert, l.owner.Spec.ID, mine, th.cert.NotBefore, ipam.MaxLease-time.Minute)
	put(th.node, ipam.ClaimKey(l.owner.Spec.ID, mine), own)
	th.mem.SetOverlayIP(mine, th.cert.NotBefore)
	eventually(t, 10*time.Second, "the members to see the thief at its address", func() error {
		for _, m := range ms {
			if p, ok := m.m.Membership().MemberIPs()[mine]; !ok || p != th.id {
				return fmt.Errorf("%s does not see the thief at %s", m.name, mine)
			}
		}
		return nil
	})
	start := time.Now()
	n := 0
	for ip := p.Addr().Next(); p.Contains(ip) && ip != netip.MustParseAddr("10.77.0.255"); ip = ip.Next() {
		if ip == mine {
			continue
		}
		put(th.node, ipam.ClaimKey(l.owner.Spec.ID, ip), signClaim(t, th.key, th.cert, l.owner.Spec.ID, ip, th.cert.NotBefore, ipam.MaxLease-time.Minute))
		n++
	}
	t.Logf("the thief published %d claims in %s", n, time.Since(start).Round(time.Millisecond))
	total, byPeer := l.boot.Store.Claims(l.owner.Spec.ID)
	if got := byPeer[th.id.String()]; got > ipam.DefaultPerPeer {
		t.Fatalf("the bootstrap stores %d claims of the thief (of %d in all), want at most %d", got, total, ipam.DefaultPerPeer)
	}
	refused := l.boot.Store.Refused()[ipam.RefusePeer]
	if refused < uint64(n-len(ms)) {
		t.Fatalf("the bootstrap refused %d of the thief's %d claims as extra: %v", refused, n, l.boot.Store.Refused())
	}

	late := l.member("newcomer")
	late.start()
	eventually(t, 30*time.Second, "the newcomer gets an address", func() error {
		if !late.ip().IsValid() {
			return fmt.Errorf("no address (%s)", late.m.Status().IPAMState)
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	for _, m := range ms {
		if m.ip() != held[m.name] {
			t.Errorf("%s lost %s (now %v)", m.name, held[m.name], m.ip())
		}
	}
	t.Logf("bootstrap: %d claims stored, %d of the thief's; refused %v; newcomer at %s", total, byPeer[th.id.String()], l.boot.Store.Refused(), late.ip())
}

// M3, a planted claim: an outsider (no certificate of this CLADNet) signs
// a claim on a live member's address with a certificate of its own making
// and writes it to the bootstrap node. Before the fix the bootstrap stored
// it (it checked only the signature), it displaced the genuine claim there,
// and a newcomer asking for the address found it free. Now the bootstrap,
// which knows the owner key, refuses it; and where a bootstrap cannot
// check (one opted in with --any-cladnet), a read that finds only claims
// the member refuses counts as unknown, not free.
func TestAttackPlantedClaim(t *testing.T) {
	t.Parallel()
	for _, any := range []bool{false, true} {
		t.Run(fmt.Sprintf("any-cladnet=%v", any), func(t *testing.T) {
			t.Parallel()
			l := newLab(t, "")
			if any {
				l.restartBootstrap(t, daemon.BootstrapConfig{AnyCladnet: true})
			}
			v := l.member("victim")
			v.start()
			eventually(t, 20*time.Second, "the victim gets an address", func() error {
				if !v.ip().IsValid() {
					return fmt.Errorf("no address")
				}
				return nil
			})
			ip := v.ip()
			vid, _ := peer.IDFromPrivateKey(v.key)

			out := l.outsider(t)
			forger, _ := cladnet.Create(t.TempDir(), "lab", "10.77.0.0/24", "", "", time.Now())
			k, _, _ := crypto.GenerateEd25519Key(nil)
			id, _ := peer.IDFromPrivateKey(k)
			fake, err := cladnet.SignCertificate(forger.Key, forger.Spec, id, "planted", nil, time.Now().Add(-2*time.Hour), 3*time.Hour,
				cladnet.WithNotBefore(time.Now().Add(-2*time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			fake.CladnetID = l.owner.Spec.ID // claims to be of the lab's CLADNet; the signature is not the owner's
			put(out, ipam.ClaimKey(l.owner.Spec.ID, ip), signClaim(t, k, fake, l.owner.Spec.ID, ip, fake.NotBefore, time.Hour))

			holder := l.boot.Store.Holder(l.owner.Spec.ID, ip)
			switch {
			case !any && holder != vid.String():
				t.Fatalf("the bootstrap holds %q's claim on %s, want the victim's", holder, ip)
			case any && holder != id.String():
				t.Fatalf("an --any-cladnet bootstrap cannot check the certificate: it should hold the planted claim, holds %q", holder)
			}
			late := l.member("newcomer")
			late.want = ip
			err = late.tryStart()
			if err == nil {
				eventually(t, 20*time.Second, "the newcomer to give up the victim's address", func() error {
					if late.ip() == ip {
						return fmt.Errorf("the newcomer took %s", ip)
					}
					if st := late.m.Status().IPAMState; !strings.Contains(st, "taken") && !strings.Contains(st, "acquiring") {
						return fmt.Errorf("newcomer IPAM %q", st)
					}
					return nil
				})
			}
			time.Sleep(time.Second)
			if late.m != nil && late.ip() == ip {
				t.Fatalf("the newcomer took the victim's %s", ip)
			}
			if v.ip() != ip {
				t.Fatalf("the victim lost %s", ip)
			}
			t.Logf("bootstrap holder of %s: %s (victim %s); newcomer: %v, IPAM %q, unknown reads %d", ip, holder, vid, err,
				late.m.Status().IPAMState, late.m.UnknownClaimReads())
		})
	}
}

// M3, a flood: an outsider writes many large claims of CLADNets of its
// own making to a bootstrap node. Before the fix a bootstrap stored all of
// them (10,000 claims of ~8 KiB raised its RSS from 31 to 178 MB); now it
// stores none of a CLADNet it does not serve and, opted in to any
// CLADNet, none over 2 KiB and at most DefaultPerPeer per peer per
// CLADNet. The cap is asserted by counting the stored records.
func TestAttackClaimFlood(t *testing.T) {
	t.Parallel()
	for _, any := range []bool{false, true} {
		t.Run(fmt.Sprintf("any-cladnet=%v", any), func(t *testing.T) {
			t.Parallel()
			l := newLab(t, "")
			if any {
				l.restartBootstrap(t, daemon.BootstrapConfig{AnyCladnet: true})
			}
			out := l.outsider(t)
			forger, _ := cladnet.Create(t.TempDir(), "junk", "10.99.0.0/16", "", "", time.Now())
			k, _, _ := crypto.GenerateEd25519Key(nil)
			id, _ := peer.IDFromPrivateKey(k)
			big := make([]string, 100)
			for i := range big {
				big[i] = fmt.Sprintf("group-%062d", i) // ~6.5 KiB of groups: an ~8 KiB claim
			}
			fat, err := cladnet.SignCertificate(forger.Key, forger.Spec, id, "junk", big, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			slim, err := cladnet.SignCertificate(forger.Key, forger.Spec, id, "junk", nil, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			const each = 150
			ip := netip.MustParseAddr("10.99.0.1")
			for i := 0; i < each; i++ {
				put(out, ipam.ClaimKey(forger.Spec.ID, ip), signClaim(t, k, fat, forger.Spec.ID, ip, time.Now(), time.Hour))
				ip = ip.Next()
				put(out, ipam.ClaimKey(forger.Spec.ID, ip), signClaim(t, k, slim, forger.Spec.ID, ip, time.Now(), time.Hour))
				ip = ip.Next()
			}
			total, _ := l.boot.Store.Claims(forger.Spec.ID)
			want := 0
			if any {
				want = ipam.DefaultPerPeer
			}
			if total > want {
				t.Fatalf("the bootstrap stores %d of the %d flooded claims, want at most %d (refused %v)", total, 2*each, want, l.boot.Store.Refused())
			}
			if any && (l.boot.Store.Refused()[ipam.RefuseSize] == 0 || l.boot.Store.Refused()[ipam.RefusePeer] == 0) {
				t.Fatalf("refusals not counted by reason: %v", l.boot.Store.Refused())
			}
			t.Logf("flood of %d claims (%d of ~8 KiB): %d stored, refused %v", 2*each, each, total, l.boot.Store.Refused())
		})
	}
}

// restartBootstrap replaces the lab's bootstrap node (before any member
// started) with one configured by cfg (key, listen address and logger are
// filled in).
func (l *lab) restartBootstrap(t *testing.T, cfg daemon.BootstrapConfig) {
	t.Helper()
	l.boot.Stop()
	cfg.Key, _, _ = crypto.GenerateEd25519Key(nil)
	cfg.ListenIPs, cfg.Logger = []string{"127.0.0.1"}, quiet()
	b, err := daemon.StartBootstrap(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	l.boot, l.info = b, peer.AddrInfo{ID: b.Node.Host.ID(), Addrs: b.Node.Host.Addrs()}
}
