package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

// IP returns the current overlay address (invalid while none).
func (m *Member) IP() netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ip
}

// APIAddr returns where the local API listens ("" if disabled).
func (m *Member) APIAddr() string {
	if m.apiAddr == nil {
		return ""
	}
	return m.apiAddr.String()
}

// BackdatedClaims counts other peers' claims on this node's address that
// the DHT selected but that turned up long after the time they state: the
// node kept its address (ipam.Allocator.BackdatedClaims).
func (m *Member) BackdatedClaims() uint64 { return m.alloc.BackdatedClaims() }

// UnknownClaimReads counts DHT reads of an address that found only claims
// this node refuses: the address was not taken as free.
func (m *Member) UnknownClaimReads() uint64 { return m.alloc.UnknownReads() }

// Membership exposes the members table (tests, tools).
func (m *Member) Membership() *overlay.Membership { return m.mem }

// Status implements api.Backend.
func (m *Member) Status() api.Status {
	st := api.Status{
		PeerID:    m.node.Host.ID().String(),
		HostName:  m.cfg.Token.Cert.HostName,
		CladnetID: m.spec.ID,
		Cladnet:   m.spec.Name,
		CIDR:      m.spec.CIDR,
		RuleType:  m.spec.RuleType,
		IPAMState: m.alloc.State(),
		State:     overlay.StateConfiguring,
		Members:   len(m.mem.Members()),
		Started:   m.started.UTC(),
		Uptime:    time.Since(m.started).Truncate(time.Second).String(),
		Version:   api.Version,
		CertUntil: m.cert().NotAfter,
		Rejected:  m.mem.Rejected(),
		Health:    m.health(),
	}
	if self, ok := m.mem.Member(m.node.Host.ID()); ok {
		st.State = self.Ann.State
	}
	for _, a := range m.node.Addrs() {
		st.Addrs = append(st.Addrs, a.String())
	}
	if ip := m.IP(); ip.IsValid() {
		st.IP = ip.String()
		st.IPv4CIDR = netip.PrefixFrom(ip, m.prefix.Bits()).String()
	}
	if m.dev != nil {
		st.Device = m.dev.Name()
		st.DataPlane = overlay.DataPlaneUp
		if m.DataPlaneDown() {
			st.DataPlane = overlay.DataPlaneDown
		}
	}
	st.IdentityConflict = identityConflictStatus(m.mem.IdentityConflicts())
	st.Tunnels = "lazy"
	if m.mem.FullMesh() {
		st.Tunnels = "full-mesh"
	}
	return st
}

// identityConflictStatus is the status line for the other nodes found with
// this node's identity ("" if none).
func identityConflictStatus(cs []overlay.IdentityConflict) string {
	if len(cs) == 0 {
		return ""
	}
	c := cs[len(cs)-1]
	if c.Newer {
		return c.Error()
	}
	at := ""
	if c.OtherAddr != "" {
		at = "at " + c.OtherAddr + ", "
	}
	return fmt.Sprintf("another node with this peer ID (%sstarted %s) started after this one and was told to stop; this node keeps its address: a cloned VM or a token used twice? Issue it its own token (cbnode cladnet issue)",
		at, c.OtherStarted.UTC().Format(time.RFC3339))
}

func (m *Member) toPeer(mem overlay.Member) api.Peer {
	a := *mem.Ann // shared with the members table: copy before changing
	if mem.Self {
		a.Cloud = m.mem.Cloud() // newer than the last announcement
	}
	p := api.Peer{
		CladnetID: m.spec.ID,
		HostID:    mem.ID.String(),
		HostName:  a.HostName,
		IP:        a.OverlayIP,
		State:     a.State,
		Details:   a.Cloud,
		Self:      mem.Self,
		Addrs:     a.Addrs,
		Groups:    a.Cert.Groups,
		FirstSeen: mem.FirstSeen.UTC(),
		LastSeen:  mem.LastSeen.UTC(),
		CertUntil: a.Cert.NotAfter,
	}
	if ip, err := netip.ParseAddr(a.OverlayIP); err == nil {
		p.IPv4CIDR = netip.PrefixFrom(ip, m.prefix.Bits()).String()
	}
	if len(a.Cloud.PrivateIPs) > 0 {
		p.HostPrivateIP = a.Cloud.PrivateIPs[0]
	}
	p.HostPublicIP = a.Cloud.PublicIP
	if mem.Self {
		return p
	}
	if rtt := m.node.Host.Peerstore().LatencyEWMA(mem.ID); rtt > 0 {
		p.RTTms = float64(rtt.Microseconds()) / 1000
	}
	if hp, ok := m.node.HolePunchResult(mem.ID); ok {
		p.HolePunch = &hp
	}
	p.PathHistory = m.history.Get(mem.ID)
	for _, c := range m.node.Host.Network().ConnsToPeer(mem.ID) {
		p.Conns = append(p.Conns, c.RemoteMultiaddr().String())
	}
	if m.engine != nil {
		if st, ok := m.engine.Stats(mem.ID); ok {
			p.Link = &st
		}
	}
	return p
}

