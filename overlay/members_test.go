package overlay

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

func TestTableHeartbeatsAndLiveness(t *testing.T) {
	tab := newTable()
	id := peer.ID("member")
	t0 := time.Now()
	cert := &cladnet.Certificate{NotAfter: t0.Add(time.Hour)}
	if tab.heartbeat(id, 5, t0) {
		t.Fatal("a heartbeat admitted an unknown peer")
	}
	if changed, err := tab.apply(id, &Announcement{Kind: KindAnnounce, Seq: 10, Cert: cert}, t0, false); err != nil || !changed {
		t.Fatalf("apply: %v %v", changed, err)
	}
	// An older heartbeat does not refresh; a newer one does.
	if !tab.heartbeat(id, 9, t0.Add(time.Second)) {
		t.Fatal("heartbeat of a member refused")
	}
	if m, _ := tab.get(id); !m.LastSeen.Equal(t0) {
		t.Fatal("an old heartbeat refreshed the member")
	}
	tab.heartbeat(id, 11, t0.Add(2*time.Second))
	if m, _ := tab.get(id); !m.LastSeen.Equal(t0.Add(2 * time.Second)) {
		t.Fatal("a new heartbeat did not refresh the member")
	}
	// Silent but connected: alive. Silent and disconnected: dropped.
	late := t0.Add(time.Minute)
	if gone := tab.expire(late.Add(-10*time.Second), late, func(peer.ID) bool { return true }); len(gone) != 0 {
		t.Fatalf("a connected member was dropped: %v", gone)
	}
	later := late.Add(time.Minute)
	if gone := tab.expire(later.Add(-10*time.Second), later, func(peer.ID) bool { return false }); len(gone) != 1 {
		t.Fatalf("a silent, disconnected member was kept")
	}
	// After a leave, older messages cannot bring the member back.
	tab.apply(id, &Announcement{Kind: KindAnnounce, Seq: 20, Cert: cert}, later, false)
	tab.apply(id, &Announcement{Kind: KindLeave, Seq: 21, Cert: cert}, later, false)
	if _, err := tab.apply(id, &Announcement{Kind: KindAnnounce, Seq: 20, Cert: cert}, later, false); err == nil {
		t.Fatal("an announcement older than the leave was applied")
	}
	if tab.heartbeat(id, 22, later) {
		t.Fatal("a heartbeat refreshed a member that left")
	}
}

func TestCertCacheNeverTrustsAnEditedCertificate(t *testing.T) {
	o, err := cladnet.Create(t.TempDir(), "lab", "", "", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, id := newTestPeer(t)
	now := time.Now()
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, "vm", nil, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var c certCache
	if err := c.verify(cert, o.Spec, id, now); err != nil {
		t.Fatal(err)
	}
	if err := c.verify(cert, o.Spec, id, now); err != nil {
		t.Fatalf("cached certificate refused: %v", err)
	}
	edited := *cert
	edited.NotAfter = cert.NotAfter.Add(24 * time.Hour)
	if err := c.verify(&edited, o.Spec, id, now); err == nil {
		t.Fatal("an edited certificate passed through the cache")
	}
	if err := c.verify(cert, o.Spec, id, now.Add(2*time.Hour)); err == nil {
		t.Fatal("an expired certificate passed through the cache")
	}
}

func newTestPeer(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}
