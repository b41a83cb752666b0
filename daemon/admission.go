package daemon

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay"
)

// certAsker reports whether p may read this node's certificate: a peer
// whose own certificate this node verified (a member or operator), or one
// of the bootstrap nodes from the token (relays ask members for their
// certificate before granting a reservation). Outsiders get nothing.
func (m *Member) certAsker(p peer.ID) bool { return m.adm.Verified(p) }

// gossipPeer is the admission check (see overlay.Admission): a peer in the
// members table with a live certificate, or one of the token's bootstrap
// nodes — they hold the CLADNet's revocation list (a relaying bootstrap
// node takes part in its gossip) and hand it to a revoked node that
// starts afresh.
func (m *Member) gossipPeer(p peer.ID) bool {
	if m.mem.Known(p) {
		return true
	}
	for _, b := range m.cfg.Bootstrap {
		if b.ID == p {
			return true
		}
	}
	return false
}

// Admission is the gate of the CLADNet's gossip (peers with a verified
// certificate only).
func (m *Member) Admission() *overlay.Admission { return m.adm }

// introduce asks the introducer (once it runs) to show p this node's
// certificate: p joined the members topic.
func (m *Member) introduce(p peer.ID) {
	if in := m.intro.Load(); in != nil {
		in.Introduce(p)
	}
}
