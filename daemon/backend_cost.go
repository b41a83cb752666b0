package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

// Rules implements api.Backend.
func (m *Member) Rules() *cost.Rules { return m.rules.Current() }

// SubmitRules implements api.Backend.
func (m *Member) SubmitRules(ctx context.Context, doc []byte) (*cost.Rules, error) {
	r, err := m.rules.Submit(ctx, doc)
	switch {
	case errors.Is(err, overlay.ErrStaleRules):
		return nil, fmt.Errorf("%v: %w", err, api.ErrConflict)
	case err != nil && r == nil:
		return nil, fmt.Errorf("rules refused: %v: %w", err, api.ErrBadInput)
	}
	return r, err
}

// Revocation implements api.Backend.
func (m *Member) Revocation() *cladnet.Revocations { return m.revocations().Current() }

// SubmitRevocation implements api.Backend.
func (m *Member) SubmitRevocation(ctx context.Context, doc []byte) (*cladnet.Revocations, error) {
	r, err := m.revocations().Submit(ctx, doc)
	switch {
	case errors.Is(err, overlay.ErrStaleRevocations):
		return nil, fmt.Errorf("%v: %w", err, api.ErrConflict)
	case err != nil && r == nil:
		return nil, fmt.Errorf("revocation list refused: %v: %w", err, api.ErrBadInput)
	}
	return r, err
}

// Cost implements api.Backend.
func (m *Member) Cost() cost.Report {
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
	nr := api.NetworkingRule{CladnetID: m.spec.ID, RuleType: rules.RuleType, RulesVer: rules.Version, Filter: m.FilterStats()}
	for _, o := range m.mem.Members() {
		if o.Self {
			continue
		}
		v, _ := m.paths.Get(o.ID)
		row := api.PathRule{
			HostID: o.ID.String(), HostName: o.Ann.HostName, PeerIP: o.Ann.OverlayIP,
			State: o.Ann.State, Reason: v.Decision.Reason, SelectedIP: v.Decision.SelectedIP,
			PeerScope: cost.ScopeInter,
		}
		if b, ok := m.paths.Billed(o.ID); ok {
			row.Class, row.PricePerGB, row.PeerScope = string(b.Class), b.PricePerGB, b.Scope
		}
		if m.engine != nil {
			st, ok := m.engine.Stats(o.ID)
			if ok {
				row.TxBytes, row.RxBytes = st.TxBytes, st.RxBytes
			}
			if ok && st.StreamUp {
				row.Relayed, row.Remote = st.Path.Relayed, st.Path.Remote
				if a, err := ma.NewMultiaddr(st.Path.Remote); err == nil && !st.Path.Relayed {
					if ip, err := manet.ToIP(a); err == nil {
						row.SelectedIP = ip.String()
					}
				}
			}
		}
		if v.LAN && !v.Decision.Private {
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
	rep := m.Cost()
	nr.Cost = &rep
	return nr, nil
}

// meter samples the data plane's sent bytes per peer and charges them to
// the path they took.
type meter struct {
	m    *cost.Meter
	mu   sync.Mutex
	last map[peer.ID]uint64
}

func newMeter() meter { return meter{m: cost.NewMeter(), last: map[peer.ID]uint64{}} }

func (m *Member) meterLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.sampleMeter()
			return
		case <-t.C:
			m.sampleMeter()
		}
	}
}

func (m *Member) sampleMeter() {
	m.meter.mu.Lock()
	defer m.meter.mu.Unlock()
	for p, st := range m.engine.AllStats() {
		prev := m.meter.last[p]
		if st.TxBytes < prev { // peer state was recreated
			prev = 0
		}
		m.meter.last[p] = st.TxBytes
		delta := st.TxBytes - prev
		if delta == 0 {
			continue
		}
		b, ok := m.paths.Billed(p)
		if !ok {
			continue
		}
		m.meter.m.Add(m.peerName(p), b.Class, b.PricePerGB, b.PublicPricePerGB, delta)
	}
}

// peerName is p's host name for reports, its peer ID if unknown.
func (m *Member) peerName(p peer.ID) string {
	if v, ok := m.paths.Get(p); ok && v.Host != "" {
		return v.Host
	}
	return p.String()
}
