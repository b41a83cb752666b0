package sim

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Wire-size model. A real member sends JSON over a Noise-encrypted yamux
// stream on a libp2p connection; these constants price that.
const (
	// idLen is a libp2p Ed25519 peer ID in base58 (12D3KooW…).
	idLen = 52
	// streamOverhead: opening and closing a stream for a request — yamux
	// SYN/ACK/FIN frames (12 B each) and multistream-select of the
	// protocol ID, sent optimistically and echoed ("/multistream/1.0.0",
	// "/cbnode/cladnet/<id>/swim/1.0.0").
	streamOverhead = 180
	// frameOverhead: per message, a yamux data frame header (12 B), a
	// Noise frame's length and tag (18 B) and the message's length prefix.
	frameOverhead = 34
	// AnnouncementSize is a signed announcement on the wire: certificate,
	// four addresses, cloud facts, node signature (overlay
	// TestAnnouncementWireSize measures one).
	AnnouncementSize = 1500
	// DeathSize is a death notice: the dead member's ID and sequence
	// number, the detector's ID, time and signature.
	DeathSize = 330
	// LeaveSize: a leave is a full signed announcement of kind leave.
	LeaveSize = AnnouncementSize
)

// Traffic kinds: the swim message kinds (below 16), then the topic's.
const (
	TopicAnnounce = 16 + iota
	TopicLeave
	TopicDeath
	numTraffic
)

var kindNames = func() []string {
	out := []string{""}
	for _, k := range swim.Kinds() {
		out = append(out, k.String())
	}
	return out
}()

// TrafficName names a traffic kind.
func TrafficName(k int) string {
	switch k {
	case TopicAnnounce:
		return "topic announce"
	case TopicLeave:
		return "topic leave"
	case TopicDeath:
		return "topic death notice"
	}
	if k > 0 && k < len(kindNames) {
		return kindNames[k]
	}
	return "?"
}

// Traffic counts messages and bytes of one node, by kind.
type Traffic struct {
	MsgsIn, MsgsOut   [numTraffic]uint64
	BytesIn, BytesOut [numTraffic]uint64
}

func (t *Traffic) add(o *Traffic) {
	for k := range numTraffic {
		t.MsgsIn[k] += o.MsgsIn[k]
		t.MsgsOut[k] += o.MsgsOut[k]
		t.BytesIn[k] += o.BytesIn[k]
		t.BytesOut[k] += o.BytesOut[k]
	}
}

func (t *Traffic) sub(o *Traffic) Traffic {
	r := *t
	for k := range numTraffic {
		r.MsgsIn[k] -= o.MsgsIn[k]
		r.MsgsOut[k] -= o.MsgsOut[k]
		r.BytesIn[k] -= o.BytesIn[k]
		r.BytesOut[k] -= o.BytesOut[k]
	}
	return r
}

// Bytes is all bytes in and out.
func (t *Traffic) Bytes() uint64 {
	var s uint64
	for k := range numTraffic {
		s += t.BytesIn[k] + t.BytesOut[k]
	}
	return s
}

// NetConfig describes the simulated network.
type NetConfig struct {
	// Regions: members are spread over this many regions (round robin);
	// one-way latency is IntraLatency within one and a seeded value in
	// [MinLatency, MaxLatency) between two, plus up to 10 % per link.
	Regions                              int
	IntraLatency, MinLatency, MaxLatency time.Duration
	// Loss is the probability that a direct message is lost.
	Loss float64
	// TopicLoss is the probability that a topic publication misses one
	// member (gossipsub retransmits; this models what it still misses).
	TopicLoss float64
	// GossipCopies is how many copies of a publication each member
	// receives and sends (the issue measured 7.5 on the real gossipsub).
	GossipCopies float64
	// MeshDelay: a member receives publications from MeshDelay after it
	// joined the topic (gossipsub mesh formation).
	MeshDelay time.Duration
}

func (c *NetConfig) defaults() {
	if c.Regions <= 0 {
		c.Regions = 8
	}
	if c.IntraLatency <= 0 {
		c.IntraLatency = time.Millisecond
	}
	if c.MinLatency <= 0 {
		c.MinLatency = 10 * time.Millisecond
	}
	if c.MaxLatency <= c.MinLatency {
		c.MaxLatency = 120 * time.Millisecond
	}
	if c.GossipCopies <= 0 {
		c.GossipCopies = 7.5
	}
	if c.MeshDelay <= 0 {
		c.MeshDelay = time.Second
	}
}

