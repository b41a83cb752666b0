package filter

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cost"
)

// Identity is what the filter knows of a member: its certificate's host
// name and groups.
type Identity struct {
	Host   string
	Groups []string
}

// Options tunes a Filter. The zero value selects the defaults.
type Options struct {
	// MaxFlows bounds the connection-tracking table (default 65536).
	MaxFlows int
	// Idle timeouts of tracked flows (defaults: TCP 12 min, UDP 3 min,
	// ICMP and other protocols 30 s).
	TCPTimeout, UDPTimeout, OtherTimeout time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now func() time.Time
}

// Filter decides inbound data packets. Safe for concurrent use: Inbound
// and Outbound may run on any number of goroutines while SetPolicy and
// SetPeers swap the compiled policy.
type Filter struct {
	ct    *conntrack
	now   func() time.Time
	epoch time.Time

	cur atomic.Pointer[compiled]

	mu     sync.Mutex // serializes SetPolicy and SetPeers
	policy *cost.FilterPolicy
	self   Identity
	peers  map[peer.ID]Identity
}

// compiled is one immutable compilation of the policy for this node.
type compiled struct {
	allowAll bool // no rule applies here and the default allows
	defAllow bool
	rules    []rule
	byPeer   map[peer.ID][]int // candidate rules (from matched) per peer
	anyPeer  []int             // candidate rules for a sender with no identity
	counts   *counters
}

type rule struct {
	name    string
	allow   bool
	proto   uint8 // 0 = any
	ports   []cost.PortRange
	icmp    []uint8
	from    []string
	summary RuleStats
}

// counters are kept across recompilations for the same policy.
type counters struct {
	rules       []atomic.Uint64
	def         atomic.Uint64
	established atomic.Uint64
	denied      atomic.Uint64
	passed      atomic.Uint64 // accepted on the allow-all fast path
}

