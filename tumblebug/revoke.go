package tumblebug

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/cloud-barista/cbnode/api"
)

// revokeGone revokes the nodes a previous deploy set up that the infra no
// longer lists, and hands the signed list to a member that runs.
func (d *deployer) revokeGone(ctx context.Context) {
	var listed []Node // a suspended node is still the infra's: not revoked
	for id := range d.inInfra {
		listed = append(listed, Node{ID: id})
	}
	gone := Gone(d.st.Nodes, listed)
	for _, id := range gone {
		dep := d.st.Nodes[id]
		if d.Plan {
			d.logf("revoke %s (host %s, peer %s): gone from the infra: POST %s/v1/cladnet/%s/revocation", id, dep.Host, dep.PeerID, d.OperatorURL, d.spec.ID)
			continue
		}
		if dep.PeerID == "" {
			d.logf("revoke %s: no token was issued to it; forgotten", id)
			delete(d.st.Nodes, id)
			continue
		}
		var doc json.RawMessage
		err := d.Op.Do(ctx, http.MethodPost, "/v1/cladnet/"+url.PathEscape(d.spec.ID)+"/revocation",
			map[string]string{"peerId": dep.PeerID, "reason": fmt.Sprintf("removed from Tumblebug infra %s/%s", d.NS, d.Infra)}, &doc)
		var se *api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusConflict {
			err = d.Op.Do(ctx, http.MethodGet, "/v1/cladnet/"+url.PathEscape(d.spec.ID)+"/revocation", nil, &doc)
		}
		if err != nil {
			d.res.Failed[id] = fmt.Errorf("revoke %s: %w", id, d.opErr(err))
			d.logf("revoke %s: FAILED: %v", id, err)
			continue
		}
		// The operator gossips it if it is in the swarm; a member that
		// runs spreads it in any case.
		pushed := ""
		for _, n := range d.nodes {
			if _, failed := d.res.Failed[n.ID]; failed {
				continue
			}
			_, err := d.TB.TransferAndRun(ctx, d.NS, d.Infra, n.ID, Staging, "revocations.json", doc, d.Layout.PushRevocationCommand())
			if err == nil {
				pushed = n.ID
				break
			}
			d.logf("  revocation list to %s: %v", n.ID, err)
		}
		delete(d.st.Nodes, id)
		d.st.Revoked[id] = dep
		d.res.Revoked = append(d.res.Revoked, id)
		d.logf("revoked %s (host %s, peer %s): gone from the infra; list handed to %s", id, dep.Host, dep.PeerID, firstOf(pushed, "no member (the operator spreads it)"))
	}
}
