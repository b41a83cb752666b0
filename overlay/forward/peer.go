package forward

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// peerState is everything the engine keeps per routed peer. It lives as
// long as the peer is present in the routing snapshot, across any number
// of SetRoutes swaps.
type peerState struct {
	id     peer.ID
	e      *Engine
	queue  chan *packet  // bounded send queue of encoded frames
	queued atomic.Int64  // bytes of the frames in queue (bounded by QueueBytes)
	rehome chan struct{} // cap 1: coalesced Rehome requests
	// wake (cap 1) tells a parked writer (lazy, no stream) that data came
	// in on an inbound stream: it opens its stream to answer (keepalives).
	wake    chan struct{}
	parked  atomic.Bool
	ctx     context.Context
	cancel  context.CancelFunc
	created int64 // engine nanotime at creation
	c       peerCounters
}

func (e *Engine) newPeer(id peer.ID) *peerState {
	ctx, cancel := context.WithCancel(e.ctx)
	return &peerState{
		id:      id,
		e:       e,
		queue:   make(chan *packet, e.opts.QueueLen),
		rehome:  make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		created: e.nanotime(),
	}
}

// enqueue hands pkt to the peer's writer without blocking. If the queue is
// full the packet is dropped and counted. It takes ownership of pkt.
func (ps *peerState) enqueue(pkt *packet) bool {
	n := int64(pkt.end - pkt.start)
	if ps.queued.Add(n) > int64(ps.e.opts.QueueBytes) && n > HeaderLen {
		// Bytes, not only frames: 1024 queued super-packets would be
		// 64 MiB of memory and a quarter second of queueing delay.
		ps.queued.Add(-n)
		ps.c.drops.add(DropQueueFull)
		ps.e.pool.put(pkt)
		return false
	}
	select {
	case ps.queue <- pkt:
		return true
	default:
		ps.queued.Add(-n)
		ps.c.drops.add(DropQueueFull)
		ps.e.pool.put(pkt)
		return false
	}
}

// poke wakes the writer if it is parked.
func (ps *peerState) poke() {
	if ps.parked.Load() {
		select {
		case ps.wake <- struct{}{}:
		default:
		}
	}
}

// dequeued accounts for pkt leaving the queue.
func (ps *peerState) dequeued(pkt *packet) { ps.queued.Add(-int64(pkt.end - pkt.start)) }

// sendControl queues a control frame carrying a copy of payload.
func (ps *peerState) sendControl(t FrameType, payload []byte) bool {
	pkt := ps.e.pool.get()
	pkt.start = Headroom - HeaderLen
	putHeader(pkt.buf[pkt.start:], t, len(payload))
	pkt.end = Headroom + copy(pkt.buf[Headroom:], payload)
	return ps.enqueue(pkt)
}

// stop asks the writer to exit; it closes its stream and discards the queue.
func (ps *peerState) stop() { ps.cancel() }

// pathDead reports whether data sent to the peer has gone unanswered (no
// frame at all came back) for DeadAfter. An idle pair is not dead.
func (ps *peerState) pathDead(now time.Time) bool {
	ws := ps.c.waitingSince.Load()
	return ws != 0 && ps.c.lastRecv.Load() < ws && ps.e.nanotimeAt(now)-ws >= int64(ps.e.opts.DeadAfter)
}

// Rehome tells p's writer that a better connection exists: the writer
// opens a new stream in the background while it keeps writing to the old
// one, switches writes to the new stream between two batches and then
// closes the old stream, so nothing but frames already in flight on the
// old stream's connection can be lost. If no stream is up, the writer
// retries immediately instead of waiting out its backoff. Unknown peers
// are ignored; requests are coalesced.
func (e *Engine) Rehome(p peer.ID) {
	ps := e.routes.Load().peers[p]
	if ps == nil {
		return
	}
	select {
	case ps.rehome <- struct{}{}:
	default:
	}
}

