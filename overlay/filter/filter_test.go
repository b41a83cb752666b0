package filter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cost"
)

var (
	ipSelf  = netip.MustParseAddr("10.7.0.1")
	ipAdmin = netip.MustParseAddr("10.7.0.2")
	ipWeb   = netip.MustParseAddr("10.7.0.3")
	ipOther = netip.MustParseAddr("10.7.0.4")

	pAdmin = peer.ID("admin")
	pWeb   = peer.ID("web")
	pOther = peer.ID("other")
	pNone  = peer.ID("stranger") // no identity known
)

// pkt builds an IPv4 packet: proto 6/17 with ports, or 1 (ICMP) with
// sport as type<<8|code and dport as the echo identifier.
func pkt(proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
	l4 := make([]byte, 8)
	switch proto {
	case protoICMP:
		l4[0], l4[1] = byte(sport>>8), byte(sport)
		binary.BigEndian.PutUint16(l4[4:6], dport)
	default:
		binary.BigEndian.PutUint16(l4[0:2], sport)
		binary.BigEndian.PutUint16(l4[2:4], dport)
	}
	return ipHeader(proto, src, dst, l4, 0)
}

func ipHeader(proto uint8, src, dst netip.Addr, l4 []byte, frag uint16) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:8], frag)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], l4)
	return b
}

func icmpEchoPkt(src, dst netip.Addr, typ uint8, id uint16) []byte {
	return pkt(protoICMP, src, dst, uint16(typ)<<8, id)
}

// icmpErr builds an ICMP error from src to dst quoting inner.
func icmpErr(src, dst netip.Addr, typ uint8, inner []byte) []byte {
	l4 := make([]byte, 8, 8+28)
	l4[0] = typ
	l4 = append(l4, inner[:min(len(inner), 28)]...)
	return ipHeader(protoICMP, src, dst, l4, 0)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time            { return c.t }
func (c *clock) add(d time.Duration)       { c.t = c.t.Add(d) }
func newClock() *clock                     { return &clock{t: time.Unix(1_800_000_000, 0)} }
func self(groups ...string) Identity       { return Identity{Host: "self", Groups: groups} }
func ident(h string, g ...string) Identity { return Identity{Host: h, Groups: g} }

func members() map[peer.ID]Identity {
	return map[peer.ID]Identity{
		pAdmin: ident("vm-admin", "admin"),
		pWeb:   ident("vm-web", "web", "clients"),
		pOther: ident("vm-other"),
	}
}

func newFilter(t *testing.T, p *cost.FilterPolicy, me Identity) (*Filter, *clock) {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("policy: %v", err)
	}
	c := newClock()
	f := New(Options{Now: c.now, MaxFlows: 64})
	f.SetPeers(members())
	f.SetPolicy(p, me)
	return f, c
}

