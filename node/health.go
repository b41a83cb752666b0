package node

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// WarnAfter is the number of failed bootstrap rounds after which the node
// logs a warning about a bootstrap node.
const WarnAfter = 3

// BootstrapHealth is one bootstrap node as this node sees it.
type BootstrapHealth struct {
	ID        string    `json:"id"`
	Addrs     []string  `json:"addrs"`
	Connected bool      `json:"connected"`
	Failures  int       `json:"consecutiveFailures"` // failed dial rounds since the last success
	LastError string    `json:"lastError,omitempty"`
	LastTry   time.Time `json:"lastTry,omitzero"`
}

// ObservedAddr is an address of this node as other peers reported seeing it
// (identify's observed address): behind a NAT, the NAT's public side.
type ObservedAddr struct {
	Addr      string `json:"addr"`
	Observers int    `json:"observers"`
}

// Health is the node's view of its own connectivity.
type Health struct {
	Bootstrap    []BootstrapHealth `json:"bootstrap"`
	RoutingTable int               `json:"dhtRoutingTable"` // peers in the DHT routing table
	Reachability string            `json:"reachability"`    // AutoNAT: unknown, public or private
	NATTCP       string            `json:"natTcp"`          // NAT device type: unknown, endpoint-independent, endpoint-dependent
	NATUDP       string            `json:"natUdp"`
	Observed     []ObservedAddr    `json:"observedAddrs,omitempty"`
}

// bootTracker counts failed dials per bootstrap node and decides when to
// warn and when to say it recovered.
type bootTracker struct {
	log  *slog.Logger
	mu   sync.Mutex
	by   map[peer.ID]*bootStat
	warn int
}

type bootStat struct {
	fails   int
	lastErr string
	lastTry time.Time
	warned  bool
}

func newBootTracker(log *slog.Logger, warnAfter int) *bootTracker {
	return &bootTracker{log: log, by: map[peer.ID]*bootStat{}, warn: warnAfter}
}

func (t *bootTracker) stat(p peer.ID) *bootStat {
	s := t.by[p]
	if s == nil {
		s = &bootStat{}
		t.by[p] = s
	}
	return s
}

// result records one dial round's outcome with bootstrap node bp (err nil:
// connected) and logs a warning on the warn-th failure in a row and a
// notice when a warned-about node is reachable again.
func (t *bootTracker) result(bp peer.AddrInfo, err error, now time.Time) {
	t.mu.Lock()
	s := t.stat(bp.ID)
	if err == nil {
		recovered := s.warned
		tries := s.fails
		s.fails, s.lastErr, s.warned = 0, "", false
		t.mu.Unlock()
		if recovered {
			t.log.Info(fmt.Sprintf("bootstrap %s reachable again after %d failed tries", bp.ID, tries), "peer", bp.ID)
		}
		return
	}
	s.fails++
	s.lastErr = DialError(err)
	s.lastTry = now
	warn := s.fails == t.warn && !s.warned
	if warn {
		s.warned = true
	}
	fails := s.fails
	t.mu.Unlock()
	if warn {
		t.log.Warn(unreachableMsg(bp, fails), "peer", bp.ID, "err", DialError(err))
	}
}

