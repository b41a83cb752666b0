package overlay

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/sim"
)

func signedDeath(t *testing.T, k crypto.PrivKey, by, dead peer.ID, seq uint64, at time.Time) []byte {
	t.Helper()
	d := &DeathNotice{Kind: KindDeath, PeerID: dead.String(), Seq: seq, By: by.String(), Time: at}
	b, err := d.signedBytes()
	if err != nil {
		t.Fatal(err)
	}
	if d.Signature, err = k.Sign(b); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(d)
	return raw
}

// TestDeathNoticeRefuted: a member declared dead while alive refutes with a
// newer announcement and is back in every table; a crashed member is lost
// by probing, well within 10 s.
func TestDeathNoticeRefuted(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	as := []*testMember{startMember(t, o, o, "a", boot), startMember(t, o, o, "b", boot), startMember(t, o, o, "c", boot)}
	a, b, c := as[0], as[1], as[2]
	all := func() bool {
		for _, m := range as {
			if len(m.mem.Members()) != 3 {
				return false
			}
		}
		return true
	}
	waitFor(t, 15*time.Second, "every member to see all three", all)
	bid := b.node.Host.ID()
	held, _ := a.mem.Member(bid)
	a.mem.detector.Confirm(bid.String(), held.Ann.Seq) // as if b had failed a's probes
	if a.mem.IsMember(bid) {
		t.Fatal("a still lists b after confirming its death")
	}
	waitFor(t, 10*time.Second, "b to refute its death and be back everywhere", func() bool {
		mem, ok := a.mem.Member(bid)
		return ok && mem.Ann.Seq > held.Ann.Seq && c.mem.IsMember(bid)
	})

	// A crash: c stops without a word.
	cid := c.node.Host.ID()
	crashed := time.Now()
	c.mem.Close()
	_ = c.node.Close()
	c.mem = nil
	waitFor(t, 15*time.Second, "a and b to lose the crashed c", func() bool {
		return !a.mem.IsMember(cid) && !b.mem.IsMember(cid)
	})
	t.Logf("crash seen by both after %s", time.Since(crashed).Round(10*time.Millisecond))
}

// TestDeathToldOnPing: a member held dead by one node only (its notice
// reached no one else — as when it spread while the member was cut off)
// pings that node in its probe round and is handed the notice, refutes, and
// is back — without an anti-entropy round (an hour apart here).
func TestDeathToldOnPing(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	slow := func(c *MembershipConfig) {
		c.Liveness.DigestInterval, c.Liveness.FastDigestInterval, c.Liveness.FastDigests = time.Hour, time.Hour, -1
	}
	as := []*testMember{startMemberTuned(t, o, o, "a", boot, slow), startMemberTuned(t, o, o, "b", boot, slow), startMemberTuned(t, o, o, "c", boot, slow)}
	a, b, c := as[0], as[1], as[2]
	waitFor(t, 15*time.Second, "every member to see all three", func() bool {
		for _, m := range as {
			if len(m.mem.Members()) != 3 {
				return false
			}
		}
		return true
	})
	bid, cid := b.node.Host.ID(), c.node.Host.ID()
	// Until b's announcements settle (its addresses), a newer one of its
	// own would bring it back anyway.
	var held Member
	waitFor(t, 15*time.Second, "b's announcements to settle at a", func() bool {
		h, _ := a.mem.Member(bid)
		time.Sleep(2 * time.Second)
		held, _ = a.mem.Member(bid)
		return h.Ann.Seq == held.Ann.Seq
	})
	notice := signedDeath(t, c.node.Host.Peerstore().PrivKey(cid), cid, bid, held.Ann.Seq, time.Now())
	if _, ok := a.mem.applyDeath(notice, time.Now()); !ok || a.mem.IsMember(bid) {
		t.Fatal("a did not drop b on c's death notice")
	}
	told := time.Now()
	waitFor(t, 15*time.Second, "b, told by a when it pinged, to refute and be back at a", func() bool {
		mem, ok := a.mem.Member(bid)
		return ok && mem.Ann.Seq > held.Ann.Seq
	})
	if st := a.mem.detector.det.Stats(); st.ToldDead == 0 {
		t.Fatalf("b came back without a handing it the notice: %+v", st)
	}
	t.Logf("b back at a %s after a dropped it", time.Since(told).Round(10*time.Millisecond))

	// A notice of b's death at its older record, reaching b again (by
	// anti-entropy, a push, the topic): b announces again — its holder
	// may lack the newer record — but not on every copy.
	back, _ := a.mem.Member(bid)
	b.mem.applyDeath(notice, time.Now())
	waitFor(t, 10*time.Second, "b to announce again on a stale notice of its death", func() bool {
		mem, ok := a.mem.Member(bid)
		return ok && mem.Ann.Seq > back.Ann.Seq
	})
	again, _ := b.mem.Member(bid)
	for range 5 {
		b.mem.applyDeath(notice, time.Now())
	}
	time.Sleep(2 * time.Second)
	if now, _ := b.mem.Member(bid); now.Ann.Seq != again.Ann.Seq {
		t.Fatalf("b announced again on every copy of a stale notice (seq %d → %d); want once per %s", again.Ann.Seq, now.Ann.Seq, staleDeathEvery)
	}
}

