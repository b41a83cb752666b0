package forwardtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// ErrDialRefused is returned by Dialer.OpenStream while SetFail(true) is in
// effect.
var ErrDialRefused = errors.New("forwardtest: dial refused")

// Handler accepts inbound streams; *forward.Engine is one.
type Handler interface {
	HandleStream(from peer.ID, s forward.Stream, path forward.PathInfo)
}

// Net is an in-memory network: it connects the Dialers it hands out to the
// Handlers added by peer ID, one net.Pipe per opened stream. The zero value
// is not usable; call NewNet.
type Net struct {
	mu       sync.Mutex
	handlers map[peer.ID]Handler
	wg       sync.WaitGroup // HandleStream goroutines
}

// NewNet returns an empty network.
func NewNet() *Net { return &Net{handlers: map[peer.ID]Handler{}} }

// Add makes h the receiver of streams opened to id, replacing any earlier
// one.
func (n *Net) Add(id peer.ID, h Handler) {
	n.mu.Lock()
	n.handlers[id] = h
	n.mu.Unlock()
}

// Remove takes id off the network: later dials to it fail. Streams already
// open are not affected.
func (n *Net) Remove(id peer.ID) {
	n.mu.Lock()
	delete(n.handlers, id)
	n.mu.Unlock()
}

func (n *Net) handler(id peer.ID) Handler {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.handlers[id]
}

// Wait waits for the HandleStream calls of all streams opened so far to
// return (after the engines are closed).
func (n *Net) Wait() { n.wg.Wait() }

// Dialer returns local's forward.Dialer into the network.
func (n *Net) Dialer(local peer.ID) *Dialer {
	return &Dialer{net: n, local: local, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
}

// Dialer is one node's forward.Dialer into a Net. Its faults are set at run
// time: SetFail makes dials fail, SetGated makes new streams block their
// writes until Release.
type Dialer struct {
	net   *Net
	local peer.ID

	fail    atomic.Bool
	gated   atomic.Bool
	proto   atomic.Value // protocol.ID streams report (SetProtocol)
	opened  atomic.Int64
	idle    atomic.Int64
	gate    chan struct{}
	release sync.Once
	entered chan struct{}

	mu      sync.Mutex
	streams []*Stream
}

// OpenStream opens a pipe to p and runs p's HandleStream on the other end
// in a new goroutine (see Net.Wait). The path is
// {Remote: "/memory/<p>/<n>", Transport: "memory"}, n counting the streams
// this dialer opened, so every stream has a distinct path.
func (d *Dialer) OpenStream(ctx context.Context, p peer.ID) (forward.Stream, forward.PathInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, forward.PathInfo{}, err
	}
	if d.fail.Load() {
		return nil, forward.PathInfo{}, ErrDialRefused
	}
	remote := d.net.handler(p)
	if remote == nil {
		return nil, forward.PathInfo{}, fmt.Errorf("forwardtest: no route to %s", p)
	}
	c1, c2 := net.Pipe()
	s := &Stream{Conn: c1, peer: p, closed: make(chan struct{}), proto: forward.ProtocolID}
	if id, ok := d.proto.Load().(protocol.ID); ok {
		s.proto = id
	}
	if d.gated.Load() {
		s.gate, s.entered = d.gate, d.entered
	}
	n := d.opened.Add(1)
	path := forward.PathInfo{Remote: fmt.Sprintf("/memory/%s/%d", p, n), Transport: "memory"}
	d.mu.Lock()
	d.streams = append(d.streams, s)
	d.mu.Unlock()
	d.net.wg.Add(1)
	go func() {
		defer d.net.wg.Done()
		remote.HandleStream(d.local, c2, path)
	}()
	return s, path, nil
}

// IdleClosed implements forward.IdleCloser: it counts the calls.
func (d *Dialer) IdleClosed(peer.ID) { d.idle.Add(1) }

// IdleClosedCalls is how often the engine reported an idle tunnel.
func (d *Dialer) IdleClosedCalls() int64 { return d.idle.Load() }

// SetProtocol makes streams opened from now on report id as their
// negotiated protocol (default forward.ProtocolID), e.g.
// forward.LegacyProtocolID for a peer of the previous version.
func (d *Dialer) SetProtocol(id protocol.ID) { d.proto.Store(id) }

// SetFail makes OpenStream fail with ErrDialRefused while on is true (an
// outage).
func (d *Dialer) SetFail(on bool) { d.fail.Store(on) }

// SetGated decides whether streams opened from now on are gated: their
// Writes block until Release or Close, as on a stuck connection.
func (d *Dialer) SetGated(on bool) { d.gated.Store(on) }

// Entered is signalled (buffer of one, never blocking the writer) when a
// Write on a gated stream starts waiting at the gate.
func (d *Dialer) Entered() <-chan struct{} { return d.entered }

// Release opens the gate for good: blocked and later Writes on gated
// streams proceed. It is idempotent.
func (d *Dialer) Release() { d.release.Do(func() { close(d.gate) }) }

// Opened counts the streams opened so far.
func (d *Dialer) Opened() int64 { return d.opened.Load() }

// LastTo returns the stream opened most recently to p, or nil.
func (d *Dialer) LastTo(p peer.ID) *Stream {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.streams) - 1; i >= 0; i-- {
		if d.streams[i].peer == p {
			return d.streams[i]
		}
	}
	return nil
}

// Last returns the stream opened most recently, or nil.
func (d *Dialer) Last() *Stream {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.streams) == 0 {
		return nil
	}
	return d.streams[len(d.streams)-1]
}

// Stream is the dialing end of an in-memory pipe (a net.Conn, so it has
// deadlines). It counts Write calls; a gated stream's Write blocks until
// its Dialer releases the gate or the stream is closed.
type Stream struct {
	net.Conn
	peer    peer.ID
	writes  atomic.Int64
	gate    chan struct{} // nil: ungated
	entered chan struct{}
	closed  chan struct{}
	once    sync.Once
	proto   protocol.ID
}

// Protocol returns the protocol the stream reports (forward.Protocoler).
func (s *Stream) Protocol() protocol.ID { return s.proto }

// Peer returns the remote end's ID.
func (s *Stream) Peer() peer.ID { return s.peer }

// Writes counts the Write calls so far, including failed and blocked ones.
func (s *Stream) Writes() int64 { return s.writes.Load() }

// Write writes b to the pipe, after waiting at the gate if s is gated.
func (s *Stream) Write(b []byte) (int, error) {
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

// Close closes the pipe and unblocks a Write waiting at the gate.
func (s *Stream) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.Conn.Close()
}
