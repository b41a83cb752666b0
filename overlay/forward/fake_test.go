package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ---- Device fake ----------------------------------------------------------

// fakeDev is an in-memory Device: tests push packets into in (what local
// applications send) and read delivered packets from out.
type fakeDev struct {
	mtu       int
	in        chan []byte
	out       chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	writes    atomic.Int64
}

func newFakeDev(mtu int) *fakeDev {
	return &fakeDev{
		mtu:    mtu,
		in:     make(chan []byte, 1024),
		out:    make(chan []byte, 1<<14),
		closed: make(chan struct{}),
	}
}

func (d *fakeDev) MTU() int { return d.mtu }

func (d *fakeDev) Read(buf []byte) (int, error) {
	select {
	case p := <-d.in:
		return copy(buf, p), nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

func (d *fakeDev) Write(pkt []byte) (int, error) {
	cp := append([]byte(nil), pkt...)
	select {
	case d.out <- cp:
		d.writes.Add(1)
		return len(pkt), nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

func (d *fakeDev) Close() { d.closeOnce.Do(func() { close(d.closed) }) }

// inject queues a packet as if a local application had sent it.
func (d *fakeDev) inject(t testing.TB, pkt []byte) {
	t.Helper()
	select {
	case d.in <- pkt:
	case <-time.After(5 * time.Second):
		t.Fatal("inject: device input stuck")
	}
}

// recv waits for one delivered packet.
func (d *fakeDev) recv(t testing.TB) []byte {
	t.Helper()
	select {
	case p := <-d.out:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("recv: no packet delivered")
		return nil
	}
}

// expectNone asserts that nothing is delivered for a short while.
func (d *fakeDev) expectNone(t testing.TB, wait time.Duration) {
	t.Helper()
	select {
	case p := <-d.out:
		t.Fatalf("unexpected packet delivered: % x", p[:min(len(p), 24)])
	case <-time.After(wait):
	}
}

// ---- Stream fake ----------------------------------------------------------

// fakeStream is the dialing end of a net.Pipe. It counts Write calls and
// can be gated: while gated, Write blocks until the gate opens or the
// stream is closed (a writer stuck on a slow connection).
type fakeStream struct {
	net.Conn
	peer    peer.ID // remote end
	writes  atomic.Int64
	gate    chan struct{} // nil: ungated
	entered chan struct{} // signalled when a gated Write starts waiting
	closed  chan struct{}
	once    sync.Once
}

func (s *fakeStream) Write(b []byte) (int, error) {
	s.writes.Add(1)
	if s.gate != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.gate:
		case <-s.closed:
			return 0, io.ErrClosedPipe
		}
	}
	return s.Conn.Write(b)
}

func (s *fakeStream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Conn.Close()
}

// ---- Dialer fake ----------------------------------------------------------

// fakeNet connects engines by peer ID with in-memory pipes.
type fakeNet struct {
	mu      sync.Mutex
	engines map[peer.ID]*Engine
	wg      sync.WaitGroup // HandleStream goroutines
}

func newFakeNet() *fakeNet { return &fakeNet{engines: map[peer.ID]*Engine{}} }

func (n *fakeNet) add(id peer.ID, e *Engine) {
	n.mu.Lock()
	n.engines[id] = e
	n.mu.Unlock()
}

func (n *fakeNet) engine(id peer.ID) *Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.engines[id]
}

// fakeDialer is one node's Dialer into a fakeNet.
type fakeDialer struct {
	net   *fakeNet
	local peer.ID

	fail    atomic.Bool // OpenStream fails while set
	gated   atomic.Bool // new streams start gated (see fakeStream)
	opened  atomic.Int64
	mu      sync.Mutex
	streams []*fakeStream
	gate    chan struct{}
	entered chan struct{}
}

func (n *fakeNet) dialer(local peer.ID) *fakeDialer {
	return &fakeDialer{net: n, local: local, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
}

var errDialRefused = errors.New("fake: dial refused")

func (d *fakeDialer) OpenStream(ctx context.Context, p peer.ID) (Stream, PathInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, PathInfo{}, err
	}
	if d.fail.Load() {
		return nil, PathInfo{}, errDialRefused
	}
	remote := d.net.engine(p)
	if remote == nil {
		return nil, PathInfo{}, fmt.Errorf("fake: no route to %s", p)
	}
	c1, c2 := net.Pipe()
	fs := &fakeStream{Conn: c1, peer: p, closed: make(chan struct{})}
	if d.gated.Load() {
		fs.gate, fs.entered = d.gate, d.entered
	}
	n := d.opened.Add(1)
	path := PathInfo{Remote: fmt.Sprintf("/memory/%s/%d", p, n), Transport: "memory"}
	d.mu.Lock()
	d.streams = append(d.streams, fs)
	d.mu.Unlock()
	d.net.wg.Add(1)
	go func() {
		defer d.net.wg.Done()
		remote.HandleStream(d.local, c2, path)
	}()
	return fs, path, nil
}

// lastTo returns the most recently opened stream to p.
func (d *fakeDialer) lastTo(p peer.ID) *fakeStream {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.streams) - 1; i >= 0; i-- {
		if d.streams[i].peer == p {
			return d.streams[i]
		}
	}
	return nil
}

