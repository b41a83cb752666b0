package forward

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/overlay/forward/internal/ipv4test"
)

// frameBytes encodes one frame.
func frameBytes(t FrameType, payload []byte) []byte {
	b := make([]byte, HeaderLen+len(payload))
	putHeader(b, t, len(payload))
	copy(b[HeaderLen:], payload)
	return b
}

func TestHeaderRoundTrip(t *testing.T) {
	b := make([]byte, HeaderLen)
	for _, tc := range []struct {
		t FrameType
		n int
	}{{FrameData, 1400}, {FrameKeepalive, 0}, {FrameProbe, probeLen}, {FrameProbeReply, 0xFFFF}} {
		putHeader(b, tc.t, tc.n)
		if b[1] != 0 {
			t.Fatalf("flags byte = %d", b[1])
		}
		gt, gn := parseHeader(b)
		if gt != tc.t || gn != tc.n {
			t.Fatalf("round trip (%v,%d) -> (%v,%d)", tc.t, tc.n, gt, gn)
		}
	}
	if got := []byte{byte(FrameData), 0, 0x05, 0x78}; !bytes.Equal(func() []byte { putHeader(b, FrameData, 1400); return b }(), got) {
		t.Fatalf("wire encoding = % x, want % x", b, got)
	}
	if FrameType(7).String() != "unknown" || FrameProbeReply.String() != "probe_reply" {
		t.Fatal("FrameType.String")
	}
}

func TestValidIPv4(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	good := ipv4test.Packet(src, dst, 60, 0)
	mut := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string]struct {
		pkt  []byte
		want bool
	}{
		"good":           {good, true},
		"options":        {mut(func(p []byte) []byte { p[0] = 0x46; return p }), true},
		"empty":          {nil, false},
		"short":          {good[:19], false},
		"v6":             {mut(func(p []byte) []byte { p[0] = 0x60; return p }), false},
		"ihl4":           {mut(func(p []byte) []byte { p[0] = 0x44; return p }), false},
		"total too big":  {mut(func(p []byte) []byte { p[3] = 61; return p }), false},
		"total too low":  {mut(func(p []byte) []byte { p[3] = 59; return p }), false},
		"ihl past total": {func() []byte { p := ipv4test.Packet(src, dst, 40, 0); p[0] = 0x4f; return p }(), false},
	}
	for name, tc := range cases {
		if got := validIPv4(tc.pkt); got != tc.want {
			t.Errorf("%s: validIPv4 = %v, want %v", name, got, tc.want)
		}
	}
	if ipv4test.Src(good) != src || ipv4test.Dst(good) != dst {
		t.Fatal("address extraction")
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := DropReason(0); r < numDropReasons; r++ {
		n := r.String()
		if n == "unknown" || seen[n] {
			t.Fatalf("reason %d has name %q", r, n)
		}
		seen[n] = true
	}
}

// discardDev is a Device that swallows writes and never yields packets.
type discardDev struct{}

func (discardDev) Read([][]byte, []int, int) (int, error) { return 0, io.EOF }
func (discardDev) Write(b [][]byte, _ int) (int, error)   { return len(b), nil }
func (discardDev) MTU() int                               { return 1400 }
func (discardDev) BatchSize() int                         { return 8 }
func (readerStream) Write(b []byte) (int, error)          { return len(b), nil }
func (readerStream) Close() error                         { return nil }

type readerStream struct{ io.Reader }

// staticEngine returns an engine whose routing table holds one peer
// "a" (10.0.0.1) whose writer is not running, so its queue can be
// inspected directly.
func staticEngine(dev Device, opts Options) (*Engine, *peerState) {
	e := New(dev, nil, opts)
	ps := e.newPeer("a")
	k, _ := ip4From(netip.MustParseAddr("10.0.0.1"))
	e.routes.Store(&routeTable{
		byIP:  map[ip4]*peerState{k: ps},
		peers: map[peer.ID]*peerState{"a": ps},
	})
	e.SetLocal(netip.MustParseAddr("10.0.0.9"))
	return e, ps
}

