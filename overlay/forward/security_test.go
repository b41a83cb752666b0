package forward_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay/filter"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

func fakeDevs(n int) []*forwardtest.Device {
	devs := make([]*forwardtest.Device, n)
	for i := range devs {
		devs[i] = forwardtest.NewDevice("fake0", 1400)
	}
	return devs
}

// udp builds a UDP packet from src:sport to dst:dport (the test packets'
// sequence number sits where the UDP ports are).
func udp(src, dst netip.Addr, sport, dport uint16) []byte {
	return ipv4Packet(src, dst, 64, uint32(sport)<<16|uint32(dport))
}

// Attack: a member with a valid stream pushes packets with its own source
// address but a destination that is not the receiver's (another member, an
// address outside the CLADNet). Before: delivered into the receiver's
// stack. After: dropped and counted "not_local"; honest traffic flows.
func TestAttackForeignDestinationDropped(t *testing.T) {
	nodes, _ := newMesh(t, 3, forward.Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	conn, _ := rawPeer(t, b.e, a.id)
	for i, dst := range []netip.Addr{c.ip, netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("10.99.0.255")} {
		if _, err := conn.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, dst, 80, uint32(i)))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Second, "not_local drops", func() bool { return mustStats(t, b.e, a.id).Drops["not_local"] == 3 })
	b.dev.expectNone(t, 20*time.Millisecond)
	if _, err := conn.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 80, 7))); err != nil {
		t.Fatal(err)
	}
	if p := b.dev.recv(t); pktSeq(p) != 7 {
		t.Fatal("packet for the receiver's own address lost")
	}
}

// A subnet router accepts its routed prefixes and nothing else.
func TestSubnetRouterAcceptsItsPrefixes(t *testing.T) {
	nodes, _ := newMeshOpts(t, fakeDevs(2), func(i int) forward.Options {
		if i == 1 {
			return forward.Options{SubnetRoutes: []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24"), netip.MustParsePrefix("::/0")}}
		}
		return forward.Options{}
	})
	a, b := nodes[0], nodes[1]
	conn, _ := rawPeer(t, b.e, a.id)
	if _, err := conn.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, netip.MustParseAddr("192.168.7.20"), 80, 1))); err != nil {
		t.Fatal(err)
	}
	if p := b.dev.recv(t); pktSeq(p) != 1 {
		t.Fatal("subnet packet lost")
	}
	if _, err := conn.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, netip.MustParseAddr("192.168.8.20"), 80, 2))); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "not_local", func() bool { return mustStats(t, b.e, a.id).Drops["not_local"] == 1 })
}

// The engine hands received packets to the filter with the sending peer
// and sent packets for connection tracking: allowed by group, denied by
// default, replies to what the node sent pass.
func TestFilterInEngine(t *testing.T) {
	policy := &cost.FilterPolicy{Default: cost.FilterDeny, Inbound: []cost.FilterRule{
		{Name: "dns-from-admins", From: []string{"group:admin"}, Proto: "udp", Ports: []string{"53"}},
	}}
	flt := filter.New(filter.Options{})
	nodes, _ := newMeshOpts(t, fakeDevs(3), func(i int) forward.Options {
		if i == 1 {
			return forward.Options{Filter: flt}
		}
		return forward.Options{}
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	flt.SetPeers(map[peer.ID]filter.Identity{a.id: {Host: "a", Groups: []string{"admin"}}, c.id: {Host: "c"}})
	flt.SetPolicy(policy, filter.Identity{Host: "b"})

	a.dev.inject(t, udp(a.ip, b.ip, 5000, 53)) // allowed by group
	if p := b.dev.recv(t); ipv4Src(p) != a.ip {
		t.Fatal("wrong packet")
	}
	c.dev.inject(t, udp(c.ip, b.ip, 5000, 53)) // c is no admin: default deny
	eventually(t, 2*time.Second, "filtered", func() bool { return mustStats(t, b.e, c.id).Drops["filtered"] == 1 })
	b.dev.expectNone(t, 20*time.Millisecond)

	b.dev.inject(t, udp(b.ip, c.ip, 6000, 7000)) // b opens a flow to c
	if p := c.dev.recv(t); ipv4Src(p) != b.ip {
		t.Fatal("wrong packet")
	}
	c.dev.inject(t, udp(c.ip, b.ip, 7000, 6000)) // the reply passes
	if p := b.dev.recv(t); ipv4Src(p) != c.ip {
		t.Fatal("wrong reply")
	}
	st := flt.Stats()
	if st.Rules[0].Packets != 1 || st.DefaultPackets != 1 || st.Established != 1 || st.Denied != 1 {
		t.Fatalf("filter counters = %+v", st)
	}
}
