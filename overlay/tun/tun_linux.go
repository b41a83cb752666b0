//go:build linux

package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds every netlink request of a Device.
const netlinkTimeout = 10 * time.Second

// Device is an open TUN device. Read and Write may be called concurrently
// (one reader and one writer, or several of each); SetAddr and Close are
// safe to call from any goroutine.
//
// The device is managed through a netlink socket opened by Open in the
// network namespace of its calling thread. A netlink socket stays bound to
// the namespace it was created in, so SetAddr and Close act on the right
// namespace even when called from another goroutine, without ever entering
// a namespace (setns needs CAP_SYS_ADMIN; CAP_NET_ADMIN is enough for
// everything the Device does).
type Device struct {
	name  string
	mtu   int
	index int
	f     *os.File
	rc    syscall.RawConn  // f's raw descriptor, for batched non-blocking reads
	ifc   *water.Interface // the fallback's handle; nil with offloads
	vnet  bool             // IFF_VNET_HDR: a virtio-net header precedes each packet
	uso   bool             // UDP segmentation offload accepted too
	why   string           // why offloads are off, if requested

	closing atomic.Bool // set at the start of Close

	mu     sync.Mutex // guards the fields below
	closed bool
	nl     *netlink.Handle // NETLINK_ROUTE socket in the device's namespace
}

// Open creates the TUN device name (without packet-information header) in
// the calling thread's network namespace, sets its MTU and brings it up. It
// fails if a link with that name already exists. The device is not
// persistent: it disappears when Close is called or the process exits.
func Open(name string, mtu int) (*Device, error) { return OpenWith(name, mtu, Options{}) }

// OpenWith is Open with options: with Options.Offload it asks the kernel
// for a TUN with a virtio-net header and segmentation offloads, and falls
// back to a plain TUN (see Device.Offload and OffloadStatus) where the
// kernel refuses.
func OpenWith(name string, mtu int, o Options) (*Device, error) {
	if err := validate(name, mtu); err != nil {
		return nil, err
	}
	d, err := open(name, mtu, o)
	if err != nil {
		return nil, fmt.Errorf("tun: open %s: %w", name, err)
	}
	return d, nil
}

// txQueueLen is the device's transmit queue, in packets.
const txQueueLen = 2000

func open(name string, mtu int, o Options) (_ *Device, err error) {
	// The TUN and the netlink socket are both created in the namespace of
	// the current thread: keep them consistent.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	d := &Device{name: name, mtu: mtu}
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	// NewHandle (unlike NewHandleAt) opens the socket in place, without
	// setns. Only NETLINK_ROUTE: a request of a family the handle has no
	// socket for would open one in whatever namespace the calling thread
	// is in.
	d.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := d.nl.SetSocketTimeout(netlinkTimeout); err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if _, err := d.nl.LinkByName(name); err == nil {
		return nil, errors.New("a network interface with this name already exists")
	} else if !isNotFound(err) {
		return nil, fmt.Errorf("look up link: %w", err)
	}

	if o.Offload {
		if err := d.openVnet(name); err != nil {
			d.why = err.Error()
		}
	}
	if d.f == nil {
		ifc, err := water.New(water.Config{
			DeviceType:             water.TUN,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
		})
		if err != nil {
			return nil, fmt.Errorf("create TUN (needs CAP_NET_ADMIN and /dev/net/tun): %w", err)
		}
		d.ifc = ifc
		f, ok := ifc.ReadWriteCloser.(*os.File)
		if !ok {
			return nil, fmt.Errorf("unexpected TUN handle type %T", ifc.ReadWriteCloser)
		}
		d.f = f
		if ifc.Name() != name {
			return nil, fmt.Errorf("kernel named the device %q", ifc.Name())
		}
	}
	if rc, err := d.f.SyscallConn(); err == nil {
		d.rc = rc
	}
	link, err := d.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("look up created link: %w", err)
	}
	d.index = link.Attrs().Index
	if err := d.nl.LinkSetMTU(link, mtu); err != nil {
		return nil, fmt.Errorf("set MTU %d: %w", mtu, err)
	}
	// A longer queue than the TUN default (500) absorbs bursts while the
	// reader is descheduled, instead of dropping the inner TCP's packets
	// (bench/dataplane.md counted such drops at small MTUs).
	if err := d.nl.LinkSetTxQLen(link, txQueueLen); err != nil {
		return nil, fmt.Errorf("set txqueuelen: %w", err)
	}
	if err := d.nl.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("set up: %w", err)
	}
	return d, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// Name returns the device name.
func (d *Device) Name() string { return d.name }

// MTU returns the MTU set by Open.
func (d *Device) MTU() int { return d.mtu }

// BatchSize is the most packets one Read returns.
func (d *Device) BatchSize() int { return readBatch }

// readBatch bounds the packets one Read takes from the kernel.
const readBatch = 16

