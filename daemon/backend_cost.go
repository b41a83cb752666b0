package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/overlay"
)

// Rules implements api.Backend.
func (m *Member) Rules() any { return m.rules.Current() }

// SubmitRules implements api.Backend.
func (m *Member) SubmitRules(ctx context.Context, doc []byte) (any, error) {
	r, err := m.rules.Submit(ctx, doc)
	switch {
	case errors.Is(err, overlay.ErrStaleRules):
		return nil, fmt.Errorf("%v: %w", err, api.ErrConflict)
	case err != nil && r == nil:
		return nil, fmt.Errorf("rules refused: %v: %w", err, api.ErrBadInput)
	}
	return r, err
}

// Cost implements api.Backend.
func (m *Member) Cost() any {
	if m.engine != nil {
		m.sampleMeter()
	}
	return m.meter.m.Report()
}

// NetworkingRule implements api.Backend.
func (m *Member) NetworkingRule(hostID string) (api.NetworkingRule, error) {
	mem, ok := m.mem.Lookup(hostID)
	if !ok {
		return api.NetworkingRule{}, fmt.Errorf("peer %q: %w", hostID, api.ErrNotFound)
	}
	if !mem.Self {
		return api.NetworkingRule{}, fmt.Errorf("%s is not this node: each node serves its own networking rule (ask its API): %w", hostID, api.ErrForbidden)
	}
	rules := m.rules.Current()
	nr := api.NetworkingRule{CladnetID: m.spec.ID, RuleType: rules.RuleType, RulesVer: rules.Version}
	for _, o := range m.mem.Members() {
		if o.Self {
			continue
		}
		v, _ := m.paths.get(o.ID)
		row := api.PathRule{
			HostID: o.ID.String(), HostName: o.Ann.HostName, PeerIP: o.Ann.OverlayIP,
			State: o.Ann.State, Reason: v.d.Reason, SelectedIP: v.d.SelectedIP,
		}
		class, price, _, _ := m.pathPrices(o.ID)
		row.Class, row.PricePerGB = string(class), price
		row.PeerScope = "inter"
		if m.engine != nil {
			if st, ok := m.engine.Stats(o.ID); ok && st.StreamUp {
				row.Relayed, row.Remote = st.Path.Relayed, st.Path.Remote
				if a, err := ma.NewMultiaddr(st.Path.Remote); err == nil && !st.Path.Relayed {
					if ip, err := manet.ToIP(a); err == nil {
						row.SelectedIP = ip.String()
					}
					if isPrivateAddr(a) {
						row.PeerScope = "intra"
					}
				}
			}
		}
		if v.lan && !v.d.Private {
			row.Reason = "no VPC declared on either side: a plain LAN, private addresses allowed; " + row.Reason
		}
		nr.HostID = append(nr.HostID, row.HostID)
		nr.HostName = append(nr.HostName, row.HostName)
		nr.PeerIP = append(nr.PeerIP, row.PeerIP)
		nr.SelectedIP = append(nr.SelectedIP, row.SelectedIP)
		nr.PeerScope = append(nr.PeerScope, row.PeerScope)
		nr.State = append(nr.State, row.State)
		nr.Rules = append(nr.Rules, row)
	}
	return nr, nil
}

// WriteMetrics implements api.Backend: Prometheus text format.
func (m *Member) WriteMetrics(w io.Writer) {
	var b strings.Builder
	metric := func(name, help, typ string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	metric("cbnode_members", "Members in the table, self included.", "gauge")
	fmt.Fprintf(&b, "cbnode_members %d\n", len(m.mem.Members()))
	if m.engine != nil {
		stats := m.engine.AllStats()
		ids := make([]peer.ID, 0, len(stats))
		for id := range stats {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		name := func(id peer.ID) string {
			if v, ok := m.paths.get(id); ok {
				return v.host
			}
			return id.String()
		}
		for _, c := range []struct {
			n, help string
			get     func(id peer.ID) uint64
		}{
			{"cbnode_tx_bytes_total", "Overlay bytes sent to a peer.", func(id peer.ID) uint64 { return stats[id].TxBytes }},
			{"cbnode_rx_bytes_total", "Overlay bytes received from a peer.", func(id peer.ID) uint64 { return stats[id].RxBytes }},
			{"cbnode_tx_packets_total", "Overlay packets sent to a peer.", func(id peer.ID) uint64 { return stats[id].TxPackets }},
			{"cbnode_rx_packets_total", "Overlay packets received from a peer.", func(id peer.ID) uint64 { return stats[id].RxPackets }},
		} {
			metric(c.n, c.help, "counter")
			for _, id := range ids {
				fmt.Fprintf(&b, "%s{peer=%q} %d\n", c.n, name(id), c.get(id))
			}
		}
		metric("cbnode_drops_total", "Packets dropped, by peer and reason.", "counter")
		for _, id := range ids {
			for reason, n := range stats[id].Drops {
				fmt.Fprintf(&b, "cbnode_drops_total{peer=%q,reason=%q} %d\n", name(id), reason, n)
			}
		}
	}
	rep := m.meter.m.Report()
	metric("cbnode_cost_bytes_total", "Bytes sent, by peer and path class.", "counter")
	metric("cbnode_cost_spent_usd_total", "Estimated spend (USD) from the price table, by peer and path class.", "counter")
	metric("cbnode_cost_saved_usd_total", "Estimated saving (USD) against the basic rule, by peer and path class.", "counter")
	for _, p := range rep.Peers {
		for class, u := range p.Classes {
			fmt.Fprintf(&b, "cbnode_cost_bytes_total{peer=%q,class=%q} %d\n", p.Peer, class, u.Bytes)
			fmt.Fprintf(&b, "cbnode_cost_spent_usd_total{peer=%q,class=%q} %g\n", p.Peer, class, u.SpentUSD)
			fmt.Fprintf(&b, "cbnode_cost_saved_usd_total{peer=%q,class=%q} %g\n", p.Peer, class, u.SavedUSD)
		}
	}
	_, _ = io.WriteString(w, b.String())
}