// Peers implements api.Backend.
func (m *Member) Peers() []api.Peer {
	mems := m.mem.Members()
	out := make([]api.Peer, 0, len(mems))
	for _, mem := range mems {
		out = append(out, m.toPeer(mem))
	}
	return out
}

// Peer implements api.Backend.
func (m *Member) Peer(hostID string) (api.Peer, bool) {
	p, err := m.FindPeer(hostID)
	return p, err == nil
}

// FindPeer implements api.PeerFinder: an ambiguous host name is an
// api.ErrConflict listing the candidates.
func (m *Member) FindPeer(hostID string) (api.Peer, error) {
	mem, err := m.find(hostID)
	if err != nil {
		return api.Peer{}, err
	}
	return m.toPeer(mem), nil
}

// find looks a member up by peer ID, overlay IP or host name, with API
// errors: not found, or a conflict for a host name two members carry.
func (m *Member) find(key string) (overlay.Member, error) {
	mem, err := m.mem.Find(key)
	switch {
	case errors.Is(err, overlay.ErrAmbiguousName):
		return overlay.Member{}, fmt.Errorf("%w: %w", err, api.ErrConflict)
	case err != nil:
		return overlay.Member{}, fmt.Errorf("%q is not a member (give an overlay IP, host name or peer ID): %w", key, api.ErrNotFound)
	}
	return mem, nil
}

// SetDetails implements api.Backend: a node changes only its own details,
// field by field (see cost.CloudPatch).
func (m *Member) SetDetails(hostID string, patch cost.CloudPatch) (api.Peer, error) {
	mem, ok := m.mem.Lookup(hostID)
	if !ok {
		return api.Peer{}, fmt.Errorf("peer %q: %w", hostID, api.ErrNotFound)
	}
	if !mem.Self {
		return api.Peer{}, fmt.Errorf("peer %s is not this node: a node changes only its own details (ask that node's API): %w", hostID, api.ErrForbidden)
	}
	next := patch.Apply(m.mem.Cloud())
	if err := next.Validate(); err != nil {
		return api.Peer{}, fmt.Errorf("%v: %w", err, api.ErrBadInput)
	}
	if err := m.mem.SetCloud(next); err != nil {
		return api.Peer{}, fmt.Errorf("%v: %w", err, api.ErrBadInput)
	}
	if err := saveCloud(m.stateDir, m.cfg.Cloud, m.mem.Cloud()); err != nil {
		m.log.Warn("cloud details will not survive a restart", "err", err)
	}
	return m.toPeer(mem), nil
}

// Ping implements api.Backend: an RTT over the overlay's data plane.
func (m *Member) Ping(ctx context.Context, target string) (api.PingResult, error) {
	if m.engine == nil {
		return api.PingResult{}, fmt.Errorf("this node runs without a data plane (--no-tun): %w", api.ErrBadInput)
	}
	mem, err := m.find(target)
	if err != nil {
		return api.PingResult{}, err
	}
	if mem.Self {
		return api.PingResult{}, fmt.Errorf("%q is this node: %w", target, api.ErrBadInput)
	}
	rtt, path, err := m.engine.Ping(ctx, mem.ID)
	if err != nil {
		return api.PingResult{}, fmt.Errorf("ping %s (%s): %w", mem.Ann.HostName, mem.Ann.OverlayIP, err)
	}
	return api.PingResult{
		Target: target, HostName: mem.Ann.HostName, IP: mem.Ann.OverlayIP,
		RTTms: float64(rtt.Microseconds()) / 1000, Relayed: path.Relayed,
		Remote: path.Remote, Transport: path.Transport,
	}, nil
}

// CLADNet implements api.Backend.
func (m *Member) CLADNet() api.CLADNetSpecification { return api.SpecOf(m.spec) }
