package daemon

import (
	"net/http"
	"runtime"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cloud-barista/cbnode/api"
)

// metrics is the member's private Prometheus registry: Go and process
// collectors, libp2p's own metrics (node.Config.Metrics) and the member's
// collector. Nothing is registered globally, so members in one process
// (tests) keep apart — but libp2p's collectors are package variables, so
// in-process members share their values.
type metrics struct {
	reg *prometheus.Registry
	h   http.Handler
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &metrics{reg: reg, h: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})}
}

// Metrics implements api.Backend.
func (m *Member) Metrics() http.Handler { return m.metrics.h }

// memberCollector reads the member's state at every scrape.
type memberCollector struct{ m *Member }

var (
	descBuild    = prometheus.NewDesc("cbnode_build_info", "cbnode's version and Go version; always 1.", []string{"version", "goversion"}, nil)
	descMembers  = prometheus.NewDesc("cbnode_members", "Members in the table, self included.", nil, nil)
	descCert     = prometheus.NewDesc("cbnode_certificate_expiry_timestamp_seconds", "When this node's certificate expires (Unix time).", nil, nil)
	descIPAM     = prometheus.NewDesc("cbnode_ipam_state", "The address allocator's state (1 for the current one).", []string{"state"}, nil)
	descRejected = prometheus.NewDesc("cbnode_rejected_announcements_total", "Membership announcements refused, by reason.", []string{"reason"}, nil)
	descTwin     = prometheus.NewDesc("cbnode_identity_conflicts_total", "Other live nodes found with this node's peer ID (a cloned VM, a token used twice): reported by a witness member, or records of our address they wrote in the DHT.", []string{"source"}, nil)
	descTxBytes  = prometheus.NewDesc("cbnode_tx_bytes_total", "Overlay bytes sent to a peer.", []string{"peer"}, nil)
	descRxBytes  = prometheus.NewDesc("cbnode_rx_bytes_total", "Overlay bytes received from a peer.", []string{"peer"}, nil)
	descTxPkts   = prometheus.NewDesc("cbnode_tx_packets_total", "Overlay packets sent to a peer.", []string{"peer"}, nil)
	descRxPkts   = prometheus.NewDesc("cbnode_rx_packets_total", "Overlay packets received from a peer.", []string{"peer"}, nil)
	descDrops    = prometheus.NewDesc("cbnode_drops_total", "Packets dropped, by peer and reason.", []string{"peer", "reason"}, nil)
	descPath     = prometheus.NewDesc("cbnode_peer_path", "The packet stream's path to a peer (1 for the current one): direct, relayed or down.", []string{"peer", "path", "transport"}, nil)
	descRTT      = prometheus.NewDesc("cbnode_peer_rtt_seconds", "Smoothed round-trip time to a peer (libp2p's latency estimate).", []string{"peer"}, nil)
	descPunch    = prometheus.NewDesc("cbnode_peer_holepunch_success", "Outcome of the latest hole punch with a peer (1 success, 0 failure).", []string{"peer"}, nil)
	descCostB    = prometheus.NewDesc("cbnode_cost_bytes_total", "Bytes sent, by peer and path class.", []string{"peer", "class"}, nil)
	descCostUSD  = prometheus.NewDesc("cbnode_cost_spent_usd_total", "Estimated spend (USD) from the price table, by peer and path class.", []string{"peer", "class"}, nil)
	descSaveUSD  = prometheus.NewDesc("cbnode_cost_saved_usd_total", "Estimated saving (USD) against the basic rule, by peer and path class.", []string{"peer", "class"}, nil)
)

func (c memberCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descMembers, descCert, descIPAM, descRejected, descTwin, descTxBytes, descRxBytes,
		descTxPkts, descRxPkts, descDrops, descPath, descRTT, descPunch, descCostB, descCostUSD, descSaveUSD} {
		ch <- d
	}
}

func (c memberCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuild, 1, api.Version, runtime.Version())
	if m.mem == nil || m.alloc == nil {
		return // Start has not finished
	}
	gauge(descMembers, float64(len(m.mem.Members())))
	gauge(descCert, float64(m.cert().NotAfter.Unix()))
	gauge(descIPAM, 1, m.alloc.State())
	for reason, n := range m.mem.Rejected() {
		counter(descRejected, float64(n), reason)
	}
	counter(descTwin, float64(len(m.mem.IdentityConflicts())), "witness")
	counter(descTwin, float64(m.alloc.ForeignWrites()), "ipam")
	h := m.node.Host
	for _, id := range m.memberIDs() {
		name := m.peerName(id)
		if rtt := h.Peerstore().LatencyEWMA(id); rtt > 0 {
			gauge(descRTT, rtt.Seconds(), name)
		}
		if hp, ok := m.node.HolePunchResult(id); ok {
			v := 0.0
			if hp.Success {
				v = 1
			}
			gauge(descPunch, v, name)
		}
	}
	if m.engine != nil {
		stats := m.engine.AllStats()
		ids := make([]string, 0, len(stats))
		for id := range stats {
			ids = append(ids, string(id))
		}
		sort.Strings(ids)
		for _, k := range ids {
			st := stats[peer.ID(k)]
			name := m.peerName(st.Peer)
			counter(descTxBytes, float64(st.TxBytes), name)
			counter(descRxBytes, float64(st.RxBytes), name)
			counter(descTxPkts, float64(st.TxPackets), name)
			counter(descRxPkts, float64(st.RxPackets), name)
			for reason, n := range st.Drops {
				counter(descDrops, float64(n), name, reason)
			}
			path := "down"
			if st.StreamUp {
				path = "direct"
				if st.Path.Relayed {
					path = "relayed"
				}
			}
			gauge(descPath, 1, name, path, st.Path.Transport)
		}
	}
	for _, p := range m.Cost().Peers {
		for class, u := range p.Classes {
			counter(descCostB, float64(u.Bytes), p.Peer, string(class))
			counter(descCostUSD, u.SpentUSD, p.Peer, string(class))
			counter(descSaveUSD, u.SavedUSD, p.Peer, string(class))
		}
	}
}
