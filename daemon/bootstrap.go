package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/relay"
)

// BootstrapConfig configures a bootstrap node.
type BootstrapConfig struct {
	Key       crypto.PrivKey
	ListenIPs []string
	Port      int
	Peers     []string // other bootstrap nodes, optional
	// Announce is advertised besides the detected addresses (the public IP
	// or DNS name of a cloud VM): see node.Config.Announce.
	Announce []ma.Multiaddr
	// RelayFor runs a relay for members of the CLADNets owned by these
	// keys (base64 Ed25519 public keys, a spec's ownerKey). The node then
	// also keeps each CLADNet's revocation list (see Bootstrap).
	RelayFor []string
	// StateDir keeps the revocation lists of the RelayFor CLADNets, one
	// directory per CLADNet ID (as a member's state directory does); ""
	// keeps them in memory only.
	StateDir string
	Logger   *slog.Logger
	// Ready is called by RunBootstrap with the node once it listens.
	Ready func(*node.Node)
}

// Bootstrap is a running bootstrap node. A relaying one (RelayFor) also
// takes part in the revocations topic of each CLADNet it relays for: it
// keeps the newest owner-signed list (verified with the owner key it relays
// for, saved in StateDir), refuses reservations and circuits to revoked
// peers, and hands the list to every node that joins the topic — also to a
// revoked node started from a fresh state directory, which the members
// refuse to talk to and which learns from the bootstrap node that it is
// revoked.
type Bootstrap struct {
	Node  *node.Node
	relay *relay.Service // nil unless relaying
	revs  map[string]*overlay.Revocations
	stop  sync.Once
}

// StartBootstrap starts a DHT server with a stable identity. It holds no
// CLADNet key: it stores IPAM claims (checking their signatures, not their
// certificates) and rendezvous records for any CLADNet, and relays for the
// members of the CLADNets in RelayFor. ctx carries values only; Stop ends it.
func StartBootstrap(ctx context.Context, cfg BootstrapConfig) (*Bootstrap, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	boot, err := node.ParseBootstrap(cfg.Peers)
	if err != nil {
		return nil, err
	}
	n, err := node.New(context.WithoutCancel(ctx), node.Config{
		Key: cfg.Key, ListenIPs: cfg.ListenIPs, Port: cfg.Port, Bootstrap: boot, Server: true,
		Announce:   cfg.Announce,
		Public:     true,
		PubSub:     len(cfg.RelayFor) > 0, // the revocations topics
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator()},
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	b := &Bootstrap{Node: n, revs: map[string]*overlay.Revocations{}}
	if len(cfg.RelayFor) == 0 {
		return b, nil
	}
	fail := func(err error) (*Bootstrap, error) {
		b.Stop()
		return nil, err
	}
	for _, k := range cfg.RelayFor {
		id, _, err := relay.ParseOwnerKey(k)
		if err != nil {
			return fail(err)
		}
		if b.revs[id] != nil {
			continue // the same key twice
		}
		dir := ""
		if cfg.StateDir != "" {
			dir = filepath.Join(cfg.StateDir, id)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fail(fmt.Errorf("bootstrap state dir: %w", err))
			}
		}
		r, err := overlay.StartRevocations(context.WithoutCancel(ctx), &cladnet.Spec{ID: id, OwnerKey: k}, n, dir, log)
		if err != nil {
			return fail(fmt.Errorf("CLADNet %s: %w", id, err))
		}
		b.revs[id] = r
		if cur := r.Current(); cur != nil {
			log.Info("revocation list", "cladnet", id, "version", cur.Version, "revoked", len(cur.Entries))
		}
	}
	r, err := relay.Start(n.Host, cfg.RelayFor, log, relay.WithRevoked(b.revokedCert))
	if err != nil {
		return fail(err)
	}
	b.relay = r
	log.Info("relaying for members of CLADNets", "owners", len(cfg.RelayFor))
	return b, nil
}

// revokedCert reports whether the revocation list of c's CLADNet revokes c.
func (b *Bootstrap) revokedCert(c *cladnet.Certificate) bool {
	r := b.revs[c.CladnetID] // written before the relay starts, read only after
	return r != nil && r.RevokedCert(c)
}

// Revocations returns the revocation list this node holds for CLADNet id
// (nil if none, or if it does not relay for that CLADNet).
func (b *Bootstrap) Revocations(id string) *cladnet.Revocations {
	if r := b.revs[id]; r != nil {
		return r.Current()
	}
	return nil
}

// RelayRefused returns how many reservations and circuits the relay
// refused, by reason (relay.Refused*); nil when it does not relay.
func (b *Bootstrap) RelayRefused() map[string]uint64 {
	if b.relay == nil {
		return nil
	}
	return b.relay.Refused()
}

// Stop closes the relay and the node and waits for their goroutines. It is
// idempotent.
func (b *Bootstrap) Stop() {
	b.stop.Do(func() {
		if b.relay != nil {
			_ = b.relay.Close()
		}
		for _, r := range b.revs {
			r.Close()
		}
		_ = b.Node.Close()
	})
}

// RunBootstrap runs a bootstrap node until ctx ends.
func RunBootstrap(ctx context.Context, cfg BootstrapConfig) error {
	b, err := StartBootstrap(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Stop()
	if cfg.Ready != nil {
		cfg.Ready(b.Node)
	}
	<-ctx.Done()
	return nil
}