// Offload reports whether the device exchanges virtio-net headers and
// gets TCP (and, with USO, UDP) super-packets from the kernel.
func (d *Device) Offload() bool { return d.vnet }

// OffloadStatus says which offloads are on, or why they are off.
func (d *Device) OffloadStatus() string {
	switch {
	case d.vnet && d.uso:
		return "on (IFF_VNET_HDR, TSO4, USO4, checksum)"
	case d.vnet:
		return "on (IFF_VNET_HDR, TSO4, checksum; no USO in this kernel)"
	case d.why != "":
		return "off (" + d.why + ")"
	default:
		return "off"
	}
}

// Read reads up to len(bufs) IP packets, bufs[i][offset:offset+sizes[i]],
// and returns how many: it blocks for the first and takes the others only
// if the kernel already has them, all in one wake-up. With offloads each
// packet's virtio-net header goes to bufs[i][offset-10:offset] and a
// packet may be a super-packet of up to 64 KiB (bufs must hold 65535
// bytes after offset); otherwise bufs should hold the MTU, and a longer
// packet is truncated. After (or during) Close, Read returns ErrClosed.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	start := offset
	if d.vnet {
		start -= vnetHdrLen
	}
	if d.rc == nil {
		n, err := d.f.Read(bufs[0][start:])
		return d.readResult(sizes, offset-start, n, err)
	}
	var (
		n    int
		rerr error
	)
	err := d.rc.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			k, err := unix.Read(int(fd), bufs[n][start:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				return n > 0 // wait for readability only if nothing came yet
			}
			if err != nil {
				rerr = err
				return true
			}
			if k-(offset-start) <= 0 {
				continue // a runt without room for the header: skip it
			}
			sizes[n] = k - (offset - start)
			n++
		}
		return true
	})
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = rerr
	}
	if err != nil && d.isClosed() {
		return 0, ErrClosed
	}
	if err == nil {
		err = errors.New("read returned no packet")
	}
	return 0, err
}

func (d *Device) readResult(sizes []int, hdr, n int, err error) (int, error) {
	if err != nil {
		if d.isClosed() {
			return 0, ErrClosed
		}
		return 0, err
	}
	sizes[0] = max(n-hdr, 0)
	return 1, nil
}

// Write writes the packets bufs[i][offset:] (IPv4 or IPv6, no header in
// front; with offloads preceded by their virtio-net header at
// bufs[i][offset-10:offset]) to the kernel, as if received on the device,
// one write each. It returns how many were written; on an error, the
// packets from that count on were not. After Close it returns ErrClosed.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	start := offset
	if d.vnet {
		start -= vnetHdrLen
	}
	for i, b := range bufs {
		if _, err := d.f.Write(b[start:]); err != nil {
			if d.isClosed() {
				return i, ErrClosed
			}
			return i, err
		}
	}
	return len(bufs), nil
}

func (d *Device) isClosed() bool { return d.closing.Load() }

// SetAddr assigns p (address with its prefix length, e.g. 10.77.0.5/24 for
// the CLADNet 10.77.0.0/24) to the device, removing the device's other
// addresses of the same family (IPv6 link-local ones are kept). The kernel
// adds the connected route, so the whole prefix is routed to the device.
func (d *Device) SetAddr(p netip.Prefix) error {
	if !p.IsValid() || p.Addr().IsUnspecified() || p.Addr().Is4In6() {
		return fmt.Errorf("tun: %s: invalid address %v", d.name, p)
	}
	if err := d.setAddr(p); err != nil {
		return fmt.Errorf("tun: %s: set address %s: %w", d.name, p, err)
	}
	return nil
}

func (d *Device) setAddr(p netip.Prefix) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	link, err := d.nl.LinkByIndex(d.index)
	if err != nil {
		return err
	}
	family := netlink.FAMILY_V4
	if p.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := d.nl.AddrList(link, family)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	want := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		want.Flags = unix.IFA_F_NODAD
	}
	have := false
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		if a.IPNet.String() == want.IPNet.String() {
			have = true
			continue
		}
		if err := d.nl.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s: %w", a.IPNet, err)
		}
	}
	if have {
		return nil
	}
	if err := d.nl.AddrAdd(link, want); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	return nil
}

// Close deletes the link and closes the file descriptor, which unblocks
// pending Reads. It is idempotent and also tolerates a link that is already
// gone.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.closing.Store(true)
	var errs []error
	// Delete by index while our fd still holds the device, so that a new
	// device of the same name created meanwhile is never touched.
	if d.nl != nil && d.index > 0 {
		err := d.nl.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: d.index}})
		if err != nil && !isNotFound(err) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete link: %w", err))
		}
	}
	if d.ifc != nil {
		if err := d.ifc.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	} else if d.f != nil {
		if err := d.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("close: %w", err))
		}
	}
	if d.nl != nil {
		d.nl.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tun: %s: %w", d.name, err)
	}
	return nil
}
