package overlay

import (
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
)

// BenchmarkParseAnnouncement measures what verifying the claim an
// announcement carries (H1) adds to its validation: the claim's signature
// and its certificate's (no certificate cache: the worst case, a
// first sight).
func BenchmarkParseAnnouncement(b *testing.B) {
	o, err := cladnet.Create(b.TempDir(), "lab", "10.77.0.0/24", cladnet.RuleBasic, "", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for _, withIP := range []bool{false, true} {
		name := "no-address"
		if withIP {
			name = "address-with-claim"
		}
		b.Run(name, func(b *testing.B) {
			k, id := newTestPeer(&testing.T{})
			cert, err := cladnet.SignCertificate(o.Key, o.Spec, id, "a", nil, now, time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			a := &Announcement{Kind: KindAnnounce, PeerID: id.String(), Cert: cert, HostName: "a", State: StateTunneling, Seq: 1, Time: now,
				Addrs: []string{"/ip4/127.0.0.1/tcp/40000", "/ip4/127.0.0.1/udp/40000/quic-v1"}}
			if withIP {
				c := &ipam.Claim{CladnetID: o.Spec.ID, IP: "10.77.0.5", Cert: cert, ClaimedAt: cert.NotBefore, Seq: 1, Expires: now.Add(time.Hour)}
				if err := c.Sign(k); err != nil {
					b.Fatal(err)
				}
				a.Claim, _ = c.Marshal()
				a.OverlayIP, a.ClaimedAt = "10.77.0.5", c.ClaimedAt
			}
			if err := a.Sign(k); err != nil {
				b.Fatal(err)
			}
			raw, _ := a.Marshal()
			b.ResetTimer()
			for range b.N {
				if _, err := ParseAnnouncement(raw, id, o.Spec, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(raw)), "wire-bytes")
		})
	}
}
