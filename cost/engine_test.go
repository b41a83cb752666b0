package cost

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecideBasic(t *testing.T) {
	rules := DefaultRules("cnx", RuleBasic)
	tests := []struct {
		name       string
		self, peer CloudInfo
		class      Class
		price      float64
	}{
		// Same subnet, but basic still uses public IPs, billed as public
		// traffic within the region (aws: $0.01 each way).
		{"aws same subnet", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az1", "s1"), ClassSameSubnet, 0.02},
		{"gcp same zone", at("gcp", "us-east1", "n", "b", "s"), at("gcp", "us-east1", "n", "b", "s"), ClassSameSubnet, 0.01},
		{"aws cross-region", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "eu-west-1", "vpc-2", "az1", "s1"), ClassCrossRegion, 0.02},
		// Cross-provider: the sender's internet egress price.
		{"aws to gcp", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("gcp", "us-east1", "n", "b", "s"), ClassInternet, 0.09},
		{"gcp to aws", at("gcp", "us-east1", "n", "b", "s"), at("aws", "us-east-1", "vpc-1", "az1", "s1"), ClassInternet, 0.12},
		{"nothing known", CloudInfo{PublicIP: "198.51.100.1"}, CloudInfo{PublicIP: "203.0.113.2"}, ClassInternet, 0.09},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(rules, tc.self, tc.peer)
			if d.Private || d.Scope != ScopeInter || d.SelectedIP != tc.peer.PublicIP {
				t.Errorf("basic chose %+v, want the public path to %s", d, tc.peer.PublicIP)
			}
			if d.Class != tc.class || d.PricePerGB != tc.price || d.PublicPricePerGB != tc.price {
				t.Errorf("got class %s $%g (public $%g), want %s $%g", d.Class, d.PricePerGB, d.PublicPricePerGB, tc.class, tc.price)
			}
			if !strings.HasPrefix(d.Reason, "basic rule") || d.Saving() != 0 {
				t.Errorf("reason %q, saving %g", d.Reason, d.Saving())
			}
		})
	}
	if d := Decide(nil, at("aws", "r", "v", "z", "s"), at("aws", "r", "v", "z", "s")); d.Private || d.Scope != ScopeInter {
		t.Errorf("nil rules should act as basic, got %+v", d)
	}
}

