package daemon

import (
	"crypto/sha256"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// pickRelays chooses up to n of the member relays for member self by
// rendezvous hashing: each relay scores sha256(self, relay), the n highest
// win. Every member gets a different, stable pick, so reservations spread
// over the relays, and a relay dying or joining moves only the members that
// had (or now get) it.
func pickRelays(self peer.ID, relays []peer.AddrInfo, n int) []peer.AddrInfo {
	if len(relays) <= n {
		return relays
	}
	score := func(r peer.ID) []byte {
		h := sha256.Sum256([]byte(string(self) + "\x00" + string(r)))
		return h[:]
	}
	sorted := slices.Clone(relays)
	slices.SortFunc(sorted, func(a, b peer.AddrInfo) int { return slices.Compare(score(b.ID), score(a.ID)) })
	return sorted[:n]
}
