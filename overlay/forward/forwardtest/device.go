package forwardtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTimeout is returned by Recv when no packet arrives in time.
var ErrTimeout = errors.New("forwardtest: no packet within the timeout")

// Device is an in-memory packet device: what a TUN device is to the
// forwarding engine, with channels instead of a kernel. Tests Inject the
// packets local applications would send and Recv the packets the engine
// delivers. It also offers what the daemon manages on a device (Name,
// SetAddr, Close), so a whole member can run on it without root.
//
// Like a TUN it is batch-shaped (forward.Device): Read returns up to
// BatchSize injected packets at once, Write takes many. WithOffload makes
// it a device with segmentation offloads (forward.Offloader), which
// exchanges a virtio-net header in front of every packet.
type Device struct {
	name    string
	mtu     int
	batch   int
	offload bool
	in      chan []byte
	out     chan []byte
	closed  chan struct{}
	once    sync.Once
	writes  atomic.Int64
	calls   atomic.Int64
	reads   atomic.Int64
	limit   atomic.Int64 // packets Write still accepts before failing; <0: no limit

	mu   sync.Mutex
	addr netip.Prefix
}

// DeviceOption configures NewDevice.
type DeviceOption func(*Device)

// WithBatch sets BatchSize (default 16).
func WithBatch(n int) DeviceOption { return func(d *Device) { d.batch = max(n, 1) } }

// WithOffload makes the device report offloads: injected packets (see
// InjectGSO) and delivered ones carry a virtio-net header.
func WithOffload() DeviceOption { return func(d *Device) { d.offload = true } }

// ErrWriteFault is returned by Write once the limit of FailWritesAfter is used up.
var ErrWriteFault = errors.New("forwardtest: injected write fault")

// NewDevice returns an open device. Up to 1024 injected packets wait to be
// read and 16384 delivered packets wait to be received; a full output
// blocks the engine's writer, as a slow TUN would.
func NewDevice(name string, mtu int, opts ...DeviceOption) *Device {
	d := &Device{name: name, mtu: mtu, batch: 16, in: make(chan []byte, 1024), out: make(chan []byte, 1<<14), closed: make(chan struct{})}
	d.limit.Store(-1)
	for _, o := range opts {
		o(d)
	}
	return d
}

// Name returns the device name given to NewDevice.
func (d *Device) Name() string { return d.name }

// MTU returns the MTU given to NewDevice.
func (d *Device) MTU() int { return d.mtu }

// BatchSize returns the batch size (WithBatch).
func (d *Device) BatchSize() int { return d.batch }

// Offload reports whether the device was made WithOffload.
func (d *Device) Offload() bool { return d.offload }

// Read returns the next injected packets (the engine's send path): it
// blocks for one, then takes whatever else is queued, up to len(bufs).
// On an offload device the virtio-net header goes in front of offset.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if d.Closed() {
		return 0, net.ErrClosed
	}
	var p []byte
	select {
	case p = <-d.in:
	case <-d.closed:
		return 0, net.ErrClosed
	}
	d.reads.Add(1)
	n := 0
	for {
		sizes[n] = d.place(bufs[n], offset, p)
		n++
		if n == len(bufs) || n == d.batch {
			return n, nil
		}
		select {
		case p = <-d.in:
		default:
			return n, nil
		}
	}
}

// place copies injected item p into buf and returns the packet size.
func (d *Device) place(buf []byte, offset int, p []byte) int {
	if d.offload {
		if len(p) < VirtioNetHdrLen {
			return 0
		}
		copy(buf[offset-VirtioNetHdrLen:offset], p[:VirtioNetHdrLen])
		return copy(buf[offset:], p[VirtioNetHdrLen:])
	}
	return copy(buf[offset:], p)
}

