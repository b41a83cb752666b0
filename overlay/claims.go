package overlay

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/ipam"
)

// claimDates remembers, per member claim (peer, address, ClaimedAt), the
// time this node orders it by (ipam.Dated): a claim that turns up long after
// the time it states, on an address another member already holds, is dated
// when this node first saw it.
type claimDates struct {
	mu        sync.Mutex
	dated     map[string]time.Time
	backdated atomic.Uint64
}

// maxClaimDates bounds the map; beyond it, it starts over (claims then are
// dated by their own ClaimedAt again, as on a fresh start).
const maxClaimDates = 1 << 14

func claimKey(id peer.ID, c *ipam.Claim) string {
	return string(id) + "|" + c.IP + "|" + c.ClaimedAt.UTC().Format(time.RFC3339Nano)
}

// dateClaim records the first sighting of a's verified claim.
func (m *Membership) dateClaim(id peer.ID, a *Announcement) {
	c := a.claim
	if c == nil || a.Kind != KindAnnounce {
		return
	}
	key := claimKey(id, c)
	d := &m.dates
	d.mu.Lock()
	_, seen := d.dated[key]
	d.mu.Unlock()
	if seen {
		return
	}
	now := time.Now()
	contested := false
	for _, mem := range m.tab.list() {
		if mem.ID != id && m.liveClaim(mem, now) != nil && mem.Ann.claim.IP == c.IP {
			contested = true
			break
		}
	}
	t, backdated := ipam.Dated(c.ClaimedAt, now, contested)
	d.mu.Lock()
	if d.dated == nil || len(d.dated) >= maxClaimDates {
		d.dated = map[string]time.Time{}
	}
	if _, seen := d.dated[key]; !seen {
		d.dated[key] = t
		if backdated {
			d.backdated.Add(1)
			m.log.Warn("a member claims an address another member holds, with a claim that turned up long after the time it states: dating it by when it was first seen, so it cannot take the address",
				"ip", c.IP, "host", a.HostName, "peer", id, "claimedAt", c.ClaimedAt.Format(time.RFC3339), "firstSeen", now.UTC().Format(time.RFC3339))
		}
	}
	d.mu.Unlock()
}

// dateOf returns the time claim c of member id is ordered by.
func (m *Membership) dateOf(id peer.ID, c *ipam.Claim) time.Time {
	m.dates.mu.Lock()
	defer m.dates.mu.Unlock()
	if t, ok := m.dates.dated[claimKey(id, c)]; ok {
		return t
	}
	return c.ClaimedAt
}

// liveClaim returns mem's verified claim if its lease still runs.
func (m *Membership) liveClaim(mem Member, now time.Time) *ipam.Claim {
	if mem.Ann == nil || mem.Ann.claim == nil || !now.Before(mem.Ann.claim.Expires) {
		return nil
	}
	return mem.Ann.claim
}

// Backdated counts member claims dated by their first sighting rather than
// by the time they state (see ipam.Dated): attempts to take a held address
// with a backdated claim.
func (m *Membership) Backdated() uint64 { return m.dates.backdated.Load() }

// attachClaim adds the allocator's signed claim to an announcement of our
// own overlay IP, with the claim's own ClaimedAt.
func (m *Membership) attachClaim(a *Announcement) {
	if a.OverlayIP == "" || m.cfg.ClaimRecord == nil {
		return
	}
	rec := m.cfg.ClaimRecord()
	if len(rec) == 0 {
		return
	}
	c, err := ipam.ParseClaim(rec)
	if err != nil || c.IP != a.OverlayIP {
		return
	}
	a.Claim, a.ClaimedAt = rec, c.ClaimedAt
}

// AcquireGrace is how long a member may announce no overlay address while
// its claims still count: long enough to claim, confirm and announce one.
// After that, a member that announces none holds none, and any claim of
// its is an extra one (ipam.ErrExtraClaim).
const AcquireGrace = 30 * time.Second

// AddressOf implements ipam.HolderFunc for this CLADNet: the one address
// live member p holds (its verified claim), invalid when it has announced
// none for longer than AcquireGrace; member is false for this node, for
// peers not in the table and within the grace.
func (m *Membership) AddressOf(cladnetID string, p peer.ID) (addr netip.Addr, member bool) {
	if m == nil || cladnetID != m.cfg.Spec.ID || p == m.self {
		return netip.Addr{}, false
	}
	mem, ok := m.tab.get(p)
	if !ok || mem.Operator() || !m.live(mem) {
		return netip.Addr{}, false
	}
	now := time.Now()
	if c := m.liveClaim(mem, now); c != nil {
		return c.Addr(), true
	}
	if mem.Ann.OverlayIP == "" && !mem.noAddrSince.IsZero() && now.Sub(mem.noAddrSince) > AcquireGrace {
		return netip.Addr{}, true
	}
	return netip.Addr{}, false
}

// MemberClaims implements ipam.ClaimView: the addresses other live members
// announce with a verified, unexpired claim, dated as this node orders
// them. An address announced without one never gets here (the
// announcement is refused).
func (m *Membership) MemberClaims() []ipam.MemberClaim {
	var out []ipam.MemberClaim
	now := time.Now()
	for _, mem := range m.Members() {
		if mem.Self {
			continue
		}
		c := m.liveClaim(mem, now)
		if c == nil {
			continue
		}
		out = append(out, ipam.MemberClaim{IP: c.Addr(), Peer: mem.ID, ClaimedAt: m.dateOf(mem.ID, c), Bound: c.Bound()})
	}
	return out
}

// MemberIPs implements ipam.MemberView: the overlay addresses other live
// members hold by verified claims; where two announce one address, the
// better claim (ipam.Better) has it. It is also the data plane's routing
// table.
func (m *Membership) MemberIPs() map[netip.Addr]peer.ID {
	best := map[netip.Addr]ipam.MemberClaim{}
	for _, c := range m.MemberClaims() {
		if cur, ok := best[c.IP]; !ok || ipam.Better(c, cur) {
			best[c.IP] = c
		}
	}
	out := make(map[netip.Addr]peer.ID, len(best))
	for ip, c := range best {
		out[ip] = c.Peer
	}
	return out
}