// deadliner is implemented by streams supporting write deadlines.
type deadliner interface {
	SetWriteDeadline(time.Time) error
}

// writer is the state of a peer's single writer goroutine. Invariant: when
// the writer is waiting for work with a stream up, buf is empty; buf is
// only non-empty between batches if a write failed, in which case the
// batch is retried on the next stream.
type writer struct {
	ps   *peerState
	e    *Engine
	opts *Options

	s        Stream
	legacy   bool        // s speaks LegacyProtocolID: no FrameGSO
	dl       deadliner   // s as a deadliner, or nil
	unwatch  func() bool // stops the AfterFunc that closes s on shutdown
	deadline time.Time   // write deadline currently set on s
	openedAt int64       // nanotime s was opened
	lastSend int64       // nanotime of the last successful write

	dialing   bool            // a rehome dial is in flight
	dialRes   chan dialResult // its result (cap 1)
	lost      bool            // the previous stream failed: the next open is a reconnect
	needSleep bool            // back off before the next dial
	backoff   time.Duration
	// held is the packet that woke a parked writer: it goes out first once
	// the stream is up. answer says a parked writer was woken by data
	// received: it sends a keepalive as soon as its stream is up.
	held    *packet
	answer  bool
	idledAt int64 // nanotime the stream was last closed as idle
	timer   *time.Timer

	buf                                    []byte    // coalescing buffer, cap = BatchBytes
	direct                                 []byte    // a frame flush writes instead of buf (see add)
	scratch                                []*packet // addSegmented's segments
	batchGSO                               uint64
	maxFrame                               int
	batchPkts, batchBytes, batchKA, batchP uint64
}

// run is the peer's writer goroutine.
func (ps *peerState) run() {
	e := ps.e
	defer e.wg.Done()
	w := &writer{
		ps:       ps,
		e:        e,
		opts:     &e.opts,
		backoff:  e.opts.MinBackoff,
		buf:      make([]byte, 0, e.opts.BatchBytes),
		dialRes:  make(chan dialResult, 1),
		maxFrame: gsoHeaderLen + maxFrameLen,
	}
	defer w.shutdown()

	tickEvery := max(e.opts.KeepaliveInterval/2, time.Millisecond)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	ctx := ps.ctx
	for ctx.Err() == nil {
		if w.s == nil {
			if w.dialing { // a rehome dial is already under way: use it
				select {
				case r := <-w.dialRes:
					w.adopt(ctx, r)
				case <-ctx.Done():
					return
				}
				continue
			}
			if w.e.lazy.Load() && w.held == nil && !w.answer && !w.park(ctx) {
				return
			}
			if w.needSleep && !w.sleep(ctx) {
				return
			}
			w.connect(ctx)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case pkt := <-ps.queue:
			ps.dequeued(pkt)
			w.add(pkt)
			w.fillAndFlush()
		case <-ps.rehome:
			w.rehome(ctx)
		case r := <-w.dialRes:
			w.adopt(ctx, r)
		case <-tick.C:
			w.housekeeping(tickEvery)
		}
	}
}

// directWrite is the frame size from which the writer writes a frame
// straight from its packet buffer instead of copying it into the batch.
const directWrite = 16 << 10

// add appends pkt's frame to the batch and recycles pkt; a large frame
// (a super-packet) is written in place after the batch so far, without
// the copy. The caller guarantees room for one maximum-size frame.
func (w *writer) add(pkt *packet) {
	f := pkt.frame()
	if w.legacy && FrameType(f[0]) == FrameGSO {
		w.addSegmented(pkt)
		return
	}
	if len(f) >= directWrite && w.s != nil && w.flush() {
		w.count(f)
		w.direct = f
		ok := w.flush()
		w.direct = nil
		if ok {
			w.e.pool.put(pkt)
			return
		}
		// Failed: the frame stays in the batch for the next stream.
	} else {
		w.count(f)
	}
	w.buf = append(w.buf, f...)
	w.e.pool.put(pkt)
}

