package daemon

import (
	"strings"
	"testing"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/node"
)

func TestVerdict(t *testing.T) {
	up := node.BootstrapHealth{ID: "boot-up", Connected: true}
	down := node.BootstrapHealth{ID: "boot-down", Failures: 3, LastError: "connection refused"}
	fresh := node.BootstrapHealth{ID: "boot-new"}
	for _, tc := range []struct {
		name    string
		h       api.Health
		verdict string
		reason  []string
	}{
		{"all well", api.Health{IPAM: "assigned", ConnectedMembers: 2, Health: node.Health{Bootstrap: []node.BootstrapHealth{up}, RoutingTable: 3}},
			api.HealthOK, []string{"1 of 1 bootstrap nodes, 2 members connected, 3 DHT peers"}},
		{"bootstrap dead, nobody else", api.Health{IPAM: "acquiring", Health: node.Health{Bootstrap: []node.BootstrapHealth{down}}},
			api.HealthOffline, []string{"bootstrap boot-down unreachable (3 failed tries, last: connection refused)", "check the bootstrap address"}},
		{"bootstrap not tried yet", api.Health{IPAM: "acquiring", Health: node.Health{Bootstrap: []node.BootstrapHealth{fresh}}},
			api.HealthOffline, []string{"boot-new unreachable (not connected yet)"}},
		{"no bootstrap configured", api.Health{IPAM: "acquiring"}, api.HealthOffline, []string{"no bootstrap node configured"}},
		{"bootstrap dead, members still there", api.Health{IPAM: "assigned", ConnectedMembers: 1, Health: node.Health{Bootstrap: []node.BootstrapHealth{down}, RoutingTable: 1}},
			api.HealthDegraded, []string{"bootstrap boot-down unreachable"}},
		{"one of two bootstraps dead", api.Health{IPAM: "assigned", Health: node.Health{Bootstrap: []node.BootstrapHealth{up, down}, RoutingTable: 1}},
			api.HealthDegraded, []string{"boot-down unreachable"}},
		{"no address yet", api.Health{IPAM: "acquiring", Health: node.Health{Bootstrap: []node.BootstrapHealth{up}, RoutingTable: 1}},
			api.HealthDegraded, []string{"no overlay address (IPAM acquiring)"}},
		{"range full", api.Health{IPAM: "full", Health: node.Health{Bootstrap: []node.BootstrapHealth{up}, RoutingTable: 1}},
			api.HealthDegraded, []string{"IPAM full"}},
		{"empty DHT", api.Health{IPAM: "assigned", Health: node.Health{Bootstrap: []node.BootstrapHealth{up}}},
			api.HealthDegraded, []string{"DHT routing table empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, reason := verdict(&tc.h)
			if v != tc.verdict {
				t.Errorf("verdict %s (%s), want %s", v, reason, tc.verdict)
			}
			for _, w := range tc.reason {
				if !strings.Contains(reason, w) {
					t.Errorf("reason %q lacks %q", reason, w)
				}
			}
			if strings.Contains(reason, "\n") {
				t.Errorf("reason is not one line: %q", reason)
			}
		})
	}
}

func TestHolePunchReadiness(t *testing.T) {
	for _, tc := range []struct {
		name          string
		dcutr, resv   bool
		reach, tcp    string
		udp           string
		public        bool
		direct, words string
	}{
		{"public", true, false, "public", "unknown", "unknown", true, "yes", "publicly reachable"},
		{"public address, AutoNAT undecided", true, false, "unknown", "unknown", "unknown", true, "yes", "publicly reachable"},
		{"cone NAT", true, true, "private", "unknown", "endpoint-independent", false, "likely", "others fall back to a relay"},
		{"symmetric NAT, no relay", true, false, "private", "endpoint-dependent", "endpoint-dependent", false, "unlikely", "no relay reservation"},
		{"no DCUtR", false, true, "private", "endpoint-independent", "endpoint-independent", false, "unlikely", "DCUtR) is off"},
		{"unknown", true, true, "unknown", "unknown", "unknown", false, "unknown", "NAT type not known yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := holePunchReadiness(tc.dcutr, tc.resv, tc.reach, tc.tcp, tc.udp, tc.public)
			if r.Direct != tc.direct || !strings.Contains(r.Analysis, tc.words) || r.DCUtR != tc.dcutr || r.Relayed != tc.resv {
				t.Errorf("got %+v, want direct %s with %q", r, tc.direct, tc.words)
			}
		})
	}
}
