package overlay

import (
	"context"
	"net/netip"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// startWithCert starts a membership of o's CLADNet for a fresh key whose
// certificate sign makes.
func startWithCert(t *testing.T, o *cladnet.Owner, boot []peer.AddrInfo, sign func(peer.ID) *cladnet.Certificate) *testMember {
	t.Helper()
	k, _, _ := crypto.GenerateEd25519Key(nil)
	id, _ := peer.IDFromPrivateKey(k)
	cert := sign(id)
	n, err := node.New(context.Background(), node.Config{Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: boot, PubSub: true})
	if err != nil {
		t.Fatal(err)
	}
	tm := &testMember{name: cert.HostName, node: n}
	t.Cleanup(func() { tm.stop() })
	if tm.mem, err = StartMembership(context.Background(), MembershipConfig{Spec: o.Spec, Cert: cert, Key: k, Node: n,
		Heartbeat: testHeartbeat, MissedHeartbeats: testMissed}); err != nil {
		t.Fatal(err)
	}
	return tm
}

// TestOperatorIsNoMember: an operator-role peer is listed by Operators, not
// by Members/Member/Lookup/MemberClaims, is no IsMember (no packets), stays
// in the table on its heartbeats, and its announcements carrying an overlay
// address are refused.
func TestOperatorIsNoMember(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	signer := func(host string, opts ...cladnet.CertOption) func(peer.ID) *cladnet.Certificate {
		return func(id peer.ID) *cladnet.Certificate {
			c, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, time.Now(), time.Hour, opts...)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	a := startWithCert(t, o, boot, signer("a"))
	op := startWithCert(t, o, boot, signer("operator", cladnet.WithRole(cladnet.RoleOperator)))
	opID := op.node.Host.ID()
	waitFor(t, 10*time.Second, "a to know the operator", func() bool {
		ops := a.mem.Operators()
		return len(ops) == 1 && ops[0].ID == opID
	})
	if ms := a.mem.Members(); len(ms) != 1 || !ms[0].Self {
		t.Errorf("a's members: %v", hostNames(a.mem))
	}
	if _, ok := a.mem.Member(opID); ok || a.mem.IsMember(opID) {
		t.Error("the operator is a member")
	}
	if _, ok := a.mem.Lookup("operator"); ok {
		t.Error("Lookup finds the operator")
	}
	waitFor(t, 10*time.Second, "the operator to know a", func() bool {
		ms := op.mem.Members()
		return len(ms) == 1 && ms[0].Ann.HostName == "a"
	})
	// Heartbeats keep it (several expiry periods).
	time.Sleep(time.Duration(testMissed+2) * testHeartbeat)
	if len(a.mem.Operators()) != 1 {
		t.Fatal("a dropped the heartbeating operator")
	}

	// An operator announcing an overlay address is refused, on gossip and
	// on a sync.
	op.mem.SetOverlayIP(netip.MustParseAddr("10.77.0.7"), time.Now())
	ann, err := op.mem.announcement(KindAnnounce)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ann.Marshal()
	if got := a.mem.validate(context.Background(), opID, &pubsub.Message{Message: &pb.Message{Data: raw, From: []byte(opID)}}); got != pubsub.ValidationReject {
		t.Fatalf("operator with an overlay IP: validator returned %v", got)
	}
	a.mem.apply(context.Background(), ann)
	if a.mem.Rejected()[RejectOperatorIP] < 2 { // gossip, validate, apply
		t.Errorf("rejections: %v", a.mem.Rejected())
	}
	for _, row := range a.mem.Operators() {
		if row.Ann.OverlayIP != "" {
			t.Errorf("operator row with an address: %+v", row.Ann)
		}
	}
	if len(a.mem.MemberClaims()) != 0 {
		t.Errorf("claims: %v", a.mem.MemberClaims())
	}
}

// TestSetCert: a renewed certificate replaces the announced one at once; a
// certificate for another peer is refused.
func TestSetCert(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	sign := func(host string) func(peer.ID) *cladnet.Certificate {
		return func(id peer.ID) *cladnet.Certificate {
			c, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, time.Now(), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	a, b := startWithCert(t, o, boot, sign("a")), startWithCert(t, o, boot, sign("b"))
	bid := b.node.Host.ID()
	waitFor(t, 10*time.Second, "a to see b", func() bool { return a.mem.IsMember(bid) })
	old := b.mem.Cert()
	next, err := cladnet.SignCertificate(o.Key, o.Spec, bid, "b", nil, time.Now(), 2*time.Hour, cladnet.WithNotBefore(old.NotBefore))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.mem.SetCert(sign("b")(a.node.Host.ID())); err == nil {
		t.Fatal("SetCert took another peer's certificate")
	}
	if err := b.mem.SetCert(next); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a to hold b's renewed certificate", func() bool {
		m, ok := a.mem.Member(bid)
		return ok && m.Ann.Cert.Fingerprint() == next.Fingerprint()
	})
}