// addSegmented cuts super-packet pkt (a FrameGSO frame) into plain data
// frames for a peer that speaks LegacyProtocolID and adds them to the
// batch; it recycles pkt.
func (w *writer) addSegmented(pkt *packet) {
	f := pkt.frame()
	segs := w.e.segment(pkt.payload(), f[1], int(binary.BigEndian.Uint16(f[4:6])), w.scratch[:0])
	w.e.pool.put(pkt)
	for i, sp := range segs {
		sp.start = Headroom - HeaderLen
		putHeader(sp.buf[sp.start:], FrameData, sp.end-Headroom)
		if cap(w.buf)-len(w.buf) < sp.end-sp.start {
			w.flush() // on failure the batch is kept and the rest goes into it
		}
		if cap(w.buf)-len(w.buf) >= sp.end-sp.start {
			w.add(sp)
		} else {
			w.e.pool.put(sp)
		}
		segs[i] = nil
	}
	w.scratch = segs[:0]
}

// count adds frame f to the counters of the batch being built.
func (w *writer) count(f []byte) {
	switch FrameType(f[0]) {
	case FrameData:
		w.batchPkts++
		w.batchBytes += uint64(len(f) - HeaderLen)
	case FrameGSO:
		w.batchPkts++
		w.batchGSO++
		w.batchBytes += uint64(len(f) - gsoHeaderLen)
	case FrameProbe:
		w.batchP++
	}
}

// fillAndFlush moves everything already queued into the batch until the
// queue is empty or the batch is full, then writes the batch with a single
// Write. Returning to the select after each batch keeps the writer
// responsive to rehome, housekeeping and shutdown under sustained load.
func (w *writer) fillAndFlush() {
	q := w.ps.queue
fill:
	for cap(w.buf)-len(w.buf) >= w.maxFrame {
		select {
		case pkt := <-q:
			w.ps.dequeued(pkt)
			w.add(pkt)
		default:
			break fill
		}
	}
	w.flush()
}

// flush writes the batch. On failure the stream is dropped and the batch
// kept for the next stream.
func (w *writer) flush() bool {
	out := w.buf
	if w.direct != nil {
		out = w.direct
	}
	if len(out) == 0 {
		return true
	}
	if w.s == nil {
		// An earlier write of this round failed (add's direct write):
		// the batch waits for the next stream.
		return false
	}
	now := w.e.nanotime()
	if w.dl != nil {
		// Refresh the deadline only when half of it is used up: setting a
		// deadline may allocate (timers), so not once per batch.
		wall := w.e.epoch.Add(time.Duration(now))
		if w.deadline.Sub(wall) < w.opts.DeadAfter/2 {
			w.deadline = wall.Add(w.opts.DeadAfter)
			_ = w.dl.SetWriteDeadline(w.deadline)
		}
	}
	if _, err := w.s.Write(out); err != nil {
		w.e.log.Debug("stream write failed", "peer", w.ps.id, "bytes", len(out), "err", err)
		w.dropStream("write failed: " + err.Error())
		w.needSleep = true
		return false
	}
	c := &w.ps.c
	c.txWrites.Add(1)
	if w.batchPkts != 0 || w.batchP != 0 {
		// Data now awaits an answer; an older unanswered write keeps
		// its earlier start.
		if ws := c.waitingSince.Load(); ws == 0 || w.answeredOn() >= ws {
			c.waitingSince.Store(now)
		}
	}
	if w.batchPkts != 0 {
		c.txPackets.Add(w.batchPkts)
		c.txBytes.Add(w.batchBytes)
		if w.batchGSO != 0 {
			c.txGSO.Add(w.batchGSO)
			w.batchGSO = 0
		}
	}
	if w.batchKA != 0 {
		c.keepalivesSent.Add(w.batchKA)
	}
	if w.batchP != 0 {
		c.probesSent.Add(w.batchP)
	}
	w.buf = w.buf[:0]
	w.batchPkts, w.batchBytes, w.batchKA, w.batchP = 0, 0, 0, 0
	w.lastSend = now
	w.backoff = w.opts.MinBackoff
	return true
}

