package paths

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/overlay/forward"
)

const pB = peer.ID("peer-b")

func cloud(vpc, subnet, private, public string) cost.CloudInfo {
	c := cost.CloudInfo{ProviderName: "aws", RegionID: "us-east-1", AvailabilityZoneID: "use1-az1",
		VirtualNetworkID: vpc, SubnetID: subnet, PublicIP: public}
	if private != "" {
		c.PrivateIPs = []string{private}
	}
	return c
}

// policyWith builds a policy for one peer b with a packet stream on remote
// ("" = no stream).
func policyWith(t *testing.T, ruleType string, self, b cost.CloudInfo, remote string, relayed bool) *Policy {
	t.Helper()
	pol := New(nil)
	pol.Stream = func(p peer.ID) (forward.PathInfo, bool) {
		if p != pB || remote == "" {
			return forward.PathInfo{}, false
		}
		return forward.PathInfo{Remote: remote, Relayed: relayed, Transport: "tcp"}, true
	}
	pol.Update(cost.DefaultRules("cn", ruleType), self, []Peer{{ID: pB, Host: "b", Cloud: b}})
	return pol
}

func TestPolicyTable(t *testing.T) {
	a := cloud("vpc-1", "subnet-1", "10.0.0.11", "7.7.7.11")
	cases := []struct {
		name       string
		rule       string
		self, peer cost.CloudInfo
		remote     string
		relayed    bool
		wantMove   bool
		wantClass  cost.Class
		wantScope  string
		allow      map[string]bool
	}{
		{name: "cost-prioritized, same subnet, on the private path",
			rule: cost.RuleCostPrioritized, self: a, peer: cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12"),
			remote: "/ip4/10.0.0.12/tcp/7460", wantClass: cost.ClassSameSubnet, wantScope: cost.ScopeIntra,
			allow: map[string]bool{"/ip4/10.0.0.12/tcp/7460": true, "/ip4/7.7.7.12/tcp/7460": true}},
		{name: "cost-prioritized, same subnet, still on the public path: move",
			rule: cost.RuleCostPrioritized, self: a, peer: cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12"),
			remote: "/ip4/7.7.7.12/tcp/7460", wantMove: true, wantClass: cost.ClassCrossVPC, wantScope: cost.ScopeInter},
		{name: "private IP equal to public IP (on-premises, labs): on the chosen path, never moved",
			rule: cost.RuleCostPrioritized, self: cloud("vpc-1", "subnet-1", "7.7.7.11", "7.7.7.11"), peer: cloud("vpc-1", "subnet-1", "7.7.7.12", "7.7.7.12"),
			remote: "/ip4/7.7.7.12/tcp/7460", wantClass: cost.ClassSameSubnet, wantScope: cost.ScopeIntra,
			allow: map[string]bool{"/ip4/7.7.7.12/tcp/7460": true}},
		{name: "basic rule, stream on a private address: move off it",
			rule: cost.RuleBasic, self: a, peer: cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12"),
			remote: "/ip4/10.0.0.12/tcp/7460", wantMove: true, wantClass: cost.ClassCrossVPC, wantScope: cost.ScopeIntra,
			allow: map[string]bool{"/ip4/10.0.0.12/tcp/7460": false, "/ip4/7.7.7.12/tcp/7460": true, "/ip4/127.0.0.1/tcp/7460": false}},
		{name: "basic rule, public path",
			rule: cost.RuleBasic, self: a, peer: cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12"),
			remote: "/ip4/7.7.7.12/udp/7460/quic-v1", wantClass: cost.ClassCrossVPC, wantScope: cost.ScopeInter},
		{name: "no VPC on either side: a plain LAN, private addresses allowed",
			rule: cost.RuleBasic, self: cloud("", "", "", ""), peer: cloud("", "", "", ""),
			remote: "/ip4/10.250.0.12/tcp/7460", wantClass: cost.ClassCrossVPC, wantScope: cost.ScopeIntra,
			allow: map[string]bool{"/ip4/10.250.0.12/tcp/7460": true, "/ip4/127.0.0.1/tcp/1": true, "/ip4/7.7.7.12/tcp/1": true}},
		{name: "relayed: billed as internet",
			rule: cost.RuleCostPrioritized, self: a, peer: cloud("vpc-2", "subnet-9", "10.0.0.12", ""),
			remote: "/ip4/7.7.7.1/tcp/7460/p2p/12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK/p2p-circuit", relayed: true,
			wantClass: cost.ClassInternet, wantScope: cost.ScopeInter},
		{name: "no stream yet: billed as decided",
			rule: cost.RuleCostPrioritized, self: a, peer: cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12"),
			wantClass: cost.ClassSameSubnet, wantScope: cost.ScopeIntra},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pol := policyWith(t, tc.rule, tc.self, tc.peer, tc.remote, tc.relayed)
			due := pol.due(time.Now())
			if moved := len(due) == 1; moved != tc.wantMove {
				t.Errorf("move = %v, want %v", moved, tc.wantMove)
			}
			b, ok := pol.Billed(pB)
			if !ok {
				t.Fatal("Billed: not a member")
			}
			if b.Class != tc.wantClass || b.Scope != tc.wantScope {
				t.Errorf("billed %s/%s, want %s/%s", b.Class, b.Scope, tc.wantClass, tc.wantScope)
			}
			for addr, want := range tc.allow {
				if got := pol.Allow(pB, ma.StringCast(addr)); got != want {
					t.Errorf("Allow(%s) = %v, want %v", addr, got, want)
				}
			}
		})
	}
}

