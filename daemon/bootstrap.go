package daemon

import (
	"context"
	"log/slog"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/cloud-barista/cbnode/ipam"
	"github.com/cloud-barista/cbnode/node"
)

// BootstrapConfig configures a bootstrap node.
type BootstrapConfig struct {
	Key       crypto.PrivKey
	ListenIPs []string
	Port      int
	Peers     []string // other bootstrap nodes, optional
	// RelayFor runs a relay for members of the CLADNets owned by these
	// keys (base64 Ed25519 public keys, a spec's ownerKey).
	RelayFor []string
	Logger   *slog.Logger
	// Ready is called with the node once it listens.
	Ready func(*node.Node)
}

// RunBootstrap runs a DHT server with a stable identity until ctx ends. It
// holds no CLADNet key: it stores IPAM claims (checking their signatures, not
// their certificates) and rendezvous records for any CLADNet.
func RunBootstrap(ctx context.Context, cfg BootstrapConfig) error {
	boot, err := node.ParseBootstrap(cfg.Peers)
	if err != nil {
		return err
	}
	n, err := node.New(ctx, node.Config{
		Key: cfg.Key, ListenIPs: cfg.ListenIPs, Port: cfg.Port, Bootstrap: boot, Server: true,
		Public: true, RelayFor: cfg.RelayFor,
		Validators: map[string]record.Validator{ipam.Namespace: ipam.NewValidator()},
		Logger:     cfg.Logger,
	})
	if err != nil {
		return err
	}
	defer n.Close()
	if cfg.Ready != nil {
		cfg.Ready(n)
	}
	<-ctx.Done()
	return nil
}
