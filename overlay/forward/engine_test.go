package forward_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/forward/forwardtest"
)

func TestRoutesToRightPeer(t *testing.T) {
	nodes, _ := newMesh(t, 4, forward.Options{})
	a := nodes[0]
	for round := range 5 {
		for i, dst := range nodes[1:] {
			a.dev.inject(t, ipv4Packet(a.ip, dst.ip, 100+i, uint32(round*10+i)))
		}
	}
	for i, dst := range nodes[1:] {
		for round := range 5 {
			p := dst.dev.recv(t)
			if got := ipv4Dst(p); got != dst.ip {
				t.Fatalf("%s got packet for %s", dst.id, got)
			}
			if got := ipv4Src(p); got != a.ip {
				t.Fatalf("%s got packet from %s", dst.id, got)
			}
			if got, want := pktSeq(p), uint32(round*10+i); got != want {
				t.Fatalf("%s: seq %d, want %d", dst.id, got, want)
			}
		}
		dst.dev.expectNone(t, 10*time.Millisecond)
		eventually(t, time.Second, "tx counters", func() bool { return mustStats(t, a.e, dst.id).TxPackets == 5 })
		if s := mustStats(t, dst.e, a.id); s.RxPackets != 5 {
			t.Errorf("rx at %s = %d, want 5", dst.id, s.RxPackets)
		}
	}

	// No route, and packets to self.
	a.dev.inject(t, ipv4Packet(a.ip, netip.MustParseAddr("10.99.9.9"), 60, 0))
	a.dev.inject(t, ipv4Packet(a.ip, a.ip, 60, 0))
	eventually(t, time.Second, "no_route drop", func() bool {
		return a.e.EngineStats().Drops["no_route"] == 1
	})
	a.dev.expectNone(t, 10*time.Millisecond)
}

func TestInOrder10000(t *testing.T) {
	const total = 10000
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]

	var received atomic.Int64
	errc := make(chan error, 1)
	go func() {
		for i := range total {
			select {
			case p := <-b.dev.Output():
				if got := pktSeq(p); got != uint32(i) {
					errc <- &seqError{got: got, want: uint32(i)}
					return
				}
				received.Add(1)
			case <-time.After(5 * time.Second):
				errc <- context.DeadlineExceeded
				return
			}
		}
		errc <- nil
	}()
	for i := range total {
		// Keep fewer packets in flight than the queue holds, like a
		// congestion-controlled sender would.
		for int64(i)-received.Load() > 512 {
			time.Sleep(50 * time.Microsecond)
		}
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 64+i%1300, uint32(i)))
	}
	if err := <-errc; err != nil {
		t.Fatalf("after %d packets: %v", received.Load(), err)
	}
	eventually(t, time.Second, "tx counters", func() bool { return mustStats(t, a.e, b.id).TxPackets == total })
	s := mustStats(t, a.e, b.id)
	if len(s.Drops) != 0 {
		t.Fatalf("tx stats = %+v", s)
	}
	t.Logf("%d packets in %d writes (%.1f packets/write)", s.TxPackets, s.TxWrites,
		float64(s.TxPackets)/float64(s.TxWrites))
}

type seqError struct{ got, want uint32 }

func (e *seqError) Error() string { return "out of order" }

// rawPeer attaches a hand-driven inbound stream from peer `from` to e.
func rawPeer(t *testing.T, e *forward.Engine, from peer.ID) (net.Conn, chan struct{}) {
	t.Helper()
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.HandleStream(from, c2, forward.PathInfo{Remote: "/raw"})
	}()
	t.Cleanup(func() { c1.Close(); <-done })
	return c1, done
}

