package overlay

import (
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Member is one row of the members table.
type Member struct {
	Ann       *Announcement
	ID        peer.ID
	FirstSeen time.Time
	LastSeen  time.Time
	Self      bool
	hbSeq     uint64 // newest heartbeat applied
	// noAddrSince is when the member last started announcing no overlay
	// address (zero while it announces one): see Membership.AddressOf.
	noAddrSince time.Time
}

// Operator reports whether the row is an operator (certificate role
// operator): it takes part in the gossip but is no member.
func (m Member) Operator() bool { return m.Ann != nil && m.Ann.Cert.RoleName() == cladnet.RoleOperator }

// table is the members table: the newest valid announcement of each live
// member. Safe for concurrent use.
type table struct {
	mu      sync.RWMutex
	members map[peer.ID]*Member
	// left remembers the newest sequence number of each member that left
	// or was dropped (silent, expired, revoked), so a delayed or replayed
	// older announcement — gossipsub's seen-cache forgets after 120 s —
	// cannot bring it back; at most maxRemembered peers.
	left map[peer.ID]uint64
}

// maxRemembered bounds table.left.
const maxRemembered = 1 << 16

// remember records id's newest sequence number on removal. The caller
// holds t.mu.
func (t *table) remember(id peer.ID, m *Member) {
	if _, ok := t.left[id]; !ok && len(t.left) >= maxRemembered {
		for k := range t.left { // forget an arbitrary eighth
			if len(t.left) <= maxRemembered-maxRemembered/8 {
				break
			}
			delete(t.left, k)
		}
	}
	t.left[id] = max(m.Ann.Seq, m.hbSeq, t.left[id])
}

func newTable() *table {
	return &table{members: map[peer.ID]*Member{}, left: map[peer.ID]uint64{}}
}

// apply records an announcement; it reports whether the table changed in a
// way others care about (a join, a leave, or different contents).
func (t *table) apply(id peer.ID, a *Announcement, now time.Time, self bool) (changed bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq, ok := t.left[id]; ok && a.Seq <= seq {
		return false, errStale
	}
	m, ok := t.members[id]
	if ok && a.Seq <= m.Ann.Seq {
		if a.Seq == m.Ann.Seq {
			m.LastSeen = now
		}
		return false, errStale
	}
	if a.Kind == KindLeave {
		t.left[id] = a.Seq
		delete(t.members, id)
		return ok, nil
	}
	delete(t.left, id)
	if !ok {
		t.members[id] = &Member{Ann: a, ID: id, FirstSeen: now, LastSeen: now, Self: self}
		if a.OverlayIP == "" {
			t.members[id].noAddrSince = now
		}
		return true, nil
	}
	switch {
	case a.OverlayIP != "":
		m.noAddrSince = time.Time{}
	case m.noAddrSince.IsZero():
		m.noAddrSince = now
	}
	changed = !sameContent(m.Ann, a)
	m.Ann, m.LastSeen = a, now
	return changed, nil
}

// sameContent compares what matters to consumers, ignoring seq and time.
func sameContent(a, b *Announcement) bool {
	if a.OverlayIP != b.OverlayIP || !a.ClaimedAt.Equal(b.ClaimedAt) || a.State != b.State || a.HostName != b.HostName || len(a.Addrs) != len(b.Addrs) {
		return false
	}
	for i := range a.Addrs {
		if a.Addrs[i] != b.Addrs[i] {
			return false
		}
	}
	ac, bc := a.Cloud, b.Cloud
	if len(ac.PrivateIPs) != len(bc.PrivateIPs) {
		return false
	}
	for i := range ac.PrivateIPs {
		if ac.PrivateIPs[i] != bc.PrivateIPs[i] {
			return false
		}
	}
	ac.PrivateIPs, bc.PrivateIPs = nil, nil
	return ac.ProviderName == bc.ProviderName && ac.RegionID == bc.RegionID &&
		ac.AvailabilityZoneID == bc.AvailabilityZoneID && ac.VirtualNetworkID == bc.VirtualNetworkID &&
		ac.SubnetID == bc.SubnetID && ac.PublicIP == bc.PublicIP
}

// heartbeat refreshes a known member; it reports whether id is one.
func (t *table) heartbeat(id peer.ID, seq uint64, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.members[id]
	if !ok {
		return false
	}
	if seq > m.Ann.Seq && seq > m.hbSeq {
		m.hbSeq, m.LastSeen = seq, now
	}
	return true
}

// expire drops members not heard from since cutoff, and members whose
// certificate has expired; it returns the dropped IDs. A member we hold a
// connection to is alive, whatever its heartbeats (connected may be nil).
func (t *table) expire(cutoff, now time.Time, connected func(peer.ID) bool) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []peer.ID
	for id, m := range t.members {
		if m.Self {
			continue
		}
		if connected != nil && connected(id) {
			m.LastSeen = now
		}
		if m.LastSeen.Before(cutoff) || !now.Before(m.Ann.Cert.NotAfter) {
			t.remember(id, m)
			delete(t.members, id)
			gone = append(gone, id)
		}
	}
	return gone
}

// dropped describes a member removed by drop.
type dropped struct {
	reason, host string
	notAfter     time.Time
}

// drop removes the members for which why returns a reason.
func (t *table) drop(why func(*Member) string) map[peer.ID]dropped {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone map[peer.ID]dropped
	for id, m := range t.members {
		if r := why(m); r != "" {
			if gone == nil {
				gone = map[peer.ID]dropped{}
			}
			gone[id] = dropped{reason: r, host: m.Ann.HostName, notAfter: m.Ann.Cert.NotAfter}
			t.remember(id, m)
			delete(t.members, id)
		}
	}
	return gone
}

func (t *table) get(id peer.ID) (Member, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	m, ok := t.members[id]
	if !ok {
		return Member{}, false
	}
	return *m, true
}

// list returns a copy of the table sorted by host name, then peer ID.
// size is the number of members in the table (this node included).
func (t *table) size() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.members)
}

func (t *table) list() []Member {
	t.mu.RLock()
	out := make([]Member, 0, len(t.members))
	for _, m := range t.members {
		out = append(out, *m)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ann.HostName != out[j].Ann.HostName {
			return out[i].Ann.HostName < out[j].Ann.HostName
		}
		return out[i].ID < out[j].ID
	})
	return out
}
