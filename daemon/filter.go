package daemon

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/filter"
)

// updateFilter hands the packet filter the rules' filter policy as it
// applies to this node's certificate, and every member's certificate host
// name and groups (from the verified announcements). Called on rules and
// members changes; cheap when nothing changed (counters are kept).
func (m *Member) updateFilter() {
	if m.filter == nil {
		return
	}
	if m.mem != nil {
		peers := map[peer.ID]filter.Identity{}
		for _, mem := range m.mem.Members() {
			if mem.Self || mem.Ann == nil || mem.Ann.Cert == nil {
				continue
			}
			peers[mem.ID] = filter.Identity{Host: mem.Ann.Cert.HostName, Groups: mem.Ann.Cert.Groups}
		}
		m.filter.SetPeers(peers)
	}
	self := filter.Identity{}
	if c := m.cert(); c != nil {
		self = filter.Identity{Host: c.HostName, Groups: c.Groups}
	}
	m.filter.SetPolicy(m.rules.Current().Filter, self)
}

// FilterStats is the packet filter's state and counters (nil without a
// data plane).
func (m *Member) FilterStats() *filter.Stats {
	if m.filter == nil {
		return nil
	}
	st := m.filter.Stats()
	return &st
}
