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
type Device struct {
	name   string
	mtu    int
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
	writes atomic.Int64

	mu   sync.Mutex
	addr netip.Prefix
}

// NewDevice returns an open device. Up to 1024 injected packets wait to be
// read and 16384 delivered packets wait to be received; a full output
// blocks the engine's writer, as a slow TUN would.
func NewDevice(name string, mtu int) *Device {
	return &Device{name: name, mtu: mtu, in: make(chan []byte, 1024), out: make(chan []byte, 1<<14), closed: make(chan struct{})}
}

// Name returns the device name given to NewDevice.
func (d *Device) Name() string { return d.name }

// MTU returns the MTU given to NewDevice.
func (d *Device) MTU() int { return d.mtu }

// Read returns the next injected packet (the engine's send path).
func (d *Device) Read(buf []byte) (int, error) {
	if d.Closed() {
		return 0, net.ErrClosed
	}
	select {
	case p := <-d.in:
		return copy(buf, p), nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

// Write delivers a copy of pkt (the engine's receive path). It is safe
// for concurrent use.
func (d *Device) Write(pkt []byte) (int, error) {
	if d.Closed() {
		return 0, net.ErrClosed
	}
	cp := append([]byte(nil), pkt...)
	select {
	case d.out <- cp:
		d.writes.Add(1)
		return len(pkt), nil
	case <-d.closed:
		return 0, net.ErrClosed
	}
}

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

// Inject queues pkt as if a local application had sent it; it fails if the
// input stays full for the timeout or the device is closed.
func (d *Device) Inject(pkt []byte, timeout time.Duration) error {
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

// Recv waits up to timeout for one delivered packet.
func (d *Device) Recv(timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p := <-d.out:
		return p, nil
	case <-t.C:
		return nil, ErrTimeout
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

// Input and Output expose the channels for tests that drive many packets.
func (d *Device) Input() chan<- []byte  { return d.in }
func (d *Device) Output() <-chan []byte { return d.out }
