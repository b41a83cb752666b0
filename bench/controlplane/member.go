package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
)

// member is one simulated cbnode member: the control-plane half of
// daemon.Start/daemon.Member.wait (node, membership, rules, IPAM and the
// event loop that ties IPAM to the announcements), without the data plane,
// the API, relay reservations, hole-punch retries and cost-path enforcement.
type member struct {
	id     peer.ID
	node   *node.Node
	mem    *overlay.Membership
	rules  *overlay.Rules
	alloc  *ipam.Allocator
	meter  *meter
	dht    *countingDHT
	events atomic.Int64 // members-table changes seen by the event loop
	runErr chan error
}

// countingDHT counts the allocator's DHT operations.
type countingDHT struct {
	ipam.DHT
	gets, puts atomic.Int64
}

func (d *countingDHT) GetValue(ctx context.Context, key string, opts ...routing.Option) ([]byte, error) {
	d.gets.Add(1)
	return d.DHT.GetValue(ctx, key, opts...)
}

func (d *countingDHT) PutValue(ctx context.Context, key string, v []byte, opts ...routing.Option) error {
	d.puts.Add(1)
	return d.DHT.PutValue(ctx, key, v, opts...)
}

// simConfig is what every member of one simulation shares.
type simConfig struct {
	owner     *cladnet.Owner
	prefix    netip.Prefix
	boot      []peer.AddrInfo
	heartbeat time.Duration
	missed    int
	dir       string
	log       *slog.Logger
}

// startBootstrap starts the bootstrap node as daemon.RunBootstrap does (DHT
// server, IPAM validator without a spec), on 127.0.0.1 with a meter.
func startBootstrap(ctx context.Context, log *slog.Logger) (*node.Node, *meter, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap key: %w", err)
	}
	mt := &meter{}
	n, err := node.New(ctx, node.Config{
		Key: k, ListenIPs: []string{"127.0.0.1"}, Server: true, Public: true,
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator().WithUnknown()}, // as --any-cladnet
		Extra:      []libp2p.Option{libp2p.BandwidthReporter(mt)},
		Logger:     log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bootstrap node: %w", err)
	}
	return n, mt, nil
}

// startMember wires a member the way daemon.Start does and runs its event
// loop until ctx ends.
func startMember(ctx context.Context, sc *simConfig, i int) (*member, error) {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("peer ID: %w", err)
	}
	host := fmt.Sprintf("n%04d", i)
	cert, err := cladnet.SignCertificate(sc.owner.Key, sc.owner.Spec, id, host, nil, time.Now(), 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("certificate for %s: %w", host, err)
	}
	stateDir := filepath.Join(sc.dir, host)
	log := sc.log.With("host", host)
	m := &member{id: id, meter: &meter{}, runErr: make(chan error, 1)}
	m.node, err = node.New(ctx, node.Config{
		Key: k, ListenIPs: []string{"127.0.0.1"}, Bootstrap: sc.boot,
		PubSub: true, HolePunching: true,
		Blocked:    []netip.Prefix{sc.prefix},
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator(sc.owner.Spec)},
		Extra:      []libp2p.Option{libp2p.BandwidthReporter(m.meter)},
		Logger:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	var claimer atomic.Pointer[ipam.Allocator] // the allocator starts later
	m.mem, err = overlay.StartMembership(ctx, overlay.MembershipConfig{
		Spec: sc.owner.Spec, Cert: cert, Key: k, Node: m.node,
		Heartbeat: sc.heartbeat, MissedHeartbeats: sc.missed, Logger: log,
		ClaimRecord: func() []byte {
			if a := claimer.Load(); a != nil {
				return a.Record()
			}
			return nil
		},
	})
	if err != nil {
		m.node.Close()
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	m.rules, err = overlay.StartRules(ctx, sc.owner.Spec, m.node, stateDir, log)
	if err != nil {
		m.mem.Close()
		m.node.Close()
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	m.dht = &countingDHT{DHT: m.node.DHT}
	m.alloc, err = ipam.NewAllocator(ipam.AllocatorConfig{
		Spec: sc.owner.Spec, Cert: cert, Key: k, DHT: m.dht,
		StateDir: stateDir, Members: m.mem, Logger: log,
	})
	if err != nil {
		m.rules.Close()
		m.mem.Close()
		m.node.Close()
		return nil, fmt.Errorf("%s: %w", host, err)
	}
	claimer.Store(m.alloc)
	go func() { m.runErr <- m.alloc.Run(ctx) }()
	go m.loop(ctx)
	return m, nil
}

// loop is daemon.Member.wait reduced to the control plane: a new address is
// announced (with the state), and every members-table change makes IPAM
// re-check its claim.
func (m *member) loop(ctx context.Context) {
	changes, stop := m.mem.Watch()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ip := <-m.alloc.Changes():
			m.mem.SetOverlayIP(ip, m.alloc.ClaimedAt())
			state := overlay.StateConfiguring
			if ip.IsValid() {
				state = overlay.StateTunneling // daemon: TUN off counts as tunneling
			}
			m.mem.SetState(state)
		case <-changes:
			m.events.Add(1)
			m.alloc.CheckConflicts()
		case <-m.rules.Changes():
		}
	}
}