func TestReceiveValidation(t *testing.T) {
	nodes, _ := newMesh(t, 3, forward.Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	conn, done := rawPeer(t, b.e, a.id)
	write := func(f []byte) {
		t.Helper()
		if _, err := conn.Write(f); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	drops := func(r string) func() bool {
		return func() bool { return mustStats(t, b.e, a.id).Drops[r] == 1 }
	}

	// Valid packet is delivered.
	write(frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 80, 1)))
	if p := b.dev.recv(t); pktSeq(p) != 1 {
		t.Fatalf("unexpected packet")
	}

	// Forged inner source (C's address on A's stream): spoofed.
	write(frameBytes(forward.FrameData, ipv4Packet(c.ip, b.ip, 80, 2)))
	eventually(t, time.Second, "spoofed", drops("spoofed"))

	// Zero-length data frame.
	write(frameBytes(forward.FrameData, nil))
	eventually(t, time.Second, "bad_length", drops("bad_length"))

	// Bad headers: IPv6 version, IHL < 5, total length mismatch, IHL > total.
	bad := [][]byte{}
	p := ipv4Packet(a.ip, b.ip, 80, 3)
	p[0] = 0x65
	bad = append(bad, p)
	p = ipv4Packet(a.ip, b.ip, 80, 3)
	p[0] = 0x44
	bad = append(bad, p)
	p = ipv4Packet(a.ip, b.ip, 80, 3)
	p[3]++
	bad = append(bad, p)
	p = ipv4Packet(a.ip, b.ip, 24, 3)
	p[0] = 0x4f // IHL 60 > total 24
	bad = append(bad, p)
	bad = append(bad, []byte{0x45, 0, 0, 3}) // shorter than a header
	for _, p := range bad {
		write(frameBytes(forward.FrameData, p))
	}
	eventually(t, time.Second, "bad_header", func() bool {
		return mustStats(t, b.e, a.id).Drops["bad_header"] == uint64(len(bad))
	})

	// Unknown frame type: skipped, stream stays usable.
	write(frameBytes(forward.FrameType(9), []byte("hello")))
	eventually(t, time.Second, "bad_type", drops("bad_type"))
	write(frameBytes(forward.FrameKeepalive, nil))
	write(frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 80, 4)))
	if p := b.dev.recv(t); pktSeq(p) != 4 {
		t.Fatalf("unexpected packet")
	}
	b.dev.expectNone(t, 10*time.Millisecond)

	s := mustStats(t, b.e, a.id)
	if s.RxPackets != 2 || s.KeepalivesRecv == 0 {
		t.Fatalf("stats = %+v", s)
	}

	// Over-long length: framing is lost, the stream is closed.
	hdr := make([]byte, forward.HeaderLen)
	forward.PutHeader(hdr, forward.FrameData, forward.MaxPayload(b.e)+1)
	write(hdr)
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("stream not closed after over-long frame")
	}
	if got := mustStats(t, b.e, a.id).Drops["bad_length"]; got != 2 {
		t.Fatalf("bad_length = %d, want 2", got)
	}

	// A peer not in the routing table gets nothing delivered.
	conn2, _ := rawPeer(t, b.e, peer.ID("stranger"))
	if _, err := conn2.Write(frameBytes(forward.FrameData, ipv4Packet(a.ip, b.ip, 80, 5))); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "unknown_peer", func() bool {
		return b.e.EngineStats().Drops["unknown_peer"] == 1
	})
	b.dev.expectNone(t, 10*time.Millisecond)
}

func TestQueueFullDrops(t *testing.T) {
	const qlen = 16
	nodes, _ := newMesh(t, 2, forward.Options{QueueLen: qlen})
	a, b := nodes[0], nodes[1]

	// Gate A's stream to B, then make the writer block inside Write.
	a.dialer.SetGated(true)
	a.e.Rehome(b.id)
	eventually(t, time.Second, "rehome", func() bool { return mustStats(t, a.e, b.id).Rehomes == 1 })
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 100, 0))
	<-a.dialer.Entered()

	for i := 1; i <= 100; i++ {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 100, uint32(i)))
	}
	eventually(t, 2*time.Second, "queue_full drops", func() bool {
		return mustStats(t, a.e, b.id).Drops["queue_full"] == 100-qlen
	})
	if s := mustStats(t, a.e, b.id); s.QueueLen != qlen {
		t.Fatalf("queue length = %d, want %d", s.QueueLen, qlen)
	}

	a.dialer.Release()
	for i := 0; i <= qlen; i++ {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("got seq %d, want %d", pktSeq(p), i)
		}
	}
	b.dev.expectNone(t, 20*time.Millisecond)
}

