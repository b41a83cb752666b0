package daemon

import (
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestPickRelays(t *testing.T) {
	var relays []peer.AddrInfo
	for i := range 10 {
		relays = append(relays, peer.AddrInfo{ID: peer.ID(fmt.Sprintf("relay-%d", i))})
	}
	if got := pickRelays("m", relays[:2], 3); len(got) != 2 {
		t.Fatalf("fewer relays than n: got %d, want all 2", len(got))
	}
	a := pickRelays("member-a", relays, 3)
	if len(a) != 3 {
		t.Fatalf("got %d relays, want 3", len(a))
	}
	// Stable: the same member picks the same relays whatever the order.
	rev := make([]peer.AddrInfo, len(relays))
	for i, r := range relays {
		rev[len(relays)-1-i] = r
	}
	b := pickRelays("member-a", rev, 3)
	for i := range a {
		if a[i].ID != b[i].ID {
			t.Fatalf("pick depends on the order: %v vs %v", a, b)
		}
	}
	// A relay that dies moves only members that had it.
	dead := a[0].ID
	var rest []peer.AddrInfo
	for _, r := range relays {
		if r.ID != dead {
			rest = append(rest, r)
		}
	}
	c := pickRelays("member-a", rest, 3)
	if c[0].ID != a[1].ID || c[1].ID != a[2].ID {
		t.Fatalf("after %s died: %v, want %s and %s kept", dead, c, a[1].ID, a[2].ID)
	}
	// Members spread: over 50 members every relay is picked by someone.
	used := map[peer.ID]int{}
	for i := range 50 {
		for _, r := range pickRelays(peer.ID(fmt.Sprintf("m%d", i)), relays, 3) {
			used[r.ID]++
		}
	}
	if len(used) != len(relays) {
		t.Fatalf("relays picked: %v, want all %d used", used, len(relays))
	}
}
