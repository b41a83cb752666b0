// Package node builds cbnode's libp2p host: identity, transports (TCP with
// Noise first and yamux, QUIC-v1), the private Kademlia DHT, gossipsub, the
// connection manager and gater. It knows nothing about CLADNets beyond the
// address ranges it must never carry.
//
// Files:
//
//	node.go        Config, New, Close, bootstrap upkeep, ParseBootstrap
//	ports.go       a fixed listen port another process holds is refused
//	announce.go    --announce addresses and the best address for members
//	identity.go    the persistent node key
//	gater.go       never advertise, dial or accept CLADNet-range addresses
//	dialrank.go    dial ranking (TCP first, circuits through live relays)
//	holepunch.go   DCUtR hole-punch tracing and outcomes
//	limits.go      resource manager limits (room for a full mesh)
//	staleconns.go  a peer that moved: its old connections probed, dead ones closed
//	netwatch_*.go  connections bound to a vanished local address closed at once
//	addrs.go       the node's current addresses (libp2p's lag a renumbering), change callbacks
package node

import (
	"context"
	"fmt"
	ds "github.com/ipfs/go-datastore"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// DHTPrefix is the private DHT's protocol prefix: cbnode never speaks to the
// public IPFS DHT.
const DHTPrefix = "/cbnode"

// DefaultPort is the listen port for both TCP and QUIC.
const DefaultPort = 7460

// Config configures a Node.
type Config struct {
	Key       crypto.PrivKey
	ListenIPs []string // default 0.0.0.0
	Port      int      // TCP and UDP (QUIC) port; 0 picks random ones
	Bootstrap []peer.AddrInfo
	// Server runs the DHT in server mode (bootstrap nodes); members use
	// auto-server mode.
	Server bool
	// PubSub starts gossipsub (members only).
	PubSub bool
	// PubSubOptions are extra gossipsub options (the CLADNet's admission:
	// peer filter and scoring, see overlay.Admission).
	PubSubOptions []pubsub.Option
	// Blocked ranges are never advertised, dialled or accepted (the CLADNet ranges).
	Blocked []netip.Prefix
	// Validators are registered as namespaced DHT record validators.
	Validators map[string]record.Validator
	// ValueDatastore, if set, is where the DHT keeps the value records it
	// stores for others (default: in memory, unbounded); a wrapper can cap
	// what it accepts.
	ValueDatastore ds.Batching
	// ExtraAddrs, if set, adds addresses to those the node advertises (the
	// circuit addresses of its relay reservations).
	ExtraAddrs func() []ma.Multiaddr
	// Announce adds addresses to those the node advertises, first: its
	// public IP or DNS name where the node cannot see it (a cloud VM's
	// 1:1 NAT, a load balancer). A host-only address (/ip4/X, /ip6/X,
	// /dns4/N, /dns6/N, /dns/N) is advertised with every listen transport
	// and port (/ip4/X/tcp/7460, /ip4/X/udp/7460/quic-v1); an address with
	// a transport is advertised as given. The detected addresses stay
	// (members in the same network can still use the private ones). See
	// ParseAnnounce.
	Announce []ma.Multiaddr
	// Public marks a node on a public address (bootstrap/relay nodes): it
	// skips reachability detection and answers AutoNAT probes for others.
	Public bool
	// AllowAddr, if set, vets every address dialled to a peer (cost-aware
	// path choice). Addresses inside Blocked are refused regardless.
	AllowAddr func(peer.ID, ma.Multiaddr) bool
	// Refuse, if set, names peers whose connections are refused both ways
	// (revoked nodes); it is asked on every dial and every accept.
	Refuse func(peer.ID) bool
	// HolePunching enables DCUtR hole punching (members).
	HolePunching bool
	// Metrics, if set, is where libp2p registers its own Prometheus
	// metrics (a private registry: nothing is registered globally). Nil
	// disables them.
	Metrics prometheus.Registerer
	// Extra libp2p options (relay, hole punching, tests).
	Extra  []libp2p.Option
	Logger *slog.Logger
}

// Node is a running libp2p host with its DHT and, for members, gossipsub.
type Node struct {
	Host   host.Host
	DHT    *dht.IpfsDHT
	PubSub *pubsub.PubSub

	cfg     Config
	log     *slog.Logger
	punches *punchTracer
	boot    *bootTracker
	net     netState
	local   localAddrs
	gater   *overlayGater
	// bootSubs: OnBootstrapBack's callbacks (under local.mu)
	bootSubs []func()
	// swarmNet holds the host's network.Network once it exists (the dial
	// ranker runs on libp2p's goroutines).
	swarmNet atomic.Value
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New starts a node. Close it to release the host and goroutines.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Key == nil {
		return nil, fmt.Errorf("node: no identity key")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ips := cfg.ListenIPs
	if len(ips) == 0 {
		ips = []string{"0.0.0.0"}
	}
	var listen []string
	var addrs []netip.Addr
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", ip, err)
		}
		addrs = append(addrs, a)
		fam := "ip4"
		if a.Is6() {
			fam = "ip6"
		}
		listen = append(listen,
			fmt.Sprintf("/%s/%s/tcp/%d", fam, a, cfg.Port),
			fmt.Sprintf("/%s/%s/udp/%d/quic-v1", fam, a, cfg.Port))
	}
	if err := checkPortsFree(addrs, cfg.Port); err != nil {
		return nil, err
	}
	for _, a := range cfg.Announce {
		if err := checkAnnounce(a); err != nil {
			return nil, err
		}
	}
	cm, err := connmgr.NewConnManager(100, 400, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	g := &overlayGater{blocked: cfg.Blocked, allow: cfg.AllowAddr, refuse: cfg.Refuse}
	rm, err := resourceManager()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: log, punches: nil, gater: g,
		boot: newBootTracker(log, WarnAfter), net: netState{observed: map[peer.ID]string{}}}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		// Noise first: the default negotiates TLS first on TCP.
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(tls.ID, tls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.SwarmOpts(swarm.WithDialRanker(rankFor(n.connected))),
		libp2p.ConnectionGater(g),
		libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			if len(cfg.Announce) > 0 {
				addrs = append(announced(cfg.Announce, addrs), addrs...)
			}
			if cfg.ExtraAddrs != nil {
				addrs = append(addrs, cfg.ExtraAddrs()...)
			}
			return n.local.dropRemoved(g.filterAddrs(addrs))
		}),
	}
	if cfg.Metrics != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Metrics))
	} else {
		opts = append(opts, libp2p.DisableMetrics()) // no process-global Prometheus registry
	}
	if cfg.Public {
		opts = append(opts, libp2p.ForceReachabilityPublic(), libp2p.EnableNATService())
	}
	var punches *punchTracer
	if cfg.HolePunching {
		punches = newPunchTracer(log)
		opts = append(opts, libp2p.EnableHolePunching(holepunch.WithTracer(punches)))
	}
	opts = append(opts, cfg.Extra...)
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("libp2p host: %w", err)
	}
	mode := dht.ModeAutoServer
	if cfg.Server {
		mode = dht.ModeServer
	}
	dopts := []dht.Option{
		dht.ProtocolPrefix(DHTPrefix),
		dht.Mode(mode),
		dht.BootstrapPeers(cfg.Bootstrap...),
	}
	for ns, v := range cfg.Validators {
		dopts = append(dopts, dht.NamespacedValidator(ns, v))
	}
	if cfg.ValueDatastore != nil {
		dopts = append(dopts, dht.ValueDatastore(cfg.ValueDatastore))
	}
	ctx, cancel := context.WithCancel(ctx)
	d, err := dht.New(h, dopts...)
	if err != nil {
		cancel()
		h.Close()
		return nil, fmt.Errorf("dht: %w", err)
	}
	n.Host, n.DHT, n.cancel, n.punches = h, d, cancel, punches
	n.swarmNet.Store(h.Network())
	if err := n.watchEvents(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if cfg.PubSub {
		// Flood publishing: a node's own messages go to every topic peer
		// it is connected to, not only its mesh, so a newcomer is seen at
		// once (each receiver gets about one copy more than via the mesh).
		psOpts := append([]pubsub.Option{pubsub.WithPeerExchange(true), pubsub.WithFloodPublish(true)}, cfg.PubSubOptions...)
		ps, err := pubsub.NewGossipSub(ctx, h, psOpts...)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("gossipsub: %w", err)
		}
		n.PubSub = ps
	}
	if err := d.Bootstrap(ctx); err != nil {
		n.Close()
		return nil, fmt.Errorf("dht bootstrap: %w", err)
	}
	h.Network().Notify(staleWatcher{n})
	n.wg.Add(2)
	go n.keepBootstrapped(ctx)
	go n.watchAddrs(ctx)
	return n, nil
}