// housekeeping runs on every tick: dead-path detection and keepalives.
//
// Keepalives are passive, as in WireGuard: a peer that sent us data and
// heard nothing back for KeepaliveInterval gets a keepalive, so it knows the
// path works; an idle pair exchanges nothing at all (a CLADNet of a thousand
// nodes would otherwise spend most of its idle traffic on keepalives). A
// path is dead when data or probes we sent stayed unanswered — no frame of
// any kind back — for DeadAfter; the writer then reopens its stream and
// asks the node layer to drop the connection underneath.
func (w *writer) housekeeping(tickEvery time.Duration) {
	now := w.e.nanotime()
	c := &w.ps.c
	lastRecv := c.lastRecv.Load()
	if ws := c.waitingSince.Load(); ws != 0 {
		if lastRecv >= ws && w.answeredOn() < ws {
			// Answered, but on another connection only: after DeadAfter,
			// have ours checked (see ConnChecker).
			if now-max(ws, w.openedAt) >= int64(w.opts.DeadAfter) {
				if ck, ok := w.e.dialer.(ConnChecker); ok {
					if p := c.path.Load(); p != nil {
						w.e.log.Info("answers only on another connection, checking ours", "peer", w.ps.id, "remote", p.Remote)
						ck.CheckConn(w.ps.id, *p)
					}
				}
				c.waitingSince.Store(0)
			}
		} else if lastRecv >= ws {
			c.waitingSince.Store(0) // answered
		} else if since := max(ws, w.openedAt); now-since >= int64(w.opts.DeadAfter) {
			w.e.log.Info("path dead, reopening stream", "peer", w.ps.id,
				"unanswered", time.Duration(now-ws))
			w.dropStream(fmt.Sprintf("path dead: data unanswered for %s", time.Duration(now-ws).Round(time.Millisecond))) // reconnect at once, no backoff
			if r, ok := w.e.dialer.(PathResetter); ok {
				r.ResetPath(w.ps.id)
			}
			return
		}
	}
	if w.e.lazy.Load() && w.opts.IdleTimeout > 0 && len(w.buf) == 0 &&
		now-max(w.lastSend, c.lastRecvData.Load(), w.openedAt) >= int64(w.opts.IdleTimeout) && len(w.ps.queue) == 0 {
		w.idle()
		return
	}
	if c.lastRecvData.Load() > w.lastSend && now-w.lastSend >= int64(w.opts.KeepaliveInterval-tickEvery/2) {
		w.buf = appendKeepalive(w.buf)
		w.batchKA++
		w.flush()
	}
}

// idle closes the stream of a lazy tunnel that carried nothing for
// IdleTimeout and tells the node layer (IdleCloser), which may close the
// connection underneath; the writer parks until the next packet.
func (w *writer) idle() {
	w.e.log.Debug("tunnel idle, closing its stream", "peer", w.ps.id, "idle", w.opts.IdleTimeout)
	if w.opts.OnPath != nil {
		w.opts.OnPath(w.ps.id, nil, "idle for "+w.opts.IdleTimeout.String())
	}
	w.unwatch()
	_ = w.s.Close()
	w.s, w.dl, w.unwatch = nil, nil, nil
	w.ps.c.path.Store(nil)
	w.ps.c.waitingSince.Store(0)
	w.ps.c.idleCloses.Add(1)
	w.idledAt = w.e.nanotime()
	if ic, ok := w.e.dialer.(IdleCloser); ok {
		ic.IdleClosed(w.ps.id)
	}
}

