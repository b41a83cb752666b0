package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// Config configures a simulation.
type Config struct {
	// N is the number of members of a cold start; Capacity (default N) the
	// most members ever created (churn adds new ones).
	N, Capacity int
	Seed        uint64
	Net         NetConfig
	// Swim configures every member's detector (Self, Clock, Transport,
	// Table and Rand are set per member).
	Swim swim.Config
	// StartSpread: a cold start starts the N members at uniformly random
	// times within it. Rendezvous is the time from a member's start to its
	// first announcement and table pull (finding a fellow member in the
	// DHT).
	StartSpread, Rendezvous time.Duration
}

// Sim is one simulated CLADNet.
type Sim struct {
	cfg     Config
	eng     *Engine
	rnd     *rand.Rand
	net     *Network
	used    int // members created
	pending int // cold-start members not started yet
}

// New builds a simulation with no member started.
func New(cfg Config) *Sim {
	if cfg.Capacity < cfg.N {
		cfg.Capacity = cfg.N
	}
	if cfg.StartSpread <= 0 {
		cfg.StartSpread = time.Second
	}
	if cfg.Rendezvous <= 0 {
		cfg.Rendezvous = 500 * time.Millisecond
	}
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0x636c61646e6574))
	eng := NewEngine()
	s := &Sim{cfg: cfg, eng: eng, rnd: rnd, net: newNetwork(cfg.Net, eng, rnd)}
	s.net.nodes = make([]*Node, cfg.Capacity)
	s.net.ids = make([]string, cfg.Capacity)
	for i := range s.net.nodes {
		id := idOf(i)
		s.net.ids[i] = id
		s.net.nodes[i] = &Node{idx: i, id: id, net: s.net}
		b := swim.BucketOf(id)
		s.net.buckets[b] = append(s.net.buckets[b], int32(i))
	}
	return s
}

// Now is the virtual time.
func (s *Sim) Now() time.Duration { return s.eng.Now() }

// Run advances virtual time by d.
func (s *Sim) Run(d time.Duration) { s.eng.Run(d) }

// Events is how many events ran.
func (s *Sim) Events() uint64 { return s.eng.Events() }

// Node returns member i.
func (s *Sim) Node(i int) *Node { return s.net.nodes[i] }

// ColdStart starts N members at once (within StartSpread); each pulls from
// a random member started before it.
func (s *Sim) ColdStart() {
	starts := make([]time.Duration, s.cfg.N)
	for i := range starts {
		starts[i] = time.Duration(s.rnd.Int64N(int64(s.cfg.StartSpread)))
	}
	order := make([]int, s.cfg.N)
	for i := range order {
		order[i] = i
	}
	// start in time order so a seed has always started
	sortBy(order, func(i int) time.Duration { return starts[i] })
	for k, i := range order {
		seed := -1
		if k > 0 {
			seed = order[s.rnd.IntN(k)]
		}
		s.pending++
		s.eng.After(starts[i]-s.eng.Now(), func() { s.pending--; s.startNode(i, seed) })
	}
	s.used = s.cfg.N
}

func (s *Sim) startNode(i, seed int) {
	r := rand.New(rand.NewPCG(s.cfg.Seed^uint64(i)*0x9e3779b97f4a7c15, uint64(i)))
	s.net.nodes[i].start(seed, s.cfg.Rendezvous, s.cfg.Swim, r)
}

// Join starts a new member (the next unused index) seeded by a random live
// member; it returns its index.
func (s *Sim) Join() (int, error) {
	if s.used >= len(s.net.nodes) {
		return -1, fmt.Errorf("sim: capacity %d reached; raise Config.Capacity", len(s.net.nodes))
	}
	i := s.used
	s.used++
	s.startNode(i, s.RandomLive(-1))
	return i, nil
}

// RandomLive returns a random live member other than not (-1: none).
func (s *Sim) RandomLive(not int) int {
	up := s.Live()
	for range 64 {
		if len(up) == 0 {
			return -1
		}
		if i := up[s.rnd.IntN(len(up))]; i != not {
			return i
		}
	}
	return -1
}

// Live lists the live members.
func (s *Sim) Live() []int {
	var out []int
	for i := range s.used {
		if s.net.nodes[i].up {
			out = append(out, i)
		}
	}
	return out
}

// Crash stops member i without a word; Leave makes it leave gracefully.
func (s *Sim) Crash(i int) { s.net.nodes[i].crash() }

// Leave makes member i leave gracefully.
func (s *Sim) Leave(i int) { s.net.nodes[i].leave() }

// Partition splits the members: group[i] is member i's side (nil heals).
func (s *Sim) Partition(group func(i int) int) {
	if group == nil {
		s.net.group = nil
		return
	}
	s.net.group = make([]int, len(s.net.nodes))
	for i := range s.net.group {
		s.net.group[i] = group(i)
	}
}

// Slow makes member i handle every direct message d late (0: no longer),
// as a member with a starved CPU does.
func (s *Sim) Slow(i int, d time.Duration) {
	if s.net.slow == nil {
		s.net.slow = map[int]time.Duration{}
	}
	if d <= 0 {
		delete(s.net.slow, i)
		return
	}
	s.net.slow[i] = d
}

