package cost

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// ClassPrices maps a path class to a price in US dollars per GB (decimal GB,
// 1e9 bytes). In JSON it is an object keyed by class name, for example
// {"cross-zone": 0.01, "internet": 0.09}. A provider row may list only the
// classes it overrides; the default row must list every class.
type ClassPrices map[Class]float64

// PriceTable holds the price of each path class: a default row, used for
// unknown providers and for classes a provider row leaves out, and rows per
// provider (keyed by lower-case provider name, as in CloudInfo.ProviderName).
//
// The pricing model, used throughout the package: a price is what sending
// one GB from a node to a peer adds to the operator's total cloud bill — the
// sender's egress charge plus, where the provider also bills the receiving
// side (AWS across zones and for public IPv4 within a region), the
// receiver's ingress charge. The row used is the sending node's provider,
// because egress is billed by the sender's provider; ingress from the
// internet is free at every provider listed here. Each node therefore meters
// the bytes it sends, and the nodes' reports add up to the CLADNet's bill.
//
// Prices of the private classes (same-subnet .. cross-zone, and cross-region
// for providers with global VPCs) are for traffic over private addresses;
// traffic over public addresses is priced by Class.PublicClass.
type PriceTable struct {
	Default   ClassPrices            `json:"default"`
	Providers map[string]ClassPrices `json:"providers,omitempty"`
}

// Limits on a price table.
const (
	maxProviders       = 64
	maxProviderNameLen = 64
)

// DefaultPrices returns the built-in price table: approximate list prices
// for data transfer, list prices as of 2025, in USD per GB. They are
// approximations for the cheapest common case (US/EU regions, first volume
// tier); operators should override them with their own regions' and
// contracts' prices (see LoadRulesFile). Sources:
//
//   - AWS, "Amazon EC2 On-Demand Pricing — Data Transfer": same AZ over
//     private IP free; across AZs $0.01/GB in each direction (so $0.02 per GB
//     moved); public or Elastic IPv4 within a region $0.01/GB in each
//     direction ($0.02); between regions $0.02/GB (US/EU; more elsewhere);
//     to the internet $0.09/GB (first 10 TB/month); inbound free.
//   - Google Cloud, "VPC network pricing" and "Network Service Tiers
//     pricing": same zone free; between zones of a region $0.01/GB; between
//     VMs of a region over external IPs $0.01/GB; between regions within a
//     continent ~$0.02/GB; internet egress Premium Tier $0.12/GB (first TB).
//   - Microsoft Azure, "Bandwidth pricing" and "Virtual Network pricing":
//     within an availability zone free; across zones $0.01/GB announced but
//     historically not billed (kept at $0.01 — set 0 if your bill shows
//     none); VNet to VNet in a region ~$0.01/GB; inter-region within a
//     continent $0.02/GB; internet egress $0.087/GB (Microsoft network
//     routing, first 10 TB after the free 100 GB).
//   - Alibaba Cloud, "ECS public bandwidth billing" and "Billing of
//     Internet data transfer": intranet traffic within a region free (any
//     zone of a VPC); public traffic pay-by-data-transfer ~$0.074-0.117/GB
//     depending on region (US regions $0.074 taken). Traffic between VPCs or
//     regions without CEN goes over public IPs and is billed as such.
//
// The default row (unknown providers) takes the common figures: free within
// a zone, $0.01 across zones and between VPCs of a region, $0.02 across
// regions, $0.09 to the internet.
func DefaultPrices() PriceTable {
	return PriceTable{
		Default: row(0, 0, 0.01, 0.01, 0.02, 0.09),
		Providers: map[string]ClassPrices{
			"aws":     row(0, 0, 0.02, 0.02, 0.02, 0.09),
			"gcp":     row(0, 0, 0.01, 0.01, 0.02, 0.12),
			"azure":   row(0, 0, 0.01, 0.01, 0.02, 0.087),
			"alibaba": row(0, 0, 0, 0.074, 0.074, 0.074),
		},
	}
}