func TestCoalescing(t *testing.T) {
	const n = 500
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	a.dialer.SetGated(true)
	a.e.Rehome(b.id)
	eventually(t, time.Second, "rehome", func() bool { return mustStats(t, a.e, b.id).Rehomes == 1 })
	fs := a.dialer.Last()
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 200, 0))
	<-a.dialer.Entered()
	for i := 1; i < n; i++ {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 200, uint32(i)))
	}
	eventually(t, 2*time.Second, "queued", func() bool { return mustStats(t, a.e, b.id).QueueLen == n-1 })
	a.dialer.Release()
	for i := range n {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("got seq %d, want %d", pktSeq(p), i)
		}
	}
	writes := fs.Writes()
	t.Logf("%d packets in %d stream writes", n, writes)
	if writes > 3 {
		t.Fatalf("%d packets took %d writes; want coalescing into <= 3", n, writes)
	}
}

func TestReconnectAfterBrokenStream(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	seq := uint32(0)
	send := func(k int) {
		for range k {
			a.dev.inject(t, ipv4Packet(a.ip, b.ip, 120, seq))
			seq++
		}
	}
	recvAll := func(k int) {
		t.Helper()
		for range k {
			b.dev.recv(t)
		}
	}
	send(10)
	recvAll(10)

	// Break the stream: the next write fails, the writer redials and the
	// failed batch is resent on the new stream.
	a.dialer.Last().Close()
	send(10)
	recvAll(10)
	eventually(t, 2*time.Second, "reconnect", func() bool { return mustStats(t, a.e, b.id).Reconnects >= 1 })

	// Outage: dials fail; packets stay queued and are delivered afterwards.
	a.dialer.SetFail(true)
	a.dialer.Last().Close()
	send(10)
	eventually(t, 2*time.Second, "dial failures", func() bool { return mustStats(t, a.e, b.id).DialFailures >= 2 })
	if s := mustStats(t, a.e, b.id); s.StreamUp {
		t.Fatalf("stream reported up during outage: %+v", s)
	}
	a.dialer.SetFail(false)
	recvAll(10)
	eventually(t, time.Second, "tx counters", func() bool { return mustStats(t, a.e, b.id).TxPackets == 30 })
	s := mustStats(t, a.e, b.id)
	if !s.StreamUp || s.Reconnects < 2 || len(s.Drops) != 0 {
		t.Fatalf("stats after outage = %+v", s)
	}
}

func TestRehomeWithoutLoss(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	for i := range 100 {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 300, uint32(i)))
	}
	for range 100 {
		b.dev.recv(t)
	}
	before := mustStats(t, a.e, b.id)
	old := a.dialer.Last()

	a.e.Rehome(b.id)
	eventually(t, time.Second, "rehome", func() bool { return mustStats(t, a.e, b.id).Rehomes == 1 })
	after := mustStats(t, a.e, b.id)
	if after.Path.Remote == before.Path.Remote || !after.StreamUp {
		t.Fatalf("path did not change: %+v -> %+v", before.Path, after.Path)
	}
	if _, err := old.Write([]byte{0}); err == nil {
		t.Fatal("old stream still open after rehome")
	}
	for i := 100; i < 200; i++ {
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 300, uint32(i)))
	}
	for i := 100; i < 200; i++ {
		if p := b.dev.recv(t); pktSeq(p) != uint32(i) {
			t.Fatalf("seq %d, want %d", pktSeq(p), i)
		}
	}
	eventually(t, time.Second, "tx counters", func() bool { return mustStats(t, a.e, b.id).TxPackets == 200 })
	s := mustStats(t, a.e, b.id)
	if s.Reconnects != 0 || len(s.Drops) != 0 {
		t.Fatalf("stats = %+v", s)
	}
	if rs := mustStats(t, b.e, a.id); rs.RxPackets != 200 {
		t.Fatalf("rx = %d", rs.RxPackets)
	}
}