// FuzzReceive feeds arbitrary bytes to the receive loop: it must never
// panic, and must only deliver packets with a valid header and source.
func FuzzReceive(f *testing.F) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")
	f.Add(frameBytes(FrameData, ipv4test.Packet(src, dst, 100, 1)))
	f.Add(frameBytes(FrameProbe, make([]byte, probeLen)))
	f.Add(frameBytes(FrameProbeReply, make([]byte, probeLen)))
	f.Add(frameBytes(FrameKeepalive, []byte{1, 2, 3}))
	f.Add([]byte{0, 0, 0xFF, 0xFF, 0x45})
	f.Add([]byte{9, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dev := &checkDev{t: t, src: src}
		e, _ := staticEngine(dev, Options{QueueLen: 4})
		defer e.Close()
		_ = e.receive("a", readerStream{bytes.NewReader(data)}, "")
		_ = e.receive("stranger", readerStream{bytes.NewReader(data)}, "")
	})
}

type checkDev struct {
	discardDev
	t    *testing.T
	src  netip.Addr
	sums bool // check IP and TCP/UDP checksums too (of TCP and UDP packets)
}

func (d *checkDev) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		p := b[offset:]
		if !validIPv4(p) || ipv4test.Src(p) != d.src {
			d.t.Fatalf("delivered invalid packet % x", p)
		}
		if d.sums && p[0] == 0x45 && (p[9] == 6 || p[9] == 17) && !ipv4test.ValidChecksums(p) {
			d.t.Fatalf("delivered segment with bad checksums % x", p[:min(len(p), 64)])
		}
	}
	return len(bufs), nil
}

func TestProbeAnsweredThroughQueue(t *testing.T) {
	e, ps := staticEngine(discardDev{}, Options{})
	defer e.Close()
	payload := []byte("0123456789abcdef")
	if err := e.receive("a", readerStream{bytes.NewReader(frameBytes(FrameProbe, payload))}, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case pkt := <-ps.queue:
		want := frameBytes(FrameProbeReply, payload)
		if !bytes.Equal(pkt.frame(), want) {
			t.Fatalf("reply frame % x, want % x", pkt.frame(), want)
		}
	default:
		t.Fatal("no ProbeReply queued")
	}
	// A reply from the wrong peer does not complete a ping.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	go func() {
		pkt := <-ps.queue // the Probe
		reply := append([]byte(nil), pkt.frame()...)
		reply[0] = byte(FrameProbeReply)
		_ = e.receive("intruder", readerStream{bytes.NewReader(reply)}, "")
	}()
	if _, _, err := e.Ping(ctx, "a"); err == nil {
		t.Fatal("ping completed by a reply from another peer")
	}
}

// TestSendPathZeroAlloc checks that routing a packet from the device to a
// peer queue allocates nothing.
func TestSendPathZeroAlloc(t *testing.T) {
	e, ps := staticEngine(discardDev{}, Options{})
	defer e.Close()
	pkt := ipv4test.Packet(netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), 1400, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		p := e.pool.get()
		n := copy(p.buf[Headroom:], pkt)
		if !e.forward(p, n) {
			t.Fatal("not forwarded")
		}
		e.pool.put(<-ps.queue)
	})
	if allocs != 0 {
		t.Fatalf("send path allocates %.1f times per packet", allocs)
	}
}

// TestQueueBytesBound: a peer's queue holds at most QueueBytes of frames
// (here the minimum, one maximum-size frame), whatever QueueLen allows;
// the rest is dropped as queue_full.
func TestQueueBytesBound(t *testing.T) {
	e, ps := staticEngine(discardDev{}, Options{QueueBytes: 1, QueueLen: 1000})
	defer e.Close()
	pkt := ipv4test.Packet(netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), 1400, 0)
	for range 100 {
		p := e.pool.get()
		n := copy(p.buf[Headroom:], pkt)
		if !e.forward(p, n) {
			e.pool.put(p)
		}
	}
	want := (gsoHeaderLen + maxFrameLen) / (HeaderLen + 1400)
	if got := len(ps.queue); got != want {
		t.Errorf("%d frames queued, want %d", got, want)
	}
	if d := ps.c.drops[DropQueueFull].Load(); d != uint64(100-want) {
		t.Errorf("%d queue_full drops, want %d", d, 100-want)
	}
	for len(ps.queue) > 0 {
		p := <-ps.queue
		ps.dequeued(p)
		e.pool.put(p)
	}
	if q := ps.queued.Load(); q != 0 {
		t.Errorf("%d bytes still accounted after draining", q)
	}
}
