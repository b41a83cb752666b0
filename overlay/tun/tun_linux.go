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
	ifc   *water.Interface

	closing atomic.Bool // set at the start of Close

	mu     sync.Mutex // guards the fields below
	closed bool
	nl     *netlink.Handle // NETLINK_ROUTE socket in the device's namespace
}

// Open creates the TUN device name (without packet-information header) in
// the calling thread's network namespace, sets its MTU and brings it up. It
// fails if a link with that name already exists. The device is not
// persistent: it disappears when Close is called or the process exits.
func Open(name string, mtu int) (*Device, error) {
	if err := validate(name, mtu); err != nil {
		return nil, err
	}
	d, err := open(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("tun: open %s: %w", name, err)
	}
	return d, nil
}

// txQueueLen is the device's transmit queue, in packets.
const txQueueLen = 2000

func open(name string, mtu int) (_ *Device, err error) {
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

// Read reads one IP packet into buf and returns its length. buf should hold
// at least MTU bytes; a longer packet is truncated. After (or during)
// Close, Read returns ErrClosed.
func (d *Device) Read(buf []byte) (int, error) {
	n, err := d.f.Read(buf)
	if err != nil && d.isClosed() {
		return 0, ErrClosed
	}
	return n, err
}

// Write writes one IP packet (IPv4 or IPv6, no header in front) to the
// kernel, as if received on the device. After Close it returns ErrClosed.
func (d *Device) Write(pkt []byte) (int, error) {
	n, err := d.f.Write(pkt)
	if err != nil && d.isClosed() {
		return 0, ErrClosed
	}
	return n, err
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
	}
	if d.nl != nil {
		d.nl.Close()
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tun: %s: %w", d.name, err)
	}
	return nil
}
