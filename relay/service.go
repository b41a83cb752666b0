package relay

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"

	"github.com/cloud-barista/cbnode/cladnet"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Resources are the relay's limits: circuits carry real traffic (no time
// or byte limit, so circuits are not "limited" and ordinary streams and
// gossip work over them), with buffers large enough for throughput.
func Resources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = nil // unlimited circuits: members only, see ACL
	r.ReservationTTL = time.Hour
	r.MaxReservations = 4096
	r.MaxCircuits = 256
	r.BufferSize = 64 << 10
	r.MaxReservationsPerIP = 256 // many members may sit behind one NAT gateway
	r.MaxReservationsPerASN = 256
	return r
}

// Option adjusts the relay's ACL.
type Option func(*ACL)

// WithRevoked makes the relay refuse peers whose certificate revoked says is
// revoked.
func WithRevoked(revoked func(*cladnet.Certificate) bool) Option {
	return func(a *ACL) { a.Revoked = revoked }
}

// Service is a running relay and its access control.
type Service struct {
	*relayv2.Relay
	acl *ACL
}

// Refused returns how many reservations and circuits the relay refused, by
// reason (the Refused* constants).
func (s *Service) Refused() map[string]uint64 { return s.acl.Refused() }

// Start runs a circuit-v2 relay on h for members of the CLADNets owned by
// ownerKeys.
func Start(h host.Host, ownerKeys []string, log *slog.Logger, opts ...Option) (*Service, error) {
	if len(ownerKeys) == 0 {
		return nil, fmt.Errorf("relay: no CLADNet owner keys: a relay for anyone is an open proxy (give --cladnet-owner)")
	}
	acl, err := NewACL(h, ownerKeys, log)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(acl)
	}
	r, err := relayv2.New(h, relayv2.WithResources(Resources()), relayv2.WithACL(acl))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return &Service{Relay: r, acl: acl}, nil
}
