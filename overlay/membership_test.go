package overlay

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

const (
	testHeartbeat = 300 * time.Millisecond
	testMissed    = 3
)

type testMember struct {
	name string
	node *node.Node
	mem  *Membership
}

func startBootstrap(t *testing.T) []peer.AddrInfo {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return []peer.AddrInfo{{ID: n.Host.ID(), Addrs: n.Host.Addrs()}}
}

// startMember starts a member of o's CLADNet; owner may differ from o to
// forge a certificate (signed by a foreign key but claiming o's CLADNet).
func startMember(t *testing.T, o, signer *cladnet.Owner, host string, boot []peer.AddrInfo) *testMember {
	t.Helper()
	return startMemberTuned(t, o, signer, host, boot, nil)
}

// startMemberTuned is startMember with tune, if set, changing the
// membership's config before it starts.
func startMemberTuned(t *testing.T, o, signer *cladnet.Owner, host string, boot []peer.AddrInfo, tune func(*MembershipConfig)) *testMember {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	cert, err := cladnet.SignCertificate(signer.Key, o.Spec, id, host, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot, PubSub: true})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMember{name: host, node: n}
	t.Cleanup(func() { tm.stop() })
	if signer != o {
		startForger(t, tm, o.Spec, cert, k)
		return tm
	}
	cfg := MembershipConfig{Spec: o.Spec, Cert: cert, Key: k, Node: n, Heartbeat: testHeartbeat, MissedHeartbeats: testMissed}
	if tune != nil {
		tune(&cfg)
	}
	tm.mem, err = StartMembership(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// startForger publishes well-formed, node-signed announcements carrying a
// certificate that the CLADNet owner never signed, as a modified client
// would (a real Membership refuses its own forged certificate).
func startForger(t *testing.T, tm *testMember, spec *cladnet.Spec, cert *cladnet.Certificate, k crypto.PrivKey) {
	t.Helper()
	topic, err := tm.node.PubSub.Join(TopicName(spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; sub.Cancel(); topic.Close() })
	go func() {
		defer close(done)
		d := drouting.NewRoutingDiscovery(tm.node.DHT)
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			if peers, err := d.FindPeers(ctx, RendezvousKey(spec.ID)); err == nil {
				for p := range peers {
					if p.ID != tm.node.Host.ID() {
						_ = tm.node.Host.Connect(ctx, p)
					}
				}
			}
			a := &Announcement{Kind: KindAnnounce, PeerID: tm.node.Host.ID().String(), Cert: cert,
				HostName: cert.HostName, State: StateTunneling, Seq: seq, Time: time.Now()}
			if err := a.Sign(k); err == nil {
				b, _ := a.Marshal()
				_ = topic.Publish(ctx, b)
			}
			select {
			case <-ctx.Done():
			case <-time.After(testHeartbeat):
			}
		}
	}()
}

func (tm *testMember) stop() {
	if tm.mem != nil {
		tm.mem.Close()
	}
	tm.node.Close()
}

func hostNames(m *Membership) []string {
	var out []string
	for _, mem := range m.Members() {
		out = append(out, mem.Ann.HostName)
	}
	sort.Strings(out)
	return out
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
	return 0
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func newOwner(t *testing.T, name string) *cladnet.Owner {
	t.Helper()
	o, err := cladnet.Create(t.TempDir(), name, "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestMembershipTwoCladnetsOneBootstrap(t *testing.T) {
	boot := startBootstrap(t)
	a, b := newOwner(t, "alpha"), newOwner(t, "beta")
	start := time.Now()
	var as, bs []*testMember
	for i := 0; i < 5; i++ {
		as = append(as, startMember(t, a, a, fmt.Sprintf("a%d", i), boot))
	}
	for i := 0; i < 2; i++ {
		bs = append(bs, startMember(t, b, b, fmt.Sprintf("b%d", i), boot))
	}
	forged := startMember(t, a, b, "forger", boot)
	wantA := []string{"a0", "a1", "a2", "a3", "a4"}
	wantB := []string{"b0", "b1"}
	d := waitFor(t, 20*time.Second, "every node to see exactly its CLADNet", func() bool {
		for _, m := range as {
			if !equal(hostNames(m.mem), wantA) {
				return false
			}
		}
		for _, m := range bs {
			if !equal(hostNames(m.mem), wantB) {
				return false
			}
		}
		return true
	})
	t.Logf("join-to-visible: all 7 nodes saw their full CLADNet %s after start (%s after the last node started)", time.Since(start), d)

	// The forger is connected to the CLADNet's members (it found them in the
	// DHT) but must never be listed, and its announcements are counted as rejected.
	waitFor(t, 10*time.Second, "a member to reject the forger's announcements", func() bool {
		for _, m := range as {
			if m.mem.Rejected()[RejectCert] > 0 {
				return true
			}
		}
		return false
	})
	for _, m := range as {
		if m.mem.IsMember(forged.node.Host.ID()) {
			t.Fatalf("%s lists the forger", m.name)
		}
	}

	// A graceful leave disappears from every table, well before the timeout.
	leaver := as[4]
	leftAt := time.Now()
	if err := leaver.mem.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	leaver.stop()
	waitFor(t, testHeartbeat*testMissed, "the leaver to vanish", func() bool {
		for _, m := range as[:4] {
			if m.mem.IsMember(leaver.node.Host.ID()) {
				return false
			}
		}
		return true
	})
	t.Logf("leave visible after %s", time.Since(leftAt))

	// A node killed without leaving is dropped after the heartbeat timeout.
	killed := as[3]
	killedAt := time.Now()
	killed.stop()
	waitFor(t, 10*time.Second, "the killed node to be dropped", func() bool {
		for _, m := range as[:3] {
			if m.mem.IsMember(killed.node.Host.ID()) {
				return false
			}
		}
		return true
	})
	if el := time.Since(killedAt); el < testHeartbeat*(testMissed-1) {
		t.Errorf("killed node dropped after %s, before the timeout of %s", el, testHeartbeat*testMissed)
	}
	for _, m := range as[:3] {
		if got := hostNames(m.mem); !equal(got, []string{"a0", "a1", "a2"}) {
			t.Errorf("%s sees %v", m.name, got)
		}
	}
}
