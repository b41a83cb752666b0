package overlay

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// startMemberWith starts a member whose certificate lives ttl and that asks
// revoked about certificates.
func startMemberWith(t *testing.T, o *cladnet.Owner, host string, boot []peer.AddrInfo, ttl time.Duration, revoked func(*cladnet.Certificate) bool, refuse func(peer.ID) bool) *testMember {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot, PubSub: true, Refuse: refuse})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMember{name: host, node: n}
	t.Cleanup(func() { tm.stop() })
	// A long heartbeat timeout: only enforcement may drop anyone here.
	tm.mem, err = StartMembership(context.Background(), MembershipConfig{Spec: o.Spec, Cert: cert, Key: k, Node: n,
		Heartbeat: testHeartbeat, MissedHeartbeats: 100, Revoked: revoked})
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestMembershipDropsRevokedAndExpired(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	var list atomic.Pointer[cladnet.Revocations]
	revoked := func(c *cladnet.Certificate) bool { return list.Load().RevokedCert(c) }
	refuse := func(p peer.ID) bool { return list.Load().RevokedPeer(p) }
	// Certificates are valid to the second: 10 s gives 9-10 s of life,
	// room for a loaded machine to converge before d expires.
	ms := []*testMember{
		startMemberWith(t, o, "a", boot, time.Hour, revoked, refuse),
		startMemberWith(t, o, "b", boot, time.Hour, revoked, refuse),
		startMemberWith(t, o, "c", boot, time.Hour, nil, nil), // c does not know it is revoked
		startMemberWith(t, o, "d", boot, 10*time.Second, revoked, refuse),
	}
	a, b, c, d := ms[0], ms[1], ms[2], ms[3]
	waitFor(t, 10*time.Second, "a and b to see c and d", func() bool {
		return a.mem.IsMember(c.node.Host.ID()) && b.mem.IsMember(c.node.Host.ID()) && a.mem.IsMember(d.node.Host.ID())
	})

	cid := c.node.Host.ID()
	list.Store(&cladnet.Revocations{CladnetID: o.Spec.ID, Version: 1, Entries: []cladnet.Revocation{{PeerID: cid.String()}}})
	// IsMember is false at once, before the table sweep.
	if a.mem.IsMember(cid) {
		t.Fatal("a still calls revoked c a member")
	}
	start := time.Now()
	a.mem.DropRevoked()
	waitFor(t, 5*time.Second, "a and b to drop c and close its connections", func() bool {
		_, ina := a.mem.Member(cid)
		_, inb := b.mem.Member(cid)
		return !ina && !inb && a.node.Host.Network().Connectedness(cid) != network.Connected
	})
	t.Logf("revoked member dropped by both after %s", time.Since(start))
	for _, m := range []*testMember{a, b} {
		if m.mem.Rejected()[RejectRevoked] == 0 {
			t.Errorf("%s did not count the revoked member it dropped", m.name)
		}
	}
	// c's announcements (it cannot even connect now) are refused and counted.
	before := a.mem.Rejected()[RejectRevoked]
	ann, err := c.mem.announcement(KindAnnounce)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ann.Marshal()
	if got := a.mem.validate(context.Background(), cid, &pubsub.Message{Message: &pb.Message{Data: raw, From: []byte(cid)}}); got != pubsub.ValidationReject {
		t.Fatalf("revoked announcement: validator returned %v", got)
	}
	if a.mem.Rejected()[RejectRevoked] != before+1 {
		t.Fatal("revoked announcement not counted")
	}
	if _, in := a.mem.Member(cid); in {
		t.Fatal("revoked c came back")
	}
	// a's gater refuses c (the dial may look successful on c's side for a
	// moment: the listener refuses after the handshake).
	_ = c.node.Host.Connect(context.Background(), peer.AddrInfo{ID: a.node.Host.ID(), Addrs: a.node.Host.Addrs()})
	waitFor(t, 2*time.Second, "a to hold no connection to revoked c", func() bool {
		return a.node.Host.Network().Connectedness(cid) != network.Connected
	})
	if a.mem.IsMember(cid) {
		t.Fatal("revoked c is a member again")
	}

	// d's certificate expires while it is connected and heartbeating.
	did := d.node.Host.ID()
	waitFor(t, 15*time.Second, "a and b to drop d when its certificate expired", func() bool {
		return !a.mem.IsMember(did) && !b.mem.IsMember(did)
	})
	waitFor(t, 3*time.Second, "the expired member to be counted and cut off", func() bool {
		_, in := a.mem.Member(did)
		return !in && a.mem.Rejected()[RejectExpired] > 0
	})
}
