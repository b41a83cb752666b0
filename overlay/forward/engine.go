package forward

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Errors returned by the engine.
var (
	ErrClosed         = errors.New("forward: engine closed")
	ErrAlreadyRunning = errors.New("forward: Run already active")
	ErrUnknownPeer    = errors.New("forward: peer not in routing table")
	errFrameTooLong   = errors.New("frame length exceeds maximum")
)

// Engine forwards packets between a Device and per-peer streams.
//
// Send path: a single goroutine (Run) reads the device into pooled
// buffers, looks the destination up in the atomic routing snapshot and
// hands the buffer to the owning peer's bounded queue. Each peer has
// exactly one writer goroutine that drains its queue and coalesces frames
// into one stream Write per batch.
//
// Receive path: the node layer calls HandleStream for every inbound
// stream; its loop validates each frame and writes data packets to the
// device.
type Engine struct {
	dialer Dialer
	dev    Device
	opts   Options
	log    *slog.Logger

	maxPayload int // largest accepted payload: min(MTU+LengthSlack, 65535)
	pool       *packetPool
	filter     Filter    // nil: accept every packet that passed the checks
	subnets    []prefix4 // destinations accepted besides the local address

	routes atomic.Pointer[routeTable]
	drops  dropCounters // drops not attributable to a routed peer
	pings  pingTable
	// adminDown drops every data packet both ways (the CLADNet's DOWN
	// command); streams, keepalives and probes carry on, so UP is immediate.
	adminDown atomic.Bool

	epoch  time.Time // monotonic time base for nanotime
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // serializes SetRoutes/SetLocal/Close and wg.Add
	closed  bool
	wg      sync.WaitGroup // peer writers and inbound receive loops
	running atomic.Bool
}

// New returns an engine forwarding between dev and the streams d opens.
// Call SetLocal and SetRoutes to configure it, Run to start the send path
// and Close to stop everything.
func New(dev Device, d Dialer, opts Options) *Engine {
	opts = opts.withDefaults()
	mtu := dev.MTU()
	if mtu <= 0 {
		mtu = DefaultMTU
	}
	maxPayload := min(mtu+LengthSlack, maxFrameLen)
	if opts.BatchBytes < HeaderLen+maxPayload {
		opts.BatchBytes = HeaderLen + maxPayload
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		dialer:     d,
		dev:        dev,
		opts:       opts,
		log:        opts.Logger,
		maxPayload: maxPayload,
		pool:       newPacketPool(HeaderLen + maxPayload),
		filter:     opts.Filter,
		subnets:    prefixes4(opts.SubnetRoutes),
		epoch:      time.Now(),
		ctx:        ctx,
		cancel:     cancel,
	}
	e.pings.init()
	e.routes.Store(emptyRouteTable())
	return e
}

// Run reads packets from the device and forwards them until ctx is done,
// the engine is closed, or the device returns an error. It is the only
// reader of the device. Because Device.Read cannot be interrupted, Run
// notices cancellation when the pending Read returns; the owner of the
// device closes it to make Run return promptly. Run returns nil when
// stopped by ctx or Close, and the wrapped device error otherwise.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer e.running.Store(false)
	for {
		if ctx.Err() != nil || e.ctx.Err() != nil {
			return nil
		}
		pkt := e.pool.get()
		n, err := e.dev.Read(pkt.buf[HeaderLen:])
		if err != nil {
			e.pool.put(pkt)
			if ctx.Err() != nil || e.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("forward: read device: %w", err)
		}
		e.forward(pkt, n)
	}
}

// forward routes one packet read from the device (payload at
// pkt.buf[HeaderLen:HeaderLen+n]) and takes ownership of pkt.
// It performs no allocation.
func (e *Engine) forward(pkt *packet, n int) {
	if n <= 0 {
		e.pool.put(pkt)
		return
	}
	ip := pkt.buf[HeaderLen : HeaderLen+n]
	if n < ipv4MinHeader || ip[0]>>4 != 4 {
		// Not IPv4 (e.g. IPv6 noise from the OS) or truncated.
		e.drops.add(DropBadHeader)
		e.pool.put(pkt)
		return
	}
	dst := dstKey(ip)
	rt := e.routes.Load()
	if rt.isLocal(dst) {
		e.pool.put(pkt) // to ourselves: not for the mesh
		return
	}
	ps := rt.lookup(dst)
	if ps == nil {
		e.drops.add(DropNoRoute)
		e.pool.put(pkt)
		return
	}
	if e.adminDown.Load() {
		ps.c.drops.add(DropAdminDown)
		e.pool.put(pkt)
		return
	}
	if e.filter != nil {
		e.filter.Outbound(ip)
	}
	putHeader(pkt.buf, FrameData, n)
	pkt.n = HeaderLen + n
	ps.enqueue(pkt)
}

// HandleStream runs the receive loop for one inbound stream from peer p
// and returns when the stream ends, a framing error occurs, or the engine
// is closed. It always closes s. It may be called concurrently for any
// number of streams. Nothing from the stream is trusted beyond p: every
// data packet must carry one of p's overlay addresses (per the current
// snapshot) as its source. Streams from peers that are not (or no longer)
// routed stay open, but their data is dropped ("unknown_peer") until p
// appears in the routing table; this tolerates route updates arriving
// after the peer's first stream.
func (e *Engine) HandleStream(p peer.ID, s Stream, path PathInfo) {
	if !e.track() {
		_ = s.Close()
		return
	}
	defer e.wg.Done()
	stop := context.AfterFunc(e.ctx, func() { _ = s.Close() })
	defer stop()
	defer s.Close()

	err := e.receive(p, s)
	switch {
	case err == nil || e.ctx.Err() != nil:
		e.log.Debug("inbound stream ended", "peer", p, "remote", path.Remote)
	default:
		e.log.Debug("inbound stream failed", "peer", p, "remote", path.Remote, "err", err)
	}
}

