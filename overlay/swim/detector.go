package swim

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Transport carries Messages between members.
type Transport interface {
	// Send delivers m to peer to's Detector.Handle, asynchronously; if
	// Handle returns an answer, the transport hands it to this node's
	// Handle as from to. A message that cannot be delivered is dropped
	// (the detector counts on timeouts, not errors). It is called with the
	// Detector's lock held and must not block.
	Send(to string, m *Message)
}

// Defaults of Config.
const (
	DefaultProbeInterval      = time.Second
	DefaultProbeTimeout       = 500 * time.Millisecond
	DefaultIndirectProbes     = 3
	DefaultSuspicionTimeout   = 3 * time.Second
	DefaultDigestInterval     = 30 * time.Second
	DefaultFastDigestInterval = 2 * time.Second
	DefaultFastDigests        = 5
	// departedShare: one anti-entropy round in departedShare goes to a
	// recently departed member, if any.
	departedShare = 4
	// maxHealth bounds the local health multiplier (Lifeguard): timeouts
	// and the probe interval stretch up to (maxHealth+1)×.
	maxHealth = 8
	// fastAfterDiff: tables that differed run this many more rounds at
	// FastDigestInterval, so differences die out fast and an idle
	// CLADNet settles at DigestInterval.
	fastAfterDiff = 2
	maxRelays     = 64
	maxTold       = 1024
	// holdProbes: a suspicion held while this node is cut off is
	// confirmed after this many more of its probes failed the same way —
	// a node whose every peer died (a sole survivor) is not cut off
	// forever, while a short outage, or a VM resumed after any time
	// asleep (its first probe is answered), confirms nothing.
	holdProbes = 10
)

// Config configures a Detector. Zero durations take the defaults.
type Config struct {
	Self      string
	Clock     Clock
	Transport Transport
	Table     Table
	// Rand drives every random choice (probe order, indirect probers,
	// digest partners, start offsets); seeded for a reproducible run. Nil:
	// a random seed.
	Rand *rand.Rand

	// ProbeInterval is the protocol period: one member probed per period.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct ping waits before IndirectProbes
	// members are asked to ping the target; the end of the period is the
	// deadline for any ack.
	ProbeTimeout   time.Duration
	IndirectProbes int
	// SuspicionTimeout is how long a suspected member has to refute
	// before its death is confirmed.
	SuspicionTimeout time.Duration
	// DigestInterval is the period of the anti-entropy exchange; the first
	// FastDigests rounds after Start (and after SyncWith), and two after
	// any exchange that found the tables different, run every
	// FastDigestInterval, so a newcomer catches up quickly.
	DigestInterval     time.Duration
	FastDigestInterval time.Duration
	FastDigests        int
}

func (c *Config) defaults() {
	if c.Clock == nil {
		c.Clock = WallClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ProbeInterval, DefaultProbeInterval)
	def(&c.ProbeTimeout, DefaultProbeTimeout)
	def(&c.SuspicionTimeout, DefaultSuspicionTimeout)
	def(&c.DigestInterval, DefaultDigestInterval)
	def(&c.FastDigestInterval, DefaultFastDigestInterval)
	if c.IndirectProbes <= 0 {
		c.IndirectProbes = DefaultIndirectProbes
	}
	if c.FastDigests < 0 {
		c.FastDigests = 0
	} else if c.FastDigests == 0 {
		c.FastDigests = DefaultFastDigests
	}
}

// Stats counts what a Detector did.
type Stats struct {
	Probes         uint64 // direct pings sent
	IndirectProbes uint64 // rounds that asked others to ping
	Relayed        uint64 // pings sent for others
	Nacks          uint64 // relays that could not reach a target either
	Suspicions     uint64
	Refuted        uint64 // suspicions cleared by an ack, a message or a newer record
	Confirmed      uint64 // deaths confirmed (Table.Confirm calls)
	// CutOff counts suspicions that ran out while this node was cut off
	// (see Detector.cutFails): held, not confirmed, until it reaches a
	// member again (or holdProbes more probes fail).
	CutOff uint64
	// ToldDead counts records handed to members that pinged this node
	// while it held them dead (tellDead).
	ToldDead      uint64
	DigestRounds  uint64 // digests sent
	DigestDiffs   uint64 // digest replies received (the tables differed)
	RecordsPushed uint64
	RecordsWanted uint64
	// Health is the local health multiplier now: 0 healthy; n stretches
	// this node's probe interval, timeouts and suspicions (n+1)×.
	Health int
}

