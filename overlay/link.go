package overlay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"

	"github.com/cloud-barista/cbnode/overlay/forward"
)

// Link adapts a libp2p host to the forwarding core: it opens packet streams
// to members and hands inbound ones, from verified members only, to the engine.
type Link struct {
	Host     host.Host
	IsMember func(peer.ID) bool
	// ConnScore, if set, picks the connection a new packet stream rides:
	// the highest-scoring existing connection (libp2p itself prefers the
	// connection with the most streams, which would keep a stream on an
	// old path).
	ConnScore func(peer.ID, network.Conn) int
	// Probe, if set, checks connection c (pings the peer on it, closes it
	// if it is dead) without blocking: forward.ConnChecker.
	Probe func(c network.Conn)
	// OnIdleClose, if set, is told before the Link closes the connections
	// to a peer whose lazy tunnel went idle (Membership.IdleClosed).
	OnIdleClose func(peer.ID)

	notifee    network.Notifiee
	refused    atomic.Uint64
	idleClosed atomic.Uint64

	mu       sync.Mutex
	stopped  bool
	rechecks map[peer.ID]*time.Timer // IdleClosed's second looks
}

// Refused counts inbound packet streams refused because their peer is not
// a member (unknown, revoked, or with an expired certificate).
func (l *Link) Refused() uint64 { return l.refused.Load() }

// OpenStream opens a packet stream to p on the best existing connection
// (direct over relayed), dialling if needed.
func (l *Link) OpenStream(ctx context.Context, p peer.ID) (forward.Stream, forward.PathInfo, error) {
	if !l.IsMember(p) {
		return nil, forward.PathInfo{}, fmt.Errorf("open packet stream to %s: not a member", p)
	}
	ctx = network.WithAllowLimitedConn(ctx, "cbnode-packet")
	if c := l.bestConn(p); c != nil {
		s, err := streamOn(ctx, c)
		if err == nil {
			return s, PathOf(c), nil
		}
	}
	// The engine's writer paces its own redials (100 ms doubling to 5 s);
	// the swarm's dial backoff on top of it would refuse, for up to
	// minutes, addresses that failed during a fault — a relay that died,
	// a member that moved — and came back since.
	if sw, ok := l.Host.Network().(*swarm.Swarm); ok && l.Host.Network().Connectedness(p) != network.Connected {
		sw.Backoff().Clear(p)
	}
	s, err := l.Host.NewStream(ctx, p, forward.ProtocolID, forward.LegacyProtocolID)
	if err != nil {
		return nil, forward.PathInfo{}, fmt.Errorf("open packet stream to %s: %w", p, err)
	}
	l.Host.ConnManager().Protect(p, packetTag)
	return s, PathOf(s.Conn()), nil
}

// packetTag protects the connections to peers this node has a packet
// stream to from the connection manager's trimming.
const packetTag = "cbnode-packet"

// IdleClosed implements forward.IdleCloser: a lazy tunnel to p carried
// nothing for the idle timeout. The connection to p is closed unless
// something else holds it: a packet stream from p still open (p closes its
// own when it finds the tunnel idle, then this node's side is the last),
// a protection by another part of the node (the gossip mesh, the DHT's
// nearest buckets, a member kept in a small CLADNet's full mesh), or a
// DHT routing table entry.
func (l *Link) IdleClosed(p peer.ID) {
	if l.closeIdle(p) != idleBusy {
		return
	}
	// p's stream to us is still open: both ends found the tunnel idle at
	// about the same time, and p's close is on its way. Look again.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.rechecks[p] != nil {
		return
	}
	if l.rechecks == nil {
		l.rechecks = map[peer.ID]*time.Timer{}
	}
	l.rechecks[p] = time.AfterFunc(idleRecheck, func() {
		l.mu.Lock()
		delete(l.rechecks, p)
		stopped := l.stopped
		l.mu.Unlock()
		if !stopped {
			l.closeIdle(p)
		}
	})
}

// idleRecheck is how long IdleClosed waits to look again at a connection
// whose peer's packet stream was still open.
const idleRecheck = 2 * time.Second

type idleResult int

const (
	idleClosed idleResult = iota
	idleKept              // something else holds the connection
	idleBusy              // a packet stream is open on it
)

func (l *Link) closeIdle(p peer.ID) idleResult {
	if packetStreamOpen(l.Host, p) {
		return idleBusy // from p, or a new one of ours
	}
	l.Host.ConnManager().Unprotect(p, packetTag)
	if len(l.Host.Network().ConnsToPeer(p)) == 0 || connHeld(l.Host, p) {
		return idleKept
	}
	if l.OnIdleClose != nil {
		l.OnIdleClose(p)
	}
	_ = l.Host.Network().ClosePeer(p)
	l.idleClosed.Add(1)
	return idleClosed
}

