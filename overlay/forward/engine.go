package forward

import (
	"bufio"
	"context"
	"encoding/binary"
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
// Send path: a single goroutine (Run) reads batches of packets from the
// device into pooled buffers, looks each destination up in the atomic
// routing snapshot, frames the packet in place and hands the buffer to the
// owning peer's bounded queue. Each peer has exactly one writer goroutine
// that drains its queue and coalesces small frames into one stream Write
// per batch (large ones, such as super-packets, are written in place).
//
// Receive path: the node layer calls HandleStream for every inbound
// stream; its loop validates each frame and writes data packets to the
// device, many per Device.Write when frames arrive back to back.
type Engine struct {
	dialer  Dialer
	dev     Device
	offload bool // dev exchanges virtio-net headers (Offloader)
	opts    Options
	log     *slog.Logger

	maxPayload int // largest accepted data payload: min(MTU+LengthSlack, 65535)
	batch      int // packets per Device.Read / Write
	pool       pools
	filter     Filter    // nil: accept every packet that passed the checks
	subnets    []prefix4 // destinations accepted besides the local address

	routes atomic.Pointer[routeTable]
	drops  dropCounters // drops not attributable to a routed peer
	pings  pingTable
	// adminDown drops every data packet both ways (the CLADNet's DOWN
	// command); streams, keepalives and probes carry on, so UP is immediate.
	adminDown atomic.Bool
	// lazy: writers dial only when they have something to send, and close
	// their stream after Options.IdleTimeout without traffic (SetLazy).
	lazy atomic.Bool

	epoch  time.Time // monotonic time base for nanotime
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // serializes SetRoutes/SetLocal/Close and wg.Add
	closed  bool
	wg      sync.WaitGroup // peer writers and inbound receive loops
	running atomic.Bool
}

// maxBatch caps Device.BatchSize.
const maxBatch = 128

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
	if opts.BatchBytes < gsoHeaderLen+maxFrameLen {
		opts.BatchBytes = gsoHeaderLen + maxFrameLen // room for a super-packet
	}
	o, _ := dev.(Offloader)
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		dialer:     d,
		dev:        dev,
		offload:    o != nil && o.Offload(),
		opts:       opts,
		log:        opts.Logger,
		maxPayload: maxPayload,
		batch:      min(max(dev.BatchSize(), 1), maxBatch),
		filter:     opts.Filter,
		subnets:    prefixes4(opts.SubnetRoutes),
		epoch:      time.Now(),
		ctx:        ctx,
		cancel:     cancel,
	}
	e.pool.small = newPacketPool(Headroom + maxPayload)
	e.pool.big = e.pool.small
	if maxPayload < maxFrameLen {
		// Super-packets (from this device or a peer's) need 64 KiB.
		e.pool.big = newPacketPool(Headroom + maxFrameLen)
	}
	e.pings.init()
	e.lazy.Store(opts.Lazy)
	e.routes.Store(emptyRouteTable())
	return e
}

// Offload reports whether the engine's device has segmentation offloads
// (super-packets are read and written whole).
func (e *Engine) Offload() bool { return e.offload }

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
	readPool := e.pool.small
	if e.offload {
		readPool = e.pool.big
	}
	pkts := make([]*packet, e.batch)
	bufs := make([][]byte, e.batch)
	sizes := make([]int, e.batch)
	for i := range pkts {
		pkts[i] = readPool.get()
		bufs[i] = pkts[i].buf
	}
	defer func() {
		for _, p := range pkts {
			e.pool.put(p)
		}
	}()
	for {
		if ctx.Err() != nil || e.ctx.Err() != nil {
			return nil
		}
		n, err := e.dev.Read(bufs, sizes, Headroom)
		for i := range min(n, len(pkts)) {
			if e.forward(pkts[i], sizes[i]) {
				pkts[i] = readPool.get()
				bufs[i] = pkts[i].buf
			}
		}
		if err != nil {
			if ctx.Err() != nil || e.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("forward: read device: %w", err)
		}
	}
}

