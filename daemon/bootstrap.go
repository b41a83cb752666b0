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
	// keys (base64 Ed25519 public keys, a spec's ownerKey); the node also
	// serves their IP claims, as for Cladnets.
	RelayFor []string
	// Cladnets are the owner keys of the CLADNets whose IP claims the node
	// stores: it verifies their certificates. Claims of other CLADNets are
	// refused unless AnyCladnet.
	Cladnets []string
	// AnyCladnet also stores claims of CLADNets it knows no owner key of,
	// checking only their signatures and leases (a shared public bootstrap).
	AnyCladnet bool
	// Store bounds what the node keeps of the claims (ipam.StoreLimits;
	// zero fields take the defaults).
	Store  ipam.StoreLimits
	Logger *slog.Logger
	// Ready is called by RunBootstrap with the node once it listens.
	Ready func(*node.Node)
}

// Bootstrap is a running bootstrap node.
type Bootstrap struct {
	Node  *node.Node
	Store *ipam.Store // the IP claims it holds
	relay io.Closer   // nil unless relaying
}

// StartBootstrap starts a DHT server with a stable identity. It holds no
// CLADNet key: it stores rendezvous records for any CLADNet, the IP claims
// of the CLADNets whose owner keys it is given (certificates verified; any
// CLADNet's with AnyCladnet, signatures only), within ipam.Store's caps, and
// relays for the members of the CLADNets in RelayFor. ctx carries values only; Stop ends it.
func StartBootstrap(ctx context.Context, cfg BootstrapConfig) (*Bootstrap, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	boot, err := node.ParseBootstrap(cfg.Peers)
	if err != nil {
		return nil, err
	}
	val := ipam.NewValidator().WithOwners(append(append([]string(nil), cfg.RelayFor...), cfg.Cladnets...)...)
	if cfg.AnyCladnet {
		val = val.WithUnknown()
	} else if len(cfg.RelayFor)+len(cfg.Cladnets) == 0 {
		log.Warn("this bootstrap node stores no IP claims: give the CLADNets' owner keys (--cladnet-owner) or --any-cladnet")
	}
	store := ipam.NewStore(val, cfg.Store)
	n, err := node.New(context.WithoutCancel(ctx), node.Config{
		Key: cfg.Key, ListenIPs: cfg.ListenIPs, Port: cfg.Port, Bootstrap: boot, Server: true,
		Announce:       cfg.Announce,
		Public:         true,
		Validators:     map[string]record.Validator{ipam.Namespace: val},
		ValueDatastore: store,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	b := &Bootstrap{Node: n, Store: store}
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
