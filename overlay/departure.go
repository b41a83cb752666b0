package overlay

import "github.com/libp2p/go-libp2p/core/peer"

// Departure reports how a member that is no longer in the table went, as
// far as this node heard: left (it announced its leave) or lost (a signed
// death notice from a detector). known is false when this node holds
// neither (never heard, or the record aged out after departedFor).
func (m *Membership) Departure(id peer.ID) (left, known bool) {
	if m.detector == nil {
		return false, false
	}
	m.detector.mu.Lock()
	defer m.detector.mu.Unlock()
	d, ok := m.detector.deaths[id]
	return d.left, ok
}