// TestDecideCostPrioritized runs the cost-prioritized rule on the default
// prices and compares each case with cb-network's original heuristic.
func TestDecideCostPrioritized(t *testing.T) {
	rules := DefaultRules("cnx", RuleCostPrioritized)
	noPrivate := at("aws", "us-east-1", "vpc-1", "az1", "s1")
	noPrivate.PrivateIPs = nil
	badPrivate := at("aws", "us-east-1", "vpc-1", "az1", "s1")
	badPrivate.PrivateIPs = []string{"not-an-ip", "10.0.0.9"}
	tests := []struct {
		name       string
		self, peer CloudInfo
		old        bool // OldRule's answer
		private    bool
		ip         string
		class      Class
		price      float64
		public     float64
		reason     string
	}{
		// The original rule's private cases stay private.
		{"aws same vpc same subnet", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az1", "s1"),
			true, true, "10.0.0.2", ClassSameSubnet, 0, 0.02, "private same-subnet"},
		{"gcp same zone", at("gcp", "us-east1", "net", "us-east1-b", "s"), at("gcp", "us-east1", "net", "us-east1-b", "s"),
			true, true, "10.0.0.2", ClassSameSubnet, 0, 0.01, "private"},
		{"azure same zone", at("azure", "eastus", "vnet", "1", "s1"), at("azure", "eastus", "vnet", "1", "s2"),
			true, true, "10.0.0.2", ClassSameZone, 0, 0.01, "private same-zone"},
		{"alibaba same vpc", at("alibaba", "us-east-1", "vpc-a", "us-east-1a", "vsw-1"), at("alibaba", "us-east-1", "vpc-a", "us-east-1b", "vsw-2"),
			true, true, "10.0.0.2", ClassCrossZone, 0, 0.074, "private cross-zone"},

		// Where cbnode and the old rule differ: the old rule wanted the same
		// aws subnet / same gcp zone; cbnode goes private whenever the VPC
		// routes privately and the price table says it costs no more.
		{"aws same vpc same zone other subnet", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az1", "s2"),
			false, true, "10.0.0.2", ClassSameZone, 0, 0.02, "private same-zone"},
		{"aws same vpc other zone", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az2", "s2"),
			false, true, "10.0.0.2", ClassCrossZone, 0.02, 0.02, "private cross-zone"},
		{"gcp same vpc other zone", at("gcp", "us-east1", "net", "us-east1-b", "s"), at("gcp", "us-east1", "net", "us-east1-c", "s"),
			false, true, "10.0.0.2", ClassCrossZone, 0.01, 0.01, "private cross-zone"},
		{"gcp global vpc other region", at("gcp", "us-east1", "net", "us-east1-b", "s"), at("gcp", "us-west1", "net", "us-west1-a", "w"),
			false, true, "10.0.0.2", ClassCrossRegion, 0.02, 0.02, "global gcp VPC"},

		// Public in both.
		{"azure other vnet", at("azure", "eastus", "vnet-1", "1", "s1"), at("azure", "eastus", "vnet-2", "1", "s1"),
			false, false, "203.0.113.2", ClassCrossVPC, 0.01, 0.01, "different VPCs"},
		{"azure same vnet other zone", at("azure", "eastus", "vnet", "1", "s1"), at("azure", "eastus", "vnet", "2", "s1"),
			false, true, "10.0.0.2", ClassCrossZone, 0.01, 0.01, "private cross-zone"},
		{"aws vpc id in two regions", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("aws", "us-west-2", "vpc-1", "az1", "s1"),
			true, false, "203.0.113.2", ClassCrossRegion, 0.02, 0.02, "regional"},
		{"aws region unknown", at("aws", "", "vpc-1", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az1", "s1"),
			true, false, "203.0.113.2", ClassCrossRegion, 0.02, 0.02, "region unknown"},
		{"vpc unknown", at("aws", "us-east-1", "", "az1", "s1"), at("aws", "us-east-1", "vpc-1", "az1", "s1"),
			false, false, "203.0.113.2", ClassCrossVPC, 0.02, 0.02, "VPC unknown"},
		{"aws to gcp", at("aws", "us-east-1", "vpc-1", "az1", "s1"), at("gcp", "us-east1", "vpc-1", "b", "s1"),
			true, false, "203.0.113.2", ClassInternet, 0.09, 0.09, "different providers"},
		{"nothing known", CloudInfo{}, CloudInfo{PublicIP: "203.0.113.2"},
			false, false, "203.0.113.2", ClassInternet, 0.09, 0.09, "provider unknown"},
		{"peer without private ip", at("aws", "us-east-1", "vpc-1", "az1", "s1"), noPrivate,
			true, false, "203.0.113.2", ClassSameSubnet, 0.02, 0.02, "no private IP"},
		{"peer with a bad private ip first", at("aws", "us-east-1", "vpc-1", "az1", "s1"), badPrivate,
			true, true, "10.0.0.9", ClassSameSubnet, 0, 0.02, "private"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := OldRule(tc.self, tc.peer); got != tc.old {
				t.Errorf("OldRule = %v, want %v", got, tc.old)
			}
			d := Decide(rules, tc.self, tc.peer)
			if d.Private != tc.private || d.SelectedIP != tc.ip || d.Class != tc.class ||
				d.PricePerGB != tc.price || d.PublicPricePerGB != tc.public || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Decide = %+v\nwant private=%v ip=%s class=%s $%g public $%g reason ~%q",
					d, tc.private, tc.ip, tc.class, tc.price, tc.public, tc.reason)
			}
			wantScope := ScopeInter
			if tc.private {
				wantScope = ScopeIntra
			}
			if d.Scope != wantScope {
				t.Errorf("scope %q, want %q", d.Scope, wantScope)
			}
		})
	}
}

