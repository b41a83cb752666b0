package overlay

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
)

// An overlay IP in an announcement counts only with the sender's valid
// claim on it, dated as the announcement says.
func TestAnnouncementNeedsItsClaim(t *testing.T) {
	o := newOwner(t, "lab")
	now := time.Now()
	member := func(host string) (crypto.PrivKey, peer.ID, *cladnet.Certificate) {
		k, id := newTestPeer(t)
		c, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return k, id, c
	}
	k, id, cert := member("a")
	ok, _, ocert := member("b")
	claim := func(k crypto.PrivKey, cert *cladnet.Certificate, ip string, at time.Time, mut func(*ipam.Claim)) []byte {
		c := &ipam.Claim{CladnetID: o.Spec.ID, IP: ip, Cert: cert, ClaimedAt: at, Seq: 1, Expires: now.Add(time.Hour)}
		if mut != nil {
			mut(c)
		}
		if err := c.Sign(k); err != nil {
			t.Fatal(err)
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	at := cert.NotBefore.Add(time.Second).UTC()
	good := claim(k, cert, "10.77.0.5", at, nil)
	for _, tc := range []struct {
		name      string
		ip        string
		claimedAt time.Time
		claim     []byte
		want      string // rejection reason, "" to accept
	}{
		{"no address, no claim", "", time.Time{}, nil, ""},
		{"address and its claim", "10.77.0.5", at, good, ""},
		{"address without a claim", "10.77.0.5", at, nil, RejectClaim},
		{"dated 1970 without a claim", "10.77.0.5", time.Unix(86400, 0).UTC(), nil, RejectClaim},
		{"another address's claim", "10.77.0.6", at, good, RejectClaim},
		{"another member's claim", "10.77.0.5", at, claim(ok, ocert, "10.77.0.5", at, nil), RejectClaim},
		{"claim dated otherwise", "10.77.0.5", at.Add(-time.Hour), good, RejectClaim},
		{"released claim", "10.77.0.5", at, claim(k, cert, "10.77.0.5", at, func(c *ipam.Claim) { c.Released = true }), RejectClaim},
		{"expired claim", "10.77.0.5", at, claim(k, cert, "10.77.0.5", at, func(c *ipam.Claim) { c.Expires = now.Add(-time.Second) }), RejectClaim},
		{"claim before the certificate", "10.77.0.5", at.Add(-time.Hour), claim(k, cert, "10.77.0.5", at.Add(-time.Hour), nil), RejectClaim},
		{"garbage claim", "10.77.0.5", at, []byte("{}"), RejectClaim},
	} {
		a := &Announcement{Kind: KindAnnounce, PeerID: id.String(), Cert: cert, HostName: "a", OverlayIP: tc.ip,
			ClaimedAt: tc.claimedAt, Claim: tc.claim, State: StateTunneling, Seq: 1, Time: now}
		if err := a.Sign(k); err != nil {
			t.Fatal(err)
		}
		raw, _ := a.Marshal()
		got, err := ParseAnnouncement(raw, id, o.Spec, now)
		var ve *ValidationError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want == "" && tc.ip != "" && (got.VerifiedClaim() == nil || got.VerifiedClaim().IP != tc.ip):
			t.Errorf("%s: accepted without its verified claim", tc.name)
		case tc.want != "" && (!errors.As(err, &ve) || ve.Reason != tc.want):
			t.Errorf("%s: got %v, want a %s rejection", tc.name, err, tc.want)
		}
	}
}

// A member holds the address its verified claim names; one that announced
// none for longer than AcquireGrace holds none (its claims are extra);
// within the grace, for this node and for strangers, AddressOf cannot tell.
func TestAddressOf(t *testing.T) {
	o := newOwner(t, "lab")
	now := time.Now()
	m := &Membership{cfg: MembershipConfig{Spec: o.Spec}, self: "me", tab: newTable()}
	ann := func(host, ip string, at time.Time) (peer.ID, *Announcement) {
		k, id := newTestPeer(t)
		cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, host, nil, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		a := &Announcement{Kind: KindAnnounce, PeerID: id.String(), Cert: cert, HostName: host, OverlayIP: ip, Seq: 1, Time: now}
		if ip != "" {
			c := &ipam.Claim{CladnetID: o.Spec.ID, IP: ip, Cert: cert, ClaimedAt: cert.NotBefore, Seq: 1, Expires: now.Add(time.Hour)}
			if err := c.Sign(k); err != nil {
				t.Fatal(err)
			}
			a.claim = c
		}
		if _, err := m.tab.apply(id, a, at, false); err != nil {
			t.Fatal(err)
		}
		return id, a
	}
	holder, _ := ann("holder", "10.77.0.5", now)
	fresh, _ := ann("fresh", "", now.Add(-AcquireGrace/2))
	idle, _ := ann("idle", "", now.Add(-AcquireGrace-time.Second))
	_, strangerID := newTestPeer(t)
	for _, tc := range []struct {
		name   string
		p      peer.ID
		addr   string
		member bool
	}{
		{"holder", holder, "10.77.0.5", true},
		{"acquiring", fresh, "", false},
		{"announcing none", idle, "", true},
		{"stranger", strangerID, "", false},
		{"self", "me", "", false},
	} {
		addr, member := m.AddressOf(o.Spec.ID, tc.p)
		if member != tc.member || (tc.addr != "" && addr.String() != tc.addr) || (tc.addr == "" && addr.IsValid()) {
			t.Errorf("%s: AddressOf = %v, %v; want %q, %v", tc.name, addr, member, tc.addr, tc.member)
		}
	}
	if _, member := m.AddressOf("another-cladnet", holder); member {
		t.Error("AddressOf answered for another CLADNet")
	}
}