// receive reads frames from s until EOF or an error. It reuses one pooled
// buffer for the lifetime of the stream: Device.Write is synchronous.
func (e *Engine) receive(p peer.ID, s Stream) error {
	br := bufio.NewReaderSize(s, readBufferSize)
	pkt := e.pool.get()
	defer e.pool.put(pkt)
	hdr := pkt.buf[:HeaderLen]
	var (
		rt *routeTable // snapshot ps was resolved in
		ps *peerState  // p's state; nil if p is not (or no longer) routed
	)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read frame header from %s: %w", p, err)
		}
		typ, n := parseHeader(hdr)
		if cur := e.routes.Load(); cur != rt {
			rt, ps = cur, cur.peers[p] // re-resolve only when routes change
		}
		if ps != nil {
			now := e.nanotime()
			ps.c.lastRecv.Store(now)
			if typ != FrameKeepalive {
				ps.c.lastRecvData.Store(now)
			}
		}
		if n > e.maxPayload {
			// The payload would not fit any buffer; framing is lost.
			e.drop(ps, DropBadLength)
			return fmt.Errorf("from %s: %w (%d > %d)", p, errFrameTooLong, n, e.maxPayload)
		}
		payload := pkt.buf[HeaderLen : HeaderLen+n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return fmt.Errorf("read %s frame payload (%d bytes) from %s: %w", typ, n, p, err)
		}
		switch typ {
		case FrameData:
			e.deliver(rt, ps, payload)
		case FrameKeepalive:
			if ps != nil {
				ps.c.keepalivesRecv.Add(1)
			}
		case FrameProbe:
			if n != probeLen {
				e.drop(ps, DropBadLength)
				continue
			}
			if ps == nil {
				e.drops.add(DropUnknownPeer)
				continue
			}
			ps.sendControl(FrameProbeReply, payload)
		case FrameProbeReply:
			if n != probeLen {
				e.drop(ps, DropBadLength)
				continue
			}
			e.pings.complete(p, payload)
		default:
			e.drop(ps, DropBadType)
		}
	}
}

// deliver validates one data packet from ps and writes it to the device.
func (e *Engine) deliver(rt *routeTable, ps *peerState, ip []byte) {
	switch {
	case len(ip) == 0:
		e.drop(ps, DropBadLength)
	case !validIPv4(ip):
		e.drop(ps, DropBadHeader)
	case ps == nil:
		e.drops.add(DropUnknownPeer)
	case !rt.owns(ps, srcKey(ip)):
		ps.c.drops.add(DropSpoofed)
	case !e.acceptsDst(rt, dstKey(ip)):
		ps.c.drops.add(DropNotLocal)
	case e.adminDown.Load():
		ps.c.drops.add(DropAdminDown)
	case e.filter != nil && !e.filter.Inbound(ps.id, ip):
		ps.c.drops.add(DropFiltered)
	default:
		if _, err := e.dev.Write(ip); err != nil {
			ps.c.drops.add(DropDeviceError)
			return
		}
		ps.c.rxPackets.Add(1)
		ps.c.rxBytes.Add(uint64(len(ip)))
	}
}

// acceptsDst reports whether a received packet for dst is ours to take:
// our own overlay address or a subnet we route.
func (e *Engine) acceptsDst(rt *routeTable, dst ip4) bool {
	if rt.isLocal(dst) {
		return true
	}
	for _, p := range e.subnets {
		if p.contains(dst) {
			return true
		}
	}
	return false
}

// SetAdminDown takes the data plane down (true) or up: while down, every
// data packet read from the device or received from a peer is dropped and
// counted as "admin_down"; links, keepalives and probes stay up.
func (e *Engine) SetAdminDown(down bool) { e.adminDown.Store(down) }

// AdminDown reports whether the data plane is administratively down.
func (e *Engine) AdminDown() bool { return e.adminDown.Load() }

// drop counts a drop against ps, or against the engine if ps is nil.
func (e *Engine) drop(ps *peerState, r DropReason) {
	if ps != nil {
		ps.c.drops.add(r)
		return
	}
	e.drops.add(r)
}

// track registers a goroutine with the engine's WaitGroup unless the
// engine is closed.
func (e *Engine) track() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	return true
}

// Close stops all peer writers and inbound receive loops (closing their
// streams) and waits for them to exit. A running Run returns after its
// pending device Read. Close is idempotent and always returns nil.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// nanotime returns monotonic nanoseconds since the engine was created,
// plus one so that 0 can mean "never".
func (e *Engine) nanotime() int64 { return int64(time.Since(e.epoch)) + 1 }

// nanotimeAt converts a time to the nanotime scale.
func (e *Engine) nanotimeAt(t time.Time) int64 { return int64(t.Sub(e.epoch)) + 1 }

// wallTime converts a nanotime value back to a time.Time.
func (e *Engine) wallTime(ns int64) time.Time { return e.epoch.Add(time.Duration(ns - 1)) }