func TestSetRoutesSwapDuringTraffic(t *testing.T) {
	nodes, _ := newMesh(t, 3, forward.Options{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	psB := forward.PeerStateOf(a.e, b.id)
	extra := netip.MustParseAddr("10.99.1.2")
	full := map[netip.Addr]peer.ID{b.ip: b.id, c.ip: c.id}
	alt := map[netip.Addr]peer.ID{b.ip: b.id, c.ip: c.id, extra: b.id}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // traffic A -> B, C
		defer wg.Done()
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a.dev.Input() <- ipv4Packet(a.ip, b.ip, 200, i)
			a.dev.Input() <- ipv4Packet(a.ip, c.ip, 200, i)
		}
	}()
	for _, n := range []*node{b, c} { // sinks
		go func(n *node) {
			defer wg.Done()
			for {
				select {
				case <-n.dev.Output():
				case <-stop:
					return
				}
			}
		}(n)
	}
	for i := range 300 {
		if i%2 == 0 {
			a.e.SetRoutes(alt)
		} else {
			a.e.SetRoutes(full)
		}
		_ = a.e.AllStats()
		if i%50 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()

	if got := forward.PeerStateOf(a.e, b.id); got != psB {
		t.Fatal("peer state for B was replaced by SetRoutes")
	}
	s := mustStats(t, a.e, b.id)
	if s.TxPackets == 0 || s.Reconnects != 0 || a.dialer.Opened() != 2 {
		t.Fatalf("B stats %+v, streams opened %d", s, a.dialer.Opened())
	}

	// Removing C stops its writer and closes its stream.
	cStream := a.dialer.LastTo(c.id)
	a.e.SetRoutes(map[netip.Addr]peer.ID{b.ip: b.id})
	if _, ok := a.e.Stats(c.id); ok {
		t.Fatal("C still has stats after removal")
	}
	eventually(t, time.Second, "C stream closed", func() bool {
		_, err := cStream.Write(nil)
		return err != nil
	})
	// Let Run drain what the traffic generator left in the device first.
	eventually(t, 2*time.Second, "device input drained", func() bool { return len(a.dev.Input()) == 0 })
	time.Sleep(10 * time.Millisecond)
	noRoute := a.e.EngineStats().Drops["no_route"]
	a.dev.inject(t, ipv4Packet(a.ip, c.ip, 100, 0))
	eventually(t, time.Second, "no_route for removed peer", func() bool {
		return a.e.EngineStats().Drops["no_route"] == noRoute+1
	})
}

func TestPing(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for range 3 {
		rtt, path, err := a.e.Ping(ctx, b.id)
		if err != nil {
			t.Fatal(err)
		}
		if rtt <= 0 || path.Transport != "memory" {
			t.Fatalf("rtt=%v path=%+v", rtt, path)
		}
		t.Logf("rtt %v via %s", rtt, path.Remote)
	}
	if _, _, err := a.e.Ping(ctx, peer.ID("nobody")); err == nil {
		t.Fatal("ping to unknown peer succeeded")
	}
	// No reply (dials fail): the context bounds the wait.
	a.dialer.SetFail(true)
	a.dialer.Last().Close()
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, _, err := a.e.Ping(short, b.id); err == nil {
		t.Fatal("ping without a stream succeeded")
	}
	a.dialer.SetFail(false)
}

func TestKeepaliveIsPassive(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{KeepaliveInterval: 20 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	eventually(t, 2*time.Second, "streams up", func() bool {
		return mustStats(t, a.e, b.id).StreamUp && mustStats(t, b.e, a.id).StreamUp
	})
	// An idle pair exchanges nothing: no keepalive chatter.
	time.Sleep(10 * 20 * time.Millisecond)
	if ka := mustStats(t, a.e, b.id).KeepalivesSent + mustStats(t, b.e, a.id).KeepalivesSent; ka != 0 {
		t.Fatalf("%d keepalives between idle peers", ka)
	}
	if a.e.PathDead(b.id) {
		t.Fatal("an idle path is reported dead")
	}
	// Data from a, nothing to send back: b answers with a keepalive.
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 100, 1))
	b.dev.recv(t)
	eventually(t, 2*time.Second, "keepalive answers data", func() bool {
		return mustStats(t, b.e, a.id).KeepalivesSent >= 1 && mustStats(t, a.e, b.id).KeepalivesRecv >= 1
	})
	s := mustStats(t, a.e, b.id)
	if s.Reconnects != 0 || s.PathDead {
		t.Fatalf("stats after an answered packet = %+v", s)
	}
	// And then silence again.
	before := mustStats(t, b.e, a.id).KeepalivesSent
	time.Sleep(10 * 20 * time.Millisecond)
	if after := mustStats(t, b.e, a.id).KeepalivesSent; after != before {
		t.Fatalf("keepalives went on after one answer: %d -> %d", before, after)
	}
}

