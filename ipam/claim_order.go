package ipam

import (
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FreshWindow is how long after its ClaimedAt a claim may first be seen and
// still be dated by its ClaimedAt when it contests an address already held.
//
// ClaimedAt is chosen by the claimant: the validator only bounds it to
// [certificate NotBefore, now + MaxClockSkew], so a member whose certificate
// is a year old could otherwise sign a claim "made" a year ago and take any
// younger member's address. A genuine earlier claim is visible at once (the
// claimant announces it within a heartbeat, and the later claimant's confirm
// read would have found it), so a claim that turns up long after the time it
// states, on an address this node already knows another live claim on, is
// dated when this node first saw it. That time is this node's own
// observation: the claimant cannot backdate it.
const FreshWindow = time.Minute

// Dated returns the time a claim is ordered by in a conflict: claimedAt,
// unless the claim contested an address this node already knew to be held
// by another peer when it first saw it (firstSeen) and was then older than
// FreshWindow — a backdated claim (or one from the far side of a long
// partition) — in which case it is firstSeen, and backdated is true.
func Dated(claimedAt, firstSeen time.Time, contested bool) (t time.Time, backdated bool) {
	if contested && firstSeen.Sub(claimedAt) > FreshWindow {
		return firstSeen, true
	}
	return claimedAt, false
}

// MemberClaim is an overlay address a member announces with a verified claim
// (carried in its signed announcement), as this node orders it.
type MemberClaim struct {
	IP   netip.Addr
	Peer peer.ID
	// ClaimedAt is the claim's time as this node dates it (see Dated).
	ClaimedAt time.Time
	// Bound says the claimant's certificate binds this address (cladnet
	// issue --ip): such a claim beats every unbound one.
	Bound bool
}

// Better reports whether claim a beats claim b of another peer on the same
// address: a claim on the address its certificate binds beats any other,
// then the earliest (dated) claim wins, then the lowest raw peer ID — the
// DHT's Select rule, with dates this node can vouch for.
func Better(a, b MemberClaim) bool {
	if a.Bound != b.Bound {
		return a.Bound
	}
	if !a.ClaimedAt.Equal(b.ClaimedAt) {
		return a.ClaimedAt.Before(b.ClaimedAt)
	}
	return string(a.Peer) < string(b.Peer)
}