// answeredOn is when the peer's last frame arrived on the connection our
// stream rides, or, when that connection is not known, on any.
func (w *writer) answeredOn() int64 {
	if p := w.ps.c.path.Load(); p != nil && p.Conn != "" {
		return w.ps.c.lastRecvSame.Load()
	}
	return w.ps.c.lastRecv.Load()
}

// dial opens a stream to the peer with the dial timeout.
func (w *writer) dial(ctx context.Context) (Stream, PathInfo, error) {
	if w.e.dialer == nil {
		return nil, PathInfo{}, fmt.Errorf("open stream to %s: no dialer configured", w.ps.id)
	}
	dctx, cancel := context.WithTimeout(ctx, w.opts.DialTimeout)
	defer cancel()
	s, path, err := w.e.dialer.OpenStream(dctx, w.ps.id)
	if err != nil {
		return nil, PathInfo{}, fmt.Errorf("open stream to %s: %w", w.ps.id, err)
	}
	if s == nil {
		return nil, PathInfo{}, fmt.Errorf("open stream to %s: dialer returned nil stream", w.ps.id)
	}
	return s, path, nil
}

// connect tries once to open a stream; on failure it arms the backoff.
func (w *writer) connect(ctx context.Context) {
	s, path, err := w.dial(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.ps.c.dialFailures.Add(1)
			w.e.log.Debug("dial failed", "peer", w.ps.id, "backoff", w.backoff, "err", err)
		}
		w.needSleep = true
		if w.held != nil {
			// A lazy tunnel that could not be opened: the packet that
			// asked for it is dropped (packets queued since stay, and
			// ask again after the backoff).
			w.ps.c.drops.add(DropDialFailed)
			w.e.pool.put(w.held)
			w.held = nil
		}
		w.answer = false
		return
	}
	why := "opened"
	if w.lost {
		why = "reconnected"
	}
	w.attach(ctx, s, path, why)
	if w.lost {
		w.lost = false
		w.ps.c.reconnects.Add(1)
	}
	w.needSleep = false
	w.flush() // a batch kept from a failed write, if any
	if w.held != nil {
		pkt := w.held
		w.held = nil
		w.add(pkt)
		w.fillAndFlush()
	}
	if w.answer {
		w.answer = false
		w.buf = appendKeepalive(w.buf)
		w.batchKA++
		w.flush()
	}
}

// park is where a lazy writer without a stream waits until it has
// something to send: a packet (kept in held), data received from the peer
// that wants an answer, or the engine leaving lazy mode. It returns false
// when ctx is done.
func (w *writer) park(ctx context.Context) bool {
	ps := w.ps
	ps.parked.Store(true)
	defer ps.parked.Store(false)
	for {
		if !w.e.lazy.Load() {
			return true
		}
		if lr := ps.c.lastRecvData.Load(); lr > w.lastSend && lr > w.idledAt {
			w.answer = true
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case pkt := <-ps.queue:
			ps.dequeued(pkt)
			w.held = pkt // after a failed dial, still after the backoff
			return true
		case <-ps.wake:
		case <-ps.rehome: // nothing to move
		}
	}
}

// attach makes s the active stream; why goes to the path history.
func (w *writer) attach(ctx context.Context, s Stream, path PathInfo, why string) {
	now := w.e.nanotime()
	w.s = s
	w.legacy = false
	if p, ok := s.(Protocoler); ok && p.Protocol() == LegacyProtocolID {
		w.legacy = true
	}
	w.unwatch = context.AfterFunc(ctx, func() { _ = s.Close() })
	w.dl, _ = s.(deadliner)
	w.deadline = time.Time{}
	w.openedAt = now
	w.lastSend = now
	w.ps.c.path.Store(&path)
	w.e.log.Debug("stream up", "peer", w.ps.id, "remote", path.Remote,
		"transport", path.Transport, "relayed", path.Relayed)
	if w.opts.OnPath != nil {
		w.opts.OnPath(w.ps.id, &path, why)
	}
}

