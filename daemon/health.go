package daemon

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
)

// health is the connectivity part of Status.
func (m *Member) health() *api.Health {
	h := &api.Health{Health: m.node.Health(), IPAM: m.alloc.State(), Relays: []string{}}
	for _, id := range m.memberIDs() {
		if m.node.Host.Network().Connectedness(id) == network.Connected {
			h.ConnectedMembers++
		}
	}
	if r := m.reserver(); r != nil {
		for _, id := range r.Relays() {
			h.Relays = append(h.Relays, id.String())
		}
		sort.Strings(h.Relays)
	}
	h.Verdict, h.Reason = verdict(h)
	return h
}

// verdict sums h up in one word and one line: offline when no bootstrap
// node and no member is connected, degraded when something a working member
// has is missing (an overlay address, a bootstrap node, the DHT), ok else.
func verdict(h *api.Health) (string, string) {
	up := 0
	var down []string
	for _, b := range h.Bootstrap {
		if b.Connected {
			up++
			continue
		}
		why := "not connected yet"
		if b.LastError != "" {
			why = fmt.Sprintf("%d failed tries, last: %s", b.Failures, b.LastError)
		}
		down = append(down, fmt.Sprintf("bootstrap %s unreachable (%s)", b.ID, why))
	}
	if up == 0 && h.ConnectedMembers == 0 {
		if len(h.Bootstrap) == 0 {
			return api.HealthOffline, "no bootstrap node configured and no member connected"
		}
		return api.HealthOffline, "no member connected and " + strings.Join(down, "; ") + ": check the bootstrap address and that its port (TCP and UDP) is open to this node"
	}
	var problems []string
	if h.IPAM != ipam.StateAssigned {
		problems = append(problems, fmt.Sprintf("no overlay address (IPAM %s)", h.IPAM))
	}
	problems = append(problems, down...)
	if h.RoutingTable == 0 {
		problems = append(problems, "DHT routing table empty")
	}
	if len(problems) > 0 {
		return api.HealthDegraded, strings.Join(problems, "; ")
	}
	return api.HealthOK, fmt.Sprintf("%d of %d bootstrap nodes, %d members connected, %d DHT peers", up, len(h.Bootstrap), h.ConnectedMembers, h.RoutingTable)
}

// joined reports whether the member has really joined: it has an overlay
// address and a connection to a bootstrap node or another member.
func (m *Member) joined() bool {
	if m.alloc.State() != ipam.StateAssigned {
		return false
	}
	for _, b := range m.node.Bootstrap() {
		if m.node.Host.Network().Connectedness(b.ID) == network.Connected {
			return true
		}
	}
	for _, id := range m.memberIDs() {
		if m.node.Host.Network().Connectedness(id) == network.Connected {
			return true
		}
	}
	return false
}

