package forward

import "sync"

// packet is a pooled buffer holding one encoded frame: header at
// buf[:HeaderLen], payload right after it. The TUN reader reads straight
// into buf[HeaderLen:], so a packet is never copied between the device and
// the writer's batch buffer.
type packet struct {
	buf []byte // len == pool size; never resliced by users
	n   int    // bytes of buf in use (header + payload)
}

// frame returns the encoded frame.
func (p *packet) frame() []byte { return p.buf[:p.n] }

// packetPool hands out fixed-size packets. Pointers are pooled, so Get and
// Put do not allocate in steady state.
type packetPool struct {
	pool sync.Pool
}

func newPacketPool(size int) *packetPool {
	pp := &packetPool{}
	pp.pool.New = func() any { return &packet{buf: make([]byte, size)} }
	return pp
}

func (pp *packetPool) get() *packet {
	p := pp.pool.Get().(*packet)
	p.n = 0
	return p
}

func (pp *packetPool) put(p *packet) {
	if p != nil {
		pp.pool.Put(p)
	}
}
