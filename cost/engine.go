package cost

import (
	"fmt"
	"net/netip"
)

// Scopes, as cb-network named them.
const (
	// ScopeIntra: the private path, over the peer's private address.
	ScopeIntra = "intra"
	// ScopeInter: the public path, over the peer's public address.
	ScopeInter = "inter"
)

// Decision is which path a node should use to reach a peer, and what it
// costs.
type Decision struct {
	// Class is the path class between the two nodes (from Classify). It
	// describes where they sit, whichever path is chosen.
	Class Class `json:"class"`
	// Private says to dial the peer's private address.
	Private bool `json:"private"`
	// SelectedIP is the peer address chosen: its first valid private IP
	// when Private, else its public IP; "" if the peer gave none.
	SelectedIP string `json:"selectedIp,omitempty"`
	// Scope is ScopeIntra for the private path, ScopeInter for the public.
	Scope string `json:"scope"`
	// PricePerGB is the price of the chosen path in USD per GB sent.
	PricePerGB float64 `json:"pricePerGb"`
	// PublicPricePerGB is what the public path would cost, i.e. the price
	// under the basic rule; PublicPricePerGB - PricePerGB is the saving.
	PublicPricePerGB float64 `json:"publicPricePerGb"`
	// Reason explains the decision for logs and the API.
	Reason string `json:"reason"`
}

// Decide chooses the path from self to peer under the rules (nil rules mean
// DefaultRules with the basic rule type).
//
// Prices come from the rules' table, row of self's provider (the sender;
// see PriceTable). The private path costs the price of the class; the
// public path costs the price of Class.PublicClass of it, since public-IP
// traffic within a region is billed like traffic between VPCs.
//
//   - basic: always the public path (as in cb-network).
//   - cost-prioritized: the private path when PrivateReachable says the
//     nodes share a network, the peer has a private IP, and the private path
//     costs no more than the public one (on a tie the private path wins: it
//     is shorter and needs no public address); otherwise the public path.
//   - any other rule type: the public path, with the reason saying so.
func Decide(rules *Rules, self, peer CloudInfo) Decision {
	if rules == nil {
		rules = DefaultRules("", RuleBasic)
	}
	self.Normalize()
	peer.Normalize()
	class, why := Classify(self, peer)
	privatePrice := rules.Prices.Price(self.ProviderName, class)
	publicPrice := rules.Prices.Price(self.ProviderName, class.PublicClass())
	public := Decision{
		Class:            class,
		SelectedIP:       peer.PublicIP,
		Scope:            ScopeInter,
		PricePerGB:       publicPrice,
		PublicPricePerGB: publicPrice,
	}
	switch rules.RuleType {
	case RuleBasic:
		public.Reason = fmt.Sprintf("basic rule: public path (%s: %s)", class, why)
		return public
	case RuleCostPrioritized:
	default:
		public.Reason = fmt.Sprintf("unknown rule type %q: public path (%s: %s)", rules.RuleType, class, why)
		return public
	}
	ok, reach := PrivateReachable(self, peer)
	if !ok {
		public.Reason = fmt.Sprintf("cost-prioritized: public path, no private route: %s (%s: %s)", reach, class, why)
		return public
	}
	ip := firstValidIP(peer.PrivateIPs)
	if ip == "" {
		public.Reason = fmt.Sprintf("cost-prioritized: public path, peer has no private IP (%s: %s)", class, why)
		return public
	}
	if privatePrice > publicPrice {
		public.Reason = fmt.Sprintf("cost-prioritized: public path, the private %s path costs $%g/GB, the public one $%g/GB (%s)", class, privatePrice, publicPrice, reach)
		return public
	}
	return Decision{
		Class:            class,
		Private:          true,
		SelectedIP:       ip,
		Scope:            ScopeIntra,
		PricePerGB:       privatePrice,
		PublicPricePerGB: publicPrice,
		Reason:           fmt.Sprintf("cost-prioritized: private %s path at $%g/GB instead of $%g/GB public (%s; %s)", class, privatePrice, publicPrice, reach, why),
	}
}

// firstValidIP returns the first entry of ips that parses as an IP address.
func firstValidIP(ips []string) string {
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.String()
		}
	}
	return ""
}

// Saving returns the USD per GB the decision saves against the public path.
func (d Decision) Saving() float64 { return d.PublicPricePerGB - d.PricePerGB }