// row builds a full ClassPrices in class order.
func row(sameSubnet, sameZone, crossZone, crossVPC, crossRegion, internet float64) ClassPrices {
	return ClassPrices{
		ClassSameSubnet:  sameSubnet,
		ClassSameZone:    sameZone,
		ClassCrossZone:   crossZone,
		ClassCrossVPC:    crossVPC,
		ClassCrossRegion: crossRegion,
		ClassInternet:    internet,
	}
}

// Price returns the price per GB of class c for traffic sent by a node of
// the given provider: the provider's row if it lists c, else the default
// row. A class found nowhere (only possible in an unvalidated table) is
// priced as the default internet price, and failing that 0.
func (t PriceTable) Price(provider string, c Class) float64 {
	provider = strings.ToLower(strings.TrimSpace(provider))
	if p, ok := t.Providers[provider][c]; ok && provider != "" {
		return p
	}
	if p, ok := t.Default[c]; ok {
		return p
	}
	return t.Default[ClassInternet]
}

// Clone returns a deep copy of t.
func (t PriceTable) Clone() PriceTable {
	out := PriceTable{Default: t.Default.clone()}
	if t.Providers != nil {
		out.Providers = make(map[string]ClassPrices, len(t.Providers))
		for name, r := range t.Providers {
			out.Providers[name] = r.clone()
		}
	}
	return out
}

func (r ClassPrices) clone() ClassPrices {
	if r == nil {
		return nil
	}
	out := make(ClassPrices, len(r))
	for c, p := range r {
		out[c] = p
	}
	return out
}

// Merge returns a copy of t with the entries of overrides laid over it:
// default entries replace default entries, provider entries replace that
// provider's entries (a provider new to t gets a new row). Provider names
// are lower-cased and trimmed.
func (t PriceTable) Merge(overrides PriceTable) PriceTable {
	out := t.Clone()
	if out.Default == nil {
		out.Default = ClassPrices{}
	}
	for c, p := range overrides.Default {
		out.Default[c] = p
	}
	for name, r := range overrides.Providers {
		name = strings.ToLower(strings.TrimSpace(name))
		if out.Providers == nil {
			out.Providers = map[string]ClassPrices{}
		}
		dst := out.Providers[name]
		if dst == nil {
			dst = ClassPrices{}
			out.Providers[name] = dst
		}
		for c, p := range r {
			dst[c] = p
		}
	}
	return out
}

// Validate checks the table: the default row lists every class, every row
// names only known classes, every price is finite and not negative, and
// provider names are non-empty lower-case and trimmed.
func (t PriceTable) Validate() error {
	if err := t.Default.validate("default"); err != nil {
		return err
	}
	for _, c := range Classes() {
		if _, ok := t.Default[c]; !ok {
			return fmt.Errorf("prices: default row lacks class %q (it must list all of %v)", c, Classes())
		}
	}
	if len(t.Providers) > maxProviders {
		return fmt.Errorf("prices: %d provider rows, at most %d", len(t.Providers), maxProviders)
	}
	names := make([]string, 0, len(t.Providers))
	for name := range t.Providers {
		names = append(names, name)
	}
	sort.Strings(names) // report the same error every time
	for _, name := range names {
		if name == "" || len(name) > maxProviderNameLen {
			return fmt.Errorf("prices: provider name %q must have 1-%d bytes", name, maxProviderNameLen)
		}
		if name != strings.ToLower(strings.TrimSpace(name)) {
			return fmt.Errorf("prices: provider name %q must be lower-case without spaces", name)
		}
		if err := t.Providers[name].validate("provider " + name); err != nil {
			return err
		}
	}
	return nil
}

func (r ClassPrices) validate(where string) error {
	classes := make([]string, 0, len(r))
	for c := range r {
		classes = append(classes, string(c))
	}
	sort.Strings(classes)
	for _, s := range classes {
		c := Class(s)
		if !c.Valid() {
			return fmt.Errorf("prices: %s: unknown class %q (want one of %v)", where, s, Classes())
		}
		p := r[c]
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return fmt.Errorf("prices: %s: %s price %v is not a finite number", where, c, p)
		}
		if p < 0 {
			return fmt.Errorf("prices: %s: %s price %v is negative", where, c, p)
		}
	}
	return nil
}
