package daemon

import (
	"context"
	"fmt"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay/remote"
)

// serveRemote answers the operator's direct requests (package
// overlay/remote): owner-signed cloud details, merged as set-details merges
// them, and this node's networking rule for holders of a certificate of the
// CLADNet. The handlers go away when the member stops.
func (m *Member) serveRemote() {
	guard, err := remote.OpenGuard(m.stateDir)
	if err != nil {
		m.log.Warn("details from the operator: starting the replay guard over", "err", err)
	}
	self := m.mem.Self().String()
	srv := remote.Serve(remote.Config{
		Host: m.node.Host, Spec: m.spec, Guard: guard, Revoked: m.revokedCert, Logger: m.log,
		ApplyDetails: func(p cost.CloudPatch) (cost.CloudInfo, error) {
			if _, err := m.SetDetails(self, p); err != nil {
				return cost.CloudInfo{}, fmt.Errorf("apply details: %w", err)
			}
			return m.mem.Cloud(), nil
		},
		NetworkingRule: func() (api.NetworkingRule, error) { return m.NetworkingRule(self) },
	})
	m.goFunc(func(ctx context.Context) {
		<-ctx.Done()
		srv.Close()
	})
}