// forward routes one packet read from the device (payload at
// pkt.buf[Headroom:Headroom+n], on an offload device preceded by its
// virtio-net header). It returns true if it took ownership of pkt, false
// if the caller may reuse it. It performs no allocation.
func (e *Engine) forward(pkt *packet, n int) bool {
	if n <= 0 || Headroom+n > len(pkt.buf) {
		return false
	}
	ip := pkt.buf[Headroom : Headroom+n]
	if n < ipv4MinHeader || ip[0]>>4 != 4 {
		// Not IPv4 (e.g. IPv6 noise from the OS) or truncated.
		e.drops.add(DropBadHeader)
		return false
	}
	dst := dstKey(ip)
	rt := e.routes.Load()
	if rt.isLocal(dst) {
		return false // to ourselves: not for the mesh
	}
	ps := rt.lookup(dst)
	if ps == nil {
		e.drops.add(DropNoRoute)
		return false
	}
	if e.adminDown.Load() {
		ps.c.drops.add(DropAdminDown)
		return false
	}
	if e.filter != nil {
		e.filter.Outbound(ip) // a super-packet's header stands for its segments
	}
	var vh virtioHdr
	if e.offload {
		vh = decodeVirtio(pkt.buf[Headroom-VirtioNetHdrLen : Headroom])
	}
	pkt.end = Headroom + n
	if vh.gsoType != gsoNone {
		if !validIPv4(ip) {
			ps.c.drops.add(DropBadHeader)
			return false
		}
		if _, _, err := gsoLayout(ip, vh.gsoType, int(vh.gsoSize)); err != nil {
			ps.c.drops.add(DropBadHeader)
			return false
		}
		pkt.start = Headroom - gsoHeaderLen
		putGSOHeader(pkt.buf[pkt.start:], vh.gsoType, int(vh.gsoSize), n)
		ps.enqueue(pkt)
		return true
	}
	if vh.flags&virtioNeedsCsum != 0 && !completeCsum(ip, vh) {
		ps.c.drops.add(DropBadHeader)
		return false
	}
	pkt.start = Headroom - HeaderLen
	putHeader(pkt.buf[pkt.start:], FrameData, n)
	if len(pkt.buf) > e.pool.small.size && pkt.end <= e.pool.small.size {
		// A plain packet read into a super-packet buffer: move it to a
		// small one so queued packets do not pin 64 KiB each.
		sp := e.pool.small.get()
		sp.start, sp.end = pkt.start, pkt.end
		copy(sp.buf[sp.start:sp.end], pkt.buf[pkt.start:pkt.end])
		ps.enqueue(sp)
		return false
	}
	ps.enqueue(pkt)
	return true
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

	err := e.receive(p, s, path.Conn)
	switch {
	case err == nil || e.ctx.Err() != nil:
		e.log.Debug("inbound stream ended", "peer", p, "remote", path.Remote)
	default:
		e.log.Debug("inbound stream failed", "peer", p, "remote", path.Remote, "err", err)
	}
}