func TestInboundRules(t *testing.T) {
	policy := &cost.FilterPolicy{
		Default: cost.FilterDeny,
		Inbound: []cost.FilterRule{
			{Name: "ssh-admins", From: []string{"group:admin"}, Proto: "tcp", Ports: []string{"22"}},
			{Name: "no-8081", Action: "deny", Proto: "tcp", Ports: []string{"8081"}},
			{Name: "web", From: []string{"group:clients", "host:vm-other"}, Proto: "tcp", Ports: []string{"80", "8000-8100"}},
			{Name: "dns", Proto: "udp", Ports: []string{"53"}},
			{Name: "ping", Proto: "icmp", ICMPTypes: []int{8}},
			{Name: "db-only", To: []string{"group:db"}, Proto: "tcp", Ports: []string{"5432"}},
		},
	}
	cases := []struct {
		name string
		from peer.ID
		pkt  []byte
		want bool
		rule string // counter that must move; "" = default
	}{
		{"admin ssh", pAdmin, pkt(protoTCP, ipAdmin, ipSelf, 40000, 22), true, "ssh-admins"},
		{"web ssh refused", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 22), false, ""},
		{"stranger ssh refused", pNone, pkt(protoTCP, ipOther, ipSelf, 40000, 22), false, ""},
		{"web 80", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 80), true, "web"},
		{"web range low", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 8000), true, "web"},
		{"web range high", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 8100), true, "web"},
		{"web 8101", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 8101), false, ""},
		{"explicit deny before allow", pWeb, pkt(protoTCP, ipWeb, ipSelf, 40000, 8081), false, "no-8081"},
		{"host selector", pOther, pkt(protoTCP, ipOther, ipSelf, 40000, 80), true, "web"},
		{"udp 80 is not tcp 80", pWeb, pkt(protoUDP, ipWeb, ipSelf, 40000, 80), false, ""},
		{"dns from anyone", pOther, pkt(protoUDP, ipOther, ipSelf, 5353, 53), true, "dns"},
		{"dns from stranger", pNone, pkt(protoUDP, ipOther, ipSelf, 5353, 53), true, "dns"},
		{"ping", pOther, icmpEchoPkt(ipOther, ipSelf, icmpEcho, 7), true, "ping"},
		{"unsolicited echo reply", pOther, icmpEchoPkt(ipOther, ipSelf, icmpEchoReply, 7), false, ""},
		{"rule for other members", pAdmin, pkt(protoTCP, ipAdmin, ipSelf, 40000, 5432), false, ""},
		{"other protocol", pAdmin, ipHeader(47, ipAdmin, ipSelf, make([]byte, 8), 0), false, ""},
		{"later fragment has no ports", pAdmin, ipHeader(protoTCP, ipAdmin, ipSelf, make([]byte, 8), 10), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newFilter(t, policy, self("web"))
			if got := f.Inbound(tc.from, tc.pkt); got != tc.want {
				t.Fatalf("Inbound = %v, want %v", got, tc.want)
			}
			st := f.Stats()
			moved := ""
			for _, r := range st.Rules {
				if r.Packets == 1 {
					moved = r.Name
				}
			}
			if moved != tc.rule {
				t.Fatalf("rule counter moved: %q, want %q (stats %+v)", moved, tc.rule, st)
			}
			if tc.rule == "" && st.DefaultPackets != 1 {
				t.Fatalf("default counter = %d, want 1", st.DefaultPackets)
			}
			if wantDenied := map[bool]uint64{true: 0, false: 1}[tc.want]; st.Denied != wantDenied {
				t.Fatalf("denied = %d, want %d", st.Denied, wantDenied)
			}
		})
	}
}

func TestToSelectorCompiledAway(t *testing.T) {
	p := &cost.FilterPolicy{Default: "deny", Inbound: []cost.FilterRule{
		{Name: "db", To: []string{"group:db"}, Proto: "tcp", Ports: []string{"5432"}},
		{Name: "all", Proto: "icmp"},
	}}
	f, _ := newFilter(t, p, self("web"))
	if st := f.Stats(); len(st.Rules) != 1 || st.Rules[0].Name != "all" {
		t.Fatalf("rules applied on a web node: %+v", st.Rules)
	}
	f.SetPolicy(p, self("db"))
	if !f.Inbound(pOther, pkt(protoTCP, ipOther, ipSelf, 1, 5432)) {
		t.Fatal("db node refused 5432")
	}
}

func TestDefaultAllowKeepsTodaysBehaviour(t *testing.T) {
	for _, p := range []*cost.FilterPolicy{nil, {}, {Default: "allow"}} {
		f, _ := newFilter(t, p, self())
		if !f.Inbound(pNone, pkt(protoTCP, ipOther, ipSelf, 1, 22)) {
			t.Fatalf("policy %+v refused a packet", p)
		}
		f.Outbound(pkt(protoTCP, ipSelf, ipOther, 1, 22))
		if st := f.Stats(); !st.AllowAll || st.Passed != 1 || st.Flows != 0 {
			t.Fatalf("policy %+v: stats %+v, want allow-all fast path without tracking", p, st)
		}
	}
	// A deny rule with a default allow: only that is refused.
	f, _ := newFilter(t, &cost.FilterPolicy{Inbound: []cost.FilterRule{{Action: "deny", Proto: "udp"}}}, self())
	if f.Inbound(pWeb, pkt(protoUDP, ipWeb, ipSelf, 1, 2)) || !f.Inbound(pWeb, pkt(protoTCP, ipWeb, ipSelf, 1, 2)) {
		t.Fatal("deny udp / default allow misapplied")
	}
}

