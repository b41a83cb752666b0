package overlay

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// FuzzParseAnnouncement feeds arbitrary bytes to the announcement parser
// (gossip and table pulls carry untrusted announcements): it must never
// panic, and whatever it accepts must be for the sending peer, carry a
// certificate of this CLADNet for that peer, and respect the field limits;
// the members table must take it without panicking either.
func FuzzParseAnnouncement(f *testing.F) {
	o, err := cladnet.Create(f.TempDir(), "lab", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		f.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	now := time.Now()
	cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, "vm1", []string{"web"}, now.Add(-time.Minute), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	a := &Announcement{Kind: KindAnnounce, PeerID: id.String(), Cert: cert, HostName: "vm1", State: StateTunneling,
		OverlayIP: "10.77.0.5", ClaimedAt: now.Add(-time.Second), Addrs: []string{"/ip4/127.0.0.1/tcp/7460"}, Seq: 7, Time: now}
	if err := a.Sign(k); err != nil {
		f.Fatal(err)
	}
	good, _ := a.Marshal()
	f.Add(good)
	leave := *a
	leave.Kind, leave.Seq = KindLeave, 8
	_ = leave.Sign(k)
	lb, _ := leave.Marshal()
	f.Add(lb)
	f.Add([]byte(`{"kind":"announce","peerId":"` + id.String() + `","cert":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	var certs certCache
	tab := newTable()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, signed := range []bool{false, true} {
			got, err := parseAnnouncement(data, id, o.Spec, now, parseOpts{transportSigned: signed, certs: &certs})
			if err != nil {
				continue
			}
			pid, perr := peer.Decode(got.PeerID)
			if perr != nil || pid != id {
				t.Fatalf("accepted an announcement for %q from %s", got.PeerID, id)
			}
			if got.Cert == nil || got.Cert.Verify(o.Spec, id, now) != nil {
				t.Fatalf("accepted an announcement whose certificate does not verify: %+v", got.Cert)
			}
			if len(got.Addrs) > 64 || len(data) > MaxAnnouncementSize {
				t.Fatalf("accepted %d addresses / %d bytes", len(got.Addrs), len(data))
			}
			if !signed {
				// Without transport signing the node signature was checked:
				// re-encoding what was accepted must still be valid JSON.
				if _, err := json.Marshal(got); err != nil {
					t.Fatal(err)
				}
			}
			_, _ = tab.apply(id, got, now, false)
		}
	})
}