// IdleConnsClosed counts the connections closed because their lazy tunnel
// went idle and nothing else needed them.
func (l *Link) IdleConnsClosed() uint64 { return l.idleClosed.Load() }

func (l *Link) bestConn(p peer.ID) network.Conn {
	if l.ConnScore == nil {
		return nil
	}
	var best network.Conn
	bestScore := -1
	for _, c := range l.Host.Network().ConnsToPeer(p) {
		if c.IsClosed() {
			continue
		}
		if sc := l.ConnScore(p, c); sc > bestScore || (sc == bestScore && c.Stat().Opened.After(best.Stat().Opened)) {
			best, bestScore = c, sc
		}
	}
	return best
}

// streamOn opens a packet stream on connection c itself.
func streamOn(ctx context.Context, c network.Conn) (network.Stream, error) {
	s, err := c.NewStream(ctx)
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	// Offer the current protocol, then the one of nodes without FrameGSO.
	proto, err := msmux.SelectOneOf([]protocol.ID{forward.ProtocolID, forward.LegacyProtocolID}, s)
	if err != nil {
		s.Reset()
		return nil, err
	}
	if err := s.SetProtocol(proto); err != nil {
		s.Reset()
		return nil, err
	}
	_ = s.SetDeadline(time.Time{})
	return s, nil
}

// ResetPath implements forward.PathResetter: it closes every connection to
// p and forgets dial backoffs, so the next stream dials p afresh at the
// addresses it announces now.
func (l *Link) ResetPath(p peer.ID) {
	_ = l.Host.Network().ClosePeer(p)
	if sw, ok := l.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// CheckConn implements forward.ConnChecker: the data plane's writes to p
// on path.Conn go unanswered there while p's frames arrive elsewhere.
func (l *Link) CheckConn(p peer.ID, path forward.PathInfo) {
	if l.Probe == nil {
		return
	}
	for _, c := range l.Host.Network().ConnsToPeer(p) {
		if c.ID() == path.Conn {
			l.Probe(c)
		}
	}
}

// Serve registers the packet protocol handler feeding engine e.
func (l *Link) Serve(e *forward.Engine) {
	h := func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if !l.IsMember(p) {
			l.refused.Add(1)
			_ = s.Reset()
			return
		}
		e.HandleStream(p, s, PathOf(s.Conn()))
	}
	// Both versions: members of the previous release still send here.
	l.Host.SetStreamHandler(forward.ProtocolID, h)
	l.Host.SetStreamHandler(forward.LegacyProtocolID, h)
}

// Stop removes the handler and the connection watcher.
func (l *Link) Stop() {
	l.mu.Lock()
	l.stopped = true
	for p, t := range l.rechecks {
		t.Stop()
		delete(l.rechecks, p)
	}
	l.mu.Unlock()
	l.Host.RemoveStreamHandler(forward.ProtocolID)
	l.Host.RemoveStreamHandler(forward.LegacyProtocolID)
	if l.notifee != nil {
		l.Host.Network().StopNotify(l.notifee)
	}
}

// WatchConns moves a peer's packet stream to a direct connection as soon as
// one appears while the stream rides a relay (libp2p never migrates streams).
func (l *Link) WatchConns(e *forward.Engine) {
	l.notifee = &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if PathOf(c).Relayed {
			return
		}
		p := c.RemotePeer()
		if st, ok := e.Stats(p); ok && (st.Path.Relayed || !st.StreamUp) {
			e.Rehome(p)
		}
	}}
	l.Host.Network().Notify(l.notifee)
}

// PathOf describes the connection a stream rides on.
func PathOf(c network.Conn) forward.PathInfo {
	remote := c.RemoteMultiaddr()
	relayed := c.Stat().Limited
	if _, err := remote.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		relayed = true
	}
	transport := c.ConnState().Transport
	if transport == "" {
		transport = transportOf(remote)
	}
	return forward.PathInfo{Relayed: relayed, Remote: remote.String(), Transport: transport, Conn: c.ID()}
}

func transportOf(a ma.Multiaddr) string {
	s := a.String()
	switch {
	case strings.Contains(s, "/p2p-circuit"):
		return "relay"
	case strings.Contains(s, "/quic"):
		return "quic"
	case strings.Contains(s, "/tcp/"):
		return "tcp"
	}
	return "unknown"
}
