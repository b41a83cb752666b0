//go:build linux

package netlab

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	// vethMTU is the MTU of every lab link.
	vethMTU = 1500
	// linkUpTimeout bounds the wait for a new link to become operational.
	linkUpTimeout = 5 * time.Second
)

// Switch is an L2 segment: a bridge ("br0") inside a namespace of its own.
// Hosts are attached with veth pairs; their addresses come from the
// switch's prefix.
type Switch struct {
	n      *node
	prefix netip.Prefix
}

// Switch creates a switch for the segment cidr (e.g. 10.99.1.0/24).
func (l *Lab) Switch(name string, cidr netip.Prefix) (*Switch, error) {
	if !cidr.IsValid() {
		return nil, fmt.Errorf("netlab: switch %s: invalid prefix", name)
	}
	cidr = netip.PrefixFrom(cidr.Addr().Unmap(), cidr.Bits()-unmapBits(cidr.Addr())).Masked()
	if !cidr.IsValid() {
		return nil, fmt.Errorf("netlab: switch %s: invalid prefix", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.newNodeLocked(name)
	if err != nil {
		return nil, err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, MTU: vethMTU}}
	if err := n.nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("netns %s: add bridge: %w", n.ns, err)
	}
	if err := n.nl.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("netns %s: bridge up: %w", n.ns, err)
	}
	return &Switch{n: n, prefix: cidr}, nil
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// Name returns the switch's name; it is also the name of the interface of
// every host attached to it.
func (s *Switch) Name() string { return s.n.name }

// Namespace returns the name of the switch's network namespace.
func (s *Switch) Namespace() string { return s.n.ns }

// Prefix returns the segment's prefix.
func (s *Switch) Prefix() netip.Prefix { return s.prefix }

// Addr returns the i-th address of the segment with the segment's prefix
// length, e.g. Addr(1) = 10.99.1.1/24 for 10.99.1.0/24, or the zero Prefix
// if i is out of the segment (Attach rejects it).
func (s *Switch) Addr(i int) netip.Prefix {
	if i < 0 {
		return netip.Prefix{}
	}
	a := s.prefix.Addr()
	for range i {
		a = a.Next()
		if !a.IsValid() {
			return netip.Prefix{}
		}
	}
	if !s.prefix.Contains(a) {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, s.prefix.Bits())
}

// Attach connects h to the switch with a veth pair, gives the host's end
// (named s.Name()) the address addr, which must lie in the segment and have
// the segment's prefix length, and brings the links up.
func (s *Switch) Attach(h *Host, addr netip.Prefix) error {
	if h == nil || h.n.lab != s.n.lab {
		return fmt.Errorf("netlab: switch %s: host is not from the same lab", s.n.name)
	}
	if addr.IsValid() {
		addr = netip.PrefixFrom(addr.Addr().Unmap(), addr.Bits()-unmapBits(addr.Addr()))
	}
	if !addr.IsValid() || !s.prefix.Contains(addr.Addr()) || addr.Bits() != s.prefix.Bits() {
		return fmt.Errorf("netlab: attach %s to %s: address %v is not an address in %s", h.n.name, s.n.name, addr, s.prefix)
	}
	l := s.n.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	if _, dup := h.attached[s.n.name]; dup {
		return fmt.Errorf("netlab: %s is already attached to %s", h.n.name, s.n.name)
	}
	if err := s.attachLocked(h, addr); err != nil {
		return fmt.Errorf("netlab: attach %s to %s: %w", h.n.name, s.n.name, err)
	}
	h.attached[s.n.name] = addr
	return nil
}

func (s *Switch) attachLocked(h *Host, addr netip.Prefix) error {
	sw, hn := s.n, h.n
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: hn.name, MTU: vethMTU},
		PeerName:      sw.name,
		PeerNamespace: netlink.NsFd(hn.h),
	}
	if err := sw.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("netns %s: add veth %s (peer %s in %s): %w", sw.ns, hn.name, sw.name, hn.ns, err)
	}
	port, err := sw.nl.LinkByName(hn.name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", sw.ns, err)
	}
	br, err := sw.nl.LinkByName(bridgeName)
	if err != nil {
		return fmt.Errorf("netns %s: %w", sw.ns, err)
	}
	if err := sw.nl.LinkSetMaster(port, br); err != nil {
		return fmt.Errorf("netns %s: %s master %s: %w", sw.ns, hn.name, bridgeName, err)
	}
	if err := sw.nl.LinkSetUp(port); err != nil {
		return fmt.Errorf("netns %s: %s up: %w", sw.ns, hn.name, err)
	}
	link, err := hn.nl.LinkByName(sw.name)
	if err != nil {
		return fmt.Errorf("netns %s: %w", hn.ns, err)
	}
	a, err := nlAddr(addr)
	if err != nil {
		return err
	}
	if err := hn.nl.AddrAdd(link, a); err != nil {
		return fmt.Errorf("netns %s: %s: add address %s: %w", hn.ns, sw.name, addr, err)
	}
	if err := hn.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("netns %s: %s up: %w", hn.ns, sw.name, err)
	}
	// The end brought up first gets its carrier, and its transmit queue
	// activated, only when the kernel's linkwatch worker processes the
	// carrier change, which can take up to a second. Packets sent through
	// it before that are silently dropped, so wait for both ends.
	if err := waitOperUp(sw, hn.name); err != nil {
		return err
	}
	return waitOperUp(hn, sw.name)
}

// waitOperUp waits until device dev of n reports operational state UP.
func waitOperUp(n *node, dev string) error {
	deadline := time.Now().Add(linkUpTimeout)
	for {
		link, err := n.nl.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("netns %s: %w", n.ns, err)
		}
		if link.Attrs().OperState == netlink.OperUp {
			// linkwatch sets the operational state before it activates
			// the queues and notifies the bridge, all under the RTNL lock:
			// an idempotent change, which takes that lock, returns only
			// after it has finished.
			if err := n.nl.LinkSetUp(link); err != nil {
				return fmt.Errorf("netns %s: %s up: %w", n.ns, dev, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: %s: not operational after %v (state %v)", n.ns, dev, linkUpTimeout, link.Attrs().OperState)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