// Detector is one member's failure detector and anti-entropy agent.
type Detector struct {
	cfg Config

	mu       sync.Mutex
	stopped  bool
	nonce    uint64
	roundN   int // members when the probe round began
	start    int
	stride   int
	next     int
	probes   map[uint64]*probe // outstanding, by nonce
	health   int
	relays   map[uint64]*relay
	suspects map[string]*suspicion
	// cutFails counts the probes since the last round trip that ended
	// with no ack while no member asked to probe for them answered either:
	// this node is cut off while it is above 0 — its own messages are not
	// getting through (its link down, its VM suspended). Any answer that
	// proves a round trip (an ack of a probe, a relay's nack) resets it.
	cutFails int
	told     map[string]time.Time // tellDead's last push, by member
	tick     Timer
	dtick    Timer
	fastLeft int
	stats    Stats
}

type probe struct {
	target        string
	nonce         uint64
	acked         bool
	relays, nacks int
	health        int // the local health when it began
}

type relay struct {
	requester, target string
	nonce             uint64 // the requester's
}

type suspicion struct {
	seq    uint64
	term   int   // counts the terms (suspicionTerm); a timer ends its own only
	timer  Timer // nil: held while this node is cut off
	heldAt int   // cutFails when it was held
}

// New returns a stopped Detector; Start starts it.
func New(cfg Config) *Detector {
	cfg.defaults()
	return &Detector{cfg: cfg, probes: map[uint64]*probe{}, relays: map[uint64]*relay{}, suspects: map[string]*suspicion{}, told: map[string]time.Time{}}
}

// Start begins probing and anti-entropy, at random offsets within the first
// period (so members started together do not probe in step).
func (d *Detector) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fastLeft = d.cfg.FastDigests
	d.tick = d.cfg.Clock.AfterFunc(d.jitter(d.cfg.ProbeInterval), d.probeTick)
	d.dtick = d.cfg.Clock.AfterFunc(d.jitter(d.cfg.FastDigestInterval), d.digestTick)
}

// Stop ends probing; pending timers do nothing once they fire.
func (d *Detector) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.tick != nil {
		d.tick.Stop()
	}
	if d.dtick != nil {
		d.dtick.Stop()
	}
	for id, s := range d.suspects {
		if s.timer != nil {
			s.timer.Stop()
		}
		delete(d.suspects, id)
	}
}

// Stats returns the counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stats
	st.Health = d.health
	return st
}

// SyncWith runs an anti-entropy exchange with p now (a newcomer with the
// first member it found), and the next FastDigests rounds quickly.
func (d *Detector) SyncWith(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || p == d.cfg.Self {
		return
	}
	d.fastLeft = max(d.fastLeft, d.cfg.FastDigests)
	d.sendDigest(p)
}

func (d *Detector) jitter(max time.Duration) time.Duration {
	return time.Duration(d.cfg.Rand.Int64N(int64(max) + 1))
}

// probeTick starts the next probe. A probe ends on its own deadline
// (probeEnd), so a slow indirect round does not cut the next one short.
// Lifeguard's local health stretches the period and the timeouts of a node
// whose own probes go unanswered: it is more likely slow itself than
// surrounded by dead members.
func (d *Detector) probeTick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	scale := time.Duration(d.health + 1)
	d.tick = d.cfg.Clock.AfterFunc(d.cfg.ProbeInterval*scale, d.probeTick)
	target := d.nextTarget()
	if target == "" {
		if d.cutFails > 0 {
			// Nobody left to probe (their connections ended): a failed
			// probe as far as held suspicions go.
			d.cutFails++
			d.confirmHeld()
		}
		return
	}
	d.nonce++
	p := &probe{target: target, nonce: d.nonce, health: d.health}
	d.probes[p.nonce] = p
	d.stats.Probes++
	d.cfg.Transport.Send(target, &Message{Kind: KindPing, Nonce: p.nonce})
	d.cfg.Clock.AfterFunc(d.cfg.ProbeTimeout*scale, func() { d.probeTimeout(p) })
	d.cfg.Clock.AfterFunc(3*d.cfg.ProbeTimeout*scale, func() { d.probeEnd(p) })
}

// probeEnd concludes a probe: an ack makes this node healthier; no ack
// starts a suspicion, and makes this node less healthy if any relay did
// not even answer with a nack (its own messages are likely the ones lost
// or late).
func (d *Detector) probeEnd(p *probe) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.probes, p.nonce)
	if d.stopped {
		return
	}
	if p.acked {
		d.health = max(0, d.health-1)
		return
	}
	if p.nacks < p.relays || p.relays == 0 {
		d.health = min(maxHealth, d.health+1)
	}
	if p.relays > 0 && p.nacks == 0 {
		d.cutFails++
		d.confirmHeld()
	} else if d.cutFails > 0 {
		d.reconnected() // relays answered: this node is heard
	}
	d.suspect(p.target, p.health)
}