// TestDecidePriceTableChooses shows the price table, not a provider
// heuristic, making the choice.
func TestDecidePriceTableChooses(t *testing.T) {
	self := at("aws", "us-east-1", "vpc-1", "az1", "s1")
	peer := at("aws", "us-east-1", "vpc-1", "az2", "s2") // same VPC, other AZ
	if OldRule(self, peer) {
		t.Fatal("the old rule should send this aws cross-subnet traffic over public IPs")
	}

	// An operator who sees public traffic billed as internet egress: the
	// charged private cross-zone path ($0.01) beats the public one ($0.09).
	r := DefaultRules("cnx", RuleCostPrioritized)
	r.Prices = r.Prices.Merge(PriceTable{Providers: map[string]ClassPrices{"aws": {ClassCrossZone: 0.01, ClassCrossVPC: 0.09}}})
	d := Decide(r, self, peer)
	if !d.Private || d.Class != ClassCrossZone || d.PricePerGB != 0.01 || d.PublicPricePerGB != 0.09 || d.SelectedIP != "10.0.0.2" {
		t.Errorf("want private cross-zone at $0.01 vs $0.09, got %+v", d)
	}

	// Cross-zone priced above the public path: the same pair goes public,
	// though it could route privately.
	r.Prices = r.Prices.Merge(PriceTable{Providers: map[string]ClassPrices{"aws": {ClassCrossZone: 0.05, ClassCrossVPC: 0.02}}})
	d = Decide(r, self, peer)
	if d.Private || d.PricePerGB != 0.02 || d.PublicPricePerGB != 0.02 || !strings.Contains(d.Reason, "costs $0.05/GB") {
		t.Errorf("want the public path at $0.02, got %+v", d)
	}

	// An unknown rule type falls back to the public path.
	r.RuleType = "cheapest"
	if d = Decide(r, self, peer); d.Private || !strings.Contains(d.Reason, `unknown rule type "cheapest"`) {
		t.Errorf("unknown rule type: got %+v", d)
	}
}

func TestDecisionJSON(t *testing.T) {
	d := Decide(DefaultRules("cnx", RuleCostPrioritized), at("alibaba", "r", "v", "z", "s"), at("alibaba", "r", "v", "z", "s"))
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"class":"same-subnet"`, `"private":true`, `"selectedIp":"10.0.0.2"`, `"scope":"intra"`, `"pricePerGb":0`, `"publicPricePerGb":0.074`, `"reason":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
}

func TestOldRule(t *testing.T) {
	tests := []struct {
		name       string
		self, peer CloudInfo
		want       bool
	}{
		{"no cloud information", CloudInfo{}, CloudInfo{}, false},
		{"peer without information", at("alibaba", "r", "v", "z", "s"), CloudInfo{}, false},
		{"vpc missing", at("aws", "r", "", "z", "s"), at("aws", "r", "", "z", "s"), false},
		{"vpcs differ", at("alibaba", "r", "v1", "z", "s"), at("alibaba", "r", "v2", "z", "s"), false},
		{"aws same subnet", at("aws", "r", "v", "z", "s"), at("aws", "r", "v", "z", "s"), true},
		{"aws other subnet same zone", at("aws", "r", "v", "z", "s1"), at("aws", "r", "v", "z", "s2"), false},
		{"aws subnet missing", at("aws", "r", "v", "z", ""), at("aws", "r", "v", "z", ""), false},
		{"aws region ignored", at("aws", "r1", "v", "z", "s"), at("aws", "r2", "v", "z", "s"), true},
		{"gcp same zone other subnet", at("gcp", "r", "v", "z", "s1"), at("gcp", "r", "v", "z", "s2"), true},
		{"gcp other zone", at("gcp", "r", "v", "z1", "s"), at("gcp", "r", "v", "z2", "s"), false},
		{"azure same zone", at("azure", "r", "v", "1", "s"), at("azure", "r", "v", "1", "s"), true},
		{"azure zone missing", at("azure", "r", "v", "", "s"), at("azure", "r", "v", "", "s"), false},
		{"alibaba same vpc, nothing else", CloudInfo{ProviderName: "alibaba", VirtualNetworkID: "v"}, CloudInfo{VirtualNetworkID: "v"}, true},
		{"only self's provider counts", at("aws", "r", "v", "z", "s"), at("gcp", "r", "v", "z", "s"), true},
		{"case-sensitive provider", at("AWS", "r", "v", "z", "s"), at("AWS", "r", "v", "z", "s"), false},
		{"unknown provider", at("ibm", "r", "v", "z", "s"), at("ibm", "r", "v", "z", "s"), false},
	}
	for _, tc := range tests {
		if got := OldRule(tc.self, tc.peer); got != tc.want {
			t.Errorf("%s: OldRule = %v, want %v", tc.name, got, tc.want)
		}
	}
}