func denyAll() *cost.FilterPolicy { return &cost.FilterPolicy{Default: cost.FilterDeny} }

func TestConntrackReplies(t *testing.T) {
	cases := []struct {
		name      string
		out, in   []byte
		wantReply bool
	}{
		{"tcp reply", pkt(protoTCP, ipSelf, ipWeb, 40000, 80), pkt(protoTCP, ipWeb, ipSelf, 80, 40000), true},
		{"tcp other port", pkt(protoTCP, ipSelf, ipWeb, 40000, 80), pkt(protoTCP, ipWeb, ipSelf, 81, 40000), false},
		{"tcp other host", pkt(protoTCP, ipSelf, ipWeb, 40000, 80), pkt(protoTCP, ipOther, ipSelf, 80, 40000), false},
		{"udp reply", pkt(protoUDP, ipSelf, ipWeb, 5353, 53), pkt(protoUDP, ipWeb, ipSelf, 53, 5353), true},
		{"tcp is not udp", pkt(protoTCP, ipSelf, ipWeb, 5353, 53), pkt(protoUDP, ipWeb, ipSelf, 53, 5353), false},
		{"echo reply", icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 9), icmpEchoPkt(ipWeb, ipSelf, icmpEchoReply, 9), true},
		{"echo reply other id", icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 9), icmpEchoPkt(ipWeb, ipSelf, icmpEchoReply, 10), false},
		{"echo request back is new", icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 9), icmpEchoPkt(ipWeb, ipSelf, icmpEcho, 9), false},
		{"our echo reply opens nothing", icmpEchoPkt(ipSelf, ipWeb, icmpEchoReply, 9), icmpEchoPkt(ipWeb, ipSelf, icmpEchoReply, 9), false},
		{"unreachable about our udp", pkt(protoUDP, ipSelf, ipWeb, 5353, 53),
			icmpErr(ipWeb, ipSelf, icmpUnreachable, pkt(protoUDP, ipSelf, ipWeb, 5353, 53)), true},
		{"unreachable about a flow we never had", pkt(protoUDP, ipSelf, ipWeb, 5353, 53),
			icmpErr(ipWeb, ipSelf, icmpUnreachable, pkt(protoUDP, ipSelf, ipWeb, 5354, 53)), false},
		{"time exceeded about our ping", icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 3),
			icmpErr(ipWeb, ipSelf, icmpTimeExceeded, icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 3)), true},
		{"forged quote of someone else's packet", pkt(protoUDP, ipSelf, ipWeb, 5353, 53),
			icmpErr(ipWeb, ipSelf, icmpUnreachable, pkt(protoUDP, ipOther, ipWeb, 5353, 53)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := newFilter(t, denyAll(), self())
			if f.Inbound(pWeb, tc.in) {
				t.Fatal("accepted before any outbound packet")
			}
			f.Outbound(tc.out)
			if got := f.Inbound(pWeb, tc.in); got != tc.wantReply {
				t.Fatalf("after outbound: Inbound = %v, want %v", got, tc.wantReply)
			}
			if st := f.Stats(); tc.wantReply && st.Established != 1 {
				t.Fatalf("established = %d, want 1", st.Established)
			}
		})
	}
}

func TestConntrackTimeouts(t *testing.T) {
	f, c := newFilter(t, denyAll(), self())
	out := pkt(protoUDP, ipSelf, ipWeb, 5353, 53)
	in := pkt(protoUDP, ipWeb, ipSelf, 53, 5353)
	f.Outbound(out)
	c.add(DefaultUDPTimeout - time.Second)
	if !f.Inbound(pWeb, in) {
		t.Fatal("reply refused before the timeout")
	}
	f.Outbound(out) // refresh
	c.add(DefaultUDPTimeout - time.Second)
	if !f.Inbound(pWeb, in) {
		t.Fatal("refresh did not extend the flow")
	}
	c.add(2 * time.Second)
	if f.Inbound(pWeb, in) {
		t.Fatal("reply accepted after the idle timeout")
	}
	tcpOut, tcpIn := pkt(protoTCP, ipSelf, ipWeb, 1, 2), pkt(protoTCP, ipWeb, ipSelf, 2, 1)
	f.Outbound(tcpOut)
	c.add(DefaultUDPTimeout + time.Minute) // longer than UDP, shorter than TCP
	if !f.Inbound(pWeb, tcpIn) {
		t.Fatal("tcp flow expired with the udp timeout")
	}
}

