package paths

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cost"
)

// Billing is what the traffic to one member pays on the path it takes.
type Billing struct {
	Class cost.Class
	// PricePerGB is the price of the path in use; PublicPricePerGB what
	// the public path costs (the basic rule's price).
	PricePerGB       float64
	PublicPricePerGB float64
	// Scope is intra on the private path, inter on the public one.
	Scope string
}

// Billed returns the class actually billed for traffic to p: the decision's
// class on the private path, the public class of it otherwise (relayed
// traffic crosses the internet to the relay). Without a live stream the
// decision's own path is assumed. ok is false for a peer that is not a
// member.
func (pol *Policy) Billed(p peer.ID) (_ Billing, ok bool) {
	v, ok := pol.Get(p)
	if !ok {
		return Billing{}, false
	}
	d := v.Decision
	public := Billing{Class: d.Class.PublicClass(), PricePerGB: d.PublicPricePerGB, PublicPricePerGB: d.PublicPricePerGB, Scope: cost.ScopeInter}
	private := Billing{Class: d.Class, PricePerGB: d.PricePerGB, PublicPricePerGB: d.PublicPricePerGB, Scope: cost.ScopeIntra}
	remote, relayed, up := pol.streamRemote(p)
	switch {
	case !up && d.Private:
		return private, true
	case !up:
		return public, true
	case relayed:
		public.Class = cost.ClassInternet
		return public, true
	case v.Scope(remote) == cost.ScopeIntra && d.Private:
		return private, true
	case v.Scope(remote) == cost.ScopeIntra:
		// A plain LAN (or the private path before Enforce moves it off):
		// priced as the decision's public path, as the rules decided.
		public.Scope = cost.ScopeIntra
		return public, true
	}
	return public, true
}