// logJoined logs "joined CLADNet" once it is true (see joined), checking
// every 200 ms.
func (m *Member) logJoined(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if m.joined() {
			m.log.Info("joined CLADNet", "cladnet", m.spec.Name, "id", m.spec.ID, "host", m.cfg.Token.Cert.HostName,
				"ip", m.IP(), "members", len(m.mem.Members()), "took", time.Since(m.started).Round(time.Millisecond))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// netcheckTimeout bounds each dial and ping of a netcheck.
const netcheckTimeout = 5 * time.Second

// Netcheck implements api.Backend: it dials every bootstrap node and relay
// candidate now (in parallel, each within 5 s), pings it, and adds what
// AutoNAT and the peers' observations say about this node.
func (m *Member) Netcheck(ctx context.Context) (api.Netcheck, error) {
	start := time.Now()
	type cand struct {
		info  peer.AddrInfo
		roles []string
	}
	var cands []*cand
	byID := map[peer.ID]*cand{}
	add := func(info peer.AddrInfo, role string) {
		if c := byID[info.ID]; c != nil {
			if !slices.Contains(c.roles, role) {
				c.roles = append(c.roles, role)
			}
			return
		}
		c := &cand{info: info, roles: []string{role}}
		byID[info.ID] = c
		cands = append(cands, c)
	}
	for _, b := range m.cfg.Bootstrap {
		add(b, "bootstrap")
	}
	for _, r := range m.relayCandidates() {
		add(r, "relay")
	}
	reserved := map[peer.ID]bool{}
	if r := m.reserver(); r != nil {
		for _, id := range r.Relays() {
			reserved[id] = true
		}
	}
	out := api.Netcheck{Checked: start.UTC(), Targets: make([]api.NetcheckTarget, len(cands))}
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := m.checkTarget(ctx, c.info)
			t.Roles, t.Reserved = c.roles, reserved[c.info.ID]
			out.Targets[i] = t
		}()
	}
	wg.Wait()
	h := m.node.Health()
	out.Reachability, out.NATTCP, out.NATUDP, out.Observed = h.Reachability, h.NATTCP, h.NATUDP, h.Observed
	if out.Observed == nil {
		out.Observed = []node.ObservedAddr{}
	}
	out.PublicAddrs = []string{}
	for _, a := range m.node.Host.Addrs() {
		if manet.IsPublicAddr(a) && !isCircuit(a) {
			out.PublicAddrs = append(out.PublicAddrs, a.String())
		}
	}
	out.HolePunch = holePunchReadiness(m.node.HolePunching(), len(reserved) > 0, out.Reachability, out.NATTCP, out.NATUDP, len(out.PublicAddrs) > 0)
	out.Took = time.Since(start).Round(time.Millisecond).String()
	return out, nil
}

// checkTarget connects to one peer (if not yet connected) and pings it.
func (m *Member) checkTarget(ctx context.Context, info peer.AddrInfo) api.NetcheckTarget {
	t := api.NetcheckTarget{ID: info.ID.String(), Addrs: []string{}}
	for _, a := range info.Addrs {
		t.Addrs = append(t.Addrs, a.String())
	}
	cctx, cancel := context.WithTimeout(ctx, netcheckTimeout)
	defer cancel()
	m.node.ClearDialBackoff(info.ID)
	if err := m.node.Host.Connect(cctx, info); err != nil {
		t.Error = node.DialError(err)
		return t
	}
	for _, c := range m.node.Host.Network().ConnsToPeer(info.ID) {
		t.Remote = c.RemoteMultiaddr().String()
		t.Relayed = isCircuit(c.RemoteMultiaddr())
		if !t.Relayed {
			break
		}
	}
	select {
	case res := <-ping.Ping(cctx, m.node.Host, info.ID):
		if res.Error != nil {
			t.Error = "connected, but ping failed: " + res.Error.Error()
			return t
		}
		t.OK, t.RTTms = true, float64(res.RTT.Microseconds())/1000
	case <-cctx.Done():
		t.Error = "connected, but no ping answer within " + netcheckTimeout.String()
	}
	return t
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// holePunchReadiness says whether other members can get a direct
// connection to this node.
func holePunchReadiness(dcutr, reserved bool, reach, natTCP, natUDP string, public bool) api.HolePunchReadiness {
	r := api.HolePunchReadiness{DCUtR: dcutr, Relayed: reserved}
	relayNote := "; no relay reservation: members that cannot reach it directly cannot reach it at all"
	if reserved {
		relayNote = "; others fall back to a relay"
	}
	switch {
	case reach == "public" || (reach == "unknown" && public):
		r.Direct, r.Analysis = "yes", "publicly reachable: peers dial this node directly"
		return r
	case !dcutr:
		r.Direct, r.Analysis = "unlikely", "behind NAT and hole punching (DCUtR) is off"
	case natTCP == "endpoint-independent" || natUDP == "endpoint-independent":
		r.Direct, r.Analysis = "likely", "behind an endpoint-independent (cone) NAT: hole punching should work"
	case natTCP == "endpoint-dependent" && natUDP == "endpoint-dependent":
		r.Direct, r.Analysis = "unlikely", "behind an endpoint-dependent (symmetric) NAT: hole punching rarely works"
	default:
		r.Direct, r.Analysis = "unknown", "NAT type not known yet (needs a few peers' observations): hole punching is tried on every relayed connection"
	}
	r.Analysis += relayNote
	return r
}