func TestConntrackBounded(t *testing.T) {
	c := newClock()
	f := New(Options{Now: c.now, MaxFlows: 32})
	f.SetPolicy(denyAll(), self())
	for i := range 10_000 {
		f.Outbound(pkt(protoUDP, ipSelf, ipWeb, uint16(i), 53))
	}
	st := f.Stats()
	if st.Flows > 32 {
		t.Fatalf("flow table holds %d flows, bound 32", st.Flows)
	}
	if st.FlowsEvicted < 10_000-32 {
		t.Fatalf("evicted %d, want at least %d", st.FlowsEvicted, 10_000-32)
	}
	// The newest flow survives its own insertion.
	if !f.Inbound(pWeb, pkt(protoUDP, ipWeb, ipSelf, 53, 9999)) {
		t.Fatal("newest flow was evicted")
	}
	// Expired flows are forgotten before live ones are evicted.
	c.add(DefaultUDPTimeout + time.Second)
	before := f.Stats().FlowsEvicted
	f.Outbound(pkt(protoUDP, ipSelf, ipOther, 1, 53)) // its shard is full of expired flows
	if ev := f.Stats().FlowsEvicted - before; ev != 0 {
		t.Fatalf("%d live flows evicted while expired ones were in the table", ev)
	}
}

func TestCountersSurvivePeerChangesNotPolicyChanges(t *testing.T) {
	p := &cost.FilterPolicy{Default: "deny", Inbound: []cost.FilterRule{{Name: "icmp", Proto: "icmp"}}}
	f, _ := newFilter(t, p, self())
	f.Inbound(pWeb, icmpEchoPkt(ipWeb, ipSelf, icmpEcho, 1))
	f.SetPeers(members())
	f.SetPolicy(p.Clone(), self())
	if n := f.Stats().Rules[0].Packets; n != 1 {
		t.Fatalf("counter after SetPeers/same policy = %d, want 1", n)
	}
	p2 := p.Clone()
	p2.Inbound = append(p2.Inbound, cost.FilterRule{Name: "tcp", Proto: "tcp"})
	f.SetPolicy(p2, self())
	if n := f.Stats().Rules[0].Packets; n != 0 {
		t.Fatalf("counter after a policy change = %d, want 0", n)
	}
}

func TestPeerIdentityChanges(t *testing.T) {
	p := &cost.FilterPolicy{Default: "deny", Inbound: []cost.FilterRule{{From: []string{"group:admin"}}}}
	f, _ := newFilter(t, p, self())
	probe := pkt(protoTCP, ipOther, ipSelf, 1, 22)
	if f.Inbound(pOther, probe) {
		t.Fatal("non-admin accepted")
	}
	m := members()
	m[pOther] = ident("vm-other", "admin") // renewed certificate with a new group
	f.SetPeers(m)
	if !f.Inbound(pOther, probe) {
		t.Fatal("new group not applied after SetPeers")
	}
}

func TestMalformedIsDeniedNotPanicking(t *testing.T) {
	f, _ := newFilter(t, &cost.FilterPolicy{Default: "allow", Inbound: []cost.FilterRule{{Action: "deny", Proto: "udp", Ports: []string{"1"}}}}, self())
	for _, b := range [][]byte{nil, {0x45}, make([]byte, 19), {0x46, 0, 0, 20, 0, 0, 0, 0, 0, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}} {
		f.Outbound(b)
		if f.Inbound(pWeb, b) {
			t.Fatalf("malformed %x accepted", b)
		}
	}
	// A truncated TCP header: no ports, so port rules cannot match.
	short := ipHeader(protoTCP, ipWeb, ipSelf, []byte{0, 1}, 0)
	if !f.Inbound(pWeb, short) {
		t.Fatal("truncated tcp refused by a udp rule")
	}
}