func TestEnforceBacksOff(t *testing.T) {
	a := cloud("vpc-1", "subnet-1", "10.0.0.11", "7.7.7.11")
	b := cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12")
	pol := policyWith(t, cost.RuleCostPrioritized, a, b, "/ip4/7.7.7.12/tcp/7460", false)
	now := time.Now()
	if len(pol.due(now)) != 1 {
		t.Fatal("first attempt not due")
	}
	pol.doneMoving(pB)
	if len(pol.due(now.Add(FirstRetry-time.Millisecond))) != 0 {
		t.Fatal("retried before the backoff")
	}
	if len(pol.due(now.Add(FirstRetry))) != 1 {
		t.Fatal("not retried after the backoff")
	}
	pol.doneMoving(pB)
	if len(pol.due(now.Add(FirstRetry+2*FirstRetry-time.Millisecond))) != 0 {
		t.Fatal("backoff did not double")
	}
	// A new decision is tried at once.
	if changed := pol.Update(cost.DefaultRules("cn", cost.RuleBasic), a, []Peer{{ID: pB, Cloud: b}}); len(changed) != 1 {
		t.Fatalf("changed = %v, want [b]", changed)
	}
	pol.Update(cost.DefaultRules("cn", cost.RuleCostPrioritized), a, []Peer{{ID: pB, Cloud: b}})
	if len(pol.due(now.Add(FirstRetry+time.Millisecond))) != 1 {
		t.Fatal("a changed decision still waits for the old backoff")
	}
}

// TestNewAddressResetsBackoff: a private IP added at run time (set-details)
// is tried at once, not after the backoff the failed attempts built up.
func TestNewAddressResetsBackoff(t *testing.T) {
	a := cloud("vpc-1", "subnet-1", "10.0.0.11", "7.7.7.11")
	b := cloud("vpc-1", "subnet-1", "10.0.0.12", "7.7.7.12")
	pol := policyWith(t, cost.RuleCostPrioritized, a, b, "/ip4/7.7.7.12/tcp/7460", false)
	rules := cost.DefaultRules("cn", cost.RuleCostPrioritized)
	now := time.Now()
	for i := range 4 { // the private path fails again and again
		if len(pol.due(now)) != 1 {
			t.Fatalf("attempt %d not due", i)
		}
		pol.doneMoving(pB)
		pol.mu.Lock()
		now = pol.retry[pB].at
		pol.mu.Unlock()
	}
	if len(pol.due(now.Add(-time.Millisecond))) != 0 {
		t.Fatal("due before its backoff")
	}
	b.PrivateIPs = append(b.PrivateIPs, "10.0.1.12")
	if changed := pol.Update(rules, a, []Peer{{ID: pB, Cloud: b}}); len(changed) != 1 {
		t.Fatalf("a new private IP is no change: %v", changed)
	}
	if len(pol.due(now.Add(-time.Millisecond))) != 1 {
		t.Fatal("a new address waits for the old backoff")
	}
	pol.doneMoving(pB)
	if changed := pol.Update(rules, a, []Peer{{ID: pB, Cloud: b, Addrs: []string{"/ip4/10.0.1.12/tcp/7460"}}}); len(changed) != 1 {
		t.Fatalf("a new announced address is no change: %v", changed)
	}
	if changed := pol.Update(rules, a, []Peer{{ID: pB, Cloud: b, Addrs: []string{"/ip4/10.0.1.12/tcp/7460"}}}); len(changed) != 0 {
		t.Fatalf("the same facts again count as a change: %v", changed)
	}
}

func TestEnforceOneMoveAtATime(t *testing.T) {
	pol := policyWith(t, cost.RuleBasic, cloud("vpc-1", "s", "10.0.0.11", "7.7.7.11"), cloud("vpc-1", "s", "10.0.0.12", "7.7.7.12"), "/ip4/10.0.0.12/tcp/1", false)
	release := make(chan struct{})
	moves := make(chan Path, 4)
	pol.Move = func(p peer.ID, v Path) { moves <- v; <-release }
	pol.Enforce(t.Context())
	v := <-moves
	if v.AllowPrivate() {
		t.Errorf("moved with a decision that allows the private path")
	}
	// Even past the backoff, no second move starts while one runs.
	pol.mu.Lock()
	pol.retry[pB] = retryAt{}
	pol.mu.Unlock()
	pol.Enforce(t.Context())
	close(release)
	pol.Wait()
	if len(moves) != 0 {
		t.Errorf("%d moves ran concurrently for one peer", len(moves))
	}
}

func TestScoreOrder(t *testing.T) {
	pol := policyWith(t, cost.RuleCostPrioritized, cloud("vpc-1", "s", "10.0.0.11", "7.7.7.11"), cloud("vpc-1", "s", "10.0.0.12", "7.7.7.12"), "", false)
	private := pol.score(pB, ma.StringCast("/ip4/10.0.0.12/tcp/1"), forward.PathInfo{Transport: "tcp"})
	privateQUIC := pol.score(pB, ma.StringCast("/ip4/10.0.0.12/udp/1/quic-v1"), forward.PathInfo{Transport: "quic"})
	public := pol.score(pB, ma.StringCast("/ip4/7.7.7.12/tcp/1"), forward.PathInfo{Transport: "tcp"})
	relayed := pol.score(pB, ma.StringCast("/ip4/7.7.7.1/tcp/1/p2p-circuit"), forward.PathInfo{Relayed: true, Transport: "tcp"})
	if !(private > privateQUIC && privateQUIC > public && public > relayed) {
		t.Errorf("scores private %d, private QUIC %d, public %d, relayed %d: want strictly falling", private, privateQUIC, public, relayed)
	}
}
