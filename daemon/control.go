package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

// pingTimeout bounds the wait for one probe reply of a connectivity test.
const pingTimeout = 2 * time.Second

// applyControl applies the control document in force: the data plane's
// admin state (DOWN drops every packet both ways, the announced state
// becomes "released"; UP restores both) and, for a document that arrived
// by gossip, a connectivity test request not run yet.
func (m *Member) applyControl(runTests bool) {
	doc := m.control.Current()
	down := m.control.Down()
	if m.engine != nil && m.engine.AdminDown() != down {
		m.engine.SetAdminDown(down)
		if down {
			m.log.Warn("data plane DOWN by the CLADNet's control command: packets are dropped until UP")
		} else {
			m.log.Info("data plane UP by the CLADNet's control command")
		}
	}
	m.mu.Lock()
	changed := m.down != down
	m.down = down
	m.mu.Unlock()
	if changed {
		m.mem.SetState(m.announcedState())
	}
	if doc == nil || doc.Test == nil {
		return
	}
	m.mu.Lock()
	seen := m.lastTest == doc.Test.RunID
	m.lastTest = doc.Test.RunID
	m.mu.Unlock()
	if !runTests || seen || time.Now().After(doc.Test.Deadline) {
		return
	}
	req := *doc.Test
	m.goFunc(func(ctx context.Context) { m.runTest(ctx, req) })
}

// announcedState is the state the member announces: released while the
// data plane is down, tunneling with an address and a data plane,
// configuring otherwise.
func (m *Member) announcedState() string {
	m.mu.Lock()
	ip, down := m.ip, m.down
	m.mu.Unlock()
	switch {
	case down:
		return overlay.StateReleased
	case ip.IsValid() && (m.dev != nil || !m.cfg.TUN):
		return overlay.StateTunneling
	}
	return overlay.StateConfiguring
}

// DataPlaneDown reports whether the CLADNet's DOWN command is in force.
func (m *Member) DataPlaneDown() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.down
}

// runTest measures every other member (req.TrialCount probes, req.Interval
// apart, all members at once) and sends the row to the operator.
func (m *Member) runTest(ctx context.Context, req overlay.TestRequest) {
	ctx, cancel := context.WithDeadline(ctx, req.Deadline)
	defer cancel()
	row := overlay.TestRow{RunID: req.RunID, From: m.node.Host.ID().String(), HostName: m.cfg.Token.Cert.HostName, Targets: []overlay.TestSamples{}}
	if ip := m.IP(); ip.IsValid() {
		row.IP = ip.String()
	}
	switch {
	case m.engine == nil:
		row.Error = "this member has no data plane (joined without a TUN device)"
	case m.DataPlaneDown():
		row.Error = "the data plane is down (control command DOWN): UP first"
	default:
		row.Targets = m.measure(ctx, req)
	}
	if err := m.sendRow(ctx, req.ReportTo, row); err != nil {
		m.log.Warn("connectivity test: row not delivered to the operator", "run", req.RunID, "operator", req.ReportTo, "err", err)
		return
	}
	m.log.Info("connectivity test: row sent", "run", req.RunID, "targets", len(row.Targets))
}

func (m *Member) measure(ctx context.Context, req overlay.TestRequest) []overlay.TestSamples {
	var targets []overlay.TestSamples
	var ids []peer.ID
	for _, mem := range m.mem.Members() {
		if mem.Self || mem.Ann.OverlayIP == "" {
			continue // the operator and members without an address have no data plane
		}
		if _, err := netip.ParseAddr(mem.Ann.OverlayIP); err != nil {
			continue
		}
		targets = append(targets, overlay.TestSamples{To: mem.ID.String(), HostName: mem.Ann.HostName, IP: mem.Ann.OverlayIP, RTTMs: []float64{}})
		ids = append(ids, mem.ID)
	}
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		go func(ts *overlay.TestSamples, p peer.ID) {
			defer wg.Done()
			for trial := 0; trial < req.TrialCount; trial++ {
				if trial > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(req.Interval()):
					}
				}
				pctx, cancel := context.WithTimeout(ctx, pingTimeout)
				rtt, path, err := m.engine.Ping(pctx, p)
				cancel()
				ts.Sent++
				if err != nil {
					ts.Error = err.Error()
					continue
				}
				ts.RTTMs = append(ts.RTTMs, float64(rtt)/float64(time.Millisecond))
				ts.Path = overlay.TestPath{Relayed: path.Relayed, Remote: path.Remote, Transport: path.Transport}
			}
		}(&targets[i], ids[i])
	}
	wg.Wait()
	return targets
}

// sendRow opens a TestResultProtocol stream to the operator and writes row.
func (m *Member) sendRow(ctx context.Context, to string, row overlay.TestRow) error {
	op, err := peer.Decode(to)
	if err != nil {
		return fmt.Errorf("operator peer ID %q: %w", to, err)
	}
	if mem, ok := m.mem.Member(op); ok {
		for _, s := range mem.Ann.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				m.node.Host.Peerstore().AddAddr(op, a, peerstore.TempAddrTTL)
			}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := m.node.Host.NewStream(sctx, op, overlay.TestResultProtocol)
	if err != nil {
		return fmt.Errorf("open %s to the operator: %w", overlay.TestResultProtocol, err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := json.NewEncoder(s).Encode(row); err != nil {
		_ = s.Reset()
		return fmt.Errorf("write row: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("write row: %w", err)
	}
	var ack struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(s).Decode(&ack); err != nil {
		return fmt.Errorf("operator's answer: %w", err)
	}
	if ack.Error != "" {
		return errors.New("operator refused the row: " + ack.Error)
	}
	return nil
}

// PeerStats is the data plane's per-peer counters (nil without one), e.g.
// the "admin_down" drops while the CLADNet is down.
func (m *Member) PeerStats() forward.PeerStatsMap {
	if m.engine == nil {
		return nil
	}
	return m.engine.AllStats()
}
