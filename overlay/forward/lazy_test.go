package forward_test

import (
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// TestLazyTunnel: with lazy tunnels no stream is opened before there is
// something to send; the first packet opens it and is delivered (with the
// packets queued behind it, in order); the answer rides the receiver's own
// lazily opened stream; after IdleTimeout without packets both streams
// close and the node layer is told; the next packet opens them again.
func TestLazyTunnel(t *testing.T) {
	idle := 400 * time.Millisecond
	nodes, _ := newMesh(t, 3, forward.Options{Lazy: true, IdleTimeout: idle, KeepaliveInterval: 100 * time.Millisecond})
	a, b, c := nodes[0], nodes[1], nodes[2]
	time.Sleep(200 * time.Millisecond)
	for _, n := range nodes {
		if got := n.dialer.Opened(); got != 0 {
			t.Fatalf("%s opened %d streams before any packet", n.id, got)
		}
	}
	for i := range 5 {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64, uint32(i)))
	}
	for i := range 5 {
		if got := pktSeq(b.dev.recv(t)); got != uint32(i) {
			t.Fatalf("packet %d arrived as %d-th", got, i)
		}
	}
	b.dev.inject(t, ipv4Packet(b.ip, a.ip, 64, uint32(99)))
	if got := pktSeq(a.dev.recv(t)); got != 99 {
		t.Fatalf("answer %d", got)
	}
	if a.dialer.Opened() != 1 || b.dialer.Opened() != 1 || c.dialer.Opened() != 0 {
		t.Fatalf("streams opened: a %d, b %d, c %d; want 1, 1, 0", a.dialer.Opened(), b.dialer.Opened(), c.dialer.Opened())
	}
	if !mustStats(t, a.e, b.id).StreamUp {
		t.Fatal("a's stream to b is down right after traffic")
	}
	eventually(t, 5*time.Second, "both tunnels closed as idle", func() bool {
		return !mustStats(t, a.e, b.id).StreamUp && !mustStats(t, b.e, a.id).StreamUp
	})
	if st := mustStats(t, a.e, b.id); st.IdleCloses != 1 || a.dialer.IdleClosedCalls() != 1 {
		t.Fatalf("idle closes %d, told the dialer %d times; want 1, 1", st.IdleCloses, a.dialer.IdleClosedCalls())
	}
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64, uint32(7)))
	if got := pktSeq(b.dev.recv(t)); got != 7 {
		t.Fatalf("after idle: packet %d", got)
	}
	if a.dialer.Opened() != 2 {
		t.Fatalf("after idle a opened %d streams in all, want 2", a.dialer.Opened())
	}
}

// TestLazyReceiverAnswers: data arriving at a node whose own tunnel to the
// sender is parked opens it, so the sender hears keepalives and does not
// declare the path dead although the receiver has nothing to send.
func TestLazyReceiverAnswers(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{Lazy: true, IdleTimeout: time.Minute, KeepaliveInterval: 100 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	for i := range 20 {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64, uint32(i)))
		b.dev.recv(t)
		time.Sleep(50 * time.Millisecond)
	}
	st := mustStats(t, a.e, b.id)
	if st.KeepalivesRecv == 0 || st.Reconnects != 0 || st.PathDead {
		t.Fatalf("sender: %d keepalives heard, %d reconnects, dead %v; want keepalives, no reconnect", st.KeepalivesRecv, st.Reconnects, st.PathDead)
	}
	if b.dialer.Opened() != 1 {
		t.Fatalf("the receiver opened %d streams, want 1", b.dialer.Opened())
	}
}

// TestLazyDialFails: the packet that asked for a tunnel that cannot be
// opened is dropped and counted; once dials work again the next packet
// gets through. SetLazy(false) opens every tunnel at once.
func TestLazyDialFails(t *testing.T) {
	nodes, _ := newMesh(t, 3, forward.Options{Lazy: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.dialer.SetFail(true)
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64, uint32(1)))
	eventually(t, 5*time.Second, "dial_failed counted", func() bool {
		return mustStats(t, a.e, b.id).Drops["dial_failed"] == 1
	})
	a.dialer.SetFail(false)
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64, uint32(2)))
	if got := pktSeq(b.dev.recv(t)); got != 2 {
		t.Fatalf("got packet %d, want 2", got)
	}
	if c.dialer.Opened() != 0 {
		t.Fatal("c opened a stream while lazy and idle")
	}
	c.e.SetLazy(false)
	eventually(t, 5*time.Second, "c's tunnels open after SetLazy(false)", func() bool {
		return mustStats(t, c.e, a.id).StreamUp && mustStats(t, c.e, b.id).StreamUp
	})
}
