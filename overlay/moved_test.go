package overlay

import (
	"net/netip"
	"testing"
)

func TestMovedOrRestartedAndGoneIPs(t *testing.T) {
	a := &Announcement{Kind: KindAnnounce, Instance: "i1", Addrs: []string{"/ip4/7.7.7.12/tcp/7460", "/ip4/7.7.7.1/tcp/7460/p2p/12D3KooWHxt73NXov9aq3SV28Dsp4nrDgYB8UAgPcDs2qjBkn2U2/p2p-circuit"}}
	circuitOnly := &Announcement{Kind: KindAnnounce, Instance: "i1", Addrs: []string{"/ip4/7.7.7.12/tcp/7460"}}
	if movedOrRestarted(a, circuitOnly) {
		t.Error("a change of circuit addresses only counted as a move")
	}
	more := &Announcement{Kind: KindAnnounce, Instance: "i1", Addrs: []string{"/ip4/7.7.7.12/tcp/7460", "/ip4/7.7.7.12/tcp/31002"}}
	if movedOrRestarted(a, more) {
		t.Error("an address more (another observed NAT port) counted as a move")
	}
	moved := &Announcement{Kind: KindAnnounce, Instance: "i1", Addrs: []string{"/ip4/7.7.7.112/tcp/7460"}}
	if !movedOrRestarted(a, moved) {
		t.Error("new direct addresses not counted as a move")
	}
	restarted := &Announcement{Kind: KindAnnounce, Instance: "i2", Addrs: a.Addrs}
	if !movedOrRestarted(a, restarted) {
		t.Error("a new instance not counted as a restart")
	}
	if movedOrRestarted(a, &Announcement{Kind: KindLeave, Instance: "i1"}) {
		t.Error("a leave counted as a move")
	}
	gone := goneIPs(a.Addrs, moved.Addrs)
	if len(gone) != 1 || !gone[netip.MustParseAddr("7.7.7.12")] {
		t.Errorf("goneIPs = %v, want 7.7.7.12 only", gone)
	}
	if g := goneIPs(a.Addrs, append(moved.Addrs, "/ip4/7.7.7.12/udp/7460/quic-v1")); len(g) != 0 {
		t.Errorf("an IP still announced (another transport) counted as gone: %v", g)
	}
}