// nextTarget walks the members in a random cyclic order (a random start
// and a random stride coprime to their number, new each round), so each is
// probed once per round without copying the table; a round restarts when
// the number of members changes. Members gone meanwhile are skipped.
func (d *Detector) nextTarget() string {
	n := d.cfg.Table.NumMembers()
	if n == 0 {
		return ""
	}
	if n != d.roundN || d.next >= n {
		d.roundN, d.next = n, 0
		d.start = d.cfg.Rand.IntN(n)
		d.stride = 1
		if n > 2 {
			for {
				d.stride = 1 + d.cfg.Rand.IntN(n-1)
				if gcd(d.stride, n) == 1 {
					break
				}
			}
		}
	}
	for d.next < n {
		t := d.cfg.Table.MemberAt((d.start + d.next*d.stride) % n)
		d.next++
		if t != d.cfg.Self {
			return t
		}
	}
	return ""
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// probeTimeout asks IndirectProbes random members to ping an unanswered
// target.
func (d *Detector) probeTimeout(p *probe) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.probes[p.nonce] != p || p.acked {
		return
	}
	d.stats.IndirectProbes++
	for _, via := range d.pick(d.cfg.IndirectProbes, p.target) {
		p.relays++
		d.cfg.Transport.Send(via, &Message{Kind: KindPingReq, Nonce: p.nonce, Target: p.target})
	}
}

// pick returns up to k distinct random members other than self and not.
func (d *Detector) pick(k int, not string) []string {
	n := d.cfg.Table.NumMembers()
	var out []string
	for try := 0; len(out) < k && try < 4*k+8; try++ {
		if n == 0 {
			break
		}
		m := d.cfg.Table.MemberAt(d.cfg.Rand.IntN(n))
		if m == not || m == d.cfg.Self || slices.Contains(out, m) {
			continue
		}
		out = append(out, m)
	}
	return out
}

// suspect starts the suspicion of a member that answered no probe, and
// tells it (a live member refutes with a newer record).
func (d *Detector) suspect(id string, health int) {
	if _, ok := d.suspects[id]; ok {
		return
	}
	seq, ok := d.cfg.Table.Seq(id)
	if !ok {
		return
	}
	d.stats.Suspicions++
	s := &suspicion{seq: seq}
	d.suspects[id] = s
	d.suspicionTerm(id, s, health)
	d.cfg.Transport.Send(id, &Message{Kind: KindSuspect, Seq: seq})
}

// suspicionTerm starts a term of suspicion s: its timeout.
func (d *Detector) suspicionTerm(id string, s *suspicion, health int) {
	s.term++
	term := s.term
	s.timer = d.cfg.Clock.AfterFunc(d.cfg.SuspicionTimeout*time.Duration(health+1), func() { d.suspicionEnd(id, s, term) })
}

// suspicionEnd confirms a death — unless this node is cut off (and has
// members other than the target to reach): then it cannot tell the
// target's death from its own isolation (its link down, its VM suspended),
// which would make it declare every member it probed dead. The suspicion
// is held; the next round trip (a probe's ack, a relay's nack) ends the
// isolation and gives every suspicion a fresh term (reconnected), and
// holdProbes more failed probes confirm it (confirmHeld).
func (d *Detector) suspicionEnd(id string, s *suspicion, term int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.suspects[id] != s || s.term != term {
		return
	}
	cur, ok := d.cfg.Table.Seq(id)
	switch {
	case !ok: // gone meanwhile (a leave, or another detector's notice)
	case cur > s.seq:
		d.stats.Refuted++
	case d.cutFails > 0 && d.cfg.Table.NumMembers() > 1:
		s.timer, s.heldAt = nil, d.cutFails
		d.stats.CutOff++
		return
	default:
		d.stats.Confirmed++
		d.cfg.Table.Confirm(id, s.seq)
	}
	delete(d.suspects, id)
}

// reconnected ends this node's isolation (a round trip worked again):
// every suspicion runs a fresh term, its target pinged — what was sent
// while cut off was likely lost, the target's acks with it; any answer of
// the target clears it (a ping, unlike a suspect message, does not make a
// live target count itself slow).
func (d *Detector) reconnected() {
	d.cutFails = 0
	for id, s := range d.suspects {
		if s.timer != nil {
			s.timer.Stop()
		}
		d.suspicionTerm(id, s, d.health)
		d.cfg.Transport.Send(id, &Message{Kind: KindPing})
	}
}

