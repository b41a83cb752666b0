package cost

// OldRule is cb-network's original cost-prioritized heuristic
// (selectByCostPrioritizedRule), kept for comparison. It reports whether
// self should use peer's private IP. Like the original it compares the
// strings as given (callers normalize), looks only at self's provider name,
// ignores the region and knows no prices:
//
//   - either node without cloud information, or without a VPC ID, or the
//     VPC IDs differ: public;
//   - aws: private only in the same (known) subnet;
//   - gcp, azure: private only in the same (known) availability zone;
//   - alibaba: private (the same VPC is enough);
//   - any other provider: public.
func OldRule(self, peer CloudInfo) (private bool) {
	// The original first rejected empty cloud information; an empty VPC ID
	// below covers that case, since empty information has no VPC ID.
	if self.VirtualNetworkID == "" || peer.VirtualNetworkID == "" {
		return false
	}
	if self.VirtualNetworkID != peer.VirtualNetworkID {
		return false
	}
	switch self.ProviderName {
	case "aws":
		return self.SubnetID != "" && peer.SubnetID != "" && self.SubnetID == peer.SubnetID
	case "azure", "gcp":
		return self.AvailabilityZoneID != "" && peer.AvailabilityZoneID != "" && self.AvailabilityZoneID == peer.AvailabilityZoneID
	case "alibaba":
		return true
	default:
		return false
	}
}