// TestLazyCrashDetected: with lazy tunnels members probe only the members
// they are connected to — but a crashed member's connections end at once,
// so it stays a probe target for a while and is still found dead.
func TestLazyCrashDetected(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	lazy := func(c *MembershipConfig) { c.FullMeshMax = -1 }
	as := []*testMember{startMemberTuned(t, o, o, "a", boot, lazy), startMemberTuned(t, o, o, "b", boot, lazy), startMemberTuned(t, o, o, "c", boot, lazy)}
	a, b, c := as[0], as[1], as[2]
	waitFor(t, 15*time.Second, "every member to see all three", func() bool {
		for _, m := range as {
			if len(m.mem.Members()) != 3 || m.mem.FullMesh() {
				return false
			}
		}
		return true
	})
	cid := c.node.Host.ID()
	waitFor(t, 15*time.Second, "a and b connected to c", func() bool {
		return len(a.node.Host.Network().ConnsToPeer(cid)) > 0 && len(b.node.Host.Network().ConnsToPeer(cid)) > 0
	})
	crashed := time.Now()
	c.mem.Close()
	_ = c.node.Close()
	c.mem = nil
	waitFor(t, 15*time.Second, "a and b to lose the crashed c", func() bool {
		return !a.mem.IsMember(cid) && !b.mem.IsMember(cid)
	})
	t.Logf("crash seen by both after %s", time.Since(crashed).Round(10*time.Millisecond))

	// The idle-close side ("bye", IdleClosed) is not checked here: with
	// two members left, each one's rendezvous redials the other at once
	// (a lazy node keeps min(8, N-1) member connections), which races any
	// check; e2e TestLazyTunnels checks the connection gone.
}

func TestParseDeath(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	a := startMember(t, o, o, "a", boot)
	self := a.node.Host.ID()
	key := a.node.Host.Peerstore().PrivKey(self)
	stranger, _, _ := crypto.GenerateEd25519Key(nil)
	sid, _ := peer.IDFromPrivateKey(stranger)
	victimKey, _, _ := crypto.GenerateEd25519Key(nil)
	victim, _ := peer.IDFromPrivateKey(victimKey)
	now := time.Now()
	good := signedDeath(t, key, self, victim, 7, now)
	forged := append([]byte(nil), good...)
	var d DeathNotice
	_ = json.Unmarshal(forged, &d)
	d.Seq = 8 // not what was signed
	forged, _ = json.Marshal(d)
	for _, tc := range []struct {
		name   string
		raw    []byte
		reason string
	}{
		{"valid, by this node", good, ""},
		{"edited after signing", forged, RejectSignature},
		{"by a stranger", signedDeath(t, stranger, sid, victim, 7, now), RejectSender},
		{"dated in the future", signedDeath(t, key, self, victim, 7, now.Add(time.Hour)), RejectField},
		{"too old", signedDeath(t, key, self, victim, 7, now.Add(-time.Hour)), RejectField},
		{"of the detector itself", signedDeath(t, key, self, self, 7, now), RejectMalformed},
		{"no sequence number", signedDeath(t, key, self, victim, 0, now), RejectMalformed},
		{"not JSON", []byte("{"), RejectMalformed},
		{"oversized", make([]byte, maxDeathSize+1), RejectSize},
	} {
		_, _, err := a.mem.parseDeath(tc.raw, now)
		var ve *ValidationError
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.reason != "" && (!errors.As(err, &ve) || ve.Reason != tc.reason):
			t.Errorf("%s: error %v, want reason %s", tc.name, err, tc.reason)
		}
	}
}

// TestAnnouncementWireSize keeps the simulator's price of a signed
// announcement (sim.AnnouncementSize) and of a death notice (sim.DeathSize)
// honest: a real one, with a real certificate and loopback addresses, is
// no bigger, and not under half of it.
func TestAnnouncementWireSize(t *testing.T) {
	boot := startBootstrap(t)
	o := newOwner(t, "lab")
	a := startMember(t, o, o, "a-host-name", boot)
	ann, err := a.mem.announcement(KindAnnounce)
	if err != nil {
		t.Fatal(err)
	}
	ann.OverlayIP, ann.ClaimedAt = "10.77.0.12", time.Now()
	b, _ := ann.Marshal()
	self := a.node.Host.ID()
	other, _, _ := crypto.GenerateEd25519Key(nil)
	oid, _ := peer.IDFromPrivateKey(other)
	death := signedDeath(t, a.node.Host.Peerstore().PrivKey(self), self, oid, uint64(time.Now().UnixNano()), time.Now())
	t.Logf("announcement %d B (%d addresses), death notice %d B", len(b), len(ann.Addrs), len(death))
	for _, c := range []struct {
		what       string
		real, sims int
	}{{"announcement", len(b), sim.AnnouncementSize}, {"death notice", len(death), sim.DeathSize}} {
		if c.real > c.sims || 2*c.real < c.sims {
			t.Errorf("a real %s is %d B; the simulator prices it at %d B: update sim", c.what, c.real, c.sims)
		}
	}
}
