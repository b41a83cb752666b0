// Package relay makes libp2p circuit-v2 relays carry a CLADNet's data, for
// its members only: the relay side's access control (certificates checked
// against the CLADNet owner keys the operator allows), the tiny protocol by
// which a member shows its certificate, and the member side's reservations.
package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// CertProtocol is the protocol by which a member hands its certificate to a
// relay that asks for it.
const CertProtocol = "/cbnode/cert/1.0.0"

const maxCertSize = 8 << 10

// ServeCert answers every certificate request with cert.
func ServeCert(h host.Host, cert *cladnet.Certificate) { ServeCertTo(h, cert, nil) }

// ServeCertTo answers certificate requests with cert if allow (nil: all)
// admits the asker; others get the stream reset and learn nothing (a
// certificate names the CLADNet, the host and its groups).
func ServeCertTo(h host.Host, cert *cladnet.Certificate, allow func(peer.ID) bool) {
	b, err := json.Marshal(cert)
	if err != nil {
		return
	}
	h.SetStreamHandler(CertProtocol, func(s network.Stream) {
		if allow != nil && !allow(s.Conn().RemotePeer()) {
			_ = s.Reset()
			return
		}
		defer s.Close()
		_ = s.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = s.Write(b)
	})
}

// FetchCert asks peer p for its certificate.
func FetchCert(ctx context.Context, h host.Host, p peer.ID) (*cladnet.Certificate, error) {
	ctx = network.WithNoDial(ctx, "cbnode-cert")
	ctx = network.WithAllowLimitedConn(ctx, "cbnode-cert")
	s, err := h.NewStream(ctx, p, CertProtocol)
	if err != nil {
		return nil, fmt.Errorf("fetch certificate of %s: %w", p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetReadDeadline(d)
	}
	b, err := io.ReadAll(io.LimitReader(s, maxCertSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch certificate of %s: %w", p, err)
	}
	if len(b) > maxCertSize {
		return nil, fmt.Errorf("fetch certificate of %s: larger than %d bytes", p, maxCertSize)
	}
	var c cladnet.Certificate
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("fetch certificate of %s: %w", p, err)
	}
	return &c, nil
}