// last returns the most recently opened stream.
func (d *fakeDialer) last() *fakeStream {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.streams) == 0 {
		return nil
	}
	return d.streams[len(d.streams)-1]
}

// ---- Mesh helper ----------------------------------------------------------

type node struct {
	id     peer.ID
	ip     netip.Addr
	dev    *fakeDev
	dialer *fakeDialer
	e      *Engine
	runErr chan error
}

// newMesh builds n engines on one fakeNet, each with routes to all others,
// running, and torn down (with a goroutine leak check) at test end.
func newMesh(t testing.TB, n int, opts Options) ([]*node, *fakeNet) {
	t.Helper()
	baseline := runtime.NumGoroutine()
	fn := newFakeNet()
	nodes := make([]*node, n)
	for i := range nodes {
		id := peer.ID(fmt.Sprintf("peer-%c", 'A'+i))
		nd := &node{
			id:     id,
			ip:     netip.AddrFrom4([4]byte{10, 99, 0, byte(i + 1)}),
			dev:    newFakeDev(1400),
			runErr: make(chan error, 1),
		}
		nd.dialer = fn.dialer(id)
		nd.e = New(nd.dev, nd.dialer, opts)
		nd.e.SetLocal(nd.ip)
		fn.add(id, nd.e)
		nodes[i] = nd
	}
	for _, nd := range nodes {
		routes := map[netip.Addr]peer.ID{}
		for _, o := range nodes {
			if o != nd {
				routes[o.ip] = o.id
			}
		}
		nd.e.SetRoutes(routes)
		go func(nd *node) { nd.runErr <- nd.e.Run(context.Background()) }(nd)
	}
	t.Cleanup(func() {
		for _, nd := range nodes {
			nd.e.Close()
			nd.dev.Close()
		}
		for _, nd := range nodes {
			select {
			case err := <-nd.runErr:
				if err != nil {
					t.Errorf("Run(%s): %v", nd.id, err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run(%s) did not return", nd.id)
			}
		}
		fn.wg.Wait()
		waitGoroutines(t, baseline)
	})
	return nodes, fn
}

// waitGoroutines fails the test if the goroutine count does not return to
// baseline.
func waitGoroutines(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("goroutine leak: %d > baseline %d\n%s", runtime.NumGoroutine(), baseline,
				buf[:runtime.Stack(buf, true)])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventually polls cond until it holds or fails the test after timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustStats(t testing.TB, e *Engine, p peer.ID) PeerStats {
	t.Helper()
	s, ok := e.Stats(p)
	if !ok {
		t.Fatalf("no stats for %s", p)
	}
	return s
}

// ---- Packets --------------------------------------------------------------

// ipv4Packet builds a valid IPv4/UDP-ish packet of total length size whose
// payload starts with seq.
func ipv4Packet(src, dst netip.Addr, size int, seq uint32) []byte {
	size = max(size, ipv4MinHeader+4)
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(size))
	b[8] = 64
	b[9] = 17
	s4, d4 := src.As4(), dst.As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint32(b[20:24], seq)
	return b
}

func ipv4Src(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[12:16])) }
func ipv4Dst(pkt []byte) netip.Addr { return netip.AddrFrom4([4]byte(pkt[16:20])) }

func pktSeq(b []byte) uint32 { return binary.BigEndian.Uint32(b[20:24]) }

// frameBytes encodes one frame.
func frameBytes(t FrameType, payload []byte) []byte {
	b := make([]byte, HeaderLen+len(payload))
	putHeader(b, t, len(payload))
	copy(b[HeaderLen:], payload)
	return b
}