// confirmHeld confirms the suspicions held for holdProbes failed probes
// (d.mu held).
func (d *Detector) confirmHeld() {
	for id, s := range d.suspects {
		if s.timer != nil || d.cutFails-s.heldAt < holdProbes {
			continue
		}
		delete(d.suspects, id)
		if cur, ok := d.cfg.Table.Seq(id); ok && cur <= s.seq {
			d.stats.Confirmed++
			d.cfg.Table.Confirm(id, s.seq)
		}
	}
}

// tellDead hands a member that pings this node the record this node holds
// of it, if it is not live here: a live member declared dead while it was
// cut off (the notice spread without it) learns so and refutes, without
// waiting for an anti-entropy round. At most once per ProbeInterval per
// member.
func (d *Detector) tellDead(from string) {
	if _, live := d.cfg.Table.Seq(from); live {
		return
	}
	rec := d.cfg.Table.Record(from)
	if rec == nil {
		return
	}
	now := d.cfg.Clock.Now()
	if at, ok := d.told[from]; ok && now.Sub(at) < d.cfg.ProbeInterval {
		return
	}
	if len(d.told) >= maxTold {
		clear(d.told)
	}
	d.told[from] = now
	d.stats.ToldDead++
	d.cfg.Transport.Send(from, &Message{Kind: KindPush, Records: [][]byte{rec}})
}

// clearSuspicion ends the suspicion of id, if any: it answered.
func (d *Detector) clearSuspicion(id string) {
	if s, ok := d.suspects[id]; ok {
		if s.timer != nil {
			s.timer.Stop()
		}
		delete(d.suspects, id)
		d.stats.Refuted++
	}
}

// Suspecting reports whether id is under suspicion here.
func (d *Detector) Suspecting(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.suspects[id]
	return ok
}

func (d *Detector) digestTick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	next := d.cfg.DigestInterval
	if d.fastLeft > 0 {
		d.fastLeft--
		next = d.cfg.FastDigestInterval
	}
	d.dtick = d.cfg.Clock.AfterFunc(next, d.digestTick)
	var to string
	if gone := d.cfg.Table.Departed(); len(gone) > 0 && d.cfg.Rand.IntN(departedShare) == 0 {
		to = gone[d.cfg.Rand.IntN(len(gone))]
	} else if ms := d.pick(1, ""); len(ms) > 0 {
		to = ms[0]
	}
	if to != "" {
		d.sendDigest(to)
	}
}

func (d *Detector) sendDigest(to string) {
	d.stats.DigestRounds++
	d.cfg.Transport.Send(to, &Message{Kind: KindDigest, Digest: d.cfg.Table.Digest().Slice()})
}