// dropStream closes the active stream after a failure (why, for the path
// history); the next stream opened counts as a reconnect.
func (w *writer) dropStream(why string) {
	if w.s == nil {
		return
	}
	if w.opts.OnPath != nil {
		w.opts.OnPath(w.ps.id, nil, why)
	}
	w.unwatch()
	_ = w.s.Close()
	w.s, w.dl, w.unwatch = nil, nil, nil
	w.ps.c.path.Store(nil)
	w.lost = true
}

// dialResult is the outcome of an asynchronous (rehome) dial.
type dialResult struct {
	s    Stream
	path PathInfo
	err  error
}

// rehome starts opening a replacement stream in the background, so the
// writer keeps draining the queue onto the current stream meanwhile. The
// switch happens in adopt, between two batches. At most one such dial is
// in flight; further requests are coalesced into it.
func (w *writer) rehome(ctx context.Context) {
	if w.dialing {
		return
	}
	if w.s == nil {
		// Outage: a better connection exists, so skip the backoff.
		w.needSleep = false
		w.backoff = w.opts.MinBackoff
		return
	}
	w.dialing = true
	w.e.wg.Add(1) // the writer holds a count, so this cannot race Close's Wait
	go func() {
		defer w.e.wg.Done()
		s, path, err := w.dial(ctx)
		w.dialRes <- dialResult{s, path, err} // cap 1: never blocks
	}()
}

// adopt switches to the stream produced by a background dial: it becomes
// the active stream and the old one is closed after everything written to
// it (the writer invariant guarantees no partial batch). If the dial failed
// the current stream is kept.
func (w *writer) adopt(ctx context.Context, r dialResult) {
	w.dialing = false
	if r.err != nil {
		if ctx.Err() == nil {
			w.ps.c.dialFailures.Add(1)
			w.e.log.Debug("rehome dial failed, keeping current stream", "peer", w.ps.id, "err", r.err)
		}
		return
	}
	if w.s == nil {
		// The old stream failed while dialing: this is the reconnect.
		w.attach(ctx, r.s, r.path, "reconnected")
		if w.lost {
			w.lost = false
			w.ps.c.reconnects.Add(1)
		}
		w.needSleep = false
		w.flush()
		return
	}
	old, unwatch := w.s, w.unwatch
	w.attach(ctx, r.s, r.path, "moved to a better connection")
	unwatch()
	_ = old.Close() // half-close: frames already written still reach the peer
	w.ps.c.rehomes.Add(1)
}

// sleep waits out the backoff (with ±10% jitter) and doubles it. A Rehome
// request cuts it short. It returns false if ctx is done.
func (w *writer) sleep(ctx context.Context) bool {
	d := w.backoff
	if j := int64(d / 5); j > 0 {
		d += time.Duration(rand.Int64N(j)) - d/10
	}
	w.backoff = min(2*w.backoff, w.opts.MaxBackoff)
	if w.timer == nil {
		w.timer = time.NewTimer(d)
	} else {
		w.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return false
	case <-w.timer.C:
	case <-w.ps.rehome:
		w.backoff = w.opts.MinBackoff
	}
	w.needSleep = false
	return true
}

// shutdown closes the stream and recycles whatever is still queued.
func (w *writer) shutdown() {
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.dialing { // ctx is done, so the dial returns promptly
		if r := <-w.dialRes; r.s != nil {
			_ = r.s.Close()
		}
	}
	if w.s != nil {
		w.unwatch()
		_ = w.s.Close()
		w.s = nil
	}
	if w.held != nil {
		w.e.pool.put(w.held)
		w.held = nil
	}
	w.ps.c.path.Store(nil)
	for {
		select {
		case pkt := <-w.ps.queue:
			w.ps.dequeued(pkt)
			w.e.pool.put(pkt)
		default:
			return
		}
	}
}