func TestDeadPathReopens(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{KeepaliveInterval: 10 * time.Millisecond})
	a, b := nodes[0], nodes[1]
	// B stops answering A; A keeps sending data, hears nothing back and
	// must reopen its stream.
	b.e.SetRoutes(nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		for seq := uint32(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				select {
				case a.dev.Input() <- ipv4Packet(a.ip, b.ip, 100, seq):
				case <-stop:
					return
				}
			}
		}
	}()
	eventually(t, 3*time.Second, "dead path reconnects", func() bool {
		return mustStats(t, a.e, b.id).Reconnects >= 2
	})
	if !a.e.PathDead(b.id) {
		t.Fatal("PathDead = false for a peer that does not answer")
	}
	if !a.e.PathDead(peer.ID("nobody")) {
		t.Fatal("PathDead = false for an unknown peer")
	}
	// B routes to A again: it answers and the path recovers.
	b.e.SetRoutes(map[netip.Addr]peer.ID{a.ip: a.id})
	eventually(t, 3*time.Second, "path alive", func() bool { return !a.e.PathDead(b.id) })
}

func TestCloseStopsGoroutines(t *testing.T) {
	baseline := runtime.NumGoroutine()
	fn := forwardtest.NewNet()
	var engines []*forward.Engine
	var devs []testDev
	runs := make(chan error, 3)
	ips := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	ids := []peer.ID{"a", "b", "c"}
	for i := range 3 {
		d := newTestDev(1400)
		e := forward.New(d, fn.Dialer(ids[i]), forward.Options{KeepaliveInterval: 10 * time.Millisecond})
		fn.Add(ids[i], e)
		e.SetLocal(ips[i])
		engines, devs = append(engines, e), append(devs, d)
	}
	for i, e := range engines {
		routes := map[netip.Addr]peer.ID{}
		for j := range 3 {
			if j != i {
				routes[ips[j]] = ids[j]
			}
		}
		e.SetRoutes(routes)
		go func() { runs <- e.Run(context.Background()) }()
	}
	for i := range 50 {
		devs[0].inject(t, ipv4Packet(ips[0], ips[1+i%2], 100, uint32(i)))
	}
	eventually(t, 2*time.Second, "delivery", func() bool { return devs[1].Writes()+devs[2].Writes() == 50 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if _, _, err := engines[1].Ping(ctx, ids[2]); err != nil {
		t.Fatal(err)
	}
	cancel()
	for i, e := range engines {
		e.Close()
		e.Close() // idempotent
		devs[i].Close()
	}
	for range engines {
		if err := <-runs; err != nil {
			t.Fatal(err)
		}
	}
	fn.Wait()
	forwardtest.WaitGoroutines(t, baseline)
	// Using a closed engine is harmless.
	engines[0].SetRoutes(map[netip.Addr]peer.ID{ips[1]: ids[1]})
	engines[0].HandleStream(ids[1], nopStream{}, forward.PathInfo{})
	engines[0].Rehome(ids[1])
	if _, _, err := engines[0].Ping(context.Background(), ids[1]); err == nil {
		t.Fatal("Ping on a closed engine succeeded")
	}
}

type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, net.ErrClosed }
func (nopStream) Write(b []byte) (int, error) { return len(b), nil }
func (nopStream) Close() error                { return nil }

func TestRunReturnsDeviceError(t *testing.T) {
	d := newTestDev(1400)
	e := forward.New(d, forwardtest.NewNet().Dialer("x"), forward.Options{})
	defer e.Close()
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	time.Sleep(5 * time.Millisecond)
	if err := e.Run(context.Background()); err != forward.ErrAlreadyRunning {
		t.Fatalf("second Run: %v", err)
	}
	d.Close()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "read device") {
		t.Fatalf("Run = %v, want wrapped device error", err)
	}
}

