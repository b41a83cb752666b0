package node

import (
	"context"
	"crypto/rand"
	"io"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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
// When a new direct connection arrives from a peer at a remote IP none of
// its other connections use, each older connection is pinged on itself; one
// that does not answer is closed, and its streams reopen on the new one.
type staleWatcher struct{ n *Node }

func (w staleWatcher) Connected(_ network.Network, fresh network.Conn) {
	freshIP, ok := ipOf(fresh.RemoteMultiaddr())
	if !ok {
		return
	}
	var older []network.Conn
	for _, c := range w.n.Host.Network().ConnsToPeer(fresh.RemotePeer()) {
		if c == fresh {
			continue
		}
		ip, ok := ipOf(c.RemoteMultiaddr())
		if !ok {
			continue
		}
		if ip == freshIP {
			return // the peer is still where it was
		}
		older = append(older, c)
	}
	for _, c := range older {
		go w.n.probe(c)
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
