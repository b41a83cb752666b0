package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/renew"
)

// DefaultMaxRenewTTL caps the lifetime of a renewed certificate when
// Config.MaxRenewTTL is not set.
const DefaultMaxRenewTTL = 30 * 24 * time.Hour

// renewGrace is how long after its NotAfter a certificate may still be
// renewed (a member that was cut off briefly); older ones are refused.
const renewGrace = time.Hour

// RevokeRequest is the body of POST /v1/cladnet/{cladnetId}/revocation:
// the node to revoke, by host name or peer ID.
type RevokeRequest struct {
	HostName string `json:"hostName"`
	PeerID   string `json:"peerId"`
	Reason   string `json:"reason"`
}

// revocationList is GET (and the answer of POST) .../revocation: the signed
// list in force (version 0, no entries, when nothing was revoked).
func revocationList(s *cladnetSwarm) *cladnet.Revocations {
	if cur := s.revs.Current(); cur != nil {
		return cur
	}
	return &cladnet.Revocations{CladnetID: s.owner.Spec.ID, Entries: []cladnet.Revocation{}}
}

func (o *Operator) getRevocations(w http.ResponseWriter, r *http.Request) {
	s, ok := o.cladnetOf(w, r)
	if !ok {
		return
	}
	api.WriteJSON(w, http.StatusOK, revocationList(s))
}

// postRevocation signs a newer revocation list naming the node, persists
// it in DIR and submits it on the CLADNet's revocation topic: members drop
// the node within seconds.
func (o *Operator) postRevocation(w http.ResponseWriter, r *http.Request) {
	var req RevokeRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	if (req.HostName == "") == (req.PeerID == "") {
		fail(w, badInput(errors.New(`body needs one of "hostName" or "peerId" (the node to revoke), and optionally "reason"`)))
		return
	}
	s, unlock, ok := o.lockedCladnetOf(w, r)
	if !ok {
		return
	}
	defer unlock()
	e, err := o.resolveRevocation(s, req)
	if err != nil {
		fail(w, err)
		return
	}
	id, _ := peer.Decode(e.PeerID)
	if s.revs.RevokedPeer(id) {
		fail(w, fmt.Errorf("node %s (peer %s) is already revoked in CLADNet %s (GET .../revocation lists it): %w", e.HostName, e.PeerID, s.owner.Spec.Name, api.ErrConflict))
		return
	}
	now := time.Now()
	doc, err := s.owner.Revoke(o.cfg.Dir, e, now)
	if err != nil {
		fail(w, err)
		return
	}
	b, err := doc.Marshal()
	if err != nil {
		fail(w, err)
		return
	}
	if _, err := s.revs.Submit(r.Context(), b); err != nil {
		// Signed and saved in DIR: members get it when the gossip works
		// again (it is re-published to every newcomer).
		o.log.Warn("revocation list signed, but not spread yet", "cladnet", s.owner.Spec.Name, "version", doc.Version, "err", err)
	}
	s.mem.DropRevoked()
	o.log.Info("revoked node", "cladnet", s.owner.Spec.Name, "host", e.HostName, "peer", e.PeerID, "reason", e.Reason, "version", doc.Version)
	api.WriteJSON(w, http.StatusOK, doc)
}

// resolveRevocation finds the node a request names: by peer ID as given,
// by host name in the members table or in the issued certificates.
func (o *Operator) resolveRevocation(s *cladnetSwarm, req RevokeRequest) (cladnet.Revocation, error) {
	e := cladnet.Revocation{HostName: req.HostName, PeerID: req.PeerID, Reason: strings.TrimSpace(req.Reason)}
	if req.PeerID != "" {
		id, err := peer.Decode(req.PeerID)
		if err != nil {
			return e, badInput(fmt.Errorf("peerId %q is not a peer ID (12D3KooW...; GET .../peer lists them as hostId)", req.PeerID))
		}
		if m, ok := s.mem.Member(id); ok {
			e.HostName = m.Ann.HostName
		}
		return e, nil
	}
	if m, ok := s.mem.Lookup(req.HostName); ok && !m.Self {
		e.HostName, e.PeerID = m.Ann.HostName, m.ID.String()
		return e, nil
	}
	issued, err := s.owner.IssuedList(o.cfg.Dir)
	if err != nil {
		return e, err
	}
	for _, is := range issued {
		if is.HostName == req.HostName {
			e.PeerID = is.PeerID
			return e, nil
		}
	}
	return e, fmt.Errorf("host %q is neither a member of CLADNet %s nor issued a certificate by this operator (give its peerId instead): %w", req.HostName, s.owner.Spec.Name, api.ErrNotFound)
}

