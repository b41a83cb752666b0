package paths

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

// Peer is what the policy needs of a member.
type Peer struct {
	ID        peer.ID
	Host      string
	OverlayIP string
	Cloud     cost.CloudInfo
	// Addrs are the libp2p addresses the member announces.
	Addrs []string
}

// Path is the policy's view of one member: the cost engine's decision and
// the member's declared addresses.
type Path struct {
	Decision  cost.Decision
	LAN       bool // neither side declared a VPC: a plain LAN
	Host      string
	OverlayIP string

	privateIPs map[netip.Addr]struct{}
	publicIP   netip.Addr
	reach      string // the member's declared and announced addresses
}

// AllowPrivate reports whether the member's private addresses may carry
// traffic.
func (p Path) AllowPrivate() bool { return p.Decision.Private || p.LAN }

// WantsPrivate reports whether the rules chose the private path (a plain
// LAN has no preference: libp2p's ranking already tries private addresses
// first).
func (p Path) WantsPrivate() bool { return p.Decision.Private }

// OnChosen reports whether a stream to remote is where the policy wants it.
func (p Path) OnChosen(remote ma.Multiaddr) bool {
	if p.WantsPrivate() {
		return p.onPrivate(remote)
	}
	return p.allowed(remote)
}

// Scope is cb-network's name for the path remote is on: intra on the
// private path, inter otherwise.
func (p Path) Scope(remote ma.Multiaddr) string {
	if p.onPrivate(remote) && (p.AllowPrivate() || !p.onPublic(remote)) {
		return cost.ScopeIntra
	}
	return cost.ScopeInter
}

// preferred: the private path where it is allowed, the public one elsewhere.
func (p Path) preferred(a ma.Multiaddr) bool {
	if p.AllowPrivate() {
		return p.onPrivate(a)
	}
	return p.onPublic(a)
}

func (p Path) allowed(a ma.Multiaddr) bool {
	return p.onPublic(a) || (p.AllowPrivate() && p.onPrivate(a))
}

// Policy holds the path decision for every member. Allow and Score are
// safe for concurrent use from the start; set Host (and Stream, Rehome)
// before the first Enforce.
type Policy struct {
	// Host is the libp2p host whose connections Enforce moves.
	Host host.Host
	// Stream returns the path of the live packet stream to p, if any. Nil:
	// the host's first connection to p stands for it (no data plane).
	Stream func(p peer.ID) (forward.PathInfo, bool)
	// Rehome, if set, is called after a member was moved, so the packet
	// stream follows the new connection at once.
	Rehome func(p peer.ID)
	// Move replaces the real move (tests).
	Move func(p peer.ID, v Path)
	Log  *slog.Logger

	table atomic.Pointer[map[peer.ID]Path]

	mu          sync.Mutex
	privateOnly map[peer.ID]bool // peers being dialled on their private path
	retry       map[peer.ID]retryAt
	moving      map[peer.ID]bool
	wg          sync.WaitGroup
}

// New returns an empty policy: every peer is allowed until Update.
func New(log *slog.Logger) *Policy {
	if log == nil {
		log = slog.Default()
	}
	return &Policy{Log: log, privateOnly: map[peer.ID]bool{}, retry: map[peer.ID]retryAt{}, moving: map[peer.ID]bool{}}
}

// Update decides every member's path from the rules and both sides' cloud
// information, and returns the members whose decision or addresses changed
// (their backoff is reset: they are tried at once).
func (pol *Policy) Update(rules *cost.Rules, self cost.CloudInfo, members []Peer) []peer.ID {
	next := make(map[peer.ID]Path, len(members))
	for _, m := range members {
		v := Path{
			Decision:  cost.Decide(rules, self, m.Cloud),
			LAN:       self.VirtualNetworkID == "" && m.Cloud.VirtualNetworkID == "",
			Host:      m.Host,
			OverlayIP: m.OverlayIP,
		}
		for _, s := range m.Cloud.PrivateIPs {
			if ip, err := netip.ParseAddr(s); err == nil {
				if v.privateIPs == nil {
					v.privateIPs = map[netip.Addr]struct{}{}
				}
				v.privateIPs[ip.Unmap()] = struct{}{}
			}
		}
		if ip, err := netip.ParseAddr(m.Cloud.PublicIP); err == nil {
			v.publicIP = ip.Unmap()
		}
		v.reach = fmt.Sprint(m.Cloud.PrivateIPs, m.Cloud.PublicIP, m.Addrs)
		next[m.ID] = v
	}
	// A member whose decision or addresses changed is tried at once: an
	// address added at run time may be the one the chosen path needs.
	var changed []peer.ID
	if old := pol.table.Load(); old != nil {
		for id, v := range next {
			if o, ok := (*old)[id]; ok && (o.AllowPrivate() != v.AllowPrivate() || o.WantsPrivate() != v.WantsPrivate() || o.reach != v.reach) {
				changed = append(changed, id)
			}
		}
	}
	pol.mu.Lock()
	for _, id := range changed {
		delete(pol.retry, id)
	}
	pol.mu.Unlock()
	pol.table.Store(&next)
	return changed
}

// Get returns the policy's view of p.
func (pol *Policy) Get(p peer.ID) (Path, bool) {
	t := pol.table.Load()
	if t == nil {
		return Path{}, false
	}
	v, ok := (*t)[p]
	return v, ok
}

// Allow is the connection gater's hook: may a be dialled (or accepted) for p?
// Peers that are not members (bootstrap nodes, relays) are always allowed.
func (pol *Policy) Allow(p peer.ID, a ma.Multiaddr) bool {
	v, member := pol.Get(p)
	if !member {
		return true
	}
	pol.mu.Lock()
	only := pol.privateOnly[p]
	pol.mu.Unlock()
	if only {
		return v.onPrivate(a)
	}
	return v.allowed(a)
}

// Score ranks connections to p for the packet stream: paths the policy
// allows first, then the chosen kind, direct before relayed, TCP before
// QUIC (it carries packets best: bench/dataplane.md).
func (pol *Policy) Score(p peer.ID, c network.Conn) int {
	return pol.score(p, c.RemoteMultiaddr(), overlay.PathOf(c))
}

func (pol *Policy) score(p peer.ID, remote ma.Multiaddr, path forward.PathInfo) int {
	score := 0
	v, member := pol.Get(p)
	if !member || v.allowed(remote) {
		score += 8
	}
	if member && v.preferred(remote) {
		score += 4
	}
	if !path.Relayed {
		score += 2
	}
	if path.Transport == "tcp" {
		score++
	}
	return score
}
