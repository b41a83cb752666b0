package node

import (
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// probeTimeout bounds the liveness probe of a possibly stale connection.
const probeTimeout = 2 * time.Second

// staleWatcher handles a peer that moved (its underlay address changed after
// a suspend/resume): the peer closes its old connections, but the close
// cannot reach us from an address it no longer has, so we would keep writing
// into a dead connection until the transport times out (tens of seconds).
// When a new direct connection arrives from a peer at a remote IP and port
// none of its other connections use, each older connection is pinged on
// itself; one that does not answer is closed, and its streams reopen on the
// new one. The port counts: a member behind a NAT that got a new LAN address
// comes back from the same public IP through a new NAT mapping.
type staleWatcher struct{ n *Node }

func (w staleWatcher) Connected(_ network.Network, fresh network.Conn) {
	freshEP, ok := endpointOf(fresh.RemoteMultiaddr())
	if !ok {
		return
	}
	var older []network.Conn
	for _, c := range w.n.Host.Network().ConnsToPeer(fresh.RemotePeer()) {
		if c == fresh {
			continue
		}
		ep, ok := endpointOf(c.RemoteMultiaddr())
		if !ok {
			continue
		}
		if ep == freshEP {
			return // the peer is still where it was
		}
		older = append(older, c)
	}
	if len(older) > 0 {
		go w.n.probeSet(append(older, fresh))
	}
}

func (staleWatcher) Disconnected(network.Network, network.Conn) {}
func (staleWatcher) Listen(network.Network, ma.Multiaddr)       {}
func (staleWatcher) ListenClose(network.Network, ma.Multiaddr)  {}

// probe pings the peer over connection c itself and closes c if it is dead.
func (n *Node) probe(c network.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := pingConn(ctx, c); err != nil && !c.IsClosed() {
		n.log.Info("closing dead connection to a peer that moved", "peer", c.RemotePeer(), "old", c.RemoteMultiaddr(), "err", err)
		_ = c.Close()
	}
}

func pingConn(ctx context.Context, c network.Conn) error {
	s, err := c.NewStream(ctx)
	if err != nil {
		return err
	}
	defer s.Reset()
	deadline, _ := ctx.Deadline()
	_ = s.SetDeadline(deadline)
	if err := msmux.SelectProtoOrFail(ping.ID, s); err != nil {
		return err
	}
	buf := make([]byte, ping.PingSize)
	if _, err := rand.Read(buf); err != nil {
		return err
	}
	if _, err := s.Write(buf); err != nil {
		return err
	}
	back := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(s, back); err != nil {
		return err
	}
	return nil
}

// endpointOf returns the IP and port of a direct (non-circuit) multiaddr.
func endpointOf(a ma.Multiaddr) (netip.AddrPort, bool) {
	ip, ok := ipOf(a)
	if !ok {
		return netip.AddrPort{}, false
	}
	for _, code := range []int{ma.P_TCP, ma.P_UDP} {
		if v, err := a.ValueForProtocol(code); err == nil {
			if port, err := strconv.ParseUint(v, 10, 16); err == nil {
				return netip.AddrPortFrom(ip, uint16(port)), true
			}
		}
	}
	return netip.AddrPortFrom(ip, 0), true
}

// ipOf returns the IP of a direct (non-circuit) multiaddr.
func ipOf(a ma.Multiaddr) (netip.Addr, bool) {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return netip.Addr{}, false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// ProbeConns pings each connection to p on itself, in the background, and
// closes those that do not answer within probeTimeout: the membership layer
// calls it when p announces new addresses (it moved), so streams leave a
// dead connection at once instead of after the data plane's dead-path
// timeout or the transport's.
func (n *Node) ProbeConns(p peer.ID) {
	if conns := n.Host.Network().ConnsToPeer(p); len(conns) > 0 {
		go n.probeSet(conns)
	}
}

// probeSet pings the peer on each of conns (one peer's) at once and closes
// those that did not answer — of several, only if one did: when none
// answers, this machine may be too starved to get an answer within
// probeTimeout, and closing live connections then feeds the storm. A lone
// connection that does not answer is closed (the peer moved or restarted
// and nothing better exists yet; the data plane redials).
func (n *Node) probeSet(conns []network.Conn) {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			errs[i] = pingConn(ctx, c)
		}()
	}
	wg.Wait()
	alive := false
	for _, err := range errs {
		alive = alive || err == nil
	}
	if !alive && len(conns) > 1 {
		n.log.Debug("no connection to the peer answered a probe; keeping them", "peer", conns[0].RemotePeer(), "conns", len(conns))
		return
	}
	for i, c := range conns {
		if errs[i] != nil && !c.IsClosed() {
			n.log.Info("closing dead connection to a peer that moved", "peer", c.RemotePeer(), "old", c.RemoteMultiaddr(), "err", errs[i])
			_ = c.Close()
		}
	}
}

// ProbeConn pings the peer on connection c, in the background, and closes
// c if it does not answer within probeTimeout.
func (n *Node) ProbeConn(c network.Conn) {
	go n.probe(c)
}

// CloseConnsTo closes p's direct connections whose remote IP gone reports:
// the peer announced it no longer has that address.
func (n *Node) CloseConnsTo(p peer.ID, gone func(netip.Addr) bool) {
	for _, c := range n.Host.Network().ConnsToPeer(p) {
		if ip, ok := ipOf(c.RemoteMultiaddr()); ok && gone(ip) {
			n.log.Info("closing connection to an address the peer gave up", "peer", p, "remote", c.RemoteMultiaddr())
			_ = c.Close()
		}
	}
}
