package operator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
	"github.com/cloud-barista/cbnode/overlay/remote"
)

// The routes that reach one member directly over a libp2p stream (package
// overlay/remote): PUT .../details hands it an owner-signed patch of its
// cloud information, GET .../networkingRule asks it for its path table.
// Nothing is queued: a member that is not online answers 502 and keeps its
// details.

// errUnreachable marks a member the operator cannot reach (502).
var errUnreachable = errors.New("member unreachable")

// remoteTimeout bounds one exchange with a member.
const remoteTimeout = 10 * time.Second

// operatorAskTTL is the validity of the certificate the operator shows a
// member when it asks for its networking rule.
const operatorAskTTL = 5 * time.Minute

// DetailsRequest is the body of PUT .../peer/{hostId}/details (cb-network's:
// the five location fields; cbnode also takes privateIps and publicIp).
type DetailsRequest struct {
	CloudInformation *cost.CloudPatch `json:"cloudInformation"`
}

func failRemote(w http.ResponseWriter, err error) {
	code := api.StatusOf(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, errUnreachable), errors.Is(err, remote.ErrRefused):
		code = http.StatusBadGateway
	}
	api.WriteError(w, code, err)
}

// target finds the member hostId names, online. A host the owner issued a
// certificate to but that is not in the members table is offline (502).
func (o *Operator) target(cladnetID, hostID string) (*cladnetSwarm, overlay.Member, error) {
	o.mu.Lock()
	s, err := o.lookup(cladnetID)
	o.mu.Unlock()
	if err != nil {
		return nil, overlay.Member{}, err
	}
	if m, ok := s.mem.Lookup(hostID); ok && !m.Self {
		return s, m, nil
	}
	if list, err := s.owner.IssuedList(o.cfg.Dir); err == nil {
		for _, is := range list {
			if is.HostName == hostID || is.PeerID == hostID {
				return nil, overlay.Member{}, fmt.Errorf("host %s (peer %s) of CLADNet %s is not online (not in the members table): nothing was sent or queued; start it ('cbnode join') and retry: %w",
					is.HostName, is.PeerID, s.owner.Spec.Name, errUnreachable)
			}
		}
	}
	_, err = s.peer(hostID) // the usual 404
	return nil, overlay.Member{}, err
}

func (o *Operator) putDetails(w http.ResponseWriter, r *http.Request) {
	var req DetailsRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		fail(w, badInput(err))
		return
	}
	if req.CloudInformation == nil {
		fail(w, badInput(errors.New(`body needs {"cloudInformation": {...}} (providerName, regionId, availabilityZoneId, virtualNetworkId, subnetId; privateIps, publicIp)`)))
		return
	}
	s, m, err := o.target(r.PathValue("cladnetId"), r.PathValue("hostId"))
	if err != nil {
		failRemote(w, err)
		return
	}
	// Refuse what the member would refuse, before signing anything.
	next := req.CloudInformation.Apply(m.Ann.Cloud)
	if err := next.Validate(); err != nil {
		fail(w, badInput(err))
		return
	}
	now := time.Now()
	doc := &remote.Details{CladnetID: s.owner.Spec.ID, PeerID: m.ID.String(), Patch: *req.CloudInformation,
		IssuedAt: now, Seq: s.detailsSeq.Next(now)}
	if err := doc.Sign(s.owner.Key); err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), remoteTimeout)
	defer cancel()
	ci, err := remote.PushDetails(ctx, o.node.Host, m.ID, doc)
	if err != nil {
		failRemote(w, fmt.Errorf("details for %s (peer %s): %w", m.Ann.HostName, m.ID, remoteErr(err)))
		return
	}
	o.log.Info("cloud details set", "cladnet", s.owner.Spec.Name, "host", m.Ann.HostName, "peer", m.ID, "seq", doc.Seq)
	p := s.toPeer(m)
	p.Details, p.HostPublicIP, p.HostPrivateIP = ci, ci.PublicIP, ""
	if len(ci.PrivateIPs) > 0 {
		p.HostPrivateIP = ci.PrivateIPs[0]
	}
	api.WriteJSON(w, http.StatusOK, p)
}

func (o *Operator) getNetworkingRule(w http.ResponseWriter, r *http.Request) {
	s, m, err := o.target(r.PathValue("cladnetId"), r.PathValue("hostId"))
	if err != nil {
		failRemote(w, err)
		return
	}
	cert, err := s.askCert(o.node.Host.ID(), time.Now())
	if err != nil {
		fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), remoteTimeout)
	defer cancel()
	nr, err := remote.FetchNetworkingRule(ctx, o.node.Host, m.ID, s.owner.Spec.ID, cert)
	if err != nil {
		failRemote(w, fmt.Errorf("networking rule of %s (peer %s): %w", m.Ann.HostName, m.ID, remoteErr(err)))
		return
	}
	api.WriteJSON(w, http.StatusOK, nr)
}

// askCert is a short-lived certificate of role operator for the operator's
// own peer ID, shown to a member that answers only to this CLADNet's
// certificate holders.
func (s *cladnetSwarm) askCert(self peer.ID, now time.Time) (*cladnet.Certificate, error) {
	c, err := cladnet.SignCertificate(s.owner.Key, s.owner.Spec, self, OperatorHost, nil, now.Add(-time.Minute), operatorAskTTL, cladnet.WithRole(cladnet.RoleOperator))
	if err != nil {
		return nil, fmt.Errorf("CLADNet %s: operator certificate: %w", s.owner.Spec.Name, err)
	}
	return c, nil
}

// remoteErr marks a failure to reach the member (not its refusal, not a
// deadline) as errUnreachable.
func remoteErr(err error) error {
	if errors.Is(err, remote.ErrRefused) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w (is it running? GET .../peer/{hostId} shows its state and addresses)", errUnreachable, err)
}
