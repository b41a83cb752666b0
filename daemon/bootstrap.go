package daemon

import (
	"context"
	"io"
	"log/slog"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
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
	// keys (base64 Ed25519 public keys, a spec's ownerKey).
	RelayFor []string
	Logger   *slog.Logger
	// Ready is called by RunBootstrap with the node once it listens.
	Ready func(*node.Node)
}

// Bootstrap is a running bootstrap node.
type Bootstrap struct {
	Node  *node.Node
	relay io.Closer // nil unless relaying
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
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator()},
		Logger:     log,
	})
	if err != nil {
		return nil, err
	}
	b := &Bootstrap{Node: n}
	if len(cfg.RelayFor) > 0 {
		r, err := relay.Start(n.Host, cfg.RelayFor, log)
		if err != nil {
			_ = n.Close()
			return nil, err
		}
		b.relay = r
		log.Info("relaying for members of CLADNets", "owners", len(cfg.RelayFor))
	}
	return b, nil
}

// Stop closes the relay and the node and waits for their goroutines. It is
// idempotent.
func (b *Bootstrap) Stop() {
	if b.relay != nil {
		_ = b.relay.Close()
	}
	_ = b.Node.Close()
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