// Network connects the simulated members.
type Network struct {
	cfg    NetConfig
	eng    *Engine
	rnd    *rand.Rand
	nodes  []*Node
	region [][]time.Duration
	// group: members in different groups cannot reach each other (a
	// partition); nil: none.
	group []int
	// hops and hopDelay model a publication's path through the mesh.
	hops     int
	hopDelay time.Duration
	ids      []string
	// slow delays every direct message to a member (a starved CPU).
	slow map[int]time.Duration
	// drop, if set, loses the direct messages it returns true for.
	drop func(from, to int, m *swim.Message) bool
	// buckets lists the members of each digest bucket.
	buckets [swim.Buckets][]int32
}

func newNetwork(cfg NetConfig, eng *Engine, rnd *rand.Rand) *Network {
	cfg.defaults()
	n := &Network{cfg: cfg, eng: eng, rnd: rnd}
	r := cfg.Regions
	n.region = make([][]time.Duration, r)
	var sum time.Duration
	for i := range r {
		n.region[i] = make([]time.Duration, r)
	}
	for i := range r {
		for j := i; j < r; j++ {
			d := cfg.IntraLatency
			if i != j {
				d = cfg.MinLatency + time.Duration(rnd.Int64N(int64(cfg.MaxLatency-cfg.MinLatency)))
			}
			n.region[i][j], n.region[j][i] = d, d
			sum += 2 * d
		}
	}
	n.hopDelay = sum / time.Duration(r*r+r)
	return n
}

func (n *Network) regionOf(i int) int { return i % n.cfg.Regions }

// latency is the one-way latency of the link a→b.
func (n *Network) latency(a, b int) time.Duration {
	base := n.region[n.regionOf(a)][n.regionOf(b)]
	lo, hi := min(a, b), max(a, b)
	h := swim.EntryHash("link", uint64(lo)<<32|uint64(hi))
	return base + time.Duration(h%uint64(base/10+1))
}

func (n *Network) blocked(a, b int) bool {
	return n.group != nil && n.group[a] != n.group[b]
}

// send carries a swim message a→b; b's answer comes back the same way.
func (n *Network) send(a, b int, m *swim.Message, request bool) {
	size := uint64(wireSize(m) + frameOverhead)
	if request {
		size += streamOverhead
	}
	from := n.nodes[a]
	from.traffic.MsgsOut[m.Kind]++
	from.traffic.BytesOut[m.Kind] += size
	if b < 0 || b >= len(n.nodes) || n.blocked(a, b) || (n.cfg.Loss > 0 && n.rnd.Float64() < n.cfg.Loss) {
		return
	}
	if n.drop != nil && n.drop(a, b, m) {
		return
	}
	n.eng.After(n.latency(a, b)+n.slow[b], func() {
		to := n.nodes[b]
		if !to.up || n.blocked(a, b) {
			return
		}
		to.traffic.MsgsIn[m.Kind]++
		to.traffic.BytesIn[m.Kind] += size
		if r := to.det.Handle(from.id, m); r != nil {
			n.send(b, a, r, false)
		}
	})
}

// wireSize prices a swim message as the JSON the overlay sends.
func wireSize(m *swim.Message) int {
	s := 8 // {"k":N}
	if m.Nonce != 0 {
		s += 12
	}
	if m.Target != "" {
		s += 7 + idLen
	}
	if m.Seq != 0 {
		s += 25
	}
	if len(m.Digest) > 0 {
		s += 6 + 21*len(m.Digest)
	}
	s += 4 * len(m.Diff)
	s += (idLen + 30) * len(m.Entries)
	s += (idLen + 3) * len(m.Want)
	for _, r := range m.Records {
		s += recordWireSize(r)*4/3 + 3 // base64 in JSON
	}
	return s
}

type transport struct {
	net  *Network
	from int
}

func (t transport) Send(to string, m *swim.Message) { t.net.send(t.from, indexOf(to), m, true) }

// ids are the members' names: "n" and the index.
func idOf(i int) string { return "n" + strconv.Itoa(i) }

// id is member i's name, precomputed.
func (n *Network) id(i int) string { return n.ids[i] }

func indexOf(id string) int {
	if len(id) < 2 || id[0] != 'n' {
		return -1
	}
	i, err := strconv.Atoi(id[1:])
	if err != nil {
		return -1
	}
	return i
}