// Drop makes the network lose the direct messages f returns true for (nil:
// none); topic publications are not affected.
func (s *Sim) Drop(f func(from, to int, m *swim.Message) bool) { s.net.drop = f }

// truth is the digest every live member's table should have: the live
// members at their current sequence numbers.
func (s *Sim) truth() *swim.Digest {
	var d swim.Digest
	for i := range s.used {
		if n := s.net.nodes[i]; n.up {
			d.Add(n.id, uint64(n.seq))
		}
	}
	return &d
}

// Converged reports whether every live member's table lists exactly the
// live members, each at its newest record.
func (s *Sim) Converged() bool {
	if s.pending > 0 {
		return false
	}
	t := s.truth()
	for i := range s.used {
		if n := s.net.nodes[i]; n.up && n.tab.dig != *t {
			return false
		}
	}
	return true
}

// Completeness is the least share of the live members that any live
// member's table lists at their newest record.
func (s *Sim) Completeness() float64 {
	up := s.Live()
	worst := 1.0
	for _, i := range up {
		tab := s.net.nodes[i].tab
		ok := 0
		for _, j := range up {
			if tab.live[j] == s.net.nodes[j].seq {
				ok++
			}
		}
		worst = min(worst, float64(ok)/float64(len(up)))
	}
	return worst
}

// RunUntil advances in steps of step until cond holds or timeout passed;
// it returns the time it took and whether cond held.
func (s *Sim) RunUntil(cond func() bool, step, timeout time.Duration) (time.Duration, bool) {
	start := s.eng.Now()
	for {
		if cond() {
			return s.eng.Now() - start, true
		}
		if s.eng.Now()-start >= timeout {
			return s.eng.Now() - start, false
		}
		s.eng.Run(step)
	}
}

// GoneEverywhere reports whether no live member lists member i.
func (s *Sim) GoneEverywhere(i int) bool {
	for j := range s.used {
		if n := s.net.nodes[j]; n.up && j != i && n.tab.live[i] != 0 {
			return false
		}
	}
	return true
}

// SeenEverywhere reports whether every live member lists member i at its
// newest record.
func (s *Sim) SeenEverywhere(i int) bool {
	want := s.net.nodes[i].seq
	for j := range s.used {
		if n := s.net.nodes[j]; n.up && n.tab.live[i] != want {
			return false
		}
	}
	return true
}

// Traffic sums the traffic of the members in idx.
func (s *Sim) Traffic(idx []int) Traffic {
	var t Traffic
	for _, i := range idx {
		t.add(&s.net.nodes[i].traffic)
	}
	return t
}

// Counters sums the members' protocol counters.
type Counters struct {
	Detector  swim.Stats
	Confirmed uint64 // deaths confirmed (published)
	Refuted   uint64 // suspicions or deaths refuted by their member
	DupDeaths uint64 // leave or death notices for members already gone
}

// Counters sums the counters of every member created.
func (s *Sim) Counters() Counters {
	var c Counters
	for i := range s.used {
		n := s.net.nodes[i]
		if n.det == nil {
			continue
		}
		st := n.det.Stats()
		c.Detector.Probes += st.Probes
		c.Detector.IndirectProbes += st.IndirectProbes
		c.Detector.Relayed += st.Relayed
		c.Detector.Nacks += st.Nacks
		c.Detector.Health = max(c.Detector.Health, st.Health) // the least healthy member
		c.Detector.Suspicions += st.Suspicions
		c.Detector.Refuted += st.Refuted
		c.Detector.Confirmed += st.Confirmed
		c.Detector.DigestRounds += st.DigestRounds
		c.Detector.DigestDiffs += st.DigestDiffs
		c.Detector.RecordsPushed += st.RecordsPushed
		c.Detector.RecordsWanted += st.RecordsWanted
		c.Confirmed += n.confirmed
		c.Refuted += n.refuted
		c.DupDeaths += n.dupDeaths
	}
	return c
}

func sortBy(xs []int, key func(int) time.Duration) {
	// insertion into a stable order by key; n log n via the standard
	// library would need a closure type; keep it simple and stable.
	type kv struct {
		k time.Duration
		v int
	}
	tmp := make([]kv, len(xs))
	for i, x := range xs {
		tmp[i] = kv{key(x), x}
	}
	sortKV(tmp, func(a, b kv) bool { return a.k < b.k || (a.k == b.k && a.v < b.v) })
	for i := range tmp {
		xs[i] = tmp[i].v
	}
}

func sortKV[T any](xs []T, less func(a, b T) bool) {
	slices.SortStableFunc(xs, func(a, b T) int {
		if less(a, b) {
			return -1
		}
		if less(b, a) {
			return 1
		}
		return 0
	})
}

// SeenEverywhereLive reports whether every other live member lists member
// i (at any sequence number).
func (s *Sim) SeenEverywhereLive(i int) bool {
	for j := range s.used {
		if n := s.net.nodes[j]; n.up && j != i && n.tab.live[i] == 0 {
			return false
		}
	}
	return true
}