// receive reads frames from s (riding connection conn, "" if unknown) until
// EOF or an error. Data packets are collected into a batch that is written
// to the device when it is full or when the next frame has not fully
// arrived yet (so nothing waits for more input).
func (e *Engine) receive(p peer.ID, s Stream, conn string) error {
	br := bufio.NewReaderSize(s, readBufferSize)
	rb := &rxBatch{}
	defer e.flushRx(rb)
	var hdr [gsoHeaderLen]byte
	var (
		rt *routeTable // snapshot ps was resolved in
		ps *peerState  // p's state; nil if p is not (or no longer) routed
	)
	for {
		if len(rb.pkts) > 0 && (len(rb.pkts) >= e.batch || !frameBuffered(br)) {
			e.flushRx(rb)
		}
		if _, err := io.ReadFull(br, hdr[:HeaderLen]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read frame header from %s: %w", p, err)
		}
		typ, n := parseHeader(hdr[:])
		if typ == FrameGSO {
			if _, err := io.ReadFull(br, hdr[HeaderLen:]); err != nil {
				return fmt.Errorf("read gso frame header from %s: %w", p, err)
			}
		}
		if cur := e.routes.Load(); cur != rt {
			rt, ps = cur, cur.peers[p] // re-resolve only when routes change
		}
		if ps != nil {
			now := e.nanotime()
			ps.c.lastRecv.Store(now)
			if conn != "" {
				if out := ps.c.path.Load(); out != nil && out.Conn == conn {
					ps.c.lastRecvSame.Store(now)
				}
			}
			if typ != FrameKeepalive {
				ps.c.lastRecvData.Store(now)
				ps.poke()
			}
		}
		if limit := e.maxPayload; n > limit && typ != FrameGSO {
			// The payload would not fit any buffer; framing is lost.
			e.drop(ps, DropBadLength)
			return fmt.Errorf("from %s: %w (%d > %d)", p, errFrameTooLong, n, limit)
		}
		pkt := e.pool.forPayload(n)
		pkt.end = Headroom + n
		payload := pkt.payload()
		if _, err := io.ReadFull(br, payload); err != nil {
			e.pool.put(pkt)
			return fmt.Errorf("read %s frame payload (%d bytes) from %s: %w", typ, n, p, err)
		}
		switch typ {
		case FrameData:
			e.deliver(rt, ps, pkt, rb)
			continue
		case FrameGSO:
			e.deliverGSO(rt, ps, pkt, hdr[1], int(binary.BigEndian.Uint16(hdr[4:6])), rb)
			continue
		case FrameKeepalive:
			if ps != nil {
				ps.c.keepalivesRecv.Add(1)
			}
		case FrameProbe:
			switch {
			case n != probeLen:
				e.drop(ps, DropBadLength)
			case ps == nil:
				e.drops.add(DropUnknownPeer)
			default:
				ps.sendControl(FrameProbeReply, payload)
			}
		case FrameProbeReply:
			if n != probeLen {
				e.drop(ps, DropBadLength)
			} else {
				e.pings.complete(p, payload)
			}
		default:
			e.drop(ps, DropBadType)
		}
		e.pool.put(pkt)
	}
}

// frameBuffered reports whether a whole next frame is already buffered.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < HeaderLen {
		return false
	}
	h, _ := br.Peek(HeaderLen)
	typ, n := parseHeader(h)
	if typ == FrameGSO {
		n += gsoHeaderLen - HeaderLen
	}
	return br.Buffered() >= HeaderLen+n
}

// rxBatch collects the packets of one stream for one Device.Write.
type rxBatch struct {
	ps   *peerState
	pkts []*packet
	bufs [][]byte
	segs []*packet // scratch for deliverGSO's software segmentation
}

func (rb *rxBatch) add(ps *peerState, pkt *packet) {
	rb.ps = ps
	rb.pkts = append(rb.pkts, pkt)
	rb.bufs = append(rb.bufs, pkt.buf[:pkt.end])
}

// flushRx writes the batch to the device and recycles its packets.
func (e *Engine) flushRx(rb *rxBatch) {
	if len(rb.pkts) == 0 {
		return
	}
	n, err := e.dev.Write(rb.bufs, Headroom)
	n = min(max(n, 0), len(rb.pkts))
	if err != nil && n == len(rb.pkts) {
		n-- // an error with everything "written": count one as lost
	}
	c := &rb.ps.c
	for i, pkt := range rb.pkts {
		if i < n {
			c.rxPackets.Add(1)
			c.rxBytes.Add(uint64(pkt.end - Headroom))
		} else {
			c.drops.add(DropDeviceError)
		}
		e.pool.put(pkt)
		rb.pkts[i], rb.bufs[i] = nil, nil
	}
	rb.pkts, rb.bufs = rb.pkts[:0], rb.bufs[:0]
}