func TestStatsJSON(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 100, 0))
	b.dev.recv(t)
	var m map[peer.ID]forward.PeerStats = b.e.AllStats() // plain map semantics
	if len(m) != 1 {
		t.Fatalf("AllStats = %v", m)
	}
	raw, err := json.Marshal(b.e.AllStats())
	if err != nil {
		t.Fatal(err)
	}
	var decoded map[string]map[string]any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	s, ok := decoded[a.id.String()]
	if !ok || len(decoded) != 1 {
		t.Fatalf("decoded %s", raw)
	}
	for _, k := range []string{"peer", "txPackets", "txBytes", "rxPackets", "rxBytes", "reconnects", "path", "streamUp", "lastRecv"} {
		if _, ok := s[k]; !ok {
			t.Errorf("missing %q in %s", k, raw)
		}
	}
	if s["rxPackets"] != 1.0 {
		t.Errorf("rxPackets = %v", s["rxPackets"])
	}
	if _, err := json.Marshal(a.e.EngineStats()); err != nil {
		t.Fatal(err)
	}
}

func TestRehomeUnderTraffic(t *testing.T) {
	const total = 3000
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	seen := make([]bool, total)
	var received atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for received.Load() < total {
			select {
			case p := <-b.dev.Output():
				if s := pktSeq(p); s < total && !seen[s] {
					seen[s] = true
					received.Add(1)
				}
			case <-time.After(5 * time.Second):
				return
			}
		}
	}()
	for i := range total {
		for int64(i)-received.Load() > 256 {
			time.Sleep(50 * time.Microsecond)
		}
		if i%500 == 250 {
			a.e.Rehome(b.id)
		}
		a.dev.inject(t, ipv4Packet(a.ip, b.ip, 500, uint32(i)))
	}
	<-done
	if got := received.Load(); got != total {
		t.Fatalf("delivered %d of %d packets across rehomes", got, total)
	}
	s := mustStats(t, a.e, b.id)
	if s.Rehomes < 2 || s.Reconnects != 0 || len(s.Drops) != 0 {
		t.Fatalf("stats = %+v", s)
	}
	t.Logf("%d rehomes, %d streams opened", s.Rehomes, a.dialer.Opened())
}

// TestAdminDown: while down, packets are dropped both ways and counted as
// admin_down (the sender's send path and the receiver's receive path);
// probes still pass, and up restores delivery at once.
func TestAdminDown(t *testing.T) {
	nodes, _ := newMesh(t, 2, forward.Options{})
	a, b := nodes[0], nodes[1]
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 60, 1))
	b.dev.recv(t)

	a.e.SetAdminDown(true)
	if !a.e.AdminDown() {
		t.Fatal("AdminDown false after SetAdminDown(true)")
	}
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 60, 2))
	eventually(t, time.Second, "send-side admin_down", func() bool { return mustStats(t, a.e, b.id).Drops["admin_down"] == 1 })
	b.dev.inject(t, ipv4Packet(b.ip, a.ip, 60, 3)) // b is up: sent, dropped on arrival
	eventually(t, time.Second, "receive-side admin_down", func() bool { return mustStats(t, a.e, b.id).Drops["admin_down"] == 2 })
	a.dev.expectNone(t, 20*time.Millisecond)
	b.dev.expectNone(t, 20*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := a.e.Ping(ctx, b.id); err != nil {
		t.Fatalf("probe while down: %v", err)
	}

	a.e.SetAdminDown(false)
	a.dev.inject(t, ipv4Packet(a.ip, b.ip, 60, 4))
	if got := pktSeq(b.dev.recv(t)); got != 4 {
		t.Fatalf("after up: seq %d", got)
	}
	b.dev.inject(t, ipv4Packet(b.ip, a.ip, 60, 5))
	if got := pktSeq(a.dev.recv(t)); got != 5 {
		t.Fatalf("after up: seq %d", got)
	}
}