// keepBootstrapped connects to the bootstrap peers at start and redials any
// it is not connected to (e.g. after the underlay address changed, or the
// bootstrap node restarted), every 200 ms at first, backing off to every
// 2 s. Each dial's outcome is recorded for Health; a bootstrap node failing
// WarnAfter rounds in a row is logged as a warning, its recovery as a
// notice. When a bootstrap node this node was connected to before is back,
// the DHT's routing table is refreshed and OnBootstrapBack's callbacks run
// (the membership re-advertises itself under its rendezvous key: a
// restarted bootstrap node has forgotten the provider records).
func (n *Node) keepBootstrapped(ctx context.Context) {
	defer n.wg.Done()
	if len(n.cfg.Bootstrap) == 0 {
		return
	}
	wait := 200 * time.Millisecond
	seen := map[peer.ID]bool{} // connected at least once
	for {
		connected := 0
		var lost []peer.AddrInfo
		for _, bp := range n.cfg.Bootstrap {
			if n.Host.Network().Connectedness(bp.ID) == network.Connected {
				connected++
				seen[bp.ID] = true
				n.boot.result(bp, nil, time.Now())
			} else {
				lost = append(lost, bp)
			}
		}
		if len(lost) > 0 {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var back []peer.ID
			for _, bp := range lost {
				wg.Add(1)
				go func(bp peer.AddrInfo) {
					defer wg.Done()
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					n.ClearDialBackoff(bp.ID)
					err := n.Host.Connect(cctx, bp)
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						n.log.Debug("bootstrap connect failed", "peer", bp.ID, "err", err)
					} else {
						mu.Lock()
						back = append(back, bp.ID)
						mu.Unlock()
					}
					n.boot.result(bp, err, time.Now())
				}(bp)
			}
			wg.Wait()
			if connected == 0 && ctx.Err() == nil {
				_ = n.DHT.Bootstrap(ctx)
				n.DHT.RefreshRoutingTable()
			}
			again := false
			for _, id := range back {
				if seen[id] {
					again = true
					n.log.Info("bootstrap node back", "peer", id)
				}
				seen[id] = true
			}
			if again && ctx.Err() == nil {
				n.DHT.RefreshRoutingTable()
				n.bootBack()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if wait < 2*time.Second {
			wait = min(2*wait, 2*time.Second)
		}
	}
}

// OnBootstrapBack registers f to run when a bootstrap node this node had
// lost answers again (from the bootstrap loop; f must not block).
func (n *Node) OnBootstrapBack(f func()) {
	n.local.mu.Lock()
	n.bootSubs = append(n.bootSubs, f)
	n.local.mu.Unlock()
}

func (n *Node) bootBack() {
	n.local.mu.Lock()
	subs := append([]func(){}, n.bootSubs...)
	n.local.mu.Unlock()
	for _, f := range subs {
		f()
	}
}

// connected reports whether the host holds a connection to p (false
// before the host exists: the dial ranker may ask that early).
func (n *Node) connected(p peer.ID) bool {
	nw, ok := n.swarmNet.Load().(network.Network)
	return ok && nw.Connectedness(p) == network.Connected
}

// Addrs returns the node's full multiaddrs (with /p2p/ID).
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, _ := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.Host.ID(), Addrs: n.Host.Addrs()})
	return addrs
}

// Close stops the node.
func (n *Node) Close() error {
	n.cancel()
	var err error
	if n.DHT != nil {
		err = n.DHT.Close()
	}
	if cerr := n.Host.Close(); err == nil {
		err = cerr
	}
	n.wg.Wait()
	return err
}

// ParseBootstrap parses bootstrap multiaddrs (each with /p2p/ID), merging
// addresses of the same peer.
func ParseBootstrap(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		if s == "" {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bootstrap address %q: %w", s, err)
		}
		mas = append(mas, a)
	}
	infos, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap addresses (each needs /p2p/<peer-id>): %w", err)
	}
	return infos, nil
}
