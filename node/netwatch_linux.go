package node

import (
	"context"
	"net/netip"

	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/vishvananda/netlink"
)

// watchAddrs closes connections bound to a local address the moment the
// address disappears (a cloud VM's suspend/resume, DHCP renumbering). Such
// connections are dead, but the transports would only notice after their
// timeouts; closed at once, every stream is reopened over the new address.
func (n *Node) watchAddrs(ctx context.Context) {
	defer n.wg.Done()
	updates := make(chan netlink.AddrUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	err := netlink.AddrSubscribeWithOptions(updates, done, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) { n.log.Debug("address watch", "err", err) },
	})
	if err != nil {
		n.log.Warn("cannot watch local address changes; dead connections will wait for transport timeouts", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-updates:
			if !ok {
				return
			}
			a, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok || a.IsLoopback() {
				continue
			}
			a = a.Unmap()
			if u.NewAddr {
				n.log.Info("local address added", "addr", a)
				n.local.setRemoved(a, false)
				continue
			}
			n.closeConnsFrom(a)
			n.local.setRemoved(a, true)
		}
	}
}

// closeConnsFrom closes the connections that may have used the removed
// address: those bound to it, and those on wildcard-bound sockets (QUIC
// shares one UDP socket on 0.0.0.0), whose source address the kernel picked.
func (n *Node) closeConnsFrom(gone netip.Addr) {
	if gone.IsLoopback() {
		return
	}
	var closed int
	for _, c := range n.Host.Network().Conns() {
		ip, err := manet.ToIP(c.LocalMultiaddr())
		if err != nil {
			continue
		}
		a, ok := netip.AddrFromSlice(ip)
		if !ok || a.IsLoopback() {
			continue
		}
		if a = a.Unmap(); a == gone || a.IsUnspecified() {
			_ = c.Close()
			closed++
		}
	}
	if closed > 0 {
		n.log.Info("local address removed; closed its connections", "addr", gone, "conns", closed)
	}
}