// Handle processes a message from peer from and returns the answer to send
// back on the same stream, if any.
func (d *Detector) Handle(from string, m *Message) *Message {
	if m == nil || !m.Valid() || from == d.cfg.Self {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	// Any message from a suspected member shows it alive and reaching
	// this node.
	d.clearSuspicion(from)
	switch m.Kind {
	case KindPing:
		d.tellDead(from)
		return &Message{Kind: KindAck, Nonce: m.Nonce}
	case KindAck:
		d.ack(from, m)
	case KindPingReq:
		if m.Target == "" || m.Target == d.cfg.Self || m.Target == from || len(d.relays) >= maxRelays {
			return nil
		}
		d.nonce++
		n := d.nonce
		r := &relay{requester: from, target: m.Target, nonce: m.Nonce}
		d.relays[n] = r
		d.stats.Relayed++
		d.cfg.Transport.Send(m.Target, &Message{Kind: KindPing, Nonce: n})
		d.cfg.Clock.AfterFunc(d.cfg.ProbeTimeout, func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.relays[n] == r && !d.stopped {
				delete(d.relays, n)
				d.cfg.Transport.Send(r.requester, &Message{Kind: KindNack, Nonce: r.nonce, Target: r.target})
			}
		})
	case KindSuspect:
		// A suspicion is the suspecter's alone: an ack back clears it,
		// no announcement to the whole CLADNet (that cost O(N) per
		// member per false suspicion).
		d.health = min(maxHealth, d.health+1) // suspected: likely slow here
		d.cfg.Table.Suspected(from, m.Seq)
		return &Message{Kind: KindAck, Nonce: m.Nonce}
	case KindNack:
		if p, ok := d.probes[m.Nonce]; ok && p.target == m.Target {
			p.nacks++
			d.stats.Nacks++
			if d.cutFails > 0 {
				d.reconnected() // a relay answered: this node is heard
			}
		}
	case KindDigest:
		if len(m.Digest) != Buckets {
			return nil
		}
		diff := d.cfg.Table.Digest().Diff(m.Digest)
		if len(diff) == 0 {
			return nil
		}
		d.fastLeft = max(d.fastLeft, fastAfterDiff)
		r := &Message{Kind: KindDigestReply, Diff: diff}
		for _, b := range diff {
			r.Entries = append(r.Entries, d.cfg.Table.Bucket(b)...)
		}
		return r
	case KindDigestReply:
		d.stats.DigestDiffs++
		d.fastLeft = max(d.fastLeft, fastAfterDiff)
		d.reconcile(from, m)
	case KindPush:
		if len(m.Records) > 0 {
			killed, stale := d.cfg.Table.Apply(from, m.Records)
			for _, e := range killed {
				// It was declared dead elsewhere: hand it the notice, so a
				// live one refutes (a healed partition).
				if rec := d.cfg.Table.Record(e.ID); rec != nil {
					d.cfg.Transport.Send(e.ID, &Message{Kind: KindPush, Records: [][]byte{rec}})
				}
			}
			var back [][]byte
			for _, id := range stale {
				if rec := d.cfg.Table.Record(id); rec != nil && len(back) < MaxRecords {
					back = append(back, rec)
				}
			}
			if len(back) > 0 {
				d.stats.RecordsPushed += uint64(len(back))
				d.cfg.Transport.Send(from, &Message{Kind: KindPush, Records: back})
			}
		}
		if len(m.Want) > 0 {
			r := &Message{Kind: KindPush}
			for _, id := range m.Want {
				if rec := d.cfg.Table.Record(id); rec != nil {
					r.Records = append(r.Records, rec)
				}
			}
			return r
		}
	}
	return nil
}

func (d *Detector) ack(from string, m *Message) {
	acked := from
	if m.Target != "" {
		acked = m.Target // an indirect ack, relayed by from
	}
	d.clearSuspicion(acked)
	if p, ok := d.probes[m.Nonce]; ok && p.target == acked {
		p.acked = true
		if d.cutFails > 0 {
			d.reconnected()
		}
	}
	if r, ok := d.relays[m.Nonce]; ok && m.Target == "" && r.target == from {
		delete(d.relays, m.Nonce)
		d.cfg.Transport.Send(r.requester, &Message{Kind: KindAck, Nonce: r.nonce, Target: r.target})
	}
}

// reconcile compares the peer's entries of the differing buckets with ours
// and pushes what the peer lacks or holds older, asking for what we lack or
// hold older.
func (d *Detector) reconcile(from string, m *Message) {
	inDiff := map[int]bool{}
	for _, b := range m.Diff {
		inDiff[b] = true
	}
	theirs := make(map[string]uint64, len(m.Entries))
	var want []string
	var push [][]byte
	for _, e := range m.Entries {
		if !inDiff[BucketOf(e.ID)] {
			continue
		}
		if _, dup := theirs[e.ID]; dup {
			continue
		}
		theirs[e.ID] = e.Seq
		mine, ok := d.cfg.Table.Seq(e.ID)
		switch {
		case !ok:
			// Gone here: our death notice (if any) may be news to them;
			// their record may be newer than it.
			if rec := d.cfg.Table.Record(e.ID); rec != nil {
				push = append(push, rec)
			}
			want = append(want, e.ID)
		case mine < e.Seq:
			want = append(want, e.ID)
		case mine > e.Seq:
			if rec := d.cfg.Table.Record(e.ID); rec != nil {
				push = append(push, rec)
			}
		}
	}
	for _, b := range m.Diff {
		for _, e := range d.cfg.Table.Bucket(b) {
			if _, ok := theirs[e.ID]; ok {
				continue
			}
			if rec := d.cfg.Table.Record(e.ID); rec != nil {
				push = append(push, rec)
			}
		}
	}
	d.stats.RecordsPushed += uint64(len(push))
	d.stats.RecordsWanted += uint64(len(want))
	for len(push) > 0 || len(want) > 0 {
		msg := &Message{Kind: KindPush}
		n := min(len(push), MaxRecords)
		msg.Records, push = push[:n], push[n:]
		n = min(len(want), MaxRecords)
		msg.Want, want = want[:n], want[n:]
		d.cfg.Transport.Send(from, msg)
	}
}
