package daemon_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay"
)

// TestTwinMemberStops: vm1's token started a second time (a cloned VM, its
// own state directory) while vm1 and vm2 run. The copy stops with the
// identity-conflict error, without a leave or a release; vm1 keeps its
// address, its membership and its packets, and its status says why.
func TestTwinMemberStops(t *testing.T) {
	l := newLab(t, cost.RuleBasic)
	orig, other := l.member("vm1"), l.member("vm2")
	orig.start()
	other.start()
	ms := []*member{orig, other}
	eventually(t, 30*time.Second, "members converge", converged(ms))
	ip := orig.ip()

	twin := &member{l: l, name: "vm1", key: orig.key, state: t.TempDir()}
	twin.start()
	select {
	case <-twin.m.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the copy still runs 30 s after it started")
	}
	err := twin.m.Err()
	if !errors.Is(err, overlay.ErrIdentityConflict) || !strings.Contains(err.Error(), "cbnode cladnet issue") {
		t.Fatalf("the copy ended with %v, want the identity conflict", err)
	}
	t.Logf("the copy: %v", err)
	twin.m.Stop()

	eventually(t, 30*time.Second, "the original's status reports the conflict", func() error {
		if s := orig.m.Status().IdentityConflict; s == "" {
			return errors.New("no identityConflict in the original's status")
		}
		return nil
	})
	t.Logf("the original's status: %s", orig.m.Status().IdentityConflict)
	// Several heartbeats later the original still holds its address, vm2
	// still lists it there (no leave was announced for it) and packets flow.
	time.Sleep(5 * 500 * time.Millisecond)
	if orig.ip() != ip {
		t.Fatalf("the original's address changed from %s to %s", ip, orig.ip())
	}
	eventually(t, 10*time.Second, "vm2 lists vm1 at its address", func() error {
		for _, p := range other.m.Peers() {
			if p.HostName == "vm1" && p.IP == ip.String() && p.State == overlay.StateTunneling {
				return nil
			}
		}
		return fmt.Errorf("vm2's members: %+v", other.m.Peers())
	})
	meshDelivers(t, ms, 7)
	if st := orig.m.Status(); st.IPAMState != "assigned" {
		t.Errorf("the original's IPAM state %q", st.IPAMState)
	}
}
