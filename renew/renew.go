// Package renew keeps a member's certificate fresh: at two thirds of its
// lifetime the member asks an operator of its CLADNet (found in the members
// table: certificate role operator) for a new certificate over a libp2p
// stream; the operator re-signs it unless the node is revoked. This makes
// short certificate lifetimes (hours) practical.
//
// The protocol (Protocol) is one request and one answer, each a JSON line:
// the request is the member's current certificate; the stream is
// authenticated by libp2p, and the server requires the remote peer to be
// the certificate's peer. The answer is {"cert": {...}} or {"refused":
// "revoked: ..."} (see Refusal).
//
// Files:
//
//	renew.go   this overview; the protocol: Serve, Request, Refusal
//	client.go  Renewer: the member's loop (when to ask, whom, retries)
package renew

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Protocol is the renewal protocol, served by operators.
const Protocol protocol.ID = "/cbnode/renew/1.0.0"

// maxMsg bounds a request or an answer.
const maxMsg = 16 << 10

// streamTimeout bounds one exchange on the server side.
const streamTimeout = 10 * time.Second

// Refusal reasons (the first word of a refusal).
const (
	ReasonRevoked = "revoked"
	ReasonUnknown = "unknown"
	ReasonExpired = "expired"
	ReasonInvalid = "invalid"
)

// Refusal is an operator's refusal to renew: a reason word and a one-line
// explanation. A refusal is final for that certificate (retrying does not
// help), unlike a transport error.
type Refusal struct {
	Reason string
	Msg    string
}

func (r *Refusal) Error() string { return r.Reason + ": " + r.Msg }

// Refuse builds a Refusal.
func Refuse(reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

type answer struct {
	Cert    *cladnet.Certificate `json:"cert,omitempty"`
	Refused string               `json:"refused,omitempty"`
}

// Signer re-signs old for the remote peer from, or refuses (a *Refusal, or
// any error, which is sent as a refusal "invalid").
type Signer func(ctx context.Context, from peer.ID, old *cladnet.Certificate) (*cladnet.Certificate, error)

// Serve answers renewal requests on h with sign. The caller removes the
// handler (h.RemoveStreamHandler(Protocol)) when done.
func Serve(h host.Host, sign Signer) {
	h.SetStreamHandler(Protocol, func(s network.Stream) {
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(streamTimeout))
		var a answer
		old, err := readCert(s)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
			a.Cert, err = sign(ctx, s.Conn().RemotePeer(), old)
			cancel()
		}
		if err != nil {
			var rf *Refusal
			if !errors.As(err, &rf) {
				rf = Refuse(ReasonInvalid, "%v", err)
			}
			a = answer{Refused: rf.Error()}
		}
		b, _ := json.Marshal(a) // cannot fail: a certificate or a string
		_, _ = s.Write(append(b, '\n'))
	})
}

func readCert(s network.Stream) (*cladnet.Certificate, error) {
	line, err := bufio.NewReader(io.LimitReader(s, maxMsg)).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("read renewal request: %w", err)
	}
	var c cladnet.Certificate
	if err := json.Unmarshal(line, &c); err != nil {
		return nil, fmt.Errorf("renewal request is not a certificate: %w", err)
	}
	return &c, nil
}

// Request asks operator p for a renewal of cert. It returns the new
// certificate (verified for this node and spec), a *Refusal, or a
// transport error.
func Request(ctx context.Context, h host.Host, p peer.ID, spec *cladnet.Spec, cert *cladnet.Certificate) (*cladnet.Certificate, error) {
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "cbnode-renew"), p, Protocol)
	if err != nil {
		return nil, fmt.Errorf("renew at operator %s: %w", p, err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	b, err := json.Marshal(cert)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("renew at operator %s: send: %w", p, err)
	}
	line, err := bufio.NewReader(io.LimitReader(s, maxMsg)).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("renew at operator %s: read answer: %w", p, err)
	}
	var a answer
	if err := json.Unmarshal(line, &a); err != nil {
		return nil, fmt.Errorf("renew at operator %s: bad answer: %w", p, err)
	}
	if a.Refused != "" {
		rf := &Refusal{Reason: ReasonInvalid, Msg: a.Refused}
		for _, r := range []string{ReasonRevoked, ReasonUnknown, ReasonExpired, ReasonInvalid} {
			if msg, ok := strings.CutPrefix(a.Refused, r+": "); ok {
				rf = &Refusal{Reason: r, Msg: msg}
			}
		}
		return nil, rf
	}
	if a.Cert == nil {
		return nil, fmt.Errorf("renew at operator %s: empty answer", p)
	}
	if err := a.Cert.Verify(spec, h.ID(), time.Now()); err != nil {
		return nil, fmt.Errorf("renew at operator %s: the new certificate does not verify: %w", p, err)
	}
	if a.Cert.HostName != cert.HostName || a.Cert.RoleName() != cert.RoleName() {
		return nil, fmt.Errorf("renew at operator %s: the new certificate is for host %s role %s, not %s role %s", p, a.Cert.HostName, a.Cert.RoleName(), cert.HostName, cert.RoleName())
	}
	return a.Cert, nil
}