// DialError is a dial error on one line: the swarm's "all dials failed"
// error lists each address's failure on a line of its own, which becomes
// "[addr] reason; [addr] reason".
func DialError(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	if len(lines) == 1 {
		return lines[0]
	}
	var parts []string
	for _, l := range lines[1:] {
		if l = strings.TrimPrefix(strings.TrimSpace(l), "* "); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// unreachableMsg is the warning for a bootstrap node that failed n dials.
func unreachableMsg(bp peer.AddrInfo, n int) string {
	addr, port := "(no address)", fmt.Sprint(DefaultPort)
	if len(bp.Addrs) > 0 {
		addr = bp.Addrs[0].String()
		for _, code := range []int{ma.P_TCP, ma.P_UDP} {
			if v, err := bp.Addrs[0].ValueForProtocol(code); err == nil {
				port = v
				break
			}
		}
	}
	return fmt.Sprintf("bootstrap %s at %s unreachable after %d tries: check the address and that TCP/UDP %s is open to it", bp.ID, addr, n, port)
}

func (t *bootTracker) snapshot(bp peer.AddrInfo) BootstrapHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := BootstrapHealth{ID: bp.ID.String(), Addrs: []string{}}
	for _, a := range bp.Addrs {
		h.Addrs = append(h.Addrs, a.String())
	}
	if s := t.by[bp.ID]; s != nil {
		h.Failures, h.LastError, h.LastTry = s.fails, s.lastErr, s.lastTry
	}
	return h
}

// netState follows libp2p's event bus: AutoNAT reachability, the NAT device
// types and the addresses peers observe us at.
type netState struct {
	mu       sync.Mutex
	reach    network.Reachability
	natTCP   network.NATDeviceType
	natUDP   network.NATDeviceType
	observed map[peer.ID]string
}

// maxObservers bounds the observed-address table.
const maxObservers = 256

// watchEvents subscribes to the host's events; the goroutine it starts
// (counted in n.wg) ends with ctx.
func (n *Node) watchEvents(ctx context.Context) error {
	sub, err := n.Host.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtNATDeviceTypeChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return fmt.Errorf("subscribe to host events: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				n.net.apply(e)
			}
		}
	}()
	return nil
}

func (s *netState) apply(e any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := e.(type) {
	case event.EvtLocalReachabilityChanged:
		s.reach = e.Reachability
	case event.EvtNATDeviceTypeChanged:
		if e.TransportProtocol == network.NATTransportTCP {
			s.natTCP = e.NatDeviceType
		} else {
			s.natUDP = e.NatDeviceType
		}
	case event.EvtPeerIdentificationCompleted:
		if e.ObservedAddr == nil {
			return
		}
		if _, ok := s.observed[e.Peer]; !ok && len(s.observed) >= maxObservers {
			return
		}
		s.observed[e.Peer] = e.ObservedAddr.String()
	case event.EvtPeerConnectednessChanged:
		if e.Connectedness != network.Connected && e.Connectedness != network.Limited {
			delete(s.observed, e.Peer)
		}
	}
}

func natString(t network.NATDeviceType) string {
	switch t {
	case network.NATDeviceTypeEndpointIndependent:
		return "endpoint-independent"
	case network.NATDeviceTypeEndpointDependent:
		return "endpoint-dependent"
	}
	return "unknown"
}

func reachString(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// Health reports the node's connectivity: each bootstrap node, the DHT, what
// AutoNAT and the peers' observations say about its reachability.
func (n *Node) Health() Health {
	h := Health{Bootstrap: []BootstrapHealth{}}
	for _, bp := range n.cfg.Bootstrap {
		b := n.boot.snapshot(bp)
		b.Connected = n.Host.Network().Connectedness(bp.ID) == network.Connected
		h.Bootstrap = append(h.Bootstrap, b)
	}
	if n.DHT != nil {
		h.RoutingTable = n.DHT.RoutingTable().Size()
	}
	n.net.mu.Lock()
	reach, tcp, udp := n.net.reach, n.net.natTCP, n.net.natUDP
	count := map[string]int{}
	for _, a := range n.net.observed {
		count[a]++
	}
	n.net.mu.Unlock()
	if n.cfg.Public {
		reach = network.ReachabilityPublic
	}
	h.Reachability, h.NATTCP, h.NATUDP = reachString(reach), natString(tcp), natString(udp)
	for a, c := range count {
		h.Observed = append(h.Observed, ObservedAddr{Addr: a, Observers: c})
	}
	sort.Slice(h.Observed, func(i, j int) bool {
		if h.Observed[i].Observers != h.Observed[j].Observers {
			return h.Observed[i].Observers > h.Observed[j].Observers
		}
		return h.Observed[i].Addr < h.Observed[j].Addr
	})
	return h
}

// ClearDialBackoff forgets libp2p's dial backoff for p, so that the next
// dial really dials: the bootstrap loop and netcheck pace their own dials
// (the swarm would otherwise refuse for up to 5 min after failures).
func (n *Node) ClearDialBackoff(p peer.ID) {
	if sw, ok := n.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// HolePunching reports whether DCUtR hole punching is enabled.
func (n *Node) HolePunching() bool { return n.cfg.HolePunching }

// Bootstrap returns the configured bootstrap nodes.
func (n *Node) Bootstrap() []peer.AddrInfo { return n.cfg.Bootstrap }