// dissolve signs a dissolution (a revocation list with dissolved: true),
// saves it in DIR and submits it: every member that receives it leaves.
// The caller holds o.mu.
func (s *cladnetSwarm) dissolve(ctx context.Context, dir string) error {
	doc, err := s.owner.Dissolve(dir, time.Now())
	if err != nil {
		return fmt.Errorf("CLADNet %s: sign the dissolution: %w", s.owner.Spec.Name, err)
	}
	b, err := doc.Marshal()
	if err != nil {
		return err
	}
	if _, err := s.revs.Submit(ctx, b); err != nil {
		return fmt.Errorf("CLADNet %s: spread the dissolution: %w (retry the DELETE)", s.owner.Spec.Name, err)
	}
	return nil
}

// checkTokenRevoked refuses a token for a revoked node key, or for a host
// name a revoked node held: a revoked node rejoins only as a new host.
func checkTokenRevoked(s *cladnetSwarm, host string, id peer.ID, fromRequest bool) error {
	cur := s.revs.Current()
	if cur == nil {
		return nil
	}
	if fromRequest && cur.RevokedPeer(id) {
		return fmt.Errorf("peer %s is revoked in CLADNet %s: a revoked node key never joins again; leave out peerId to get a new key: %w", id, s.owner.Spec.Name, api.ErrConflict)
	}
	for _, e := range cur.Entries {
		if strings.EqualFold(e.HostName, host) {
			return fmt.Errorf("host name %s belongs to a revoked node (revoked %s): choose a new hostName: %w", host, e.RevokedAt.Format(time.RFC3339), api.ErrConflict)
		}
	}
	return nil
}

// renewCert is the renewal protocol's signer: the old certificate, presented
// by its own peer, is re-signed with the same host, groups and role, the
// same NotBefore (so IP claims made under it stay valid) and the lifetime
// it was issued with (capped by Config.MaxRenewTTL), unless the node is
// revoked, its certificate is unknown here or expired long ago.
func (o *Operator) renewCert(_ context.Context, from peer.ID, old *cladnet.Certificate) (*cladnet.Certificate, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var s *cladnetSwarm
	for _, c := range o.swarm {
		if c.owner.Spec.ID == old.CladnetID {
			s = c
		}
	}
	if s == nil {
		return nil, renew.Refuse(renew.ReasonUnknown, "CLADNet %s is not held by this operator", old.CladnetID)
	}
	now := time.Now()
	if err := old.Verify(s.owner.Spec, from, now); err != nil {
		if !errors.Is(err, cladnet.ErrExpired) {
			return nil, renew.Refuse(renew.ReasonInvalid, "%v", err)
		}
		if now.Sub(old.NotAfter) > renewGrace {
			return nil, renew.Refuse(renew.ReasonExpired, "certificate of %s expired at %s, more than %s ago: join with a new token", old.HostName, old.NotAfter.Format(time.RFC3339), renewGrace)
		}
	}
	if old.RoleName() != cladnet.RoleMember {
		return nil, renew.Refuse(renew.ReasonInvalid, "only member certificates are renewed, not role %s", old.RoleName())
	}
	if s.revs.RevokedCert(old) || s.revs.RevokedPeer(from) {
		return nil, renew.Refuse(renew.ReasonRevoked, "%s (peer %s) is revoked in CLADNet %s", old.HostName, from, s.owner.Spec.Name)
	}
	issued, err := s.owner.IssuedList(o.cfg.Dir)
	if err != nil {
		return nil, renew.Refuse(renew.ReasonInvalid, "%v", err)
	}
	var ttl time.Duration
	for _, is := range issued {
		if is.HostName == old.HostName && is.PeerID == old.PeerID {
			// NotAfter is the issue time plus the lifetime, truncated
			// to the second.
			ttl = is.NotAfter.Sub(is.IssuedAt.Truncate(time.Second))
		}
	}
	if ttl <= 0 {
		return nil, renew.Refuse(renew.ReasonUnknown, "no certificate for host %s and peer %s was issued by this operator's CLADNet %s (or the host name went to another node): join with a new token", old.HostName, from, s.owner.Spec.Name)
	}
	ttl = min(ttl, o.cfg.MaxRenewTTL)
	c, err := cladnet.SignCertificate(s.owner.Key, s.owner.Spec, from, old.HostName, old.Groups, now, ttl,
		cladnet.WithNotBefore(old.NotBefore), cladnet.WithRole(old.Role), cladnet.WithIP(old.BoundIP()))
	if err != nil {
		return nil, renew.Refuse(renew.ReasonInvalid, "%v", err)
	}
	if err := s.owner.Record(o.cfg.Dir, c, now); err != nil {
		return nil, renew.Refuse(renew.ReasonInvalid, "record the renewal: %v", err)
	}
	o.log.Info("renewed certificate", "cladnet", s.owner.Spec.Name, "host", c.HostName, "peer", from, "notAfter", c.NotAfter)
	return c, nil
}