// Write delivers a copy of each packet bufs[i][offset:] (the engine's
// receive path), with its virtio-net header on an offload device. It is
// safe for concurrent use.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	if d.Closed() {
		return 0, net.ErrClosed
	}
	d.calls.Add(1)
	start := offset
	if d.offload {
		start -= VirtioNetHdrLen
	}
	for i, b := range bufs {
		if d.limit.Load() >= 0 && d.limit.Add(-1) < 0 {
			d.limit.Store(0)
			return i, ErrWriteFault
		}
		cp := append([]byte(nil), b[start:]...)
		select {
		case d.out <- cp:
			d.writes.Add(1)
		case <-d.closed:
			return i, net.ErrClosed
		}
	}
	return len(bufs), nil
}

// FailWritesAfter makes Write accept n more packets and fail with
// ErrWriteFault for every packet after them (n < 0: no limit).
func (d *Device) FailWritesAfter(n int) { d.limit.Store(int64(n)) }

// WriteCalls counts Write calls; Reads counts Read calls that returned packets.
func (d *Device) WriteCalls() int64 { return d.calls.Load() }
func (d *Device) Reads() int64      { return d.reads.Load() }

// Writes counts the packets delivered so far.
func (d *Device) Writes() int64 { return d.writes.Load() }

// SetAddr records the device's address.
func (d *Device) SetAddr(p netip.Prefix) error {
	select {
	case <-d.closed:
		return net.ErrClosed
	default:
	}
	d.mu.Lock()
	d.addr = p
	d.mu.Unlock()
	return nil
}

// Addr returns the address last set (invalid before SetAddr).
func (d *Device) Addr() netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Close unblocks Read and Write; it is idempotent.
func (d *Device) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// Closed reports whether Close was called.
func (d *Device) Closed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

// Inject queues pkt as if a local application had sent it (on an offload
// device as a plain packet with a complete checksum); it fails if the
// input stays full for the timeout or the device is closed.
func (d *Device) Inject(pkt []byte, timeout time.Duration) error {
	if d.offload {
		pkt = append(make([]byte, VirtioNetHdrLen), pkt...)
	}
	return d.inject(pkt, timeout)
}

// InjectWithHeader queues pkt with virtio-net header h, as a TUN with
// offloads hands it over (e.g. a TCP super-packet: GSOType GSOTCPv4,
// GSOSize the MSS). It fails on a device without offloads.
func (d *Device) InjectWithHeader(h Virtio, pkt []byte, timeout time.Duration) error {
	if !d.offload {
		return errors.New("forwardtest: InjectWithHeader on a device without offloads (use WithOffload)")
	}
	return d.inject(append(h.Bytes(), pkt...), timeout)
}

func (d *Device) inject(pkt []byte, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case d.in <- pkt:
		return nil
	case <-d.closed:
		return net.ErrClosed
	case <-t.C:
		return errors.New("forwardtest: device input stuck")
	}
}

// Recv waits up to timeout for one delivered packet (without its
// virtio-net header on an offload device: see RecvWithHeader).
func (d *Device) Recv(timeout time.Duration) ([]byte, error) {
	_, p, err := d.RecvWithHeader(timeout)
	return p, err
}

// RecvWithHeader waits up to timeout for one delivered packet and returns
// it with its virtio-net header (nil on a device without offloads).
func (d *Device) RecvWithHeader(timeout time.Duration) (Virtio, []byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-d.out:
		if d.offload {
			return ParseVirtio(p[:VirtioNetHdrLen]), p[VirtioNetHdrLen:], nil
		}
		return Virtio{}, p, nil
	case <-t.C:
		return Virtio{}, nil, ErrTimeout
	}
}

// ExpectNone waits for wait and fails if a packet is delivered meanwhile
// (the packet is consumed).
func (d *Device) ExpectNone(wait time.Duration) error {
	if p, err := d.Recv(wait); err == nil {
		return fmt.Errorf("forwardtest: unexpected packet delivered: % x", p[:min(len(p), 24)])
	}
	return nil
}

// Input and Output expose the channels for tests that drive many packets
// (on an offload device, Output's packets start with the virtio-net header).
func (d *Device) Input() chan<- []byte  { return d.in }
func (d *Device) Output() <-chan []byte { return d.out }
