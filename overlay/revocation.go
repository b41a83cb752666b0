package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

// Revocations spreads the CLADNet's owner-signed revocation list by gossip,
// the way Rules spreads the cost rules: members keep the newest version
// signed by the owner key (in the state directory, cladnet.RevocationsFile),
// ignore older or equal versions (a replayed old list cannot un-revoke a
// node), and re-publish it when a peer joins the topic, so newcomers learn
// it at once.
type Revocations struct {
	*signedTopic[cladnet.Revocations] // the list in force is nil when nothing is revoked
}

// RevocationsTopic is the gossipsub topic of a CLADNet's revocation list.
func RevocationsTopic(cladnetID string) string {
	return "/cbnode/cladnet/" + cladnetID + "/revocations"
}

// StartRevocations joins the revocations topic; stateDir keeps the newest list.
func StartRevocations(ctx context.Context, spec *cladnet.Spec, n *node.Node, stateDir string, log *slog.Logger) (*Revocations, error) {
	r := newRevocations(spec, stateDir, log)
	if err := r.start(ctx, n, RevocationsTopic(spec.ID)); err != nil {
		return nil, fmt.Errorf("revocations: %w", err)
	}
	return r, nil
}

// newRevocations loads the saved list; it does not touch the network.
func newRevocations(spec *cladnet.Spec, stateDir string, log *slog.Logger) *Revocations {
	kind := signedDoc[cladnet.Revocations]{
		file: cladnet.RevocationsFile,
		verify: func(b []byte) (*cladnet.Revocations, error) {
			doc, err := cladnet.ParseRevocations(b)
			if err != nil {
				return nil, err
			}
			if err := doc.Verify(spec); err != nil {
				return nil, err
			}
			return doc, nil
		},
		newer:   cladnet.NewerRevocations,
		marshal: (*cladnet.Revocations).Marshal,
		stale: func(doc, cur *cladnet.Revocations) error {
			var v uint64
			if cur != nil {
				v = cur.Version
			}
			return fmt.Errorf("%w (version %d, current %d): revoke again with 'cbnode cladnet revoke' to get a newer version", ErrStaleRevocations, doc.Version, v)
		},
		noun: "revocation list", rejected: "rejected revocation list", applied: "applied revocation list",
		appliedAttrs: func(doc *cladnet.Revocations) []any {
			return []any{"version", doc.Version, "revoked", len(doc.Entries)}
		},
	}
	return &Revocations{newSignedTopic(kind, stateDir, nil, log)}
}

// ErrStaleRevocations is returned by Submit for a list not newer than the
// current one.
var ErrStaleRevocations = errors.New("revocation list is not newer than the current one")

// Submit verifies a signed revocation list, applies it and gossips it.
func (r *Revocations) Submit(ctx context.Context, b []byte) (*cladnet.Revocations, error) {
	return r.submitSigned(ctx, b)
}

// Current returns the list in force, nil when nothing is revoked.
func (r *Revocations) Current() *cladnet.Revocations { return r.current() }

// RevokedPeer reports whether the list in force revokes node p.
func (r *Revocations) RevokedPeer(p peer.ID) bool { return r.Current().RevokedPeer(p) }

// RevokedCert reports whether the list in force revokes certificate c (its
// peer or its fingerprint).
func (r *Revocations) RevokedCert(c *cladnet.Certificate) bool { return r.Current().RevokedCert(c) }

// Changes returns a channel signalled (coalesced) when a new list was
// applied. Each call returns a new channel.
func (r *Revocations) Changes() <-chan struct{} { return r.changes() }

// Close leaves the topic.
func (r *Revocations) Close() { r.close() }