// New returns a filter that allows everything until SetPolicy is called.
func New(opts Options) *Filter {
	if opts.MaxFlows <= 0 {
		opts.MaxFlows = DefaultMaxFlows
	}
	if opts.TCPTimeout <= 0 {
		opts.TCPTimeout = DefaultTCPTimeout
	}
	if opts.UDPTimeout <= 0 {
		opts.UDPTimeout = DefaultUDPTimeout
	}
	if opts.OtherTimeout <= 0 {
		opts.OtherTimeout = DefaultOtherTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Filter{
		ct:    newConntrack(opts.MaxFlows, opts.TCPTimeout, opts.UDPTimeout, opts.OtherTimeout),
		now:   opts.Now,
		epoch: opts.Now(),
	}
	f.cur.Store(&compiled{allowAll: true, defAllow: true, counts: &counters{}})
	return f
}

// SetPolicy installs policy p (nil: allow all) as seen by this node, whose
// own certificate is self. Counters restart when the policy changes.
func (f *Filter) SetPolicy(p *cost.FilterPolicy, self Identity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	same := policyEqual(f.policy, p) && identityEqual(f.self, self)
	f.policy, f.self = p.Clone(), cloneIdentity(self)
	var keep *counters
	if same {
		keep = f.cur.Load().counts
	}
	f.cur.Store(compile(f.policy, f.self, f.peers, keep))
}

// SetPeers replaces the members' identities (by peer ID); counters are
// kept. Unchanged identities cost a comparison, no recompilation.
func (f *Filter) SetPeers(peers map[peer.ID]Identity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.peers != nil && len(f.peers) == len(peers) {
		same := true
		for id, in := range peers {
			if old, ok := f.peers[id]; !ok || !identityEqual(old, in) {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	f.peers = make(map[peer.ID]Identity, len(peers))
	for id, in := range peers {
		f.peers[id] = cloneIdentity(in)
	}
	f.cur.Store(compile(f.policy, f.self, f.peers, f.cur.Load().counts))
}

func compile(p *cost.FilterPolicy, self Identity, peers map[peer.ID]Identity, keep *counters) *compiled {
	c := &compiled{defAllow: p.DefaultAction() == cost.FilterAllow}
	if p != nil {
		for i := range p.Inbound {
			r := &p.Inbound[i]
			if !cost.SelectorMatches(r.To, self.Host, self.Groups) {
				continue
			}
			c.rules = append(c.rules, compileRule(r, i))
		}
	}
	c.allowAll = c.defAllow && len(c.rules) == 0
	if keep != nil && len(keep.rules) == len(c.rules) {
		c.counts = keep
	} else {
		c.counts = &counters{rules: make([]atomic.Uint64, len(c.rules))}
	}
	c.byPeer = make(map[peer.ID][]int, len(peers))
	for i, r := range c.rules {
		if len(r.from) == 0 || slices.Contains(r.from, "*") {
			c.anyPeer = append(c.anyPeer, i)
		}
	}
	for id, in := range peers {
		var idx []int
		for i, r := range c.rules {
			if cost.SelectorMatches(r.from, in.Host, in.Groups) {
				idx = append(idx, i)
			}
		}
		c.byPeer[id] = idx
	}
	return c
}

func compileRule(r *cost.FilterRule, i int) rule {
	out := rule{name: r.RuleName(i), allow: r.ActionName() == cost.FilterAllow, from: slices.Clone(r.From)}
	switch r.ProtoName() {
	case cost.ProtoTCP:
		out.proto = protoTCP
	case cost.ProtoUDP:
		out.proto = protoUDP
	case cost.ProtoICMP:
		out.proto = protoICMP
	}
	for _, s := range r.Ports {
		if pr, err := cost.ParsePortRange(s); err == nil { // validated with the rules
			out.ports = append(out.ports, pr)
		}
	}
	for _, t := range r.ICMPTypes {
		out.icmp = append(out.icmp, uint8(t))
	}
	out.summary = RuleStats{
		Name: out.name, Action: r.ActionName(), From: slices.Clone(r.From), To: slices.Clone(r.To),
		Proto: r.ProtoName(), Ports: slices.Clone(r.Ports), ICMPTypes: slices.Clone(r.ICMPTypes),
	}
	return out
}

// matches reports whether r's protocol, ports and ICMP types match pi.
func (r *rule) matches(pi *pktInfo) bool {
	if r.proto != 0 && r.proto != pi.proto {
		return false
	}
	if len(r.ports) > 0 {
		if !pi.hasPorts {
			return false
		}
		ok := false
		for _, pr := range r.ports {
			if pi.dport >= pr.Lo && pi.dport <= pr.Hi {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(r.icmp) > 0 {
		if len(pi.l4) == 0 {
			return false
		}
		return slices.Contains(r.icmp, pi.icmpType)
	}
	return true
}

func (f *Filter) nanotime() int64 { return int64(f.now().Sub(f.epoch)) }

// Outbound records the flow of a data packet this node sends (pkt is a
// whole IPv4 packet), so that the answers pass Inbound. It does nothing
// while the filter allows everything.
func (f *Filter) Outbound(pkt []byte) {
	if f.cur.Load().allowAll {
		return
	}
	pi, ok := parse(pkt)
	if !ok || !pi.hasPorts {
		return
	}
	k := flowKey{local: pi.src, remote: pi.dst, lport: pi.sport, rport: pi.dport, proto: pi.proto}
	if pi.proto == protoICMP {
		if pi.icmpType != icmpEcho {
			return // only echo requests open a flow
		}
		k.rport = 0
	}
	f.ct.track(k, f.nanotime())
}

// Inbound decides a data packet received from member p (pkt is a whole
// IPv4 packet the engine already validated). It returns true to accept.
func (f *Filter) Inbound(p peer.ID, pkt []byte) bool {
	c := f.cur.Load()
	if c.allowAll {
		c.counts.passed.Add(1)
		return true
	}
	pi, ok := parse(pkt)
	if !ok {
		c.counts.denied.Add(1)
		return false
	}
	if f.reply(&pi) {
		c.counts.established.Add(1)
		return true
	}
	cand, known := c.byPeer[p]
	if !known {
		cand = c.anyPeer
	}
	for _, i := range cand {
		r := &c.rules[i]
		if r.matches(&pi) {
			c.counts.rules[i].Add(1)
			if !r.allow {
				c.counts.denied.Add(1)
			}
			return r.allow
		}
	}
	c.counts.def.Add(1)
	if !c.defAllow {
		c.counts.denied.Add(1)
	}
	return c.defAllow
}

// reply reports whether pi answers a tracked flow.
func (f *Filter) reply(pi *pktInfo) bool {
	switch pi.proto {
	case protoTCP, protoUDP:
		if !pi.hasPorts {
			return false
		}
		return f.ct.established(flowKey{local: pi.dst, remote: pi.src, lport: pi.dport, rport: pi.sport, proto: pi.proto}, f.nanotime())
	case protoICMP:
		if pi.icmpType == icmpEchoReply && pi.hasPorts {
			return f.ct.established(flowKey{local: pi.dst, remote: pi.src, lport: pi.sport, proto: protoICMP}, f.nanotime())
		}
		if icmpError(pi.icmpType) && len(pi.l4) > icmpInnerMinLength {
			// The quoted packet is one we sent: its source is us.
			inner, ok := parse(pi.l4[icmpInnerMinLength:])
			if !ok || !inner.hasPorts || inner.src != pi.dst {
				return false
			}
			k := flowKey{local: inner.src, remote: inner.dst, lport: inner.sport, rport: inner.dport, proto: inner.proto}
			if inner.proto == protoICMP {
				if inner.icmpType != icmpEcho {
					return false
				}
				k.rport = 0
			}
			return f.ct.established(k, f.nanotime())
		}
	}
	return false
}

// RuleStats is one rule as this node applies it, with its counter.
type RuleStats struct {
	Name      string   `json:"name"`
	Action    string   `json:"action"`
	From      []string `json:"from,omitempty"`
	To        []string `json:"to,omitempty"`
	Proto     string   `json:"proto"`
	Ports     []string `json:"ports,omitempty"`
	ICMPTypes []int    `json:"icmpTypes,omitempty"`
	Packets   uint64   `json:"packets"` // inbound packets this rule decided
}

// Stats is a snapshot of the filter's state and counters.
type Stats struct {
	// Default is the action for packets no rule matches; AllowAll is true
	// when no rule applies to this node and the default allows (nothing
	// is tracked then).
	Default  string `json:"default"`
	AllowAll bool   `json:"allowAll"`
	// Rules are the rules whose "to" matches this node, in order.
	Rules []RuleStats `json:"rules"`
	// DefaultPackets were decided by the default; Established answered a
	// tracked flow; Denied is every dropped packet; Passed were accepted
	// while everything was allowed.
	DefaultPackets uint64 `json:"defaultPackets"`
	Established    uint64 `json:"established"`
	Denied         uint64 `json:"denied"`
	Passed         uint64 `json:"passed"`
	// Flows is the size of the connection-tracking table, FlowsEvicted
	// how many live flows a full table pushed out.
	Flows        int    `json:"flows"`
	FlowsEvicted uint64 `json:"flowsEvicted"`
}

// Stats returns the filter's counters.
func (f *Filter) Stats() Stats {
	c := f.cur.Load()
	s := Stats{
		Default:        cost.FilterDeny,
		AllowAll:       c.allowAll,
		Rules:          make([]RuleStats, len(c.rules)),
		DefaultPackets: c.counts.def.Load(),
		Established:    c.counts.established.Load(),
		Denied:         c.counts.denied.Load(),
		Passed:         c.counts.passed.Load(),
		Flows:          f.ct.len(),
		FlowsEvicted:   f.ct.evicted.Load(),
	}
	if c.defAllow {
		s.Default = cost.FilterAllow
	}
	for i := range c.rules {
		s.Rules[i] = c.rules[i].summary
		s.Rules[i].Packets = c.counts.rules[i].Load()
	}
	return s
}

func cloneIdentity(in Identity) Identity {
	return Identity{Host: in.Host, Groups: slices.Clone(in.Groups)}
}

func identityEqual(a, b Identity) bool { return a.Host == b.Host && slices.Equal(a.Groups, b.Groups) }

func policyEqual(a, b *cost.FilterPolicy) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Default != b.Default || len(a.Inbound) != len(b.Inbound) {
		return false
	}
	for i := range a.Inbound {
		x, y := &a.Inbound[i], &b.Inbound[i]
		if x.Name != y.Name || x.Action != y.Action || x.Proto != y.Proto ||
			!slices.Equal(x.From, y.From) || !slices.Equal(x.To, y.To) ||
			!slices.Equal(x.Ports, y.Ports) || !slices.Equal(x.ICMPTypes, y.ICMPTypes) {
			return false
		}
	}
	return true
}
