package forward

import "sync"

// packet is a pooled buffer holding one encoded frame at buf[start:end]:
// its header right before buf[Headroom:], its payload from Headroom on.
// The TUN reader reads straight into buf[Headroom:] and the frame header
// is written in place in front of the packet, so a packet is never copied
// between the device and the stream (small packets are coalesced into the
// writer's batch buffer; large ones are written from here).
type packet struct {
	buf        []byte // len == pool size; never resliced by users
	start, end int    // frame bounds in buf
}

// frame returns the encoded frame.
func (p *packet) frame() []byte { return p.buf[p.start:p.end] }

// payload returns the frame's payload (the IP packet of a data frame).
func (p *packet) payload() []byte { return p.buf[Headroom:p.end] }

// packetPool hands out fixed-size packets. Pointers are pooled, so Get and
// Put do not allocate in steady state.
type packetPool struct {
	size int
	pool sync.Pool
}

func newPacketPool(size int) *packetPool {
	pp := &packetPool{size: size}
	pp.pool.New = func() any { return &packet{buf: make([]byte, size)} }
	return pp
}

func (pp *packetPool) get() *packet {
	p := pp.pool.Get().(*packet)
	p.start, p.end = Headroom, Headroom
	return p
}

func (pp *packetPool) put(p *packet) {
	if p != nil {
		pp.pool.Put(p)
	}
}

// pools are the engine's two buffer sizes: small ones for packets up to
// the MTU (plus slack) and, on a device with offloads, big ones for
// super-packets.
type pools struct {
	small, big *packetPool
}

// get returns a small packet.
func (ps *pools) get() *packet { return ps.small.get() }

// put returns p to the pool it came from.
func (ps *pools) put(p *packet) {
	if p == nil {
		return
	}
	if ps.big != nil && len(p.buf) == ps.big.size && ps.big.size != ps.small.size {
		ps.big.put(p)
		return
	}
	ps.small.put(p)
}

// forPayload returns a packet from the pool whose buffers hold n payload bytes.
func (ps *pools) forPayload(n int) *packet {
	if Headroom+n <= ps.small.size || ps.big == nil {
		return ps.small.get()
	}
	return ps.big.get()
}
