package cost

import "fmt"

// Placement is where a node runs; it is CloudInfo under the name the cost
// engine uses.
type Placement = CloudInfo

// globalVPC lists providers whose VPC networks span regions: a GCP VPC
// network is global, so two VMs in different regions of the same network
// reach each other on private addresses. AWS VPCs, Azure VNets and Alibaba
// VPCs are regional, and so is every provider not listed here.
var globalVPC = map[string]bool{"gcp": true}

// Classify returns the path class between two placements and why. It walks
// provider, region, VPC, zone and subnet in turn; the first fact missing on
// either side stops the walk at the most expensive class still possible, so
// missing data never makes a path look cheaper than it may be. Provider
// names are compared case-insensitively, other IDs exactly (after trimming).
// The result is symmetric.
func Classify(a, b CloudInfo) (Class, string) {
	a.Normalize()
	b.Normalize()
	steps := []level{
		{"provider", a.ProviderName, b.ProviderName, ClassInternet},
		{"region", a.RegionID, b.RegionID, ClassCrossRegion},
		{"VPC", a.VirtualNetworkID, b.VirtualNetworkID, ClassCrossVPC},
		{"availability zone", a.AvailabilityZoneID, b.AvailabilityZoneID, ClassCrossZone},
		{"subnet", a.SubnetID, b.SubnetID, ClassSameZone},
	}
	for i, s := range steps {
		// Unknown: the class is the most expensive one this level allows,
		// i.e. the class for "different" at this level.
		switch {
		case s.av == "" && s.bv == "":
			return s.differ, fmt.Sprintf("both nodes' %s unknown", s.what)
		case s.av == "":
			return s.differ, fmt.Sprintf("this node's %s unknown", s.what)
		case s.bv == "":
			return s.differ, fmt.Sprintf("peer's %s unknown", s.what)
		case s.av != s.bv:
			return s.differ, differReason(steps[:i], s.what, s.av, s.bv)
		}
	}
	return ClassSameSubnet, fmt.Sprintf("same subnet %s", a.SubnetID)
}

// level is one step of Classify's walk.
type level struct {
	what   string
	av, bv string
	differ Class // the class when the two values differ or one is unknown
}

// differReason explains a difference at one level, naming the last level
// the two placements share.
func differReason(same []level, what, av, bv string) string {
	reason := fmt.Sprintf("different %ss (%s, %s)", what, av, bv)
	if len(same) > 0 {
		last := same[len(same)-1]
		reason = fmt.Sprintf("same %s %s, %s", last.what, last.av, reason)
	}
	return reason
}

// PrivateReachable reports whether a and b can reach each other on private
// addresses, and why. That needs the same provider and the same VPC, with
// the VPC's scope taken into account: for regional VPCs (AWS, Azure,
// Alibaba, and any provider not known to be global) the regions must be
// known and equal as well; for global VPC networks (GCP) any region will do.
// Within one VPC every subnet and zone routes privately (cloud firewalls
// and security groups permitting, which is the operator's business). This is
// wider than cb-network's original rule, which also asked AWS nodes to share
// a subnet and GCP/Azure nodes to share a zone; cbnode lets the price table
// decide those cases instead.
func PrivateReachable(a, b CloudInfo) (bool, string) {
	a.Normalize()
	b.Normalize()
	switch {
	case a.ProviderName == "" || b.ProviderName == "":
		return false, "provider unknown"
	case a.ProviderName != b.ProviderName:
		return false, fmt.Sprintf("different providers (%s, %s)", a.ProviderName, b.ProviderName)
	case a.VirtualNetworkID == "" || b.VirtualNetworkID == "":
		return false, "VPC unknown"
	case a.VirtualNetworkID != b.VirtualNetworkID:
		return false, fmt.Sprintf("different VPCs (%s, %s)", a.VirtualNetworkID, b.VirtualNetworkID)
	case globalVPC[a.ProviderName]:
		return true, fmt.Sprintf("same global %s VPC %s", a.ProviderName, a.VirtualNetworkID)
	case a.RegionID == "" || b.RegionID == "":
		return false, fmt.Sprintf("region unknown and %s VPCs are regional", a.ProviderName)
	case a.RegionID != b.RegionID:
		return false, fmt.Sprintf("%s VPC %s is regional and the nodes are in different regions (%s, %s)", a.ProviderName, a.VirtualNetworkID, a.RegionID, b.RegionID)
	default:
		return true, fmt.Sprintf("same %s VPC %s in region %s", a.ProviderName, a.VirtualNetworkID, a.RegionID)
	}
}