// admit runs the checks every data packet from ps passes: a sane IPv4
// packet, a routed sender, the sender's own source address (the
// anti-spoofing check, also on super-packets), the data plane up.
func (e *Engine) admit(rt *routeTable, ps *peerState, ip []byte) bool {
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
		return true
	}
	return false
}

// deliver validates one data packet from ps and adds it to the batch; it
// takes ownership of pkt.
func (e *Engine) deliver(rt *routeTable, ps *peerState, pkt *packet, rb *rxBatch) {
	if !e.admit(rt, ps, pkt.payload()) {
		e.pool.put(pkt)
		return
	}
	if e.offload {
		clear(pkt.buf[Headroom-VirtioNetHdrLen : Headroom]) // a plain packet
	}
	rb.add(ps, pkt)
}

// deliverGSO validates a super-packet from ps and adds it to the batch:
// whole with its virtio-net header on an offload device, else cut into
// segments. It takes ownership of pkt.
func (e *Engine) deliverGSO(rt *routeTable, ps *peerState, pkt *packet, gsoType uint8, gsoSize int, rb *rxBatch) {
	ip := pkt.payload()
	if !e.admit(rt, ps, ip) {
		e.pool.put(pkt)
		return
	}
	ihl, hdrLen, err := gsoLayout(ip, gsoType, gsoSize)
	if err != nil {
		ps.c.drops.add(DropBadHeader)
		e.pool.put(pkt)
		return
	}
	ps.c.rxGSO.Add(1)
	if e.offload {
		gsoVirtioHdr(ip, gsoType, gsoSize, ihl, hdrLen).encode(pkt.buf[Headroom-VirtioNetHdrLen : Headroom])
		rb.add(ps, pkt)
		return
	}
	if nseg := (len(ip) - hdrLen + gsoSize - 1) / gsoSize; len(rb.pkts)+nseg > e.batch {
		e.flushRx(rb)
	}
	segs := e.segment(ip, gsoType, gsoSize, rb.segs[:0])
	e.pool.put(pkt)
	for i, sp := range segs {
		rb.add(ps, sp)
		segs[i] = nil
	}
	rb.segs = segs[:0]
}

// segment cuts super-packet ip (valid for gsoLayout) into packets from the
// pool (payload at Headroom, end set), appended to segs.
func (e *Engine) segment(ip []byte, gsoType uint8, gsoSize int, segs []*packet) []*packet {
	ihl, hdrLen, err := gsoLayout(ip, gsoType, gsoSize)
	if err != nil {
		return segs
	}
	nseg := (len(ip) - hdrLen + gsoSize - 1) / gsoSize
	var bufArr [maxSoftSegments][]byte
	var sizeArr [maxSoftSegments]int
	bufs, sizes := bufArr[:nseg], sizeArr[:nseg]
	first := len(segs)
	for i := range nseg {
		sp := e.pool.forPayload(hdrLen + gsoSize)
		segs = append(segs, sp)
		bufs[i] = sp.buf
	}
	segmentIPv4(ip, gsoSize, ihl, hdrLen, bufs, sizes, Headroom)
	for i, sp := range segs[first:] {
		sp.end = Headroom + sizes[i]
	}
	return segs
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

// SetLazy switches lazy tunnels on or off. Lazy: a peer's writer opens
// its stream only when it has something to send — a packet, a probe, or an
// answer to data received — and queues packets (bounded) until the stream
// is up; a stream that carried nothing either way for Options.IdleTimeout
// is closed ("idle") and the Dialer, if it is an IdleCloser, told. Not lazy
// (the default): every routed peer's writer keeps a stream open.
func (e *Engine) SetLazy(lazy bool) {
	if e.lazy.Swap(lazy) == lazy || lazy {
		return
	}
	for _, ps := range e.routes.Load().peers {
		select {
		case ps.wake <- struct{}{}:
		default:
		}
	}
}

// Lazy reports whether lazy tunnels are on.
func (e *Engine) Lazy() bool { return e.lazy.Load() }

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
