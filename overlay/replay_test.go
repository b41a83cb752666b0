package overlay

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Attack (L1): an announcement replayed after gossipsub's 120 s seen-cache
// forgot it. Before: once the member had been dropped (silent, expired or
// revoked), its old announcement brought it back, old address and all.
// After: the table remembers the newest sequence number of every member it
// removed and refuses anything not newer.
func TestAttackReplayAfterDrop(t *testing.T) {
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
	old := &Announcement{Kind: KindAnnounce, Seq: 100, Cert: cert, OverlayIP: "10.77.0.5"}
	for _, how := range []string{"silent", "dropped"} {
		t.Run(how, func(t *testing.T) {
			tab := newTable()
			if _, err := tab.apply(id, old, now, false); err != nil {
				t.Fatal(err)
			}
			tab.heartbeat(id, 150, now)
			switch how {
			case "silent":
				if gone := tab.expire(now.Add(time.Minute), now.Add(2*time.Minute), nil); len(gone) != 1 {
					t.Fatal("not expired")
				}
			case "dropped":
				tab.drop(func(*Member) string { return RejectRevoked })
			}
			later := now.Add(10 * time.Minute)
			for _, seq := range []uint64{100, 150} {
				replay := *old
				replay.Seq = seq
				if _, err := tab.apply(id, &replay, later, false); err == nil {
					t.Fatalf("replayed announcement seq %d brought the member back", seq)
				}
			}
			if _, ok := tab.get(id); ok {
				t.Fatal("member back in the table")
			}
			fresh := *old
			fresh.Seq = 151
			if _, err := tab.apply(id, &fresh, later, false); err != nil {
				t.Fatalf("a newer announcement (the member restarted) was refused: %v", err)
			}
		})
	}
}

func TestRememberedIsBounded(t *testing.T) {
	tab := newTable()
	cert := &cladnet.Certificate{NotAfter: time.Now().Add(time.Hour)}
	for i := range maxRemembered + 10 {
		id := peer.ID(fmt.Sprint("p", i))
		tab.members[id] = &Member{ID: id, Ann: &Announcement{Seq: 1, Cert: cert}}
		tab.drop(func(*Member) string { return RejectExpired })
	}
	if len(tab.left) > maxRemembered || len(tab.left) < maxRemembered/2 {
		t.Fatalf("remembered %d peers, bound %d", len(tab.left), maxRemembered)
	}
}