func FuzzInbound(f *testing.F) {
	f.Add(pkt(protoTCP, ipWeb, ipSelf, 1, 22), pkt(protoTCP, ipSelf, ipWeb, 22, 1))
	f.Add(icmpErr(ipWeb, ipSelf, icmpUnreachable, pkt(protoUDP, ipSelf, ipWeb, 5, 53)), pkt(protoUDP, ipSelf, ipWeb, 5, 53))
	f.Add(icmpEchoPkt(ipWeb, ipSelf, icmpEchoReply, 1), icmpEchoPkt(ipSelf, ipWeb, icmpEcho, 1))
	p := &cost.FilterPolicy{Default: "deny", Inbound: []cost.FilterRule{
		{From: []string{"group:web"}, Proto: "tcp", Ports: []string{"1-100"}},
		{Proto: "icmp", ICMPTypes: []int{8, 3}},
	}}
	flt := New(Options{MaxFlows: 128})
	flt.SetPeers(members())
	flt.SetPolicy(p, self())
	f.Fuzz(func(t *testing.T, in, out []byte) {
		flt.Outbound(out)
		_ = flt.Inbound(pWeb, in)
		_ = flt.Inbound(pNone, in)
		if st := flt.Stats(); st.Flows > 128 {
			t.Fatalf("flow table over its bound: %d", st.Flows)
		}
	})
}

// BenchmarkInbound is the filter's cost per received packet in each mode.
func BenchmarkInbound(b *testing.B) {
	many := &cost.FilterPolicy{Default: "deny"}
	for i := range 30 {
		many.Inbound = append(many.Inbound, cost.FilterRule{Name: fmt.Sprint("r", i), From: []string{"group:web"}, Proto: "tcp", Ports: []string{fmt.Sprint(1000 + i)}})
	}
	many.Inbound = append(many.Inbound, cost.FilterRule{Name: "https", From: []string{"group:web"}, Proto: "tcp", Ports: []string{"443"}})
	cases := []struct {
		name   string
		policy *cost.FilterPolicy
		in     []byte
		track  []byte
	}{
		{"allow-all", nil, pkt(protoTCP, ipWeb, ipSelf, 40000, 443), nil},
		{"rule-1st", &cost.FilterPolicy{Default: "deny", Inbound: []cost.FilterRule{{From: []string{"group:web"}, Proto: "tcp", Ports: []string{"443"}}}},
			pkt(protoTCP, ipWeb, ipSelf, 40000, 443), nil},
		{"rule-31st", many, pkt(protoTCP, ipWeb, ipSelf, 40000, 443), nil},
		{"established", denyAll(), pkt(protoTCP, ipWeb, ipSelf, 443, 40000), pkt(protoTCP, ipSelf, ipWeb, 40000, 443)},
		{"default-deny", denyAll(), pkt(protoTCP, ipWeb, ipSelf, 40000, 443), nil},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			f := New(Options{})
			f.SetPeers(members())
			f.SetPolicy(tc.policy, self())
			if tc.track != nil {
				f.Outbound(tc.track)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.in)))
			for b.Loop() {
				f.Inbound(pWeb, tc.in)
			}
		})
	}
}

// BenchmarkOutbound is the connection-tracking cost per sent packet.
func BenchmarkOutbound(b *testing.B) {
	for _, tc := range []struct {
		name   string
		policy *cost.FilterPolicy
	}{{"allow-all", nil}, {"tracking", denyAll()}} {
		b.Run(tc.name, func(b *testing.B) {
			f := New(Options{})
			f.SetPolicy(tc.policy, self())
			out := pkt(protoTCP, ipSelf, ipWeb, 40000, 443)
			b.ReportAllocs()
			for b.Loop() {
				f.Outbound(out)
			}
		})
	}
}

// BenchmarkInboundParallel is the established path under contention.
func BenchmarkInboundParallel(b *testing.B) {
	f := New(Options{})
	f.SetPeers(members())
	f.SetPolicy(denyAll(), self())
	for i := range 1024 {
		f.Outbound(pkt(protoTCP, ipSelf, ipWeb, uint16(40000+i), 443))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		ps := make([][]byte, 1024)
		for j := range ps {
			ps[j] = pkt(protoTCP, ipWeb, ipSelf, 443, uint16(40000+j))
		}
		for pb.Next() {
			f.Inbound(pWeb, ps[i&1023])
			i++
		}
	})
}
